/* core/fileio.h — file mapping and crash-safe output.
 *
 * qs_map_file: read-only mmap of a whole regular file (empty files and directories are
 * errors). qs_afile: an output written to a temporary file beside the target, then fsync'ed
 * and renamed over it by qs_afile_commit; qs_afile_abort (or a failed commit) removes the
 * temporary file, so a target is never left half-written. */
#ifndef QS_FILEIO_H
#define QS_FILEIO_H

#include <stddef.h>
#include <stdio.h>

#include "err.h"

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

#endif
