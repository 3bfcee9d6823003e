/* core/infer.c — llama forward pass. Shapes in comments are [rows][cols] of row-major float
 * matrices; a weight W of GGUF ne = [in, out] is W[out][in] and y = x·Wᵀ. */
#include "infer.h"

#include "ggml_quants.h"
#include "ggml_types.h"
#include "ops.h"

#include <cblas.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct wmat {
    const qs_tensor *t;
    float *w;            /* [rows][cols] */
    int64_t rows, cols;
    int act_type;        /* how llama.cpp's CPU backend rounds the activations for this weight
                          * type before the dot product: F32 (none), F16, BF16, Q8_0, Q8_K */
} wmat;

typedef struct layer {
    wmat attn_norm;      /* [1][E] */
    wmat wq, wk, wv;     /* [H·D][E], [Hkv·D][E], [Hkv·D][E] */
    wmat bq, bk, bv;     /* optional biases [1][H·D] … */
    wmat wo;             /* [E][H·D] */
    wmat ffn_norm;       /* [1][E] */
    wmat w_gate, w_up;   /* [F][E] */
    wmat w_down;         /* [E][F] */
} layer;

struct qs_llm {
    qs_hparams hp;
    int n_ctx, E, H, Hkv, D, F, V, L;
    wmat tok_embd;       /* [V][E] */
    wmat output_norm;    /* [1][E] */
    wmat output;         /* [V][E] (token_embd when tied) */
    layer *layers;
    float *kcache, *vcache; /* [L][n_ctx][Hkv·D] */
    wmat **all;          /* every wmat, for set_weights */
    int n_all;
    qs_llm_observer observe;
    void *observe_ctx;
};

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
    out->act_type = qs_llama_cpp_act_type(t->type, cols);
    out->w = malloc((size_t)(rows * cols) * sizeof *out->w);
    if (!out->w) return qs_err_set(err, QS_E_OOM, "out of memory for %s", name);
    int rc = qs_tensor_read_rows(t, 0, rows, out->w, err);
    if (rc) free(out->w), out->w = NULL; /* not in l->all yet: qs_llm_free would not see it */
    return rc;
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
        if (rc) return rc;
        if (spec[k].w->w) l->all[l->n_all++] = spec[k].w;
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
    l->E = (int)hp->n_embd, l->H = (int)hp->n_head, l->Hkv = (int)hp->n_head_kv, l->D = (int)hp->head_dim;
    l->F = (int)hp->n_ff, l->V = (int)hp->n_vocab, l->L = (int)hp->n_layer;
    l->layers = calloc((size_t)l->L, sizeof *l->layers);
    l->all = calloc((size_t)n_all, sizeof *l->all);
    l->kcache = calloc((size_t)kv, sizeof(float));
    l->vcache = calloc((size_t)kv, sizeof(float));
    int rc = (!l->layers || !l->all || !l->kcache || !l->vcache) ? qs_err_set(err, QS_E_OOM, "out of memory") : 0;
    /* each weight joins l->all (what qs_llm_free frees) as soon as it is loaded */
    if (!rc && !(rc = load_w(m, "token_embd.weight", l->V, l->E, false, &l->tok_embd, err))) l->all[l->n_all++] = &l->tok_embd;
    if (!rc && !(rc = load_w(m, "output_norm.weight", 1, l->E, false, &l->output_norm, err))) l->all[l->n_all++] = &l->output_norm;
    if (!rc && !(rc = load_w(m, "output.weight", l->V, l->E, true, &l->output, err)) && l->output.w) l->all[l->n_all++] = &l->output;
    for (int i = 0; !rc && i < l->L; i++) rc = load_layer(l, m, i, err);
    if (rc) {
        qs_llm_free(l);
        return NULL;
    }
    return l;
}

