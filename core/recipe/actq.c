/* core/recipe/actq.c — simulated activation quantization, its calibration and SmoothQuant scales. */
#include "core/recipe/actq.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/data/eval.h"
#include "core/quant/ggml_types.h"
#include "core/model/infer.h"
#include "core/model/model.h"
#include "core/quant/quant.h"
#include "core/recipe/recipe.h"

/* ---- specs ---- */

static int parse_bits(const char *s, int *bits)
{
    char *end;
    if (strncmp(s, "int", 3)) return -1;
    long b = strtol(s + 3, &end, 10);
    if (end == s + 3 || *end || b < 2 || b > 8) return -1;
    *bits = (int)b;
    return 0;
}

int qs_act_spec_parse(const char *s, qs_act_spec *out, qs_err *err)
{
    *out = (qs_act_spec){QS_ACT_NONE, 8, false, 0};
    if (!strcmp(s, "none") || !strcmp(s, "f32")) return 0;
    char buf[64], *parts[4];
    int n = 0;
    if (strlen(s) >= sizeof buf) return qs_err_set(err, QS_E_USAGE, "activation spec too long");
    strcpy(buf, s);
    for (char *p = buf; n < 4 && p; n++) {
        parts[n] = p;
        if ((p = strchr(p, ':'))) *p++ = '\0';
    }
    const char *want = "activations are intB:dynamic or intB:static[:per-tensor|:per-channel][:pNN.N] (B 2…8), not '%s'";
    if (n < 2 || parse_bits(parts[0], &out->bits)) return qs_err_set(err, QS_E_USAGE, want, s);
    if (!strcmp(parts[1], "dynamic") && n == 2) out->mode = QS_ACT_DYNAMIC;
    else if (!strcmp(parts[1], "static")) out->mode = QS_ACT_STATIC;
    else return qs_err_set(err, QS_E_USAGE, want, s);
    for (int i = 2; i < n; i++) {
        char *end;
        if (!strcmp(parts[i], "per-channel")) out->per_channel = true;
        else if (!strcmp(parts[i], "per-tensor")) out->per_channel = false;
        else if (parts[i][0] == 'p' && (out->pct = strtod(parts[i] + 1, &end), end != parts[i] + 1 && !*end) &&
                 out->pct > 0 && out->pct <= 100)
            continue;
        else return qs_err_set(err, QS_E_USAGE, want, s);
    }
    if (out->per_channel && out->pct > 0)
        return qs_err_set(err, QS_E_USAGE, "'%s': percentile ranges are per tensor (per-channel ranges are absmax)", s);
    if (out->pct >= 100) out->pct = 0;
    return 0;
}

void qs_act_spec_format(const qs_act_spec *s, char *buf, size_t n)
{
    if (s->mode == QS_ACT_NONE) snprintf(buf, n, "none");
    else if (s->mode == QS_ACT_DYNAMIC) snprintf(buf, n, "int%d:dynamic", s->bits);
    else if (s->pct > 0) snprintf(buf, n, "int%d:static:per-tensor:p%g", s->bits, s->pct);
    else snprintf(buf, n, "int%d:static:%s", s->bits, s->per_channel ? "per-channel" : "per-tensor");
}

/* ---- calibration ---- */

static int hist_bin(float a)
{
    if (!(a > 0)) return 0;
    int b = (int)floor(((double)log2f(a) + 24.0) * 64.0);
    return b < 0 ? 0 : b >= QS_ACT_HIST_BINS ? QS_ACT_HIST_BINS - 1 : b;
}

typedef struct calib_ctx {
    qs_llm *l;
    qs_act_stats *st;
    int failed;
} calib_ctx;

static qs_act_input *input_for(calib_ctx *c, const char *const *weights, int n, int64_t cols)
{
    qs_act_stats *st = c->st;
    for (int i = 0; i < st->n; i++)
        if (!strcmp(st->in[i].names[0], weights[0])) return &st->in[i];
    qs_act_input *g = realloc(st->in, (size_t)(st->n + 1) * sizeof *g);
    if (!g) return NULL;
    st->in = g;
    qs_act_input *in = &g[st->n];
    *in = (qs_act_input){.cols = cols};
    for (int k = 0; k < n && k < 3; k++) snprintf(in->names[k], sizeof in->names[k], "%s", weights[k]);
    in->n_names = n < 3 ? n : 3;
    in->chan_absmax = calloc((size_t)cols, sizeof *in->chan_absmax);
    in->hist = calloc(QS_ACT_HIST_BINS, sizeof *in->hist);
    if (!in->chan_absmax || !in->hist) {
        free(in->chan_absmax), free(in->hist);
        return NULL;
    }
    st->n++;
    return in;
}

