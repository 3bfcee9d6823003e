/* core/model/infer.c — llama forward pass over packed weights. Shapes in comments are [rows][cols]
 * of row-major matrices; a weight W of GGUF ne = [in, out] is W[out][in] and y = x·Wᵀ.
 *
 * Weights stay as the file stores them (views into the mapping) or, once replaced, as the
 * bytes of their new type; nothing holds a whole-model float copy. A product with T tokens
 * either dequantizes tiles of W (bounded scratch) and multiplies them with OpenBLAS sgemm
 * (prefill, T >= GEMM_MIN_T), or runs the fused quantized dot products of core/qdot row by row
 * (decode). Either way the activations are first rounded to the weight type's vec-dot type
 * exactly as llama.cpp's x86 backend rounds them, so both paths compute llama.cpp's numbers
 * up to float summation order. The KV cache holds F32 (the reference figures in shared/golden
 * were made so) or, with qs_llm_set_kv_f16, values rounded as llama.cpp's default F16 cache. */
#include "core/model/infer.h"

#include "core/quant/actquant.h"
#include "core/util/fileio.h"
#include "core/util/fp16.h"
#include "core/quant/ggml_types.h"
#include "core/model/ops.h"
#include "core/util/parallel.h"
#include "core/quant/qdot.h"
#include "core/quant/quant.h"

#include <cblas.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* token counts from which a product dequantizes blocks of rows and calls sgemm instead of
 * running the fused row kernels; a thread's block holds at most TILE_FLOATS weights */
#define GEMM_MIN_T 8
#define TILE_FLOATS ((int64_t)1 << 21)

/* a quantizer's integer grid (RTN, GPTQ, AWQ) held as one code a weight plus the groups' scales
 * and zeros of the whole result: w = (q − zero)·scale, divided by AWQ's column scale */
typedef struct grid {
    uint8_t *codes;      /* [rows][cols] (signed when zero is NULL) */
    float *scale, *zero; /* [n_groups] of the result this tensor is rows row0 … of */
    int32_t *g_idx;      /* [cols] group of each column within its row, or NULL */
    float *col_scale;    /* [cols] or NULL */
    int64_t row0, cols, group_len, groups_per_row;
} grid;

/* fake quantization of a product's input (core/actq.h): bits 0 = none; n_scale 0 = a scale per
 * token, 1 = per tensor, cols = per channel */
typedef struct actq {
    int bits;
    float *scale;
    int64_t n_scale;
} actq;

typedef struct wmat {
    const qs_tensor *t;
    grid *grid;          /* type QS_WTYPE_GRID: the codes and scales */
    float *in_div;       /* [cols] the activations are divided by these first (AWQ's scales folded as
                          * llama.cpp's converted model divides them), or NULL */
    int type;            /* storage type of data: F32, F16, BF16 or a GGML block type */
    const uint8_t *data; /* [rows][row_bytes]: the mapped file, or own */
    void *own;           /* bytes this engine allocated (replaced or permuted weights, vectors) */
    size_t row_bytes;
    int64_t rows, cols;
    int act_type;        /* how llama.cpp's CPU backend rounds the activations for this weight
                          * before the product: F32 (none), F16, BF16, Q8_0, Q8_1, Q8_K */
    actq aq;             /* simulated activation quantization before the product */
} wmat;

#define VEC(w) ((const float *)(w).data) /* a 1-row F32 weight (norms, biases) */
#define QS_WTYPE_GRID (-2)

static void grid_free(grid *g)
{
    if (!g) return;
    free(g->codes), free(g->scale), free(g->zero), free(g->g_idx), free(g->col_scale);
    free(g);
}

typedef struct layer {
    wmat attn_norm;      /* [1][E] */
    wmat wq, wk, wv;     /* [H·D][E], [Hkv·D][E], [Hkv·D][E] */
    wmat bq, bk, bv;     /* optional biases [1][H·D] … */
    wmat wo;             /* [E][H·D] */
    wmat ffn_norm;       /* [1][E] */
    wmat w_gate, w_up;   /* [F][E] */
    wmat w_down;         /* [E][F] */
} layer;

/* scratch that lives as long as the engine, grown on demand (eval is not re-entrant) */
typedef struct scratch {
    float *tile;         /* [n_threads][TILE_FLOATS] dequantized weight rows, one slot a pool thread */
    float *xr;           /* [T][cols] rounded activations */
    float *s_err;        /* [T][cols/32] Q8_1 sum errors */
    uint8_t *act;        /* [T][act row bytes] quantized activations */
    float *xd;           /* [T][cols] activations divided by a weight's in_div */
    float *sc;           /* [n_threads][T][pos0+T] attention scores, one slot a pool thread */
    size_t n_xr, n_serr, n_act, n_xd, n_sc;
} scratch;

struct qs_llm {
    qs_hparams hp;
    int n_ctx, E, H, Hkv, D, F, V, L;
    wmat tok_embd;       /* [V][E] */
    wmat output_norm;    /* [1][E] */
    wmat output;         /* [V][E] (token_embd when tied) */
    layer *layers;
    float *kcache, *vcache; /* [L][kv_cap][Hkv·D] */
    int kv_cap;          /* positions a layer's cache holds: n_ctx, or n_seq × n after qs_llm_eval_seqs */
    const volatile int *cancel; /* checked between layers, or NULL */
    bool kv_f16;         /* llama.cpp's default F16 cache: K, V, Q and the probabilities rounded */
    wmat **all;          /* every wmat, for set_weights */
    int n_all;
    int n_threads;
    qs_pool *pool;       /* n_threads threads for every product */
    scratch s;
    qs_llm_observer observe;
    void *observe_ctx;
};

/* a weight whose bytes can serve the products as they are: a type with a kernel, rows in
 * GGUF order, F32 aligned for sgemm */
