/* core/model/train.c — training: forward with activations kept, backward, AdamW. Shapes in comments
 * are [rows][cols] of row-major floats; N = batch·seq rows of the residual stream; a weight
 * W [out][in] maps x [N][in] to y = x·Wᵀ [N][out]. */
#include "core/model/train.h"

#include <cblas.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util/fileio.h"
#include "core/quant/ggml_types.h"
#include "core/formats/gguf.h"
#include "core/model/ops.h"

enum { L_ATTN_NORM, L_WQ, L_WK, L_WV, L_WO, L_FFN_NORM, L_GATE, L_UP, L_DOWN, L_COUNT };
static const char *const layer_names[L_COUNT] = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                                                 "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"};

typedef struct param {
    char name[64];
    int64_t rows, cols;
    float *w, *g, *m, *v;   /* weight, gradient, Adam moments: rows·cols each */
    const float *fw;        /* what the forward pass reads (QAT: the fake-quantized w); NULL: w */
    bool decay;             /* matrices get weight decay, norms do not */
} param;

typedef struct acts {       /* one layer's saved activations */
    float *xin;             /* [N][E] residual stream entering the layer */
    float *xn1, *r1;        /* [N][E] attention RMSNorm output, [N] its 1/rms */
    float *q, *k, *v;       /* [N][H·D], [N][Hkv·D] ×2, after RoPE (q, k) */
    float *P;               /* [B][H][T][T] attention probabilities */
    float *att;             /* [N][H·D] attention output before W_o */
    float *xmid;            /* [N][E] stream after the attention block */
    float *xn2, *r2;        /* [N][E], [N] FFN RMSNorm */
    float *g, *u, *h;       /* [N][F] gate and up projections, h = silu(g)·u */
} acts;

struct qs_trainer {
    qs_train_config c;
    int E, H, Hkv, D, F, V, L, QD, KD;
    param *p;
    int n_p;
    int64_t step;
    int cap_rows;           /* activations are allocated for this many rows */
    acts *a;
    float *xf, *rf, *xnf;   /* [N][E] final stream, [N], normed */
    float *logits;          /* [N][V], then its gradient */
    float *dx, *dxn;        /* [N][E] */
    float *dq, *dk, *dv, *datt; /* [N][QD], [N][KD] ×2, [N][QD] */
    float *dh, *dg, *du;    /* [N][F] */
    float *dP;              /* [T][T] */
    double *ex;             /* [V] exp(z − max) of one row of logits */
    int32_t *in, *tgt;      /* [N] */
};

/* ---- configuration ---- */

int qs_train_preset(const char *name, qs_train_config *c, qs_err *err)
{
    qs_train_config base = {.dim = 256, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .ff = 768, .ctx = 256, .tied = true,
                            .batch = 16, .seq = 128, .steps = 2000, .warmup = 100, .lr = 3e-3f, .min_lr = 3e-4f,
                            .weight_decay = 0.1f, .clip = 1.0f, .beta1 = 0.9f, .beta2 = 0.95f, .adam_eps = 1e-8f,
                            .init_std = 0.02f, .rope_base = 10000.0f, .norm_eps = 1e-5f, .seed = 1234, .bos = -1};
    if (!strcmp(name, "tiny")) *c = base;
    else if (!strcmp(name, "small")) {
        *c = base;
        c->dim = 512, c->n_layers = 6, c->n_heads = 8, c->n_kv_heads = 4, c->ff = 1536, c->ctx = 512, c->tied = false;
        c->batch = 8, c->seq = 256, c->lr = 1.5e-3f, c->min_lr = 1.5e-4f;
    } else if (!strcmp(name, "gradcheck")) {
        *c = base;
        c->dim = 16, c->n_layers = 2, c->n_heads = 4, c->n_kv_heads = 2, c->ff = 24, c->ctx = 8, c->tied = false;
        c->batch = 2, c->seq = 6, c->vocab = 11, c->init_std = 0.25f, c->steps = 10, c->warmup = 2;
    } else
        return qs_err_set(err, QS_E_USAGE, "unknown training preset '%s' (tiny, small, gradcheck)", name);
    return 0;
}