static void observe(void *ctx, const char *const *weights, int n, const float *x, int T, int64_t cols)
{
    calib_ctx *c = ctx;
    qs_act_input *in = c->failed ? NULL : input_for(c, weights, n, cols);
    if (!in || in->cols != cols) {
        c->failed = 1;
        return;
    }
    const float *div = qs_llm_in_div(c->l, weights[0]);
    for (int t = 0; t < T; t++) {
        const float *r = x + (size_t)t * cols;
        for (int64_t j = 0; j < cols; j++) {
            float a = fabsf(div ? r[j] / div[j] : r[j]);
            if (a > in->chan_absmax[j]) in->chan_absmax[j] = a;
            if (a > in->absmax) in->absmax = a;
            in->sumsq += (double)a * a;
            in->hist[hist_bin(a)]++;
        }
    }
    in->count += (int64_t)T * cols;
}

/* a chunk's logits are not needed: the observer has seen its activations; ctx: its failure flag */
static int observed_ok(void *ctx, int chunk, const float *logits, qs_err *err)
{
    (void)chunk, (void)logits;
    return *(const int *)ctx ? qs_err_set(err, QS_E_OOM, "out of memory for the activation statistics") : 0;
}

int qs_act_calibrate(qs_llm *l, const int32_t *toks, int nc, int n_ctx, int32_t bos, qs_progress *prog,
                     qs_act_stats *out, qs_err *err)
{
    memset(out, 0, sizeof *out);
    /* with logits (qs_eval_chunks), so that the output projection's input is observed too */
    calib_ctx c = {l, out, 0};
    qs_llm_set_observer(l, observe, &c);
    int rc = qs_eval_chunks(l, toks, nc, n_ctx, bos, prog, observed_ok, &c.failed, err);
    qs_llm_set_observer(l, NULL, NULL);
    out->tokens = (int64_t)nc * n_ctx;
    if (rc) qs_act_stats_free(out);
    return rc;
}

void qs_act_stats_free(qs_act_stats *s)
{
    for (int i = 0; i < s->n; i++) free(s->in[i].chan_absmax), free(s->in[i].hist);
    free(s->in);
    memset(s, 0, sizeof *s);
}

const qs_act_input *qs_act_stats_find(const qs_act_stats *s, const char *weight)
{
    for (int i = 0; i < s->n; i++)
        for (int k = 0; k < s->in[i].n_names; k++)
            if (!strcmp(s->in[i].names[k], weight)) return &s->in[i];
    return NULL;
}

double qs_act_percentile(const qs_act_input *in, double pct)
{
    if (in->count <= 0) return 0;
    double want = pct / 100.0 * (double)in->count;
    uint64_t cum = 0;
    for (int b = 0; b < QS_ACT_HIST_BINS; b++) {
        cum += in->hist[b];
        if ((double)cum >= want) {
            double edge = exp2((double)(b + 1) / 64.0 - 24.0);
            return edge < in->absmax ? edge : in->absmax;
        }
    }
    return in->absmax;
}

int64_t qs_act_static_scales(const qs_act_spec *spec, const qs_act_input *in, float *scale)
{
    double qmax = qs_act_qmax(spec->bits);
    if (spec->per_channel) {
        for (int64_t j = 0; j < in->cols; j++) scale[j] = (float)(in->chan_absmax[j] / qmax);
        return in->cols;
    }
    scale[0] = (float)((spec->pct > 0 ? qs_act_percentile(in, spec->pct) : in->absmax) / qmax);
    return 1;
}

/* ---- smoothing ---- */

void qs_act_smooth_scales(const qs_act_input *in, const float *const *w, const int64_t *rows, int n_w, double alpha,
                          float *s)
{
    for (int64_t j = 0; j < in->cols; j++) {
        double m = 0, a = in->chan_absmax[j];
        for (int k = 0; k < n_w; k++)
            for (int64_t r = 0; r < rows[k]; r++) {
                double v = fabs((double)w[k][r * in->cols + j]);
                m = v > m ? v : m;
            }
        s[j] = a > 0 && m > 0 ? (float)(pow(a, alpha) / pow(m, 1 - alpha)) : 1.0f;
    }
}

/* ---- applying ---- */

int qs_act_apply(qs_llm *l, const qs_act_spec *spec, const qs_act_stats *st, qs_err *err)
{
    if (spec->mode == QS_ACT_NONE) return qs_llm_set_act_quant(l, NULL, 0, NULL, 0, err);
    if (spec->mode == QS_ACT_DYNAMIC) return qs_llm_set_act_quant(l, NULL, spec->bits, NULL, 0, err);
    int rc = 0;
    for (int i = 0; !rc && i < st->n; i++) {
        const qs_act_input *in = &st->in[i];
        float *scale = malloc((size_t)in->cols * sizeof *scale);
        if (!scale) return qs_err_set(err, QS_E_OOM, "out of memory");
        int64_t n = qs_act_static_scales(spec, in, scale);
        for (int k = 0; !rc && k < in->n_names; k++) rc = qs_llm_set_act_quant(l, in->names[k], spec->bits, scale, n, err);
        free(scale);
    }
    return rc;
}