static bool usable_as_mapped(const qs_tensor *t, int64_t cols)
{
    if (t->permute_heads > 0 || qs_qdot_act_type(t->type, cols) < 0) return false;
    if (t->type == QS_TYPE_F32 && ((uintptr_t)t->data % sizeof(float))) return false;
    return true;
}

static int load_w(const qs_model *m, const char *name, int64_t rows, int64_t cols, bool optional, wmat *out, qs_err *err)
{
    memset(out, 0, sizeof *out);
    const qs_tensor *t = qs_model_find_tensor(m, name);
    if (!t) return optional ? 0 : qs_err_set(err, QS_E_INPUT, "missing tensor %s", name);
    if (t->ne[0] != cols || qs_tensor_nrows(t) != rows)
        return qs_err_set(err, QS_E_INPUT, "tensor %s has %lld × %lld values, expected %lld × %lld", name,
                          (long long)qs_tensor_nrows(t), (long long)t->ne[0], (long long)rows, (long long)cols);
    out->t = t;
    out->rows = rows;
    out->cols = cols;
    if (rows > 1 && usable_as_mapped(t, cols)) {
        out->type = t->type;
        out->data = t->data;
        out->row_bytes = (size_t)qs_type_row_bytes(t->type, cols);
        out->act_type = qs_qdot_act_type(t->type, cols);
        return 0;
    }
    /* vectors, permuted HF rows and types without a kernel: a float copy of this tensor only */
    float *f = malloc((size_t)(rows * cols) * sizeof *f);
    if (!f) return qs_err_set(err, QS_E_OOM, "out of memory for %s", name);
    out->own = f;
    out->data = (const uint8_t *)f;
    out->type = QS_TYPE_F32;
    out->row_bytes = (size_t)cols * sizeof *f;
    out->act_type = QS_TYPE_F32;
    return qs_tensor_read_rows(t, 0, rows, f, err);
}

static int load_layer(qs_llm *l, const qs_model *m, int i, qs_err *err)
{
    layer *y = &l->layers[i];
    char n[96];
    int64_t E = l->E, QD = (int64_t)l->H * l->D, KD = (int64_t)l->Hkv * l->D, F = l->F;
    struct { const char *s; wmat *w; int64_t r, c; bool opt; } spec[] = {
        {"attn_norm.weight", &y->attn_norm, 1, E, false}, {"attn_q.weight", &y->wq, QD, E, false},
        {"attn_k.weight", &y->wk, KD, E, false}, {"attn_v.weight", &y->wv, KD, E, false},
        {"attn_q.bias", &y->bq, 1, QD, true}, {"attn_k.bias", &y->bk, 1, KD, true},
        {"attn_v.bias", &y->bv, 1, KD, true}, {"attn_output.weight", &y->wo, E, QD, false},
        {"ffn_norm.weight", &y->ffn_norm, 1, E, false}, {"ffn_gate.weight", &y->w_gate, F, E, false},
        {"ffn_up.weight", &y->w_up, F, E, false}, {"ffn_down.weight", &y->w_down, E, F, false}};
    for (size_t k = 0; k < sizeof spec / sizeof *spec; k++) {
        snprintf(n, sizeof n, "blk.%d.%s", i, spec[k].s);
        int rc = load_w(m, n, spec[k].r, spec[k].c, spec[k].opt, spec[k].w, err);
        if (spec[k].w->t) l->all[l->n_all++] = spec[k].w;
        if (rc) return rc;
    }
    return 0;
}

qs_llm *qs_llm_new(const qs_model *m, int n_ctx, qs_err *err)
{
    const qs_hparams *hp = &m->hp;
    if (!hp->supported) {
        qs_err_set(err, QS_E_UNSUPPORTED, "cannot run this model: %s", hp->unsupported_why);
        return NULL;
    }
    if (n_ctx < 1 || n_ctx > (1 << 20)) {
        qs_err_set(err, QS_E_USAGE, "context length %d out of range", n_ctx);
        return NULL;
    }
    /* sizes in int64 with overflow checks: every count the engine keeps as an int, and the KV cache */
    int64_t n_all, kv, qd, kd, per_t;
    bool over = hp->n_layer > INT32_MAX || hp->n_embd > INT32_MAX || hp->n_ff > INT32_MAX || hp->n_vocab > INT32_MAX ||
                hp->n_head > INT32_MAX || hp->n_head_kv > INT32_MAX || hp->head_dim > INT32_MAX ||
                __builtin_mul_overflow((int64_t)hp->n_layer, (int64_t)12, &n_all) || __builtin_add_overflow(n_all, 3, &n_all) ||
                __builtin_mul_overflow((int64_t)hp->n_head, (int64_t)hp->head_dim, &qd) || qd > INT32_MAX ||
                __builtin_mul_overflow((int64_t)hp->n_head_kv, (int64_t)hp->head_dim, &kd) || kd > INT32_MAX ||
                __builtin_mul_overflow((int64_t)hp->n_layer, (int64_t)n_ctx, &kv) || __builtin_mul_overflow(kv, kd, &kv) ||
                kv > INT64_MAX / (int64_t)sizeof(float) ||
                __builtin_mul_overflow((int64_t)hp->n_embd + qd + kd + hp->n_ff, (int64_t)3, &per_t) ||
                per_t > INT32_MAX;
    if (over) {
        qs_err_set(err, QS_E_UNSUPPORTED, "cannot run this model: its sizes (%u blocks, %u × %u heads, context %d) overflow",
                   hp->n_layer, hp->n_head, hp->head_dim, n_ctx);
        return NULL;
    }
    qs_llm *l = calloc(1, sizeof *l);
    if (!l) {
        qs_err_set(err, QS_E_OOM, "out of memory");
        return NULL;
    }
    l->hp = *hp;
    l->n_ctx = n_ctx;
    l->kv_cap = n_ctx;
    l->E = (int)hp->n_embd, l->H = (int)hp->n_head, l->Hkv = (int)hp->n_head_kv, l->D = (int)hp->head_dim;
    l->F = (int)hp->n_ff, l->V = (int)hp->n_vocab, l->L = (int)hp->n_layer;
    l->pool = qs_pool_new(0);
    l->n_threads = qs_pool_threads(l->pool);
    l->layers = calloc((size_t)l->L, sizeof *l->layers);
    l->all = calloc((size_t)n_all, sizeof *l->all);
    l->s.tile = malloc((size_t)l->n_threads * (size_t)TILE_FLOATS * sizeof *l->s.tile);
    int rc = (!l->layers || !l->all || !l->pool || !l->s.tile)
                 ? qs_err_set(err, QS_E_OOM, "out of memory")
                 : 0;
    wmat *top[] = {&l->tok_embd, &l->output_norm, &l->output};
    if (!rc) rc = load_w(m, "token_embd.weight", l->V, l->E, false, &l->tok_embd, err);
    if (!rc) rc = load_w(m, "output_norm.weight", 1, l->E, false, &l->output_norm, err);
    if (!rc) rc = load_w(m, "output.weight", l->V, l->E, true, &l->output, err);
    for (int k = 0; k < 3; k++)
        if (top[k]->t) l->all[l->n_all++] = top[k];
    for (int i = 0; !rc && i < l->L; i++) rc = load_layer(l, m, i, err);
    /* the KV cache once every weight is there (a block count beyond the file fails above) */
    if (!rc && (size_t)kv > ((size_t)1 << 37))
        rc = qs_err_set(err, QS_E_UNSUPPORTED, "a KV cache of %lld values is beyond this machine", (long long)kv);
    if (!rc && (!(l->kcache = calloc((size_t)kv, sizeof *l->kcache)) || !(l->vcache = calloc((size_t)kv, sizeof *l->vcache))))
        rc = qs_err_set(err, QS_E_OOM, "out of memory for a KV cache of %lld values", (long long)kv);
    if (rc) {
        qs_llm_free(l);
        return NULL;
    }
    return l;
}

