/* core/recipe/synth.c — random-weight llama GGUFs of real shapes. */
#include "core/recipe/synth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/quant/ggml_quants.h"
#include "core/quant/ggml_types.h"
#include "core/formats/gguf.h"
#include "core/util/parallel.h"
#include "core/recipe/presets.h"
#include "core/quant/quant.h"

static const qs_synth_shape shapes[] = {
    {"tiny", 256, 2, 768, 4, 2, 512, 512, 10000.0f, 1e-5f, false, "a test model: 2 layers of width 256, 512 tokens"},
    {"small", 768, 12, 2048, 12, 4, 512, 1024, 10000.0f, 1e-5f, false, "medium: 12 layers of width 768, 512 tokens"},
    {"tinyllama", 2048, 22, 5632, 32, 4, 32000, 2048, 10000.0f, 1e-5f, false, "TinyLlama 1.1B"},
    {"llama-1b", 2048, 16, 8192, 32, 8, 128256, 8192, 500000.0f, 1e-5f, true, "Llama 3.2 1B (tied output)"},
    {"llama-8b", 4096, 32, 14336, 32, 8, 128256, 8192, 500000.0f, 1e-5f, false, "Llama 3 8B (no rope scaling)"},
};

const qs_synth_shape *qs_synth_shapes(int *n)
{
    *n = (int)(sizeof shapes / sizeof *shapes);
    return shapes;
}

const qs_synth_shape *qs_synth_shape_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof shapes / sizeof *shapes; i++)
        if (!strcasecmp(shapes[i].name, name)) return &shapes[i];
    return NULL;
}

static int64_t kv_dim(const qs_synth_shape *s) { return (int64_t)s->n_embd / s->n_head * s->n_head_kv; }

int64_t qs_synth_shape_params(const qs_synth_shape *s)
{
    int64_t d = s->n_embd, f = s->n_ff, v = s->n_vocab;
    int64_t layer = 2 * d + d * d * 2 + 2 * d * kv_dim(s) + 3 * d * f;
    return v * d * (s->tied_output ? 1 : 2) + d + (int64_t)s->n_layer * layer;
}

int qs_synth_parse_type(const char *name, int *ftype, int *type, qs_err *err)
{
    *ftype = *type = -1;
    for (int id = 0; id < QS_TYPE_COUNT; id++)
        if (qs_type_valid(id) && !strcmp(qs_type_name(id), name)) *type = id;
    if (*type < 0 && (*ftype = qs_preset_ftype(name)) >= 0) return 0;
    if (*type < 0) *type = qs_type_from_name(name);
    if (*type < 0)
        return qs_err_set(err, QS_E_USAGE,
                          "unknown type '%s': a GGML type (f32, f16, bf16, q8_0, q4_K …) or a llama-quantize preset "
                          "(Q4_K_M, Q8_0, Q2_K …)", name);
    if (!qs_ggml_can_quantize(*type) || qs_preset_ftype_of_type(*type) < 0)
        return qs_err_set(err, QS_E_UNSUPPORTED, "type %s cannot be written as a model's weights", qs_type_name(*type));
    return 0;
}

/* ---- random numbers: splitmix64 per row, normals from an inverse-CDF table ---- */

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t next64(uint64_t *s)
{
    *s += 0x9e3779b97f4a7c15ULL;
    return mix64(*s);
}

/* a uniform in [0, 1) */
static double next_unit(uint64_t *s) { return (double)(next64(s) >> 11) * 0x1.0p-53; }

static uint64_t hash_str(const char *k)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *k; k++) h = (h ^ (unsigned char)*k) * 0x100000001b3ULL;
    return h;
}

/* the generator state of row `row` of the stream named key */
static uint64_t stream(uint64_t seed, const char *key, uint64_t row)
{
    return mix64(mix64(seed ^ hash_str(key)) ^ (row + 1) * 0x9e3779b97f4a7c15ULL);
}

