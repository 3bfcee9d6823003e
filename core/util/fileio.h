/* core/util/fileio.h — file mapping and crash-safe output.
 *
 * qs_map_file: read-only mmap of a whole regular file (empty files and directories are
 * errors). qs_afile: an output written to a temporary file beside the target, then fsync'ed
 * and renamed over it by qs_afile_commit; qs_afile_abort (or a failed commit) removes the
 * temporary file, so a target is never left half-written. qs_adir: the same for a directory
 * of files (a checkpoint): written into a temporary directory beside the target, then
 * swapped in whole.
 *
 * Outputs never replace an input or a node that is not a regular file: every mapped file
 * (and every path given to qs_input_register) is an input, and qs_output_check refuses an
 * output that is the same file (st_dev/st_ino, so also through symbolic and hard links), an
 * existing symbolic link, device, FIFO or socket.
 *
 * Temporary files and directories are listed in an async-signal-safe table while they
 * exist: a signal handler calls qs_tmp_cleanup_signal_safe() before re-raising, so a killed
 * export leaves no *.tmp.* behind. */
#ifndef QS_FILEIO_H
#define QS_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "core/util/err.h"

typedef struct qs_mapping {
    const unsigned char *data;
    size_t size;
} qs_mapping;

/* The one checked opener of input files: opens read-only without blocking (a FIFO must not
 * hang), refuses anything but a regular file (QS_E_INPUT "not a regular file (a FIFO)"), and
 * returns the file descriptor (blocking again), or a negative error. st may be NULL. */
struct stat;
int qs_open_regular(const char *path, struct stat *st, qs_err *err);
int qs_map_file(const char *path, qs_mapping *m, qs_err *err);
void qs_unmap_file(qs_mapping *m);
/* Reads a whole (small) file into a NUL-terminated malloc'ed buffer; max_size bounds it. */
char *qs_read_file(const char *path, size_t max_size, size_t *size, qs_err *err);

/* Marks path (a file or a directory) as an input for the rest of the process; nonexistent paths are
 * ignored. */
void qs_input_register(const char *path);
/* 0 when path may be written (absent, or an existing regular file — want_dir: directory — that
 * is no input and holds none); else fills err. */
int qs_output_check(const char *path, int want_dir, qs_err *err);
/* Unlinks every registered temporary file and removes every registered temporary directory
 * (one level deep). Async-signal-safe: only for signal handlers and exit paths. */
void qs_tmp_cleanup_signal_safe(void);
/* Makes a SIGBUS on a mapped file (the file was truncated under us) an error of the guarded
 * read instead of a crash: installs a SIGBUS handler that hands an unguarded fault to the handler
 * that was there before (so call it again after installing one). qs_map_file calls it. */
void qs_fault_guard_install(void);
/* True once a read of a mapped input outside a guarded read found its file truncated: the missing
 * pages were replaced by zeros so the reader could go on, and its results are void. Readers that
 * work on the mapping in place (the forward pass) check it and report the file as changed. */
bool qs_mapped_damaged(void);
/* Runs fn(ctx); a SIGBUS inside it (in this thread) makes it return -QS_E_IO with err filled.
 * Nests. fn must not leave locks held or memory unowned at a point where the mapping can fault. */
int qs_mapped_call(int (*fn)(void *ctx), void *ctx, qs_err *err);
/* memcpy from a mapping, under that guard */
int qs_mapped_copy(void *dst, const void *src, size_t n, qs_err *err);

typedef struct qs_afile {
    FILE *f;
    char *path;      /* final name */
    char *tmp_path;  /* temporary name in the same directory */
} qs_afile;

int qs_afile_open(qs_afile *af, const char *path, qs_err *err);
/* Writes n bytes; errors (e.g. a full disk) are reported by qs_afile_write or at commit. */
int qs_afile_write(qs_afile *af, const void *data, size_t n, qs_err *err);
int qs_afile_commit(qs_afile *af, qs_err *err);
void qs_afile_abort(qs_afile *af);

typedef struct qs_adir {
    char *path;      /* final name */
    char *tmp_path;  /* the temporary directory beside it */
} qs_adir;

/* own: the names an earlier export may have left in an existing target (NULL-terminated); a
 * target directory holding anything else is refused, never replaced. */
/* what qs_adir_open checks first (to refuse before long work) */
int qs_adir_check(const char *path, const char *const *own, qs_err *err);
int qs_adir_open(qs_adir *d, const char *path, const char *const *own, qs_err *err);
/* the path of NAME inside the directory being written (write it with qs_afile) */
void qs_adir_file(const qs_adir *d, const char *name, char *out, size_t n);
/* fsyncs the temporary directory and swaps it in for the target; the old target (if any) is
 * removed. A failure leaves the old target intact. */
int qs_adir_commit(qs_adir *d, qs_err *err);
void qs_adir_abort(qs_adir *d);

#endif