void qs_llm_free(qs_llm *l)
{
    if (!l) return;
    for (int i = 0; i < l->n_all; i++) {
        free(l->all[i]->own);
        free(l->all[i]->in_div);
        free(l->all[i]->aq.scale);
        grid_free(l->all[i]->grid);
    }
    free(l->all);
    free(l->layers);
    free(l->kcache);
    free(l->vcache);
    qs_pool_free(l->pool);
    free(l->s.tile);
    free(l->s.xr);
    free(l->s.s_err);
    free(l->s.act);
    free(l->s.xd);
    free(l->s.sc);
    free(l);
}

void qs_llm_set_observer(qs_llm *l, qs_llm_observer fn, void *ctx)
{
    l->observe = fn;
    l->observe_ctx = ctx;
}

/* the input x[T][cols] of the weights w[0 … n−1] */
static void observe(const qs_llm *l, const wmat *const *w, int n, const float *x, int T)
{
    if (!l->observe) return;
    const char *names[3];
    for (int i = 0; i < n; i++) names[i] = w[i]->t->gguf_name;
    l->observe(l->observe_ctx, names, n, x, T, w[0]->cols);
}

int qs_llm_n_ctx(const qs_llm *l) { return l->n_ctx; }
int qs_llm_n_vocab(const qs_llm *l) { return l->V; }
void qs_llm_reset(qs_llm *l) { (void)l; /* positions are overwritten before they are read */ }
void qs_llm_set_kv_f16(qs_llm *l, bool on) { l->kv_f16 = on; }

static wmat *find_w(qs_llm *l, const char *name);
static void dequant_block(const wmat *W, int64_t r0, int64_t n, float *out);

static int set_act_quant(wmat *m, int bits, const float *scale, int64_t n_scale, qs_err *err)
{
    const char *name = m->t->name;
    if (bits && (bits < 2 || bits > 8 || (n_scale != 0 && n_scale != 1 && n_scale != m->cols) || (n_scale && !scale)))
        return qs_err_set(err, QS_E_USAGE, "%s: activation quantization to %d bits with %lld scales", name, bits,
                          (long long)n_scale);
    float *c = NULL;
    if (bits && n_scale && !(c = malloc((size_t)n_scale * sizeof *c))) return qs_err_set(err, QS_E_OOM, "out of memory");
    if (c) memcpy(c, scale, (size_t)n_scale * sizeof *c);
    free(m->aq.scale);
    m->aq = (actq){bits, c, bits ? n_scale : 0};
    return 0;
}

int qs_llm_set_act_quant(qs_llm *l, const char *name, int bits, const float *scale, int64_t n_scale, qs_err *err)
{
    if (name) {
        wmat *m = find_w(l, name);
        return m ? set_act_quant(m, bits, scale, n_scale, err)
                 : qs_err_set(err, QS_E_USAGE, "the model uses no tensor named %s", name);
    }
    int rc = 0;
    for (int i = 0; !rc && i < l->n_all; i++)
        if (l->all[i]->rows > 1) rc = set_act_quant(l->all[i], bits, scale, n_scale, err);
    return rc;
}

int qs_llm_set_in_div(qs_llm *l, const char *name, const float *s, qs_err *err)
{
    wmat *m = find_w(l, name);
    if (!m) return qs_err_set(err, QS_E_USAGE, "the model uses no tensor named %s", name);
    float *c = NULL;
    if (s && !(c = malloc((size_t)m->cols * sizeof *c))) return qs_err_set(err, QS_E_OOM, "out of memory");
    if (c) memcpy(c, s, (size_t)m->cols * sizeof *c);
    free(m->in_div);
    m->in_div = c;
    return 0;
}

