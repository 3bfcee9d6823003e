#include "core/util/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdint.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- inputs: what an output must never replace ---- */

typedef struct input {
    const void *map;   /* the mapping (NULL: registered by path, for good) */
    size_t size;       /* of the mapping */
    dev_t dev;
    ino_t ino;
    int used;
} input;

#define QS_MAX_INPUTS 256
static input inputs[QS_MAX_INPUTS];
static pthread_mutex_t inputs_lock = PTHREAD_MUTEX_INITIALIZER;

static void add_input(const void *map, const struct stat *st)
{
    pthread_mutex_lock(&inputs_lock);
    for (int i = 0; i < QS_MAX_INPUTS; i++)
        if (!inputs[i].used) {
            inputs[i] = (input){map, map ? (size_t)st->st_size : 0, st->st_dev, st->st_ino, 1};
            break;
        }
    pthread_mutex_unlock(&inputs_lock);
}

static void drop_input(const void *map)
{
    pthread_mutex_lock(&inputs_lock);
    for (int i = 0; i < QS_MAX_INPUTS; i++)
        if (inputs[i].used && inputs[i].map == map) {
            inputs[i].used = 0;
            break;
        }
    pthread_mutex_unlock(&inputs_lock);
}

void qs_input_register(const char *path)
{
    struct stat st;
    if (path && stat(path, &st) == 0) add_input(NULL, &st);
}

/* is (dev, ino) an input, or (dir) the directory holding one? */
static int is_input(const struct stat *st, int dir)
{
    int hit = 0;
    pthread_mutex_lock(&inputs_lock);
    for (int i = 0; i < QS_MAX_INPUTS && !hit; i++)
        hit = inputs[i].used && inputs[i].dev == st->st_dev && inputs[i].ino == st->st_ino;
    pthread_mutex_unlock(&inputs_lock);
    (void)dir;
    return hit;
}

static int dir_holds_input(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return 0;
    int hit = 0;
    struct dirent *e;
    while (!hit && (e = readdir(d))) {
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, 0) == 0 && !S_ISDIR(st.st_mode)) hit = is_input(&st, 0);
    }
    closedir(d);
    return hit;
}

int qs_output_check(const char *path, int want_dir, qs_err *err)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : qs_err_set(err, QS_E_IO, "cannot stat the output: %s", strerror(errno));
    if (S_ISLNK(st.st_mode))
        return qs_err_set(err, QS_E_USAGE, "the output is a symbolic link: not replacing it (name its target instead)");
    if (want_dir && !S_ISDIR(st.st_mode))
        return qs_err_set(err, QS_E_USAGE, "the output exists and is not a directory: not replacing it");
    if (!want_dir && !S_ISREG(st.st_mode))
        return qs_err_set(err, QS_E_USAGE, "the output exists and is not a regular file (%s): not replacing it",
                          S_ISDIR(st.st_mode) ? "a directory" : S_ISFIFO(st.st_mode) ? "a FIFO"
                          : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device" : "a special file");
    if (is_input(&st, want_dir))
        return qs_err_set(err, QS_E_USAGE, "the output is the same file as an input: not replacing it");
    if (want_dir && dir_holds_input(path))
        return qs_err_set(err, QS_E_USAGE, "the output directory holds an input: not replacing it");
    return 0;
}

/* ---- temporary files, removed by signal handlers ---- */

#define QS_TMP_SLOTS 64
static char tmp_paths[QS_TMP_SLOTS][4096];
static volatile sig_atomic_t tmp_used[QS_TMP_SLOTS];
static pthread_mutex_t tmp_lock = PTHREAD_MUTEX_INITIALIZER;

static void tmp_register(const char *path)
{
    if (strlen(path) >= sizeof tmp_paths[0]) return;
    pthread_mutex_lock(&tmp_lock);
    for (int i = 0; i < QS_TMP_SLOTS; i++)
        if (!tmp_used[i]) {
            strcpy(tmp_paths[i], path);
            __atomic_thread_fence(__ATOMIC_SEQ_CST);
            tmp_used[i] = 1;
            break;
        }
    pthread_mutex_unlock(&tmp_lock);
}