int qs_train_config_parse(const char *json, size_t len, qs_train_config *c, qs_err *err)
{
    cJSON *o = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return qs_err_set(err, QS_E_INPUT, "not a JSON object");
    }
    struct { const char *k; int *i; int64_t *l; float *f; bool *b; uint64_t *u; } f[] = {
        {"dim", .i = &c->dim}, {"n_layers", .i = &c->n_layers}, {"n_heads", .i = &c->n_heads},
        {"n_kv_heads", .i = &c->n_kv_heads}, {"ff", .i = &c->ff}, {"ctx", .i = &c->ctx}, {"vocab", .i = &c->vocab},
        {"batch", .i = &c->batch}, {"seq", .i = &c->seq}, {"steps", .l = &c->steps}, {"warmup", .l = &c->warmup},
        {"lr", .f = &c->lr}, {"min_lr", .f = &c->min_lr}, {"weight_decay", .f = &c->weight_decay},
        {"clip", .f = &c->clip}, {"beta1", .f = &c->beta1}, {"beta2", .f = &c->beta2},
        {"adam_eps", .f = &c->adam_eps}, {"init_std", .f = &c->init_std}, {"rope_base", .f = &c->rope_base},
        {"norm_eps", .f = &c->norm_eps}, {"tied", .b = &c->tied}, {"seed", .u = &c->seed}, {"bos", .i = &c->bos}};
    int rc = 0;
    for (cJSON *it = o->child; it && !rc; it = it->next) {
        size_t k = 0;
        while (k < sizeof f / sizeof *f && strcmp(f[k].k, it->string)) k++;
        if (k == sizeof f / sizeof *f) rc = qs_err_set(err, QS_E_INPUT, "unknown training setting '%s'", it->string);
        else if (f[k].b ? !cJSON_IsBool(it) : !cJSON_IsNumber(it))
            rc = qs_err_set(err, QS_E_INPUT, "'%s' must be a %s", it->string, f[k].b ? "boolean" : "number");
        else if (f[k].b) *f[k].b = cJSON_IsTrue(it);
        else if (f[k].f) *f[k].f = (float)it->valuedouble;
        else if (f[k].l) *f[k].l = (int64_t)it->valuedouble;
        else if (f[k].u) *f[k].u = (uint64_t)it->valuedouble;
        else *f[k].i = (int)it->valuedouble;
    }
    cJSON_Delete(o);
    return rc;
}

int qs_train_config_check(const qs_train_config *c, qs_err *err)
{
    if (c->dim < 2 || c->dim > 16384 || c->n_layers < 1 || c->n_layers > 256 || c->n_heads < 1 || c->n_kv_heads < 1 ||
        c->n_heads % c->n_kv_heads || c->dim % c->n_heads || (c->dim / c->n_heads) % 2 || c->ff < 1 || c->ctx < 2 ||
        c->vocab < 2)
        return qs_err_set(err, QS_E_USAGE, "impossible model shape (dim %d, %d layers, %d/%d heads, ff %d, ctx %d, vocab %d)",
                          c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->ff, c->ctx, c->vocab);
    if (c->batch < 1 || c->seq < 1 || c->seq > c->ctx || c->steps < 0 || c->warmup < 0 || !(c->lr > 0) ||
        !(c->min_lr >= 0) || !(c->clip >= 0) || !(c->beta1 >= 0 && c->beta1 < 1) || !(c->beta2 >= 0 && c->beta2 < 1))
        return qs_err_set(err, QS_E_USAGE, "impossible training settings (batch %d, seq %d of ctx %d, lr %g)", c->batch,
                          c->seq, c->ctx, (double)c->lr);
    return 0;
}