void qs_llm_free(qs_llm *l)
{
    if (!l) return;
    for (int i = 0; i < l->n_all; i++) free(l->all[i]->w);
    free(l->all);
    free(l->layers);
    free(l->kcache);
    free(l->vcache);
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

int qs_llm_set_weights(qs_llm *l, const char *name, const float *w, int act_type, qs_err *err)
{
    for (int i = 0; i < l->n_all; i++) {
        wmat *m = l->all[i];
        if (strcmp(m->t->name, name) && strcmp(m->t->gguf_name, name)) continue;
        memcpy(m->w, w, (size_t)(m->rows * m->cols) * sizeof *w);
        m->act_type = act_type;
        return 0;
    }
    return qs_err_set(err, QS_E_USAGE, "the model uses no tensor named %s", name);
}

/* ---- operations ---- */

int qs_llama_cpp_act_type(int weight_type, int64_t cols)
{
    int a;
    switch (weight_type) {
    case QS_TYPE_F16: a = QS_TYPE_F16; break;
    case QS_TYPE_BF16: a = QS_TYPE_BF16; break;
    case QS_TYPE_Q4_0: case QS_TYPE_Q4_1: case QS_TYPE_Q5_0: case QS_TYPE_Q5_1: case QS_TYPE_Q8_0:
    case QS_TYPE_IQ4_NL: a = QS_TYPE_Q8_0; break;
    case QS_TYPE_Q2_K: case QS_TYPE_Q3_K: case QS_TYPE_Q4_K: case QS_TYPE_Q5_K: case QS_TYPE_Q6_K:
    case QS_TYPE_IQ4_XS: a = QS_TYPE_Q8_K; break;
    default: return QS_TYPE_F32;
    }
    return qs_type_row_bytes(a, cols) > 0 ? a : QS_TYPE_F32;
}

/* rounds each row of x[T][cols] the way the activation type stores it */
static void round_activations(float *x, int T, int64_t cols, int act_type)
{
    if (act_type == QS_TYPE_F32) return;
    int64_t rb = qs_type_row_bytes(act_type, cols);
    uint8_t *q = malloc((size_t)(rb * T));
    if (!q) return;
    qs_ggml_quantize_rows_raw(act_type, x, q, T, cols, NULL, 0);
    for (int t = 0; t < T; t++) qs_dequantize_row(act_type, q + (size_t)t * (size_t)rb, x + (size_t)t * cols, cols);
    free(q);
}

/* y[T][out] = x[T][in] · W[out][in]ᵀ (+ bias); x is rounded first as llama.cpp rounds the
 * activations for W's type (x is left unchanged) */
static void matmul(const float *x, const wmat *W, const wmat *bias, float *y, int T)
{
    float *xr = NULL;
    if (W->act_type != QS_TYPE_F32 && (xr = malloc((size_t)T * (size_t)W->cols * sizeof *xr))) {
        memcpy(xr, x, (size_t)T * (size_t)W->cols * sizeof *xr);
        round_activations(xr, T, W->cols, W->act_type);
        x = xr;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, (int)W->rows, (int)W->cols, 1.0f, x, (int)W->cols, W->w,
                (int)W->cols, 0.0f, y, (int)W->rows);
    free(xr);
    if (bias && bias->w)
        for (int t = 0; t < T; t++)
            for (int64_t o = 0; o < W->rows; o++) y[(size_t)t * W->rows + o] += bias->w[o];
}

/* causal grouped-query attention: per head, scores = Q_h·K_hᵀ·scale (sgemm over the cache),
 * masked above the diagonal, softmax per row (sum in double), out_h = P·V_h (sgemm) */
static void attention(const qs_llm *l, int layer_i, const float *q, float *out, int T, int pos0)
{
    int D = l->D, QD = l->H * D, KD = l->Hkv * D, group = l->H / l->Hkv, np = pos0 + T;
    const float *kc = l->kcache + (size_t)layer_i * l->n_ctx * KD, *vc = l->vcache + (size_t)layer_i * l->n_ctx * KD;
    float scale = 1.0f / sqrtf((float)D);
    float *sc = malloc((size_t)T * (size_t)np * sizeof *sc);
    if (!sc) return;
    for (int h = 0; h < l->H; h++) {
        int kvh = h / group;
        /* sc[T][np] = scale · q_h[T][D] · k_h[np][D]ᵀ */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, np, D, scale, q + (size_t)h * D, QD, kc + (size_t)kvh * D,
                    KD, 0.0f, sc, np);
        qs_op_softmax_causal(sc, T, np, pos0);
        /* out_h[T][D] = sc[T][np] · v_h[np][D] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, np, 1.0f, sc, np, vc + (size_t)kvh * D, KD, 0.0f,
                    out + (size_t)h * D, QD);
    }
    free(sc);
}

static void layer_forward(qs_llm *l, int li, float *x, int T, int pos0, float *buf)
{
    const layer *y = &l->layers[li];
    int E = l->E, QD = l->H * l->D, KD = l->Hkv * l->D, F = l->F;
    float *xn = buf, *q = xn + (size_t)T * E, *k = q + (size_t)T * QD, *v = k + (size_t)T * KD;
    float *att = v + (size_t)T * KD, *o = att + (size_t)T * QD, *g = o + (size_t)T * E, *u = g + (size_t)T * F;
    bool neox = l->hp.rope_style == QS_ROPE_NEOX;
    qs_op_rmsnorm(x, y->attn_norm.w, xn, T, E, l->hp.norm_eps, NULL);
    observe(l, (const wmat *[]){&y->wq, &y->wk, &y->wv}, 3, xn, T);
    matmul(xn, &y->wq, &y->bq, q, T);
    matmul(xn, &y->wk, &y->bk, k, T);
    matmul(xn, &y->wv, &y->bv, v, T);
    float *kc = l->kcache + (size_t)li * l->n_ctx * KD, *vc = l->vcache + (size_t)li * l->n_ctx * KD;
    for (int t = 0; t < T; t++) {
        qs_op_rope(q + (size_t)t * QD, l->H, l->D, (int)l->hp.n_rot, pos0 + t, l->hp.rope_base, neox, 1.0f);
        qs_op_rope(k + (size_t)t * KD, l->Hkv, l->D, (int)l->hp.n_rot, pos0 + t, l->hp.rope_base, neox, 1.0f);
        memcpy(kc + (size_t)(pos0 + t) * KD, k + (size_t)t * KD, (size_t)KD * sizeof *k);
        memcpy(vc + (size_t)(pos0 + t) * KD, v + (size_t)t * KD, (size_t)KD * sizeof *v);
    }
    attention(l, li, q, att, T, pos0);
    observe(l, (const wmat *[]){&y->wo}, 1, att, T);
    matmul(att, &y->wo, NULL, o, T);
    for (size_t i = 0; i < (size_t)T * E; i++) x[i] += o[i];
    qs_op_rmsnorm(x, y->ffn_norm.w, xn, T, E, l->hp.norm_eps, NULL);
    observe(l, (const wmat *[]){&y->w_gate, &y->w_up}, 2, xn, T);
    matmul(xn, &y->w_gate, NULL, g, T);
    matmul(xn, &y->w_up, NULL, u, T);
    qs_op_swiglu(g, u, g, (size_t)T * F);
    observe(l, (const wmat *[]){&y->w_down}, 1, g, T);
    matmul(g, &y->w_down, NULL, o, T);
    for (size_t i = 0; i < (size_t)T * E; i++) x[i] += o[i];
}

int qs_llm_eval(qs_llm *l, const int32_t *tokens, int n, int pos0, float *logits, qs_err *err)
{
    if (n <= 0 || pos0 < 0 || pos0 + n > l->n_ctx)
        return qs_err_set(err, QS_E_USAGE, "positions %d…%d outside the context of %d", pos0, pos0 + n - 1, l->n_ctx);
    if ((int)l->hp.n_rot > 2048 || (int)l->hp.n_rot > l->D)
        return qs_err_set(err, QS_E_UNSUPPORTED, "rotary dimension %u", l->hp.n_rot);
    int E = l->E, QD = l->H * l->D, KD = l->Hkv * l->D;
    size_t per_t = (size_t)E * 3 + (size_t)QD * 2 + (size_t)KD * 2 + (size_t)l->F * 2;
    float *x = malloc((size_t)n * E * sizeof *x), *buf = malloc((size_t)n * per_t * sizeof *buf);
    if (!x || !buf) {
        free(x);
        free(buf);
        return qs_err_set(err, QS_E_OOM, "out of memory");
    }
    for (int t = 0; t < n; t++) {
        if (tokens[t] < 0 || tokens[t] >= l->V) {
            free(x);
            free(buf);
            return qs_err_set(err, QS_E_INPUT, "token id %d outside the vocabulary of %d", tokens[t], l->V);
        }
        memcpy(x + (size_t)t * E, l->tok_embd.w + (size_t)tokens[t] * E, (size_t)E * sizeof *x);
    }
    for (int li = 0; li < l->L; li++) layer_forward(l, li, x, n, pos0, buf);
    if (logits) {
        qs_op_rmsnorm(x, l->output_norm.w, buf, n, E, l->hp.norm_eps, NULL);
        observe(l, (const wmat *[]){l->output.w ? &l->output : &l->tok_embd}, 1, buf, n);
        matmul(buf, l->output.w ? &l->output : &l->tok_embd, NULL, logits, n);
    }
    free(x);
    free(buf);
    return 0;
}