/* Acklam's inverse normal CDF (relative error < 1.2e-9) */
static double inv_normal(double p)
{
    static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                               1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                               6.680131188771972e+01, -1.328068155288572e+01};
    static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                               -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00};
    static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                               3.754408661907416e+00};
    if (p < 0.02425 || p > 1 - 0.02425) {
        double q = sqrt(-2 * log(p < 0.5 ? p : 1 - p));
        double x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
                   ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
        return p < 0.5 ? x : -x;
    }
    double q = p - 0.5, r = q * q;
    return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
           (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

#define NT_BITS 16
#define NT_N (1 << NT_BITS)

/* a standard normal from 32 random bits: the table's quantiles, linearly interpolated */
static inline float normal32(const float *nt, uint32_t v)
{
    uint32_t j = v >> (32 - NT_BITS);
    float f = (float)(v & (NT_N - 1)) * (1.0f / NT_N);
    return nt[j] + f * (nt[j + 1] - nt[j]);
}

/* ---- the tensors ---- */

typedef enum kind { K_EMBD, K_NORM, K_READ /* reads the normed residual */, K_WRITE /* writes the residual */ } kind;

typedef struct stensor {
    char name[QS_GGUF_MAX_NAME + 1];
    int64_t ne[4];
    kind kind;
    int type;
    float sd;
} stensor;

typedef struct outcol {
    int64_t col;
    float scale;
} outcol;

typedef struct spike {
    int64_t row, col;
    float value;
} spike;

typedef struct synth {
    const qs_synth_opts *o;
    const qs_synth_shape *s;
    stensor *t;
    int n;
    float *nt;                   /* NT_N + 1 quantiles */
    outcol *resid;               /* the residual stream's outlier channels */
    int n_resid;
    int n_threads;
    qs_progress *prog;
    int done;
} synth;

static void add(stensor *t, int *n, kind k, float sd, int64_t ne0, int64_t ne1, const char *fmt, int layer)
{
    stensor *x = &t[(*n)++];
    memset(x, 0, sizeof *x);
    snprintf(x->name, sizeof x->name, fmt, layer);
    x->ne[0] = ne0, x->ne[1] = ne1, x->ne[2] = x->ne[3] = 1;
    x->kind = k;
    x->sd = sd;
}

static int cmp_name(const void *a, const void *b)
{
    return qs_llama_tensor_cmp(((const stensor *)a)->name, ((const stensor *)b)->name);
}

/* the tensors in llama-quantize's order, with their deviations */
static stensor *tensor_list(const qs_synth_shape *s, int *n)
{
    int64_t d = s->n_embd, f = s->n_ff, kv = kv_dim(s);
    stensor *t = calloc((size_t)(3 + 9 * s->n_layer), sizeof *t);
    if (!t) return NULL;
    float rd = 1.0f / sqrtf((float)d), rf = 1.0f / sqrtf((float)f), res = 1.0f / sqrtf(2.0f * (float)s->n_layer);
    *n = 0;
    add(t, n, K_EMBD, 0.02f, d, s->n_vocab, "token_embd.weight", 0);
    add(t, n, K_NORM, 0.05f, d, 1, "output_norm.weight", 0);
    if (!s->tied_output) add(t, n, K_READ, rd, d, s->n_vocab, "output.weight", 0);
    for (int l = 0; l < (int)s->n_layer; l++) {
        add(t, n, K_NORM, 0.05f, d, 1, "blk.%d.attn_norm.weight", l);
        add(t, n, K_READ, rd, d, d, "blk.%d.attn_q.weight", l);
        add(t, n, K_READ, rd, d, kv, "blk.%d.attn_k.weight", l);
        add(t, n, K_READ, rd, d, kv, "blk.%d.attn_v.weight", l);
        add(t, n, K_WRITE, rd * res, d, d, "blk.%d.attn_output.weight", l);
        add(t, n, K_NORM, 0.05f, d, 1, "blk.%d.ffn_norm.weight", l);
        add(t, n, K_READ, rd, d, f, "blk.%d.ffn_gate.weight", l);
        add(t, n, K_READ, rd, d, f, "blk.%d.ffn_up.weight", l);
        add(t, n, K_WRITE, rf * res, f, d, "blk.%d.ffn_down.weight", l);
    }
    qsort(t, (size_t)*n, sizeof *t, cmp_name);
    return t;
}

/* per-tensor types: the preset's choice, or the pure type (with fallback) for every matrix */
static int assign_types(stensor *t, int n, const qs_synth_shape *s, int ftype, int type, qs_err *err)
{
    qs_preset_tensor *pt = calloc((size_t)n, sizeof *pt);
    int *out = calloc((size_t)n, sizeof *out);
    int rc = !pt || !out ? qs_err_set(err, QS_E_OOM, "out of memory") : 0;
    for (int i = 0; !rc && i < n; i++) {
        pt[i] = (qs_preset_tensor){t[i].name, {t[i].ne[0], t[i].ne[1], t[i].ne[2], t[i].ne[3]}, QS_TYPE_F32};
        if (ftype >= 0) continue;
        out[i] = qs_preset_quantizable(t[i].name, t[i].ne) ? qs_ggml_fallback_type(type, t[i].ne[0]) : QS_TYPE_F32;
        if (out[i] < 0)
            rc = qs_err_set(err, QS_E_UNSUPPORTED, "%s: %lld columns, and %s has no fallback type", t[i].name,
                            (long long)t[i].ne[0], qs_type_name(type));
    }
    if (!rc && ftype >= 0) {
        qs_preset_model pm = {"llama", (int)s->n_layer, (int)s->n_head, (int)s->n_head_kv, 0, false, pt, n};
        rc = qs_preset_types(ftype, &pm, out, err);
    }
    for (int i = 0; !rc && i < n; i++) t[i].type = out[i];
    free(pt);
    free(out);
    return rc;
}

/* k distinct outlier columns of [0, cols) scaled ×10…20, drawn from the stream key */
static outcol *outlier_cols(uint64_t seed, const char *key, int64_t cols, int *k)
{
    *k = (int)(cols / 1024 > 1 ? cols / 1024 : 1);
    outcol *c = calloc((size_t)*k, sizeof *c);
    if (!c) return NULL;
    uint64_t st = stream(seed, key, UINT64_MAX - 1);
    for (int i = 0; i < *k; i++) {
        bool again;
        do {
            c[i].col = (int64_t)(next64(&st) % (uint64_t)cols);
            again = false;
            for (int j = 0; j < i; j++) again |= c[j].col == c[i].col;
        } while (again);
        c[i].scale = (float)(10.0 + 10.0 * next_unit(&st));
    }
    return c;
}

/* ---- the bytes of one tensor, a row chunk at a time ---- */

typedef struct gen_job {
    const synth *sy;
    const stensor *t;
    const outcol *cols, *own;
    int n_cols, n_own;
    const spike *spikes;
    int n_spikes;
    int64_t row0, ncols;
    float *x;
} gen_job;

static void gen_rows(void *ctx, int64_t i0, int64_t i1)
{
    const gen_job *j = ctx;
    const float *nt = j->sy->nt;
    float sd = j->t->sd, mean = j->t->kind == K_NORM ? 1.0f : 0.0f;
    int64_t nc = j->ncols;
    for (int64_t i = i0; i < i1; i++) {
        int64_t row = j->row0 + i;
        float *x = j->x + i * nc;
        uint64_t st = stream(j->sy->o->seed, j->t->name, (uint64_t)row);
        int64_t c = 0;
        for (; c + 1 < nc; c += 2) {
            uint64_t u = next64(&st);
            x[c] = mean + sd * normal32(nt, (uint32_t)u);
            x[c + 1] = mean + sd * normal32(nt, (uint32_t)(u >> 32));
        }
        if (c < nc) x[c] = mean + sd * normal32(nt, (uint32_t)next64(&st));
        for (int k = 0; k < j->n_cols; k++) x[j->cols[k].col] *= j->cols[k].scale;
        for (int k = 0; k < j->n_own; k++) x[j->own[k].col] *= j->own[k].scale;
        for (int k = 0; k < j->n_spikes; k++)
            if (j->spikes[k].row == row) x[j->spikes[k].col] = j->spikes[k].value;
    }
}

typedef struct tsrc {
    synth *sy;
    int i;
} tsrc;

#define CHUNK_ELEMS (4 << 20)

static int tensor_src(void *ctx, qs_gguf_put_fn put, void *put_ctx, qs_err *err)
{
    const tsrc *ts = ctx;
    synth *sy = ts->sy;
    const stensor *t = &sy->t[ts->i];
    int64_t cols = t->ne[0], rows = t->ne[1] * t->ne[2] * t->ne[3], rb = qs_type_row_bytes(t->type, cols);
    gen_job job = {sy, t, NULL, NULL, 0, 0, NULL, 0, 0, cols, NULL};
    outcol *own = NULL;
    spike *spikes = NULL;
    int rc = 0;
    if (t->kind == K_READ) job.cols = sy->resid, job.n_cols = sy->n_resid;
    if (t->kind == K_WRITE && !(job.own = own = outlier_cols(sy->o->seed, t->name, cols, &job.n_own)))
        return qs_err_set(err, QS_E_OOM, "out of memory");
    if (t->kind != K_NORM) { /* a few isolated large weights, 15…40σ */
        job.n_spikes = (int)(4 + rows * cols / (1 << 22));
        if (!(spikes = calloc((size_t)job.n_spikes, sizeof *spikes))) rc = qs_err_set(err, QS_E_OOM, "out of memory");
        uint64_t st = stream(sy->o->seed, t->name, UINT64_MAX);
        for (int k = 0; !rc && k < job.n_spikes; k++) {
            spikes[k].row = (int64_t)(next64(&st) % (uint64_t)rows);
            spikes[k].col = (int64_t)(next64(&st) % (uint64_t)cols);
            double v = (15.0 + 25.0 * next_unit(&st)) * t->sd;
            spikes[k].value = (float)(next64(&st) & 1 ? v : -v);
        }
        job.spikes = spikes;
    }
    int64_t chunk = CHUNK_ELEMS / cols > 1 ? CHUNK_ELEMS / cols : 1;
    if (chunk > rows) chunk = rows;
    float *x = rc ? NULL : malloc((size_t)(chunk * cols) * sizeof *x);
    uint8_t *q = x ? malloc((size_t)(chunk * rb)) : NULL;
    if (!rc && (!x || !q)) rc = qs_err_set(err, QS_E_OOM, "out of memory");
    job.x = x;
    int64_t per_item = 65536 / cols > 1 ? 65536 / cols : 1;
    for (int64_t r0 = 0; !rc && r0 < rows; r0 += chunk) {
        int64_t nr = rows - r0 < chunk ? rows - r0 : chunk;
        job.row0 = r0;
        qs_parallel_for(nr, per_item, sy->n_threads, gen_rows, &job);
        rc = qs_ggml_quantize(t->type, x, q, nr, cols, NULL, sy->n_threads, err);
        if (rc) rc = qs_err_prefix(err, "%s", t->name);
        if (!rc) rc = put(put_ctx, q, (size_t)(nr * rb), err);
        if (!rc && sy->prog && __atomic_load_n(&sy->prog->cancel, __ATOMIC_RELAXED))
            rc = qs_err_set(err, QS_E_CANCELLED, "cancelled");
    }
    free(x);
    free(q);
    free(own);
    free(spikes);
    if (!rc && !qs_progress_step(sy->prog, ++sy->done, sy->n)) rc = qs_err_set(err, QS_E_CANCELLED, "cancelled");
    return rc;
}

/* ---- metadata ---- */

/* "▁" + s or s, the filler pieces of the synthetic vocabulary: all lower-case words of length
 * 1, 2, 3, … in order, each with and without the word-start mark */
static int synthetic_vocab(qs_gguf_writer *w, uint32_t n, qs_err *err)
{
    if (n < 259 + 96) return qs_err_set(err, QS_E_USAGE, "a synthetic vocabulary needs at least 355 tokens, not %u", n);
    char **tok = calloc(n, sizeof *tok);
    float *score = calloc(n, sizeof *score);
    int32_t *type = calloc(n, sizeof *type);
    int rc = !tok || !score || !type ? qs_err_set(err, QS_E_OOM, "out of memory") : 0;
    static const char *const special[] = {"<unk>", "<s>", "</s>"};
    static const int32_t special_type[] = {2, 3, 3}; /* UNKNOWN, CONTROL */
    uint32_t i = 0, k = 0;
    char buf[64];
    for (; !rc && i < n; i++) {
        if (i < 3) snprintf(buf, sizeof buf, "%s", special[i]), type[i] = special_type[i];
        else if (i < 259) snprintf(buf, sizeof buf, "<0x%02X>", i - 3), type[i] = 6; /* BYTE */
        else {
            type[i] = 1; /* NORMAL */
            score[i] = -(float)(i - 259);
            if (k == 0) snprintf(buf, sizeof buf, "\xe2\x96\x81");
            else if (k <= 94) snprintf(buf, sizeof buf, "%c", (char)(32 + k)); /* printable ASCII */
            else {
                /* the (k-95)th word after them: length L, index in [0, 26^L), with and without ▁ */
                uint64_t idx = k - 95, count = 26;
                int len = 1;
                bool mark = true;
                for (;;) {
                    uint64_t here = len == 1 ? count : 2 * count; /* single letters only with ▁ */
                    if (idx < here) {
                        if (len > 1) mark = idx % 2 == 0, idx /= 2;
                        break;
                    }
                    idx -= here, len++, count *= 26;
                }
                char word[16];
                for (int c = len - 1; c >= 0; c--) word[c] = (char)('a' + idx % 26), idx /= 26;
                word[len] = '\0';
                snprintf(buf, sizeof buf, "%s%s", mark ? "\xe2\x96\x81" : "", word);
            }
            k++;
        }
        if (!(tok[i] = strdup(buf))) rc = qs_err_set(err, QS_E_OOM, "out of memory");
    }
    if (!rc && (qs_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama") ||
                qs_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)tok, n) ||
                qs_gguf_writer_set_arr(w, "tokenizer.ggml.scores", QS_GGUF_F32, score, n) ||
                qs_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", QS_GGUF_I32, type, n) ||
                qs_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1) ||
                qs_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2) ||
                qs_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0) ||
                qs_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true) ||
                qs_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", false)))
        rc = qs_err_set(err, QS_E_OOM, "out of memory");
    for (i = 0; tok && i < n; i++) free(tok[i]);
    free(tok);
    free(score);
    free(type);
    return rc;
}