/* ---- set-up ---- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static float normal(uint64_t *s)
{
    double u1 = ((double)(splitmix(s) >> 11) + 0.5) / 9007199254740992.0, u2 = (double)(splitmix(s) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

static param *P_layer(const qs_trainer *t, int l, int k) { return &t->p[1 + l * L_COUNT + k]; }
static param *P_emb(const qs_trainer *t) { return &t->p[0]; }
static param *P_out_norm(const qs_trainer *t) { return &t->p[1 + t->L * L_COUNT]; }
static param *P_out(const qs_trainer *t) { return t->c.tied ? P_emb(t) : &t->p[2 + t->L * L_COUNT]; }

static int add_param(qs_trainer *t, const char *name, int64_t rows, int64_t cols, float init_std, uint64_t *rng)
{
    param *p = &t->p[t->n_p++];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->rows = rows, p->cols = cols, p->decay = rows > 1;
    size_t n = (size_t)(rows * cols);
    p->w = malloc(n * sizeof *p->w), p->g = calloc(n, sizeof *p->g);
    p->m = calloc(n, sizeof *p->m), p->v = calloc(n, sizeof *p->v);
    if (!p->w || !p->g || !p->m || !p->v) return -1;
    for (size_t i = 0; i < n; i++) p->w[i] = rows == 1 ? 1.0f : init_std * normal(rng);
    return 0;
}

qs_trainer *qs_trainer_new(const qs_train_config *c, qs_err *err)
{
    if (qs_train_config_check(c, err)) return NULL;
    qs_trainer *t = calloc(1, sizeof *t);
    if (!t) {
        qs_err_set(err, QS_E_OOM, "out of memory");
        return NULL;
    }
    t->c = *c;
    t->E = c->dim, t->H = c->n_heads, t->Hkv = c->n_kv_heads, t->D = c->dim / c->n_heads, t->F = c->ff;
    t->V = c->vocab, t->L = c->n_layers, t->QD = t->H * t->D, t->KD = t->Hkv * t->D;
    t->p = calloc((size_t)(3 + t->L * L_COUNT), sizeof *t->p);
    t->a = calloc((size_t)t->L, sizeof *t->a);
    uint64_t rng = c->seed;
    /* residual projections start smaller so the stream's variance does not grow with depth */
    float std = c->init_std, std_res = c->init_std / sqrtf(2.0f * (float)t->L);
    int rc = !t->p || !t->a || add_param(t, "token_embd.weight", t->V, t->E, std, &rng);
    int64_t shape[L_COUNT][2] = {{1, t->E},  {t->QD, t->E}, {t->KD, t->E}, {t->KD, t->E}, {t->E, t->QD},
                                 {1, t->E},  {t->F, t->E},  {t->F, t->E},  {t->E, t->F}};
    for (int l = 0; l < t->L && !rc; l++)
        for (int k = 0; k < L_COUNT && !rc; k++) {
            char n[64];
            snprintf(n, sizeof n, "blk.%d.%s.weight", l, layer_names[k]);
            rc = add_param(t, n, shape[k][0], shape[k][1], k == L_WO || k == L_DOWN ? std_res : std, &rng);
        }
    if (!rc) rc = add_param(t, "output_norm.weight", 1, t->E, std, &rng);
    if (!rc && !c->tied) rc = add_param(t, "output.weight", t->V, t->E, std, &rng);
    if (rc) {
        qs_trainer_free(t);
        qs_err_set(err, QS_E_OOM, "out of memory for the model");
        return NULL;
    }
    return t;
}

static void free_acts(qs_trainer *t)
{
    for (int l = 0; l < t->L; l++) {
        acts *a = &t->a[l];
        float **f[] = {&a->xin, &a->xn1, &a->r1, &a->q, &a->k, &a->v, &a->P, &a->att, &a->xmid, &a->xn2, &a->r2, &a->g, &a->u, &a->h};
        for (size_t i = 0; i < sizeof f / sizeof *f; i++) free(*f[i]), *f[i] = NULL;
    }
    float **g[] = {&t->xf, &t->rf, &t->xnf, &t->logits, &t->dx, &t->dxn, &t->dq, &t->dk, &t->dv, &t->datt, &t->dh, &t->dg, &t->du, &t->dP};
    for (size_t i = 0; i < sizeof g / sizeof *g; i++) free(*g[i]), *g[i] = NULL;
    free(t->in), free(t->tgt), free(t->ex);
    t->in = t->tgt = NULL;
    t->ex = NULL;
    t->cap_rows = 0;
}