/* ---- smoothing a model ---- */

/* W' = W·diag(s) requantized with cfg (or kept as floats with the file's activation rounding when
 * cfg is NULL) and installed, then the product's input divided by s */
static int install_smoothed(qs_llm *l, const qs_tensor *t, const float *w, int64_t rows, int64_t cols,
                            const qs_qconfig *cfg, const float *s, qs_err *err)
{
    int rc;
    if (!cfg) {
        rc = qs_llm_set_weights(l, t->name, w, qs_llama_cpp_act_type(t->type, cols), err);
    } else {
        qs_qresult r;
        if ((rc = qs_quant_run(cfg, w, rows, cols, NULL, NULL, 0, &r, err))) return qs_err_prefix(err, "%s", t->name);
        rc = qs_llm_set_result(l, t->name, &r, 0, err);
        qs_qresult_free(&r);
    }
    return rc ? rc : qs_llm_set_in_div(l, t->name, s, err);
}

/* the config a smoothed weight is quantized with: the recipe's, else the file's own type (NULL
 * for float types); *keep_out says the recipe's entry is consumed */
static int smooth_config(const qs_tensor *t, qs_recipe_table *tab, qs_qconfig *cfg, const qs_qconfig **out, qs_err *err)
{
    *out = NULL;
    for (int64_t i = 0; tab && i < tab->n; i++)
        if (tab->e[i].t == t && !tab->e[i].keep) {
            if (qs_method_needs_calib(tab->e[i].cfg.method))
                return qs_err_set(err, QS_E_USAGE, "%s: smoothing works with RTN, NF4, FP4 and GGML types, not %s", t->name,
                                  tab->e[i].cfg.method->name);
            *cfg = tab->e[i].cfg;
            tab->e[i].keep = true; /* installed here, smoothed */
            *out = cfg;
            return 0;
        }
    if (t->type == QS_TYPE_F32 || t->type == QS_TYPE_F16 || t->type == QS_TYPE_BF16) return 0;
    const qs_method *m = qs_method_find(qs_type_name(t->type));
    if (!m) return qs_err_set(err, QS_E_UNSUPPORTED, "%s: cannot requantize %s after smoothing", t->name, qs_type_name(t->type));
    qs_qconfig_default(cfg, m);
    *out = cfg;
    return 0;
}

static int smooth_input(qs_llm *l, const qs_model *m, const qs_act_input *in, double alpha, qs_recipe_table *tab,
                        qs_err *err)
{
    const qs_tensor *t[3];
    float *w[3] = {0}, *s = malloc((size_t)in->cols * sizeof *s);
    int64_t rows[3];
    int rc = s ? 0 : qs_err_set(err, QS_E_OOM, "out of memory");
    for (int k = 0; !rc && k < in->n_names; k++) {
        t[k] = qs_model_find_tensor(m, in->names[k]);
        rows[k] = t[k] ? qs_tensor_nelements(t[k]) / in->cols : 0;
        if (!t[k] || !(w[k] = malloc((size_t)(rows[k] * in->cols) * sizeof *w[k])))
            rc = qs_err_set(err, t[k] ? QS_E_OOM : QS_E_INPUT, "%s: %s", in->names[k], t[k] ? "out of memory" : "not in the model");
        if (!rc) rc = qs_llm_read_weight(l, in->names[k], w[k], err);
    }
    if (!rc) qs_act_smooth_scales(in, (const float *const *)w, rows, in->n_names, alpha, s);
    for (int k = 0; !rc && k < in->n_names; k++) {
        for (int64_t r = 0; r < rows[k]; r++)
            for (int64_t j = 0; j < in->cols; j++) w[k][r * in->cols + j] *= s[j];
        qs_qconfig cfg;
        const qs_qconfig *c;
        rc = smooth_config(t[k], tab, &cfg, &c, err);
        if (!rc) rc = install_smoothed(l, t[k], w[k], rows[k], in->cols, c, s, err);
    }
    for (int k = 0; k < 3; k++) free(w[k]);
    free(s);
    return rc;
}

int qs_act_smooth(qs_llm *l, const qs_model *m, const qs_act_stats *st, double alpha, qs_recipe_table *tab,
                  qs_progress *prog, qs_err *err)
{
    if (!(alpha >= 0 && alpha <= 1)) return qs_err_set(err, QS_E_USAGE, "smoothing α %g: between 0 and 1", alpha);
    int rc = 0;
    for (int i = 0; !rc && i < st->n; i++) {
        const qs_act_input *in = &st->in[i];
        /* the output projection of a tied model reads token_embd: scaling it would scale the embeddings */
        if (!strcmp(in->names[0], "token_embd.weight")) continue;
        rc = smooth_input(l, m, in, alpha, tab, err);
        if (!rc && !qs_progress_step(prog, i + 1, st->n)) rc = qs_err_set(err, QS_E_CANCELLED, "cancelled");
    }
    return rc;
}