const float *qs_llm_in_div(const qs_llm *l, const char *name)
{
    const wmat *m = find_w((qs_llm *)l, name);
    return m ? m->in_div : NULL;
}

int qs_llm_weight_shape(const qs_llm *l, const char *name, int64_t *rows, int64_t *cols)
{
    const wmat *m = find_w((qs_llm *)l, name);
    if (!m) return -1;
    if (rows) *rows = m->rows;
    if (cols) *cols = m->cols;
    return 0;
}

int qs_llm_read_weight(const qs_llm *l, const char *name, float *out, qs_err *err)
{
    const wmat *m = find_w((qs_llm *)l, name);
    if (!m) return qs_err_set(err, QS_E_USAGE, "the model uses no tensor named %s", name);
    dequant_block(m, 0, m->rows, out);
    return 0;
}
void qs_llm_set_cancel(qs_llm *l, const volatile int *flag) { l->cancel = flag; }

static wmat *find_w(qs_llm *l, const char *name)
{
    for (int i = 0; i < l->n_all; i++)
        if (!strcmp(l->all[i]->t->name, name) || !strcmp(l->all[i]->t->gguf_name, name)) return l->all[i];
    return NULL;
}

/* replaces m's storage by a copy of n bytes of `type` rows */
static int replace_w(wmat *m, int type, const void *bytes, size_t row_bytes, int act_type, qs_err *err)
{
    size_t n = row_bytes * (size_t)m->rows;
    void *own = malloc(n);
    if (!own) return qs_err_set(err, QS_E_OOM, "out of memory for %s", m->t->name);
    memcpy(own, bytes, n);
    free(m->own);
    free(m->in_div);
    grid_free(m->grid);
    m->in_div = NULL;
    m->grid = NULL;
    m->own = own;
    m->data = own;
    m->type = type;
    m->row_bytes = row_bytes;
    m->act_type = act_type;
    return 0;
}

int qs_llm_set_weights(qs_llm *l, const char *name, const float *w, int act_type, qs_err *err)
{
    wmat *m = find_w(l, name);
    if (!m) return qs_err_set(err, QS_E_USAGE, "the model uses no tensor named %s", name);
    if (act_type != QS_TYPE_F32 && qs_type_row_bytes(act_type, m->cols) <= 0) act_type = QS_TYPE_F32;
    return replace_w(m, QS_TYPE_F32, w, (size_t)m->cols * sizeof *w, m->rows > 1 ? act_type : QS_TYPE_F32, err);
}

int qs_llm_set_packed(qs_llm *l, const char *name, int type, const void *data, size_t nbytes, qs_err *err)
{
    wmat *m = find_w(l, name);
    if (!m) return qs_err_set(err, QS_E_USAGE, "the model uses no tensor named %s", name);
    int64_t rb = qs_type_row_bytes(type, m->cols);
    int act = qs_qdot_act_type(type, m->cols);
    if (rb <= 0 || act < 0 || m->rows < 2)
        return qs_err_set(err, QS_E_UNSUPPORTED, "%s: no product kernel for %s rows of %lld", name, qs_type_name(type),
                          (long long)m->cols);
    if ((size_t)rb * (size_t)m->rows != nbytes)
        return qs_err_set(err, QS_E_INPUT, "%s: %zu bytes for %lld rows of %s", name, nbytes, (long long)m->rows,
                          qs_type_name(type));
    return replace_w(m, type, data, (size_t)rb, act, err);
}

/* ---- operations ---- */

int qs_llama_cpp_act_type(int weight_type, int64_t cols)
{
    int a = qs_qdot_act_type(weight_type, cols);
    return a < 0 ? QS_TYPE_F32 : a;
}

static int grow(void **p, size_t *cap, size_t n, size_t elem)
{
    if (n <= *cap) return 0;
    void *q = realloc(*p, n * elem);
    if (!q) return -1;
    *p = q;
    *cap = n;
    return 0;
}

static void grid_rows(const grid *g, int64_t r0, int64_t n, float *out)
{
    for (int64_t r = r0; r < r0 + n; r++) {
        int64_t gr = g->row0 + r;
        const uint8_t *c = g->codes + (size_t)r * (size_t)g->cols;
        float *o = out + (size_t)(r - r0) * (size_t)g->cols;
        for (int64_t k = 0; k < g->cols; k++) {
            int64_t gi = g->g_idx ? gr * g->groups_per_row + g->g_idx[k] : (gr * g->cols + k) / g->group_len;
            float q = g->zero ? (float)c[k] : (float)(int8_t)c[k], w = (q - (g->zero ? g->zero[gi] : 0.0f)) * g->scale[gi];
            o[k] = g->col_scale ? w / g->col_scale[k] : w;
        }
    }
}

/* rows [r0, r0+n) of W as floats */
static void dequant_block(const wmat *W, int64_t r0, int64_t n, float *out)
{
    if (W->type == QS_TYPE_F32 && !W->grid) {
        memcpy(out, W->data + (size_t)r0 * W->row_bytes, (size_t)n * W->row_bytes);
        return;
    }
    if (W->grid) grid_rows(W->grid, r0, n, out);
    else qs_qdot_dequantize_rows(W->type, W->data + (size_t)r0 * W->row_bytes, W->row_bytes, out, n, W->cols);
}

/* Q4_1/Q5_1: the f16 minimum of every 32-block of rows [r0, r0+n) → mins[n][cols/32] */
static void block_mins(const wmat *W, int64_t r0, int64_t n, float *mins)
{
    int64_t nb = W->cols / 32;
    size_t bs = W->type == QS_TYPE_Q4_1 ? sizeof(qs_block_q4_1) : sizeof(qs_block_q5_1);
    for (int64_t r = 0; r < n; r++) {
        const uint8_t *row = W->data + (size_t)(r0 + r) * W->row_bytes;
        for (int64_t b = 0; b < nb; b++) {
            uint16_t m;
            memcpy(&m, row + (size_t)b * bs + 2, sizeof m);
            mins[r * nb + b] = qs_f16_to_f32(m);
        }
    }
}