static int alloc_acts(qs_trainer *t, int batch)
{
    size_t N = (size_t)batch * (size_t)t->c.seq, T = (size_t)t->c.seq;
    if ((int)N <= t->cap_rows) return 0;
    free_acts(t);
    size_t E = (size_t)t->E, QD = (size_t)t->QD, KD = (size_t)t->KD, F = (size_t)t->F;
    bool ok = true;
#define ALLOC(ptr, n) ok = ok && ((ptr) = malloc((n) * sizeof(float))) != NULL
    for (int l = 0; l < t->L; l++) {
        acts *a = &t->a[l];
        ALLOC(a->xin, N * E); ALLOC(a->xn1, N * E); ALLOC(a->r1, N); ALLOC(a->q, N * QD); ALLOC(a->k, N * KD);
        ALLOC(a->v, N * KD); ALLOC(a->P, (size_t)batch * (size_t)t->H * T * T); ALLOC(a->att, N * QD);
        ALLOC(a->xmid, N * E); ALLOC(a->xn2, N * E); ALLOC(a->r2, N); ALLOC(a->g, N * F); ALLOC(a->u, N * F);
        ALLOC(a->h, N * F);
    }
    ALLOC(t->xf, N * E); ALLOC(t->rf, N); ALLOC(t->xnf, N * E); ALLOC(t->logits, N * (size_t)t->V);
    ALLOC(t->dx, N * E); ALLOC(t->dxn, N * E); ALLOC(t->dq, N * QD); ALLOC(t->dk, N * KD); ALLOC(t->dv, N * KD);
    ALLOC(t->datt, N * QD); ALLOC(t->dh, N * F); ALLOC(t->dg, N * F); ALLOC(t->du, N * F); ALLOC(t->dP, T * T);
#undef ALLOC
    t->in = malloc(N * sizeof *t->in), t->tgt = malloc(N * sizeof *t->tgt), t->ex = malloc((size_t)t->V * sizeof *t->ex);
    if (!ok || !t->in || !t->tgt || !t->ex) {
        free_acts(t);
        return -1;
    }
    t->cap_rows = (int)N;
    return 0;
}

void qs_trainer_free(qs_trainer *t)
{
    if (!t) return;
    if (t->a) free_acts(t);
    for (int i = 0; i < t->n_p; i++) free(t->p[i].w), free(t->p[i].g), free(t->p[i].m), free(t->p[i].v);
    free(t->p);
    free(t->a);
    free(t);
}

const qs_train_config *qs_trainer_config(const qs_trainer *t) { return &t->c; }
int64_t qs_trainer_step_no(const qs_trainer *t) { return t->step; }
int qs_trainer_n_params(const qs_trainer *t) { return t->n_p; }

const char *qs_trainer_param(qs_trainer *t, int i, float **w, float **grad, int64_t *n)
{
    if (i < 0 || i >= t->n_p) return NULL;
    *w = t->p[i].w, *grad = t->p[i].g, *n = t->p[i].rows * t->p[i].cols;
    return t->p[i].name;
}

void qs_trainer_zero_grad(qs_trainer *t)
{
    for (int i = 0; i < t->n_p; i++) memset(t->p[i].g, 0, (size_t)(t->p[i].rows * t->p[i].cols) * sizeof(float));
}

int qs_trainer_set_forward(qs_trainer *t, int i, const float *fw)
{
    if (i < 0 || i >= t->n_p) return -1;
    t->p[i].fw = fw;
    return 0;
}

/* ---- linear algebra helpers ---- */

/* the weights the forward pass (and the backward's input gradients) use */
static const float *fwd(const param *p) { return p->fw ? p->fw : p->w; }

/* y[N][out] (+)= x[N][in] · W[out][in]ᵀ */
static void lin(const float *x, const param *W, float *y, int N, float beta)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, (int)W->rows, (int)W->cols, 1.0f, x, (int)W->cols, fwd(W),
                (int)W->cols, beta, y, (int)W->rows);
}

/* backward of lin: dW[out][in] += dy[N][out]ᵀ · x[N][in]; dx[N][in] (+)= dy · W */
static void lin_back(const float *x, const param *W, const float *dy, float *dx, int N, float beta)
{
    int out = (int)W->rows, in = (int)W->cols;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, N, 1.0f, dy, out, x, in, 1.0f, W->g, in);
    if (dx) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, in, out, 1.0f, dy, out, fwd(W), in, beta, dx, in);
}

/* backward of y = x·r·g (qs_op_rmsnorm): dx += r·g·dy − x·r³·Σ(dy·g·x)/E; dg += Σ_rows dy·x·r */
static void rmsnorm_back(const float *x, const param *gain, const float *r, const float *dy, float *dx, int N, int E)
{
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * E, *dyr = dy + (size_t)n * E;
        float *dxr = dx + (size_t)n * E;
        double s = 0;
        const float *gw = fwd(gain);
        for (int i = 0; i < E; i++) s += (double)dyr[i] * gw[i] * xr[i];
        float coeff = (float)(s * r[n] * r[n] * r[n] / E);
        for (int i = 0; i < E; i++) {
            dxr[i] += r[n] * gw[i] * dyr[i] - xr[i] * coeff;
            gain->g[i] += dyr[i] * xr[i] * r[n];
        }
    }
}

