#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

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
    m->data = p;
    m->size = (size_t)st.st_size;
    return 0;
}

void qs_unmap_file(qs_mapping *m)
{
    if (m->data)
        munmap((void *)m->data, m->size);
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
    size_t n = strlen(path);
    af->path = strdup(path);
    af->tmp_path = malloc(n + 16);
    if (!af->path || !af->tmp_path) {
        qs_afile_abort(af);
        return qs_err_set(err, QS_E_OOM, "out of memory");
    }
    snprintf(af->tmp_path, n + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(af->tmp_path);
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
    if (rc == 0 && rename(af->tmp_path, af->path) != 0)
        rc = qs_err_set(err, QS_E_IO, "cannot rename into place: %s", strerror(errno));
    if (rc == 0) {
        fsync_parent_dir(af->path);
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
        free(af->tmp_path);
    }
    free(af->path);
    memset(af, 0, sizeof *af);
}