/* y[T][rows] = xr[T][cols] · Wᵀ by blocks of rows: each thread dequantizes a block into its own
 * slot and multiplies it with a single-threaded sgemm, so dequantization and products run on every
 * core without OpenBLAS's threads spinning beside ours. Q8_1 activations add Σ_b m_b·s_err_b, the
 * error of the f16 block sums llama.cpp's Q4_1/Q5_1 dots use. */
typedef struct tiles_job {
    qs_llm *l;
    const wmat *W;
    const float *xr, *s_err;
    float *y;
    int T;
    int64_t step;
} tiles_job;

static void tile_block(void *ctx, int64_t b0, int64_t b1, int thread)
{
    const tiles_job *j = ctx;
    const wmat *W = j->W;
    int64_t cols = W->cols, nb = cols / 32;
    bool mins = j->s_err && (W->type == QS_TYPE_Q4_1 || W->type == QS_TYPE_Q5_1);
    float *buf = j->l->s.tile + (size_t)thread * TILE_FLOATS;
    for (int64_t b = b0; b < b1; b++) {
        int64_t r0 = b * j->step, n = W->rows - r0 < j->step ? W->rows - r0 : j->step;
        const float *wt = (const float *)(W->data + (size_t)r0 * W->row_bytes);
        if (W->type != QS_TYPE_F32) {
            dequant_block(W, r0, n, buf);
            wt = buf;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->T, (int)n, (int)cols, 1.0f, j->xr, (int)cols, wt, (int)cols,
                    0.0f, j->y + r0, (int)W->rows);
        if (mins) {
            block_mins(W, r0, n, buf);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->T, (int)n, (int)nb, 1.0f, j->s_err, (int)nb, buf, (int)nb,
                        1.0f, j->y + r0, (int)W->rows);
        }
    }
}

static int matmul_tiles(qs_llm *l, const float *xr, const float *s_err, const wmat *W, float *y, int T)
{
    int64_t cols = W->cols;
    if (cols > TILE_FLOATS) return -1;
    /* blocks of at most a slot, as many as a multiple of the threads, so that every thread gets
     * the same share */
    int64_t max_step = TILE_FLOATS / cols, nt = l->n_threads;
    int64_t blocks = (W->rows + max_step - 1) / max_step;
    blocks = (blocks + nt - 1) / nt * nt;
    int64_t step = (W->rows + blocks - 1) / blocks;
    if (step < 1) step = 1;
    tiles_job j = {l, W, xr, s_err, y, T, step};
    blocks = (W->rows + step - 1) / step;
    qs_pool_for(l->pool, blocks, 1, tile_block, &j); /* OpenBLAS is single-threaded inside qs_llm_eval */
    return 0;
}

typedef struct rows_job {
    const wmat *W;
    const uint8_t *act;
    size_t act_bytes;
    float *y;
    int T;
} rows_job;

static void dot_rows(void *ctx, int64_t i0, int64_t i1, int thread)
{
    (void)thread;
    const rows_job *j = ctx;
    const wmat *W = j->W;
    for (int t = 0; t < j->T; t++)
        qs_qdot_rows(W->type, W->cols, W->data + (size_t)i0 * W->row_bytes, W->row_bytes, i1 - i0,
                     j->act + (size_t)t * j->act_bytes, j->y + (size_t)t * (size_t)W->rows + i0);
}

/* y[T][rows] = x[T][cols] · Wᵀ (+ bias), the activations rounded as llama.cpp rounds them for
 * W's type (x is left unchanged) */
static int matmul(qs_llm *l, const float *x, const wmat *W, const wmat *bias, float *y, int T, qs_err *err)
{
    int64_t cols = W->cols, nb = cols / 32;
    bool rows_path = T < GEMM_MIN_T && W->type != QS_TYPE_F32 && !W->grid;
    int rc = 0;
    if (W->in_div || W->aq.bits) {
        if (grow((void **)&l->s.xd, &l->s.n_xd, (size_t)(T * cols), sizeof(float)))
            return qs_err_set(err, QS_E_OOM, "out of memory for the product with %s", W->t->name);
        for (int64_t i = 0; i < T * cols; i++) l->s.xd[i] = W->in_div ? x[i] / W->in_div[i % cols] : x[i];
        if (W->aq.bits) qs_act_fake_quant(l->s.xd, T, cols, W->aq.bits, W->aq.scale, W->aq.n_scale);
        x = l->s.xd;
    }
    if (rows_path) {
        int64_t ab = qs_type_row_bytes(W->act_type, cols);
        rc = grow((void **)&l->s.act, &l->s.n_act, (size_t)(ab * T), 1);
        if (!rc) {
            for (int t = 0; t < T; t++)
                qs_qdot_quantize_act(W->act_type, x + (size_t)t * cols, l->s.act + (size_t)t * (size_t)ab, cols);
            rows_job j = {W, l->s.act, (size_t)ab, y, T};
            qs_pool_for(l->pool, W->rows, 64, dot_rows, &j);
        }
    } else {
        const float *xr = x, *se = NULL;
        if (W->act_type != QS_TYPE_F32) {
            bool q81 = W->act_type == QS_TYPE_Q8_1;
            rc = grow((void **)&l->s.xr, &l->s.n_xr, (size_t)(T * cols), sizeof(float));
            if (!rc && q81) rc = grow((void **)&l->s.s_err, &l->s.n_serr, (size_t)(T * nb), sizeof(float));
            for (int t = 0; !rc && t < T; t++)
                qs_qdot_round_act(W->act_type, x + (size_t)t * cols, l->s.xr + (size_t)t * cols,
                                  q81 ? l->s.s_err + (size_t)t * nb : NULL, cols);
            xr = l->s.xr, se = q81 ? l->s.s_err : NULL;
        }
        if (!rc) rc = matmul_tiles(l, xr, se, W, y, T);
    }
    if (rc) return qs_err_set(err, QS_E_OOM, "out of memory for the product with %s", W->t->name);
    if (bias && bias->t)
        for (int t = 0; t < T; t++)
            for (int64_t o = 0; o < W->rows; o++) y[(size_t)t * W->rows + o] += VEC(*bias)[o];
    return 0;
}