/* ---- forward ---- */

static void attention_forward(const qs_trainer *t, acts *a, int B)
{
    int T = t->c.seq, D = t->D, group = t->H / t->Hkv;
    float scale = 1.0f / sqrtf((float)D);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < t->H; h++) {
            const float *q = a->q + (size_t)b * T * t->QD + (size_t)h * D;
            const float *k = a->k + (size_t)b * T * t->KD + (size_t)(h / group) * D;
            const float *v = a->v + (size_t)b * T * t->KD + (size_t)(h / group) * D;
            float *P = a->P + ((size_t)b * t->H + (size_t)h) * (size_t)T * T;
            /* P[T][T] = softmax_causal(scale · q_h[T][D] · k_h[T][D]ᵀ); att_h[T][D] = P · v_h */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, D, scale, q, t->QD, k, t->KD, 0.0f, P, T);
            qs_op_softmax_causal(P, T, T, 0);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, T, 1.0f, P, T, v, t->KD, 0.0f,
                        a->att + (size_t)b * T * t->QD + (size_t)h * D, t->QD);
        }
}

static void layer_forward(qs_trainer *t, int l, int B, float *xout)
{
    acts *a = &t->a[l];
    int N = B * t->c.seq, T = t->c.seq;
    size_t NE = (size_t)N * t->E;
    qs_op_rmsnorm(a->xin, fwd(P_layer(t, l, L_ATTN_NORM)), a->xn1, N, t->E, t->c.norm_eps, a->r1);
    lin(a->xn1, P_layer(t, l, L_WQ), a->q, N, 0);
    lin(a->xn1, P_layer(t, l, L_WK), a->k, N, 0);
    lin(a->xn1, P_layer(t, l, L_WV), a->v, N, 0);
    for (int n = 0; n < N; n++) {
        qs_op_rope(a->q + (size_t)n * t->QD, t->H, t->D, t->D, n % T, t->c.rope_base, false, 1.0f);
        qs_op_rope(a->k + (size_t)n * t->KD, t->Hkv, t->D, t->D, n % T, t->c.rope_base, false, 1.0f);
    }
    attention_forward(t, a, B);
    memcpy(a->xmid, a->xin, NE * sizeof(float));
    lin(a->att, P_layer(t, l, L_WO), a->xmid, N, 1.0f);
    qs_op_rmsnorm(a->xmid, fwd(P_layer(t, l, L_FFN_NORM)), a->xn2, N, t->E, t->c.norm_eps, a->r2);
    lin(a->xn2, P_layer(t, l, L_GATE), a->g, N, 0);
    lin(a->xn2, P_layer(t, l, L_UP), a->u, N, 0);
    qs_op_swiglu(a->g, a->u, a->h, (size_t)N * t->F);
    memcpy(xout, a->xmid, NE * sizeof(float));
    lin(a->h, P_layer(t, l, L_DOWN), xout, N, 1.0f);
}

/* cross-entropy of the logits against t->tgt; with grads, logits become dloss/dlogits */
static double softmax_xent(qs_trainer *t, int N, bool grads)
{
    double loss = 0;
    for (int n = 0; n < N; n++) {
        float *z = t->logits + (size_t)n * t->V, mx = -INFINITY;
        for (int i = 0; i < t->V; i++) mx = fmaxf(mx, z[i]);
        double sum = 0;
        for (int i = 0; i < t->V; i++) sum += t->ex[i] = exp((double)z[i] - mx);
        loss += log(sum) - ((double)z[t->tgt[n]] - mx);
        if (!grads) continue;
        for (int i = 0; i < t->V; i++) z[i] = (float)(t->ex[i] / sum / N);
        z[t->tgt[n]] -= 1.0f / (float)N;
    }
    return loss / N;
}

/* ---- backward ---- */

