#include "testutil.h"

#include <criterion/criterion.h>
#include <sys/wait.h>

#include "core/gguf.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *env_or(const char *var, const char *def)
{
    const char *v = getenv(var);
    return v && *v ? v : def;
}

int tu_require_data(void)
{
    const char *v = getenv("QS_REQUIRE_SHARED");
    return v && *v && strcmp(v, "0");
}

int tu_timeout(int seconds)
{
    const char *v = getenv("QS_TIMEOUT_SCALE");
    int k = v ? atoi(v) : 1;
    return seconds * (k >= 1 && k <= 100 ? k : 1);
}

const char *tu_golden_dir(void) { return env_or("QS_GOLDEN_DIR", "../shared/golden"); }
const char *tu_models_dir(void) { return env_or("QS_MODELS_DIR", "../shared/models"); }
const char *tu_vocab_dir(void) { return env_or("QS_VOCAB_DIR", "../shared/vocab"); }

typedef struct list { char **v; int n, cap; } list;

static void push(list *l, const char *s)
{
    if (l->n + 1 >= l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->v = realloc(l->v, (size_t)l->cap * sizeof *l->v);
    }
    l->v[l->n++] = strdup(s);
    l->v[l->n] = NULL;
}

static void walk(const char *dir, const char *suffix, int recursive, list *l)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0) continue;
        size_t a = strlen(e->d_name), b = strlen(suffix);
        if (S_ISDIR(st.st_mode)) {
            if (recursive) walk(path, suffix, recursive, l);
        } else if (a >= b && strcmp(e->d_name + a - b, suffix) == 0) {
            push(l, path);
        }
    }
    closedir(d);
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

char **tu_list(const char *dir, const char *suffix, int recursive, int *n)
{
    list l = {0};
    walk(dir, suffix, recursive, &l);
    *n = l.n;
    if (l.n) qsort(l.v, (size_t)l.n, sizeof *l.v, cmp);
    return l.v;
}

char **tu_golden_files(const char *sub, int *n)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", tu_golden_dir(), sub);
    char **files = tu_list(dir, ".gguf", 0, n);
    if (!*n) {
        tu_free_list(files);
        tu_skip("no golden files in %s", dir);
    }
    return files;
}

void tu_free_list(char **v)
{
    for (char **p = v; p && *p; p++) free(*p);
    free(v);
}

uint8_t *tu_read(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc(n > 0 ? (size_t)n : 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return p;
}

char *tu_tmpdir(void)
{
    char tmpl[] = "/tmp/qs-test-XXXXXX";
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

void tu_rmtree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            struct stat st;
            if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) tu_rmtree(path);
            else remove(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

void tu_put(tu_buf *b, const void *data, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

void tu_u32(tu_buf *b, uint32_t v) { tu_put(b, &v, 4); }
void tu_u64(tu_buf *b, uint64_t v) { tu_put(b, &v, 8); }

void tu_gstr(tu_buf *b, const char *s)
{
    tu_u64(b, strlen(s));
    tu_put(b, s, strlen(s));
}

void tu_pad(tu_buf *b, size_t align)
{
    static const uint8_t z[64];
    while (b->n % align) tu_put(b, z, 1);
}

tu_run_result tu_run(const char *args)
{
    const char *bin = getenv("QS_BIN");
    if (!bin) tu_skip("QS_BIN not set (make test sets it)");
    char *dir = tu_tmpdir(), cmd[16384], p[4200];
    snprintf(cmd, sizeof cmd, "%s %s >%s/out 2>%s/err", bin, args, dir, dir);
    int st = system(cmd);
    tu_run_result r = {WIFEXITED(st) ? WEXITSTATUS(st) : -1, NULL, NULL};
    size_t n;
    snprintf(p, sizeof p, "%s/out", dir);
    uint8_t *o = tu_read(p, &n);
    r.out = realloc(o, n + 1), r.out[n] = '\0';
    snprintf(p, sizeof p, "%s/err", dir);
    uint8_t *e = tu_read(p, &n);
    r.err = realloc(e, n + 1), r.err[n] = '\0';
    tu_rmtree(dir);
    free(dir);
    return r;
}

void tu_run_free(tu_run_result *r)
{
    free(r->out);
    free(r->err);
}

static void golden_key(int cfg, const char *key, char *out, size_t n)
{
    if (cfg >= 0) snprintf(out, n, "cfg%d.%s", cfg, key);
    else snprintf(out, n, "%s", key);
}

const float *tu_golden_floats(const qs_gguf *g, int cfg, const char *name, int64_t n)
{
    char k[96];
    golden_key(cfg, name, k, sizeof k);
    const qs_gguf_tensor *t = qs_gguf_find_tensor(g, k);
    cr_assert_not_null(t, "golden tensor %s missing", k);
    cr_assert_eq(t->nbytes, (uint64_t)n * 4, "%s: %llu bytes", k, (unsigned long long)t->nbytes);
    return (const float *)t->data;
}

double tu_golden_num(const qs_gguf *g, int cfg, const char *key)
{
    char k[96];
    if (cfg >= 0) golden_key(cfg, key, k, sizeof k);
    else snprintf(k, sizeof k, "golden.%s", key);
    const qs_gguf_kv *kv = qs_gguf_get_kv(g, k);
    cr_assert_not_null(kv, "golden key %s missing", k);
    return qs_gguf_kv_num(kv, 0);
}
