#include "tests/testutil.h"

#include <criterion/criterion.h>
#include <sys/wait.h>

#include "core/quant/ggml_types.h"
#include "core/formats/gguf.h"
#include "core/model/model.h"

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

static float *tu_rand_floats(int64_t n, uint32_t *seed)
{
    float *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    for (int64_t i = 0; v && i < n; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        v[i] = ((float)(*seed >> 8) / 16777216.0f - 0.5f) * 0.2f;
    }
    return v;
}

int tu_llama_gguf(const char *path, const tu_llama *s)
{
    uint32_t H = s->n_head ? s->n_head : 1, Hkv = s->n_head_kv ? s->n_head_kv : H;
    int64_t E = s->t_embd ? s->t_embd : s->n_embd, L = s->t_layers ? s->t_layers : s->n_layer;
    int64_t D = s->key_length ? s->key_length : (int64_t)s->n_embd / H;
    int64_t F = s->t_ff ? s->t_ff : s->n_ff, V = s->t_vocab ? s->t_vocab : (s->vocab_size ? s->vocab_size : 32);
    int64_t QR = s->t_q_rows ? s->t_q_rows : (int64_t)H * D, KR = s->t_kv_rows ? s->t_kv_rows : (int64_t)Hkv * D;
    qs_gguf_writer *w = qs_gguf_writer_new();
    qs_gguf_writer_set_str(w, "general.architecture", "llama");
    qs_gguf_writer_set_u32(w, "llama.block_count", s->n_layer);
    qs_gguf_writer_set_u32(w, "llama.embedding_length", s->n_embd);
    qs_gguf_writer_set_u32(w, "llama.attention.head_count", s->n_head);
    if (s->n_ff) qs_gguf_writer_set_u32(w, "llama.feed_forward_length", s->n_ff);
    if (s->n_head_kv) qs_gguf_writer_set_u32(w, "llama.attention.head_count_kv", s->n_head_kv);
    if (s->key_length) qs_gguf_writer_set_u32(w, "llama.attention.key_length", s->key_length);
    if (s->n_ctx) qs_gguf_writer_set_u32(w, "llama.context_length", s->n_ctx);
    if (s->vocab_size) qs_gguf_writer_set_u32(w, "llama.vocab_size", s->vocab_size);
    qs_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    /* a byte-level vocabulary of V tokens */
    char **tok = calloc((size_t)V, sizeof *tok);
    for (int64_t i = 0; i < V; i++) {
        tok[i] = malloc(24);
        snprintf(tok[i], 24, "t%lld", (long long)i);
    }
    qs_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    qs_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)tok, (uint64_t)V);
    qs_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", NULL, 0);
    uint32_t seed = 1;
    float *bufs[256];
    int nb = 0;
    qs_err err = {0};
#define TU_T(name, d0, d1, nd)                                                                                   \
    do {                                                                                                         \
        int64_t ne_[4] = {(d0), (d1), 1, 1};                                                                     \
        float *x_ = tu_rand_floats(ne_[0] * ne_[1], &seed);                                                      \
        if (nb < 256) bufs[nb++] = x_;                                                                           \
        qs_gguf_writer_add_tensor(w, name, QS_TYPE_F32, (nd), ne_, x_, &err);                                    \
    } while (0)
    TU_T("token_embd.weight", E, V, 2);
    TU_T("output_norm.weight", E, 1, 1);
    char n[96];
    for (int64_t b = 0; b < L && b < 16; b++) {
#define TU_B(stem, d0, d1, nd)                                                                                   \
    do {                                                                                                         \
        snprintf(n, sizeof n, "blk.%lld.%s", (long long)b, stem);                                                \
        TU_T(n, d0, d1, nd);                                                                                     \
    } while (0)
        TU_B("attn_norm.weight", E, 1, 1);
        TU_B("attn_q.weight", s->q_dims == 1 ? E * QR : E, s->q_dims == 1 ? 1 : QR, s->q_dims == 1 ? 1 : 2);
        TU_B("attn_k.weight", s->q_dims == 1 ? E * KR : E, s->q_dims == 1 ? 1 : KR, s->q_dims == 1 ? 1 : 2);
        TU_B("attn_v.weight", E, KR, 2);
        TU_B("attn_output.weight", QR, E, 2);
        TU_B("ffn_norm.weight", E, 1, 1);
        TU_B("ffn_gate.weight", E, F, 2);
        TU_B("ffn_up.weight", E, F, 2);
        TU_B("ffn_down.weight", F, E, 2);
#undef TU_B
    }
#undef TU_T
    int rc = qs_gguf_writer_write(w, path, &err);
    qs_gguf_writer_free(w);
    for (int i = 0; i < nb; i++) free(bufs[i]);
    for (int64_t i = 0; i < V; i++) free(tok[i]);
    free(tok);
    if (rc) cr_assert_fail("tu_llama_gguf %s: %s", path, err.msg);
    return rc;
}

qs_model *tu_stories(void)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/stories260K.gguf", tu_models_dir());
    qs_err err = {0};
    qs_model *m = qs_model_open(p, &err);
    if (!m) tu_skip("%s: %s", p, err.msg);
    return m;
}