static void attention_backward(qs_trainer *t, const acts *a, int B)
{
    int T = t->c.seq, D = t->D, group = t->H / t->Hkv;
    float scale = 1.0f / sqrtf((float)D);
    memset(t->dk, 0, (size_t)B * T * t->KD * sizeof(float));
    memset(t->dv, 0, (size_t)B * T * t->KD * sizeof(float));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < t->H; h++) {
            size_t qo = (size_t)b * T * t->QD + (size_t)h * D, ko = (size_t)b * T * t->KD + (size_t)(h / group) * D;
            const float *P = a->P + ((size_t)b * t->H + (size_t)h) * (size_t)T * T, *datt = t->datt + qo;
            float *dP = t->dP;
            /* dP[T][T] = datt_h · v_hᵀ; dv_h += Pᵀ · datt_h */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, D, 1.0f, datt, t->QD, a->v + ko, t->KD, 0.0f, dP, T);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, D, T, 1.0f, P, T, datt, t->QD, 1.0f, t->dv + ko, t->KD);
            /* softmax backward: dS = P ⊙ (dP − Σ_row P·dP), scaled for the scores' scale */
            for (int i = 0; i < T; i++) {
                const float *pr = P + (size_t)i * T;
                float *dr = dP + (size_t)i * T;
                double s = 0;
                for (int j = 0; j <= i; j++) s += (double)pr[j] * dr[j];
                for (int j = 0; j < T; j++) dr[j] = j <= i ? pr[j] * (dr[j] - (float)s) * scale : 0.0f;
            }
            /* dq_h = dS · k_h; dk_h += dSᵀ · q_h */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, T, 1.0f, dP, T, a->k + ko, t->KD, 0.0f, t->dq + qo,
                        t->QD);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, D, T, 1.0f, dP, T, a->q + qo, t->QD, 1.0f, t->dk + ko,
                        t->KD);
        }
}

/* dx holds d(stream leaving layer l); on return d(stream entering it) */
static void layer_backward(qs_trainer *t, int l, int B, float *dx)
{
    const acts *a = &t->a[l];
    int N = B * t->c.seq, T = t->c.seq;
    size_t NF = (size_t)N * t->F;
    lin_back(a->h, P_layer(t, l, L_DOWN), dx, t->dh, N, 0);
    for (size_t i = 0; i < NF; i++) {
        float g = a->g[i], s = 1.0f / (1.0f + expf(-g));
        t->du[i] = t->dh[i] * g * s;
        t->dg[i] = t->dh[i] * a->u[i] * s * (1.0f + g * (1.0f - s));
    }
    lin_back(a->xn2, P_layer(t, l, L_GATE), t->dg, t->dxn, N, 0);
    lin_back(a->xn2, P_layer(t, l, L_UP), t->du, t->dxn, N, 1.0f);
    rmsnorm_back(a->xmid, P_layer(t, l, L_FFN_NORM), a->r2, t->dxn, dx, N, t->E);
    lin_back(a->att, P_layer(t, l, L_WO), dx, t->datt, N, 0);
    attention_backward(t, a, B);
    for (int n = 0; n < N; n++) {
        qs_op_rope(t->dq + (size_t)n * t->QD, t->H, t->D, t->D, n % T, t->c.rope_base, false, -1.0f);
        qs_op_rope(t->dk + (size_t)n * t->KD, t->Hkv, t->D, t->D, n % T, t->c.rope_base, false, -1.0f);
    }
    lin_back(a->xn1, P_layer(t, l, L_WQ), t->dq, t->dxn, N, 0);
    lin_back(a->xn1, P_layer(t, l, L_WK), t->dk, t->dxn, N, 1.0f);
    lin_back(a->xn1, P_layer(t, l, L_WV), t->dv, t->dxn, N, 1.0f);
    rmsnorm_back(a->xin, P_layer(t, l, L_ATTN_NORM), a->r1, t->dxn, dx, N, t->E);
}