int qs_synth_check_vocab(const qs_synth_shape *s, const qs_gguf *v, qs_err *err)
{
    const qs_gguf_kv *tk = qs_gguf_get_kv(v, "tokenizer.ggml.tokens");
    if (!tk || tk->type != QS_GGUF_ARRAY || tk->arr_type != QS_GGUF_STRING)
        return qs_err_set(err, QS_E_INPUT, "no tokenizer.ggml.tokens: not a vocabulary");
    if (tk->n != s->n_vocab)
        return qs_err_set(err, QS_E_INPUT, "the vocabulary has %llu tokens, shape %s needs %u", (unsigned long long)tk->n,
                          s->name, s->n_vocab);
    return 0;
}

static int vocab_keys(qs_gguf_writer *w, const qs_synth_shape *s, const qs_gguf *v, qs_err *err)
{
    int rc = qs_synth_check_vocab(s, v, err);
    if (rc) return rc;
    for (int64_t i = 0; i < v->n_kv; i++)
        if (!strncmp(v->kv[i].key, "tokenizer.", 10) && qs_gguf_writer_copy_kv(w, &v->kv[i]))
            return qs_err_set(err, QS_E_OOM, "out of memory");
    return 0;
}

static int metadata(qs_gguf_writer *w, const qs_synth_opts *o, int ftype, qs_err *err)
{
    const qs_synth_shape *s = o->shape;
    char name[96], desc[160];
    snprintf(name, sizeof name, "synthetic %s", s->name);
    snprintf(desc, sizeof desc, "quantscope synth: random weights of %s's shape (seed %llu), not a trained model",
             s->name, (unsigned long long)o->seed);
    int bad = qs_gguf_writer_set_str(w, "general.architecture", "llama") ||
              qs_gguf_writer_set_str(w, "general.type", "model") || qs_gguf_writer_set_str(w, "general.name", name) ||
              qs_gguf_writer_set_str(w, "general.description", desc) ||
              qs_gguf_writer_set_u32(w, "llama.block_count", s->n_layer) ||
              qs_gguf_writer_set_u32(w, "llama.context_length", s->n_ctx) ||
              qs_gguf_writer_set_u32(w, "llama.embedding_length", s->n_embd) ||
              qs_gguf_writer_set_u32(w, "llama.feed_forward_length", s->n_ff) ||
              qs_gguf_writer_set_u32(w, "llama.attention.head_count", s->n_head) ||
              qs_gguf_writer_set_u32(w, "llama.attention.head_count_kv", s->n_head_kv) ||
              qs_gguf_writer_set_f32(w, "llama.rope.freq_base", s->rope_base) ||
              qs_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", s->norm_eps) ||
              qs_gguf_writer_set_u32(w, "llama.vocab_size", s->n_vocab) ||
              qs_gguf_writer_set_u32(w, "llama.rope.dimension_count", s->n_embd / s->n_head);
    if (bad) return qs_err_set(err, QS_E_OOM, "out of memory");
    int rc = o->vocab ? vocab_keys(w, s, o->vocab, err) : synthetic_vocab(w, s->n_vocab, err);
    if (!rc && (qs_gguf_writer_set_u32(w, "general.quantization_version", 2) ||
                qs_gguf_writer_set_u32(w, "general.file_type", (uint32_t)ftype)))
        rc = qs_err_set(err, QS_E_OOM, "out of memory");
    return rc;
}