/* ---- the output error of each linear product ---- */

typedef struct err_ctx {
    qs_llm *l;
    const qs_act_spec *spec;
    const qs_act_stats *st;
    qs_act_error *e;
    int n, failed;
} err_ctx;

static qs_act_error *error_for(err_ctx *c, const char *name)
{
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->e[i].name, name)) return &c->e[i];
    qs_act_error *g = realloc(c->e, (size_t)(c->n + 1) * sizeof *g);
    if (!g) return NULL;
    c->e = g;
    g[c->n] = (qs_act_error){0};
    snprintf(g[c->n].name, sizeof g[c->n].name, "%s", name);
    return &g[c->n++];
}

/* y = x·Wᵀ and y' = Q(x)·Wᵀ for one weight; adds ‖y' − y‖² and ‖y‖² */
static int one_error(err_ctx *c, const char *name, const float *x, const float *xq, int T, int64_t cols)
{
    qs_err err = {0};
    qs_act_error *e = error_for(c, name);
    int64_t rows = 0;
    float *w = NULL, *y = NULL, *yq = NULL;
    int rc = e ? qs_llm_weight_shape(c->l, name, &rows, NULL) : -1;
    if (!rc && (!(w = malloc((size_t)(rows * cols) * sizeof *w)) || !(y = malloc((size_t)T * rows * sizeof *y)) ||
                !(yq = malloc((size_t)T * rows * sizeof *yq))))
        rc = -1;
    if (!rc) rc = qs_llm_read_weight(c->l, name, w, &err);
    if (!rc) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, (int)rows, (int)cols, 1.0f, x, (int)cols, w, (int)cols, 0.0f, y,
                    (int)rows);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, (int)rows, (int)cols, 1.0f, xq, (int)cols, w, (int)cols, 0.0f,
                    yq, (int)rows);
        for (int64_t i = 0; i < T * rows; i++) {
            double d = (double)yq[i] - y[i];
            e->err2 += d * d, e->ref2 += (double)y[i] * y[i];
        }
    }
    free(w), free(y), free(yq);
    return rc;
}

static void observe_error(void *ctx, const char *const *weights, int n, const float *x, int T, int64_t cols)
{
    err_ctx *c = ctx;
    if (c->failed) return;
    const float *div = qs_llm_in_div(c->l, weights[0]);
    const qs_act_input *in = c->spec->mode == QS_ACT_STATIC ? qs_act_stats_find(c->st, weights[0]) : NULL;
    float *xd = malloc((size_t)T * (size_t)cols * sizeof *xd), *xq = malloc((size_t)T * (size_t)cols * sizeof *xq);
    float *scale = in ? malloc((size_t)cols * sizeof *scale) : NULL;
    if (!xd || !xq || (c->spec->mode == QS_ACT_STATIC && (!in || !scale || in->cols != cols))) {
        c->failed = 1;
    } else {
        for (int64_t i = 0; i < (int64_t)T * cols; i++) xd[i] = div ? x[i] / div[i % cols] : x[i];
        memcpy(xq, xd, (size_t)T * (size_t)cols * sizeof *xq);
        int64_t ns = in ? qs_act_static_scales(c->spec, in, scale) : 0;
        qs_act_fake_quant(xq, T, cols, c->spec->bits, scale, ns);
        for (int k = 0; k < n && !c->failed; k++)
            if (one_error(c, weights[k], xd, xq, T, cols)) c->failed = 1;
    }
    free(xd), free(xq), free(scale);
}

int qs_act_output_errors(qs_llm *l, const int32_t *toks, int nc, int n_ctx, int32_t bos, const qs_act_spec *spec,
                         const qs_act_stats *st, qs_progress *prog, qs_act_error **out, int *n_out, qs_err *err)
{
    *out = NULL, *n_out = 0;
    if (spec->mode == QS_ACT_NONE) return 0;
    if (spec->mode == QS_ACT_STATIC && !st) return qs_err_set(err, QS_E_USAGE, "static ranges need calibration statistics");
    err_ctx c = {l, spec, st, NULL, 0, 0};
    qs_llm_set_observer(l, observe_error, &c);
    int rc = qs_eval_chunks(l, toks, nc, n_ctx, bos, prog, observed_ok, &c.failed, err);
    qs_llm_set_observer(l, NULL, NULL);
    if (rc) free(c.e);
    else *out = c.e, *n_out = c.n;
    return rc;
}