double qs_trainer_loss(qs_trainer *t, const int32_t *tokens, int B, bool grads)
{
    if (alloc_acts(t, B)) return NAN;
    int T = t->c.seq, N = B * T, E = t->E;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < T; i++) {
            t->in[b * T + i] = tokens[(size_t)b * (T + 1) + i];
            t->tgt[b * T + i] = tokens[(size_t)b * (T + 1) + i + 1];
        }
    const param *emb = P_emb(t), *out = P_out(t);
    for (int n = 0; n < N; n++) memcpy(t->a[0].xin + (size_t)n * E, fwd(emb) + (size_t)t->in[n] * E, (size_t)E * sizeof(float));
    for (int l = 0; l < t->L; l++) layer_forward(t, l, B, l + 1 < t->L ? t->a[l + 1].xin : t->xf);
    qs_op_rmsnorm(t->xf, fwd(P_out_norm(t)), t->xnf, N, E, t->c.norm_eps, t->rf);
    lin(t->xnf, out, t->logits, N, 0);
    double loss = softmax_xent(t, N, grads);
    if (!grads) return loss;
    lin_back(t->xnf, out, t->logits, t->dxn, N, 0);
    memset(t->dx, 0, (size_t)N * E * sizeof(float));
    rmsnorm_back(t->xf, P_out_norm(t), t->rf, t->dxn, t->dx, N, E);
    for (int l = t->L - 1; l >= 0; l--) layer_backward(t, l, B, t->dx);
    for (int n = 0; n < N; n++) {
        float *g = emb->g + (size_t)t->in[n] * E;
        for (int i = 0; i < E; i++) g[i] += t->dx[(size_t)n * E + i];
    }
    return loss;
}

/* ---- optimizer ---- */

static float lr_at(const qs_train_config *c, int64_t s)
{
    if (s < c->warmup) return c->lr * (float)(s + 1) / (float)c->warmup;
    double span = (double)(c->steps > c->warmup ? c->steps - c->warmup : 1);
    double prog = fmin(1.0, (double)(s - c->warmup) / span);
    return (float)(c->min_lr + 0.5 * (c->lr - c->min_lr) * (1.0 + cos(M_PI * prog)));
}

static void adamw(qs_trainer *t)
{
    const qs_train_config *c = &t->c;
    double norm2 = 0;
    for (int i = 0; i < t->n_p; i++)
        for (int64_t j = 0; j < t->p[i].rows * t->p[i].cols; j++) norm2 += (double)t->p[i].g[j] * t->p[i].g[j];
    float clip = c->clip > 0 && sqrt(norm2) > c->clip ? (float)(c->clip / sqrt(norm2)) : 1.0f;
    float lr = lr_at(c, t->step);
    float bc1 = 1.0f - powf(c->beta1, (float)(t->step + 1)), bc2 = 1.0f - powf(c->beta2, (float)(t->step + 1));
    for (int i = 0; i < t->n_p; i++) {
        param *p = &t->p[i];
        float wd = p->decay ? c->weight_decay : 0.0f;
        for (int64_t j = 0; j < p->rows * p->cols; j++) {
            float g = p->g[j] * clip;
            p->m[j] = c->beta1 * p->m[j] + (1.0f - c->beta1) * g;
            p->v[j] = c->beta2 * p->v[j] + (1.0f - c->beta2) * g * g;
            float mh = p->m[j] / bc1, vh = p->v[j] / bc2;
            p->w[j] -= lr * (mh / (sqrtf(vh) + c->adam_eps) + wd * p->w[j]);
        }
    }
    t->step++;
}

int qs_trainer_step(qs_trainer *t, const int32_t *stream, int64_t n, double *loss, qs_err *err)
{
    int B = t->c.batch, W = t->c.seq + 1, lead = t->c.bos >= 0;
    if (n <= W) return qs_err_set(err, QS_E_INPUT, "%lld tokens of text; a window needs %d", (long long)n, W + 1);
    int32_t *win = malloc((size_t)B * (size_t)W * sizeof *win);
    if (!win) return qs_err_set(err, QS_E_OOM, "out of memory");
    uint64_t rng = t->c.seed ^ ((uint64_t)t->step * 0xD1B54A32D192ED03ull);
    for (int b = 0; b < B; b++) {
        int64_t start = (int64_t)(splitmix(&rng) % (uint64_t)(n - W));
        if (lead) win[(size_t)b * W] = t->c.bos;
        memcpy(win + (size_t)b * W + lead, stream + start, (size_t)(W - lead) * sizeof *win);
    }
    for (int b = 0; b < B * W; b++)
        if (win[b] < 0 || win[b] >= t->V) {
            int id = win[b];
            free(win);
            return qs_err_set(err, QS_E_INPUT, "token id %d outside the vocabulary of %d", id, t->V);
        }
    qs_trainer_zero_grad(t);
    double l = qs_trainer_loss(t, win, B, true);
    free(win);
    if (isnan(l)) return qs_err_set(err, QS_E_OOM, "out of memory for the activations");
    adamw(t);
    *loss = l;
    return 0;
}