static void tmp_unregister(const char *path)
{
    pthread_mutex_lock(&tmp_lock);
    for (int i = 0; i < QS_TMP_SLOTS; i++)
        if (tmp_used[i] && !strcmp(tmp_paths[i], path)) {
            tmp_used[i] = 0;
            __atomic_thread_fence(__ATOMIC_SEQ_CST);
            break;
        }
    pthread_mutex_unlock(&tmp_lock);
}

/* Creates a fresh temporary file (dir: directory) named PATH.tmp.PID.N, listed for the signal
 * handlers BEFORE it exists: a terminating signal can reach any thread of the process (blocking
 * it in this one does not keep it off the others), and a path listed first is never missed.
 * Returns the file descriptor (0 for a directory) or -1 with errno set. */
static int create_listed_tmp(const char *path, char *out, size_t cap, int dir)
{
    static unsigned counter;
    for (int tries = 0; tries < 1000; tries++) {
        snprintf(out, cap, "%s.tmp.%ld.%u", path, (long)getpid(), __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
        tmp_register(out);
        int fd = dir ? mkdir(out, 0700) : open(out, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) return fd;
        int e = errno;
        tmp_unregister(out);
        if (e != EEXIST) return errno = e, -1;
    }
    return errno = EEXIST, -1;
}

struct qs_dirent64 {
    unsigned long long d_ino;
    long long d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

/* removes the entries of dir (one level) and dir itself, with async-signal-safe calls only */
static void rmdir_shallow_signal_safe(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        char buf[4096] __attribute__((aligned(8)));
        long n;
        while ((n = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0)
            for (long o = 0; o < n;) {
                struct qs_dirent64 *e = (struct qs_dirent64 *)(buf + o);
                const char *nm = e->d_name;
                if (!(nm[0] == '.' && (!nm[1] || (nm[1] == '.' && !nm[2])))) unlinkat(fd, nm, 0);
                o += e->d_reclen;
            }
        close(fd);
    }
    rmdir(dir);
}

void qs_tmp_cleanup_signal_safe(void)
{
    for (int i = 0; i < QS_TMP_SLOTS; i++)
        if (tmp_used[i] && unlink(tmp_paths[i]) != 0 && (errno == EISDIR || errno == EPERM))
            rmdir_shallow_signal_safe(tmp_paths[i]);
}

/* ---- SIGBUS on a truncated mapping ---- */

static _Thread_local sigjmp_buf *fault_jmp;
static struct sigaction fault_prev;
static pthread_mutex_t fault_lock = PTHREAD_MUTEX_INITIALIZER;

/* set when a read of a mapped input faulted outside a guarded read (the file shrank on disk):
 * the lost pages read as zeros from then on, and qs_mapped_damaged reports it */
static volatile sig_atomic_t mapping_damaged;

bool qs_mapped_damaged(void) { return mapping_damaged != 0; }

/* maps zero pages over the page of addr when it lies in a mapped input; async-signal-safe (the
 * table is read without its lock: an entry is written before its mapping is used) */
static bool patch_mapping(const void *addr)
{
    const uint8_t *a = addr;
    for (int i = 0; i < QS_MAX_INPUTS; i++) {
        const uint8_t *m = inputs[i].map;
        if (!inputs[i].used || !m || a < m || a >= m + inputs[i].size) continue;
        long pg = sysconf(_SC_PAGESIZE);
        uintptr_t page = (uintptr_t)a & ~(uintptr_t)(pg - 1);
        void *z = mmap((void *)page, (size_t)pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        if (z == MAP_FAILED) return false;
        mapping_damaged = 1;
        return true;
    }
    return false;
}

static void on_bus(int sig, siginfo_t *si, void *uc)
{
    if (fault_jmp) siglongjmp(*fault_jmp, 1);
    /* an unguarded read of a mapped input (the forward pass reads weights in place) */
    if (si && si->si_code > 0 && patch_mapping(si->si_addr)) return;
    /* not a guarded read: the handler that was there before gets it (a fault repeats on return;
     * a SIGBUS sent by kill is raised again) */
    (void)uc;
    sigaction(sig, &fault_prev, NULL);
    if (!si || si->si_code <= 0) raise(sig);
}

void qs_fault_guard_install(void)
{
    pthread_mutex_lock(&fault_lock);
    struct sigaction cur, sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_bus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGBUS, NULL, &cur) == 0 && !((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_bus)) {
        fault_prev = cur;
        sigaction(SIGBUS, &sa, NULL);
    }
    pthread_mutex_unlock(&fault_lock);
}

int qs_mapped_call(int (*fn)(void *ctx), void *ctx, qs_err *err)
{
    sigjmp_buf jb, *volatile prev = fault_jmp;
    if (sigsetjmp(jb, 0)) {
        fault_jmp = prev;
        return qs_err_set(err, QS_E_IO, "the file changed on disk while it was being read (truncated?)");
    }
    fault_jmp = &jb;
    int rc = fn(ctx);
    fault_jmp = prev;
    return rc;
}

int qs_open_regular(const char *path, struct stat *st, qs_err *err)
{
    /* O_NONBLOCK: opening a FIFO for reading must not wait for a writer */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return qs_err_set(err, QS_E_IO, "cannot open: %s", strerror(errno));
    struct stat sb;
    if (!st)
        st = &sb;
    if (fstat(fd, st) != 0) {
        int e = errno;
        close(fd);
        return qs_err_set(err, QS_E_IO, "cannot stat: %s", strerror(e));
    }
    if (!S_ISREG(st->st_mode)) {
        close(fd);
        return qs_err_set(err, QS_E_INPUT, "not a regular file (%s)",
                          S_ISDIR(st->st_mode) ? "a directory" : S_ISFIFO(st->st_mode) ? "a FIFO"
                          : S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode) ? "a device" : S_ISSOCK(st->st_mode) ? "a socket" : "special");
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

int qs_map_file(const char *path, qs_mapping *m, qs_err *err)
{
    m->data = NULL;
    m->size = 0;
    struct stat st;
    int fd = qs_open_regular(path, &st, err);
    if (fd < 0)
        return fd;
    if (st.st_size == 0) {
        close(fd);
        return qs_err_set(err, QS_E_INPUT, "empty file");
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED)
        return qs_err_set(err, QS_E_IO, "cannot map: %s", strerror(e));
    qs_fault_guard_install();
    add_input(p, &st);
    m->data = p;
    m->size = (size_t)st.st_size;
    return 0;
}

void qs_unmap_file(qs_mapping *m)
{
    if (m->data) {
        drop_input(m->data);
        munmap((void *)m->data, m->size);
    }
    m->data = NULL;
    m->size = 0;
}

char *qs_read_file(const char *path, size_t max_size, size_t *size, qs_err *err)
{
    int fd = qs_open_regular(path, NULL, err);
    if (fd < 0)
        return NULL;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        qs_err_set(err, QS_E_IO, "cannot open: %s", strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap)
            break;
        if (cap >= max_size) {
            qs_err_set(err, QS_E_INPUT, "file larger than %zu bytes", max_size);
            free(buf);
            fclose(f);
            return NULL;
        }
        cap = cap * 2 > max_size ? max_size : cap * 2;
        char *nb = realloc(buf, cap + 1);
        if (!nb)
            free(buf);
        buf = nb;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf) {
        qs_err_set(err, QS_E_OOM, "out of memory reading file");
        return NULL;
    }
    if (bad) {
        free(buf);
        qs_err_set(err, QS_E_IO, "read error");
        return NULL;
    }
    buf[n] = '\0';
    if (size)
        *size = n;
    return buf;
}

int qs_afile_open(qs_afile *af, const char *path, qs_err *err)
{
    memset(af, 0, sizeof *af);
    int bad = qs_output_check(path, 0, err);
    if (bad) return bad;
    size_t n = strlen(path);
    af->path = strdup(path);
    af->tmp_path = malloc(n + 48);
    if (!af->path || !af->tmp_path) {
        qs_afile_abort(af);
        return qs_err_set(err, QS_E_OOM, "out of memory");
    }
    int fd = create_listed_tmp(path, af->tmp_path, n + 48, 0);
    if (fd < 0) {
        int e = errno;
        free(af->tmp_path);
        af->tmp_path = NULL;
        qs_afile_abort(af);
        return qs_err_set(err, QS_E_IO, "cannot create output: %s", strerror(e));
    }
    fchmod(fd, 0644);
    af->f = fdopen(fd, "wb");
    if (!af->f) {
        close(fd);
        qs_afile_abort(af);
        return qs_err_set(err, QS_E_IO, "cannot open output stream");
    }
    return 0;
}

int qs_afile_write(qs_afile *af, const void *data, size_t n, qs_err *err)
{
    if (n && fwrite(data, 1, n, af->f) != n)
        return qs_err_set(err, QS_E_IO, "write failed: %s", strerror(errno));
    return 0;
}

static void fsync_parent_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(copy);
}

int qs_afile_commit(qs_afile *af, qs_err *err)
{
    int rc = 0;
    if (fflush(af->f) != 0 || ferror(af->f))
        rc = qs_err_set(err, QS_E_IO, "write failed: %s", strerror(errno));
    else if (fsync(fileno(af->f)) != 0)
        rc = qs_err_set(err, QS_E_IO, "fsync failed: %s", strerror(errno));
    if (fclose(af->f) != 0 && rc == 0)
        rc = qs_err_set(err, QS_E_IO, "close failed: %s", strerror(errno));
    af->f = NULL;
    if (rc == 0) /* it may have become one while we wrote */
        rc = qs_output_check(af->path, 0, err);
    if (rc == 0 && rename(af->tmp_path, af->path) != 0)
        rc = qs_err_set(err, QS_E_IO, "cannot rename into place: %s", strerror(errno));
    if (rc == 0) {
        fsync_parent_dir(af->path);
        tmp_unregister(af->tmp_path);
        free(af->tmp_path);
        af->tmp_path = NULL;
    }
    qs_afile_abort(af);
    return rc;
}

void qs_afile_abort(qs_afile *af)
{
    if (af->f)
        fclose(af->f);
    if (af->tmp_path) {
        unlink(af->tmp_path);
        tmp_unregister(af->tmp_path);
        free(af->tmp_path);
    }
    free(af->path);
    memset(af, 0, sizeof *af);
}

typedef struct copy_job {
    void *dst;
    const void *src;
    size_t n;
} copy_job;

static int copy_fn(void *ctx)
{
    const copy_job *j = ctx;
    memcpy(j->dst, j->src, j->n);
    return 0;
}

int qs_mapped_copy(void *dst, const void *src, size_t n, qs_err *err)
{
    copy_job j = {dst, src, n};
    return n ? qs_mapped_call(copy_fn, &j, err) : 0;
}

/* ---- directories ---- */

static int own_name(const char *name, const char *const *own)
{
    for (; own && *own; own++)
        if (!strcmp(name, *own)) return 1;
    return 0;
}

/* removes dir and the plain files in it */
static int rmdir_shallow(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlinkat(dirfd(d), e->d_name, 0);
        closedir(d);
    }
    return rmdir(dir);
}