int qs_synth_write(const qs_synth_opts *o, const char *path, qs_progress *prog, qs_err *err)
{
    const qs_synth_shape *s = o->shape;
    if (!s || !s->n_head || !s->n_head_kv || s->n_head % s->n_head_kv || s->n_embd % s->n_head)
        return qs_err_set(err, QS_E_USAGE, "invalid shape");
    int ftype, type;
    int rc = qs_synth_parse_type(o->type ? o->type : "f16", &ftype, &type, err);
    if (rc) return rc;
    synth sy = {o, s, NULL, 0, NULL, NULL, 0, o->n_threads > 0 ? o->n_threads : qs_cpu_count(), prog, 0};
    qs_gguf_writer *w = qs_gguf_writer_new();
    tsrc *src = NULL;
    sy.t = tensor_list(s, &sy.n);
    sy.nt = malloc((NT_N + 1) * sizeof *sy.nt);
    sy.resid = outlier_cols(o->seed, "residual stream", s->n_embd, &sy.n_resid);
    if (sy.t) src = calloc((size_t)sy.n, sizeof *src);
    if (!w || !sy.t || !sy.nt || !sy.resid || !src) rc = qs_err_set(err, QS_E_OOM, "out of memory");
    for (int j = 0; !rc && j <= NT_N; j++) { /* quantiles, the ends pulled in to 2^-20 */
        double p = (double)j / NT_N, lo = 0x1.0p-20;
        sy.nt[j] = (float)inv_normal(p < lo ? lo : p > 1 - lo ? 1 - lo : p);
    }
    if (!rc) rc = assign_types(sy.t, sy.n, s, ftype, type, err);
    if (!rc) rc = metadata(w, o, ftype >= 0 ? ftype : qs_preset_ftype_of_type(type), err);
    for (int i = 0; !rc && i < sy.n; i++) {
        src[i] = (tsrc){&sy, i};
        rc = qs_gguf_writer_add_tensor_src(w, sy.t[i].name, sy.t[i].type, 0, sy.t[i].ne, tensor_src, &src[i], err);
    }
    if (!rc) qs_progress_step(prog, 0, sy.n);
    if (!rc) rc = qs_gguf_writer_write(w, path, err);
    qs_gguf_writer_free(w);
    free(src);
    free(sy.t);
    free(sy.nt);
    free(sy.resid);
    return rc;
}