/* ---- files ---- */

static int write_keys(const qs_trainer *t, qs_gguf_writer *w)
{
    const qs_train_config *c = &t->c;
    return qs_gguf_writer_set_str(w, "general.architecture", "llama") ||
           qs_gguf_writer_set_u32(w, "general.file_type", 0) ||
           qs_gguf_writer_set_u32(w, "llama.context_length", (uint32_t)c->ctx) ||
           qs_gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)c->dim) ||
           qs_gguf_writer_set_u32(w, "llama.block_count", (uint32_t)c->n_layers) ||
           qs_gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)c->ff) ||
           qs_gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)c->n_heads) ||
           qs_gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads) ||
           qs_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", c->norm_eps) ||
           qs_gguf_writer_set_f32(w, "llama.rope.freq_base", c->rope_base) ||
           qs_gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)t->D) ||
           qs_gguf_writer_set_u32(w, "llama.vocab_size", (uint32_t)c->vocab);
}

static int add_tensor(qs_gguf_writer *w, const char *name, const param *p, const float *data, qs_err *err)
{
    int64_t ne[4] = {p->cols, p->rows, 1, 1};
    return qs_gguf_writer_add_tensor(w, name, QS_TYPE_F32, 0, ne, data, err);
}

int qs_trainer_write_model(const qs_trainer *t, qs_gguf_writer *w, qs_err *err)
{
    if (write_keys(t, w)) return qs_err_set(err, QS_E_OOM, "out of memory");
    for (int i = 0; i < t->n_p; i++)
        if (add_tensor(w, t->p[i].name, &t->p[i], t->p[i].w, err)) return -1;
    return 0;
}

int qs_trainer_write_checkpoint(const qs_trainer *t, qs_gguf_writer *w, qs_err *err)
{
    if (qs_trainer_write_model(t, w, err)) return -1;
    if (qs_gguf_writer_set_raw(w, "train.step", QS_GGUF_U64, &t->step, 8)) return qs_err_set(err, QS_E_OOM, "out of memory");
    for (int i = 0; i < t->n_p; i++) {
        char n[128];
        snprintf(n, sizeof n, "train.m.%s", t->p[i].name);
        if (add_tensor(w, n, &t->p[i], t->p[i].m, err)) return -1;
        snprintf(n, sizeof n, "train.v.%s", t->p[i].name);
        if (add_tensor(w, n, &t->p[i], t->p[i].v, err)) return -1;
    }
    return 0;
}

static int load_tensor(const qs_gguf *g, const char *name, const param *p, float *dst, qs_err *err)
{
    const qs_gguf_tensor *gt = qs_gguf_find_tensor(g, name);
    if (!gt) return qs_err_set(err, QS_E_INPUT, "the checkpoint has no tensor %s", name);
    if (gt->type != QS_TYPE_F32 || gt->ne[0] != p->cols || gt->ne[1] * gt->ne[2] * gt->ne[3] != p->rows)
        return qs_err_set(err, QS_E_INPUT, "%s: shape or type differs from the training configuration", name);
    return qs_mapped_copy(dst, gt->data, (size_t)(p->rows * p->cols) * sizeof(float), err);
}

int qs_trainer_load_checkpoint(qs_trainer *t, const qs_gguf *g, qs_err *err)
{
    const qs_gguf_kv *kv = qs_gguf_get_kv(g, "train.step");
    if (!kv || kv->type != QS_GGUF_U64) return qs_err_set(err, QS_E_INPUT, "not a quantscope training checkpoint (train.step)");
    for (int i = 0; i < t->n_p; i++) {
        char n[128];
        param *p = &t->p[i];
        if (load_tensor(g, p->name, p, p->w, err)) return -1;
        snprintf(n, sizeof n, "train.m.%s", p->name);
        if (load_tensor(g, n, p, p->m, err)) return -1;
        snprintf(n, sizeof n, "train.v.%s", p->name);
        if (load_tensor(g, n, p, p->v, err)) return -1;
    }
    t->step = (int64_t)qs_gguf_kv_num(kv, 0);
    return 0;
}