int qs_adir_check(const char *path, const char *const *own, qs_err *err)
{
    int bad = qs_output_check(path, 1, err);
    if (bad) return bad;
    DIR *old = opendir(path);
    if (old) {
        struct dirent *e;
        int foreign = 0;
        char name[64] = "";
        while (!foreign && (e = readdir(old)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
                (!own_name(e->d_name, own) || e->d_type == DT_DIR || e->d_type == DT_LNK))
                foreign = 1, snprintf(name, sizeof name, "%.60s", e->d_name);
        closedir(old);
        if (foreign)
            return qs_err_set(err, QS_E_USAGE, "the output directory holds '%s', which an export does not write: "
                              "not replacing it (name a new or empty directory)", name);
    }
    return 0;
}

int qs_adir_open(qs_adir *d, const char *path, const char *const *own, qs_err *err)
{
    memset(d, 0, sizeof *d);
    int bad = qs_adir_check(path, own, err);
    if (bad) return bad;
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    d->path = strndup(path, n);
    d->tmp_path = malloc(n + 48);
    if (!d->path || !d->tmp_path) {
        qs_adir_abort(d);
        return qs_err_set(err, QS_E_OOM, "out of memory");
    }
    int made = create_listed_tmp(d->path, d->tmp_path, n + 48, 1) == 0;
    if (!made) {
        int e = errno;
        free(d->tmp_path);
        d->tmp_path = NULL;
        qs_adir_abort(d);
        return qs_err_set(err, QS_E_IO, "cannot create the output directory: %s", strerror(e));
    }
    chmod(d->tmp_path, 0755);
    return 0;
}

void qs_adir_file(const qs_adir *d, const char *name, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", d->tmp_path, name);
}

int qs_adir_commit(qs_adir *d, qs_err *err)
{
    int fd = open(d->tmp_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;
    if (fd < 0 || fsync(fd) != 0) rc = qs_err_set(err, QS_E_IO, "fsync failed: %s", strerror(errno));
    if (fd >= 0) close(fd);
    if (!rc) rc = qs_output_check(d->path, 1, err);
    if (!rc) {
        /* an existing target: swapped with the new one in one step, then the old one (now under
         * the temporary name) is removed */
        struct stat st;
        if (lstat(d->path, &st) != 0) {
            if (rename(d->tmp_path, d->path) != 0) rc = qs_err_set(err, QS_E_IO, "cannot rename into place: %s", strerror(errno));
        } else if (renameat2(AT_FDCWD, d->tmp_path, AT_FDCWD, d->path, RENAME_EXCHANGE) != 0) {
            /* no exchange on this file system: the old one aside, the new one in, the old one removed */
            size_t n = strlen(d->path) + 16;
            char *aside = malloc(n);
            if (!aside) {
                qs_adir_abort(d);
                return qs_err_set(err, QS_E_OOM, "out of memory");
            }
            snprintf(aside, n, "%s.old.XXXXXX", d->path);
            int afd = mkstemp(aside);
            if (afd >= 0) close(afd), unlink(aside);
            if (afd < 0 || rename(d->path, aside) != 0)
                rc = qs_err_set(err, QS_E_IO, "cannot move the old directory aside: %s", strerror(errno));
            else if (rename(d->tmp_path, d->path) != 0) {
                rc = qs_err_set(err, QS_E_IO, "cannot rename into place: %s", strerror(errno));
                rename(aside, d->path);
            } else
                rmdir_shallow(aside);
            free(aside);
        } else
            rmdir_shallow(d->tmp_path); /* the old directory */
    }
    if (!rc) {
        fsync_parent_dir(d->path);
        tmp_unregister(d->tmp_path);
        free(d->tmp_path);
        d->tmp_path = NULL;
    }
    qs_adir_abort(d);
    return rc;
}

void qs_adir_abort(qs_adir *d)
{
    if (d->tmp_path) {
        rmdir_shallow(d->tmp_path);
        tmp_unregister(d->tmp_path);
        free(d->tmp_path);
    }
    free(d->path);
    memset(d, 0, sizeof *d);
}