/* v rounded to f16 in place (qdot's activation rounding for F16 weights, F16C where present) */
static void round_f16(float *v, size_t n) { qs_qdot_round_act(QS_TYPE_F16, v, v, NULL, (int64_t)n); }

/* causal grouped-query attention: per head, scores = (Q_h·K_hᵀ)·scale (sgemm over the cache),
 * masked above the diagonal, softmax per row (sum in double), out_h = P·V_h (sgemm); with an
 * F16 cache (llama.cpp's default, kv_f16) Q and P are rounded to f16 as ggml's F16 products do */
typedef struct att_job {
    const qs_llm *l;
    const float *q, *kc, *vc; /* q: [n_seq·T][H·D]; kc, vc: the layer's cache, sequence s from position s·T */
    float *out, *sc;     /* sc: [n_threads][T][np], a slot a pool thread */
    int T, pos0;
} att_job;

static void att_heads(void *ctx, int64_t h0, int64_t h1, int thread)
{
    const att_job *j = ctx;
    const qs_llm *l = j->l;
    int D = l->D, QD = l->H * D, KD = l->Hkv * D, group = l->H / l->Hkv, T = j->T, np = j->pos0 + T;
    float scale = 1.0f / sqrtf((float)D), *sc = j->sc + (size_t)thread * (size_t)T * (size_t)np;
    for (int64_t i = h0; i < h1; i++) {
        int64_t s = i / l->H, h = i % l->H, kvh = h / group;
        const float *q = j->q + (size_t)s * T * QD, *kc = j->kc + (size_t)s * T * KD, *vc = j->vc + (size_t)s * T * KD;
        float *out = j->out + (size_t)s * T * QD;
        /* sc[T][np] = scale · q_h[T][D] · k_h[np][D]ᵀ */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, np, D, scale, q + h * D, QD, kc + kvh * D, KD, 0.0f,
                    sc, np);
        qs_op_softmax_causal(sc, T, np, j->pos0);
        if (l->kv_f16) round_f16(sc, (size_t)T * np);
        /* out_h[T][D] = sc[T][np] · v_h[np][D] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, np, 1.0f, sc, np, vc + kvh * D, KD, 0.0f,
                    out + h * D, QD);
    }
}

/* causal grouped-query attention of n_seq sequences of T tokens: per sequence and head, scores =
 * (Q_h·K_hᵀ)·scale (sgemm over the cache), masked above the diagonal, softmax per row (sum in
 * double), out_h = P·V_h (sgemm); (sequence, head) pairs run in parallel on the engine's pool */
static int attention(qs_llm *l, int layer_i, float *q, float *out, int n_seq, int T, int pos0)
{
    int KD = l->Hkv * l->D;
    size_t off = (size_t)layer_i * l->kv_cap * KD;
    if (grow((void **)&l->s.sc, &l->s.n_sc, (size_t)l->n_threads * (size_t)T * (size_t)(pos0 + T), sizeof(float))) return -1;
    if (l->kv_f16) round_f16(q, (size_t)n_seq * T * l->H * l->D);
    att_job j = {l, q, l->kcache + off, l->vcache + off, out, l->s.sc, T, pos0};
    qs_pool_for(l->pool, (int64_t)n_seq * l->H, 1, att_heads, &j);
    return 0;
}

/* one block on x[n_seq·T][E] in place: n_seq sequences of T tokens at positions pos0 … (pos0 is 0
 * when n_seq > 1); sequence s keeps its keys and values at cache positions s·T + pos0 … */
static int layer_forward(qs_llm *l, int li, float *x, int n_seq, int T1, int pos0, float *buf, qs_err *err)
{
    const layer *y = &l->layers[li];
    int E = l->E, QD = l->H * l->D, KD = l->Hkv * l->D, F = l->F, T = n_seq * T1;
    float *xn = buf, *q = xn + (size_t)T * E, *k = q + (size_t)T * QD, *v = k + (size_t)T * KD;
    float *att = v + (size_t)T * KD, *o = att + (size_t)T * QD, *g = o + (size_t)T * E, *u = g + (size_t)T * F;
    bool neox = l->hp.rope_style == QS_ROPE_NEOX;
    int rc = 0;
    qs_op_rmsnorm(x, VEC(y->attn_norm), xn, T, E, l->hp.norm_eps, NULL);
    observe(l, (const wmat *[]){&y->wq, &y->wk, &y->wv}, 3, xn, T);
    if (!rc) rc = matmul(l, xn, &y->wq, &y->bq, q, T, err);
    if (!rc) rc = matmul(l, xn, &y->wk, &y->bk, k, T, err);
    if (!rc) rc = matmul(l, xn, &y->wv, &y->bv, v, T, err);
    if (rc) return rc;
    size_t off = (size_t)li * l->kv_cap * KD;
    for (int t = 0; t < T; t++) {
        int s = t / T1, pos = pos0 + t % T1;
        qs_op_rope(q + (size_t)t * QD, l->H, l->D, (int)l->hp.n_rot, pos, l->hp.rope_base, neox, 1.0f);
        qs_op_rope(k + (size_t)t * KD, l->Hkv, l->D, (int)l->hp.n_rot, pos, l->hp.rope_base, neox, 1.0f);
        size_t c = off + ((size_t)s * T1 + (size_t)pos) * KD;
        float *kp = l->kcache + c, *vp = l->vcache + c;
        memcpy(kp, k + (size_t)t * KD, (size_t)KD * sizeof *kp);
        memcpy(vp, v + (size_t)t * KD, (size_t)KD * sizeof *vp);
        if (l->kv_f16) round_f16(kp, (size_t)KD), round_f16(vp, (size_t)KD);
    }
    if (attention(l, li, q, att, n_seq, T1, pos0)) return qs_err_set(err, QS_E_OOM, "out of memory for the attention scores");
    observe(l, (const wmat *[]){&y->wo}, 1, att, T);
    if ((rc = matmul(l, att, &y->wo, NULL, o, T, err))) return rc;
    for (size_t i = 0; i < (size_t)T * E; i++) x[i] += o[i];
    qs_op_rmsnorm(x, VEC(y->ffn_norm), xn, T, E, l->hp.norm_eps, NULL);
    observe(l, (const wmat *[]){&y->w_gate, &y->w_up}, 2, xn, T);
    if (!rc) rc = matmul(l, xn, &y->w_gate, NULL, g, T, err);
    if (!rc) rc = matmul(l, xn, &y->w_up, NULL, u, T, err);
    if (rc) return rc;
    qs_op_swiglu(g, u, g, (size_t)T * F);
    observe(l, (const wmat *[]){&y->w_down}, 1, g, T);
    if ((rc = matmul(l, g, &y->w_down, NULL, o, T, err))) return rc;
    for (size_t i = 0; i < (size_t)T * E; i++) x[i] += o[i];
    return 0;
}

/* the embedding row of token id (dequantized as ggml's get_rows does) */
static void embed(const qs_llm *l, int32_t id, float *x)
{
    dequant_block(&l->tok_embd, id, 1, x);
}

/* n_seq sequences of n tokens each (tokens[n_seq·n]) at positions pos0 … pos0+n−1 */
static int eval_batch(qs_llm *l, const int32_t *tokens, int n_seq, int n, int pos0, float *logits, qs_err *err)
{
    if ((int)l->hp.n_rot > 2048 || (int)l->hp.n_rot > l->D)
        return qs_err_set(err, QS_E_UNSUPPORTED, "rotary dimension %u", l->hp.n_rot);
    int N = n_seq * n;
    for (int t = 0; t < N; t++)
        if (tokens[t] < 0 || tokens[t] >= l->V)
            return qs_err_set(err, QS_E_INPUT, "token id %d outside the vocabulary of %d", tokens[t], l->V);
    int E = l->E, QD = l->H * l->D, KD = l->Hkv * l->D;
    size_t per_t = (size_t)E * 3 + (size_t)QD * 2 + (size_t)KD * 2 + (size_t)l->F * 2;
    float *x = malloc((size_t)N * E * sizeof *x), *buf = malloc((size_t)N * per_t * sizeof *buf);
    int rc = 0;
    if (!x || !buf) rc = qs_err_set(err, QS_E_OOM, "out of memory");
    /* every product runs single-threaded inside the engine's own pool: OpenBLAS's threads would
     * spin beside ours (the number is process-wide, so it is put back afterwards) */
    int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    for (int t = 0; !rc && t < N; t++) embed(l, tokens[t], x + (size_t)t * E);
    for (int li = 0; !rc && li < l->L; li++) {
        rc = layer_forward(l, li, x, n_seq, n, pos0, buf, err);
        if (!rc && l->cancel && *l->cancel) rc = qs_err_set(err, QS_E_CANCELLED, "cancelled");
    }
    if (!rc && logits) {
        const wmat *out = l->output.t ? &l->output : &l->tok_embd;
        qs_op_rmsnorm(x, VEC(l->output_norm), buf, N, E, l->hp.norm_eps, NULL);
        observe(l, (const wmat *[]){out}, 1, buf, N);
        rc = matmul(l, buf, out, NULL, logits, N, err);
    }
    openblas_set_num_threads(blas_threads);
    if (!rc && qs_mapped_damaged())
        rc = qs_err_set(err, QS_E_IO, "the model file changed on disk (it is shorter than when it was opened)");
    free(x);
    free(buf);
    return rc;
}

int qs_llm_eval(qs_llm *l, const int32_t *tokens, int n, int pos0, float *logits, qs_err *err)
{
    if (n <= 0 || pos0 < 0 || pos0 + n > l->n_ctx)
        return qs_err_set(err, QS_E_USAGE, "positions %d…%d outside the context of %d", pos0, pos0 + n - 1, l->n_ctx);
    return eval_batch(l, tokens, 1, n, pos0, logits, err);
}

int qs_llm_eval_seqs(qs_llm *l, const int32_t *tokens, int n_seq, int n, float *logits, qs_err *err)
{
    if (n <= 0 || n > l->n_ctx || n_seq <= 0 || n_seq > (1 << 20) / n)
        return qs_err_set(err, QS_E_USAGE, "%d sequences of %d tokens: the context is %d", n_seq, n, l->n_ctx);
    if (n_seq * n > l->kv_cap) {
        /* a cache of n_seq × n positions a layer (its contents are forgotten: every sequence starts at 0) */
        size_t kv = (size_t)l->L * (size_t)(n_seq * n) * (size_t)(l->Hkv * l->D);
        float *k = calloc(kv, sizeof *k), *v = k ? calloc(kv, sizeof *v) : NULL;
        if (!v) {
            free(k);
            return qs_err_set(err, QS_E_OOM, "out of memory for a KV cache of %d sequences", n_seq);
        }
        free(l->kcache), free(l->vcache);
        l->kcache = k, l->vcache = v, l->kv_cap = n_seq * n;
    }
    return eval_batch(l, tokens, n_seq, n, 0, logits, err);
}

/* the result's integer grid for rows [row0, row0 + m->rows), when (q − zero)·scale / s reproduces
 * its dequantized floats bit for bit; NULL otherwise (NF4/FP4's nibbles, other layouts) */
static grid *grid_from_result(const wmat *m, const qs_qresult *r, int64_t row0)
{
    int64_t n = m->rows * m->cols;
    if (r->ggml_type >= 0 || !r->data || r->nbytes != (size_t)(r->rows * r->cols) || !r->scales || r->group_len <= 0 ||
        r->n_groups <= 0 || (r->g_idx && r->n_groups % r->rows))
        return NULL;
    grid *g = calloc(1, sizeof *g);
    float *chk = malloc((size_t)n * sizeof *chk);
    bool ok = g && chk;
    if (ok) {
        *g = (grid){malloc((size_t)n), malloc((size_t)r->n_groups * sizeof(float)),
                    r->zeros ? malloc((size_t)r->n_groups * sizeof(float)) : NULL,
                    r->g_idx ? malloc((size_t)r->cols * sizeof(int32_t)) : NULL,
                    r->col_scale ? malloc((size_t)r->cols * sizeof(float)) : NULL,
                    row0, r->cols, r->group_len, r->n_groups / r->rows};
        ok = g->codes && g->scale && (!r->zeros || g->zero) && (!r->g_idx || g->g_idx) && (!r->col_scale || g->col_scale);
    }
    if (ok) {
        memcpy(g->codes, r->data + (size_t)(row0 * r->cols), (size_t)n);
        memcpy(g->scale, r->scales, (size_t)r->n_groups * sizeof(float));
        if (r->zeros) memcpy(g->zero, r->zeros, (size_t)r->n_groups * sizeof(float));
        if (r->g_idx) memcpy(g->g_idx, r->g_idx, (size_t)r->cols * sizeof(int32_t));
        if (r->col_scale) memcpy(g->col_scale, r->col_scale, (size_t)r->cols * sizeof(float));
        for (int64_t k = 0; ok && r->g_idx && k < r->cols; k++) ok = r->g_idx[k] >= 0 && r->g_idx[k] < g->groups_per_row;
        if (ok) grid_rows(g, 0, m->rows, chk);
        ok = ok && !memcmp(chk, r->deq + (size_t)(row0 * r->cols), (size_t)n * sizeof *chk);
    }
    free(chk);
    if (!ok) grid_free(g), g = NULL;
    return g;
}

int qs_llm_set_result(qs_llm *l, const char *name, const qs_qresult *r, int64_t row0, qs_err *err)
{
    wmat *m = find_w(l, name);
    if (!m) return qs_err_set(err, QS_E_USAGE, "the model uses no tensor named %s", name);
    if (m->cols != r->cols || row0 < 0 || row0 + m->rows > r->rows)
        return qs_err_set(err, QS_E_INPUT, "%s: the result's shape does not hold this tensor", name);
    int64_t rb = r->ggml_type >= 0 ? qs_type_row_bytes(r->ggml_type, r->cols) : -1;
    bool packed = r->data && rb > 0 && (size_t)(rb * r->rows) == r->nbytes && qs_qdot_act_type(r->ggml_type, r->cols) >= 0 &&
                  m->rows > 1;
    if (packed) {
        /* GGML bytes; after AWQ they encode W·s, and the activations are divided by s */
        int rc = qs_llm_set_packed(l, name, r->ggml_type, r->data + (size_t)(row0 * rb), (size_t)(rb * m->rows), err);
        if (!rc && r->col_scale) {
            if (!(m->in_div = malloc((size_t)m->cols * sizeof *m->in_div))) return qs_err_set(err, QS_E_OOM, "out of memory");
            memcpy(m->in_div, r->col_scale, (size_t)m->cols * sizeof *m->in_div);
        }
        return rc;
    }
    grid *g = m->rows > 1 ? grid_from_result(m, r, row0) : NULL;
    if (g) {
        free(m->own);
        free(m->in_div);
        grid_free(m->grid);
        *m = (wmat){.t = m->t, .grid = g, .type = QS_WTYPE_GRID, .rows = m->rows, .cols = m->cols, .act_type = QS_TYPE_F32,
                    .aq = m->aq};
        return 0;
    }
    int act = r->ggml_type >= 0 ? qs_llama_cpp_act_type(r->ggml_type, r->cols) : QS_TYPE_F32;
    return qs_llm_set_weights(l, name, r->deq + (size_t)(row0 * r->cols), act, err);
}

static int64_t grid_bytes(const grid *g, int64_t rows)
{
    /* the codes, the result's group scales (and zeros), g_idx, the column scales */
    int64_t groups = g->g_idx ? (g->row0 + rows) * g->groups_per_row : ((g->row0 + rows) * g->cols + g->group_len - 1) / g->group_len;
    return rows * g->cols + groups * (int64_t)sizeof(float) * (g->zero ? 2 : 1) + (g->g_idx ? g->cols * 4 : 0) +
           (g->col_scale ? g->cols * 4 : 0);
}

int64_t qs_llm_owned_bytes(const qs_llm *l)
{
    int64_t n = 0;
    for (int i = 0; i < l->n_all; i++) {
        const wmat *m = l->all[i];
        if (m->own) n += (int64_t)m->row_bytes * m->rows;
        if (m->in_div) n += m->cols * (int64_t)sizeof(float);
        if (m->grid) n += grid_bytes(m->grid, m->rows);
    }
    return n;
}
