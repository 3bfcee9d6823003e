/* core/quant/quant.c — method table, configurations and qs_quant_run. */
#include "core/quant/quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/quant/ggml_types.h"
#include "core/util/progress.h"
#include "core/quant/stats.h"

#define K(k) (1u << (k))

static const int group_steps[] = {-1, 0, 32, 64, 128, 256};
static const int ggml_steps[] = {-1, QS_TYPE_Q4_0, QS_TYPE_Q4_1, QS_TYPE_Q5_0, QS_TYPE_Q5_1, QS_TYPE_Q8_0, QS_TYPE_Q2_K,
                                 QS_TYPE_Q3_K, QS_TYPE_Q4_K, QS_TYPE_Q5_K, QS_TYPE_Q6_K, QS_TYPE_IQ4_NL, QS_TYPE_IQ4_XS};
static const int block_steps[] = {32, 64, 128, 256, 512, 1024, 2048, 4096};
static const int damp_steps[] = {1, 5, 10, 25, 50, 100, 200};

static const qs_knob_info knobs[QS_KNOB_COUNT] = {
    [QS_KNOB_BITS] = {"bits", "bits per weight of the integer grid", false, 2, 8, NULL, 0},
    [QS_KNOB_GROUP] = {"group", "weights sharing one scale: tensor, row, or a group size dividing the row",
                       false, -1, 1 << 30, group_steps, 6},
    [QS_KNOB_ASYM] = {"asym", "asymmetric grid with a zero point (min-max) instead of symmetric absmax", true, 0, 1, NULL, 0},
    [QS_KNOB_CLIP] = {"clip", "search a clipping ratio per group (lowest squared error)", true, 0, 1, NULL, 0},
    [QS_KNOB_BLOCK] = {"block", "bitsandbytes block size (absmax per block)", false, 32, 4096, block_steps, 8},
    [QS_KNOB_DOUBLE_QUANT] = {"double_quant", "quantize the absmax values to 8 bits (QLoRA double quantization)", true, 0, 1, NULL, 0},
    [QS_KNOB_DAMP] = {"damp", "GPTQ dampening: this fraction of mean(diag H) is added to the diagonal", false, 1, 999,
                      damp_steps, 7, 0.001},
    [QS_KNOB_ACT_ORDER] = {"act_order", "GPTQ: quantize columns by descending diag(H) (desc_act)", true, 0, 1, NULL, 0},
    [QS_KNOB_STATIC_GROUPS] = {"static_groups", "GPTQ: group parameters from the original weights, natural order", true,
                               0, 1, NULL, 0},
    [QS_KNOB_ALPHA] = {"alpha", "AWQ: scale exponent alpha (search: the 20-point grid, lowest output error)", false, -1,
                       19, NULL, 0, 0.05},
    [QS_KNOB_DUO] = {"duo", "AWQ: duo scaling s = x^a / w^(1-a) (AutoAWQ) instead of s = x^a", true, 0, 1, NULL, 0},
    [QS_KNOB_GGML] = {"ggml", "AWQ: quantize the scaled weights with this GGML type, unclipped (grid: AWQ's own grid)",
                      false, -1, QS_TYPE_COUNT - 1, ggml_steps, 13},
};


const qs_method *qs_method_find(const char *name)
{
    for (int i = 0; i < qs_method_count; i++)
        if (strcasecmp(qs_method_table[i].name, name) == 0) return &qs_method_table[i];
    return NULL;
}

const qs_knob_info *qs_knob_get(qs_knob_id k) { return k >= 0 && k < QS_KNOB_COUNT ? &knobs[k] : NULL; }

unsigned qs_method_knobs(const qs_method *m) { return m->ops->knobs; }
bool qs_method_needs_calib(const qs_method *m) { return m->ops->needs_hessian || m->ops->needs_calib_rows; }
bool qs_method_needs_hessian(const qs_method *m) { return m->ops->needs_hessian; }
bool qs_method_uses_imatrix(const qs_method *m) { return m->ops->uses_imatrix && m->ops->uses_imatrix(m); }

void qs_qconfig_default(qs_qconfig *c, const qs_method *m)
{
    *c = (qs_qconfig){.method = m, .bits = 4, .group = 128, .asym = false, .clip = false, .block = 64,
                      .double_quant = false, .damp = 10, .alpha = -1, .ggml = -1};
    /* the method's own defaults (AWQ: a zero point and the clip search, spec/awq.md §6) */
    if (m && m->ops->defaults) m->ops->defaults(c);
}

int qs_qconfig_get(const qs_qconfig *c, qs_knob_id k)
{
    switch (k) {
    case QS_KNOB_BITS: return c->bits;
    case QS_KNOB_GROUP: return c->group;
    case QS_KNOB_ASYM: return c->asym;
    case QS_KNOB_CLIP: return c->clip;
    case QS_KNOB_BLOCK: return c->block;
    case QS_KNOB_DOUBLE_QUANT: return c->double_quant;
    case QS_KNOB_DAMP: return c->damp;
    case QS_KNOB_ACT_ORDER: return c->act_order;
    case QS_KNOB_STATIC_GROUPS: return c->static_groups;
    case QS_KNOB_ALPHA: return c->alpha;
    case QS_KNOB_DUO: return c->duo;
    case QS_KNOB_GGML: return c->ggml;
    default: return 0;
    }
}

static void put(qs_qconfig *c, qs_knob_id k, int v)
{
    switch (k) {
    case QS_KNOB_BITS: c->bits = v; break;
    case QS_KNOB_GROUP: c->group = v; break;
    case QS_KNOB_ASYM: c->asym = v != 0; break;
    case QS_KNOB_CLIP: c->clip = v != 0; break;
    case QS_KNOB_BLOCK: c->block = v; break;
    case QS_KNOB_DOUBLE_QUANT: c->double_quant = v != 0; break;
    case QS_KNOB_DAMP: c->damp = v; break;
    case QS_KNOB_ACT_ORDER: c->act_order = v != 0; break;
    case QS_KNOB_STATIC_GROUPS: c->static_groups = v != 0; break;
    case QS_KNOB_ALPHA: c->alpha = v; break;
    case QS_KNOB_DUO: c->duo = v != 0; break;
    case QS_KNOB_GGML: c->ggml = v; break;
    default: break;
    }
}

static int parse_knob_value(const qs_knob_info *ki, const char *v, int *out)
{
    if (ki->is_bool) {
        if (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes") || !strcasecmp(v, "on")) *out = 1;
        else if (!strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no") || !strcasecmp(v, "off")) *out = 0;
        else return -1;
        return 0;
    }
    if (ki == &knobs[QS_KNOB_GGML]) { /* a GGML type by name (or id), "grid" for none */
        int t = strcasecmp(v, "grid") ? qs_type_from_name(v) : -1;
        char *e;
        long id = strtol(v, &e, 10);
        if (t < 0 && *v && !*e && id >= -1 && id < QS_TYPE_COUNT) t = (int)id;
        for (int i = 0; i < ki->n_steps; i++)
            if (ki->steps[i] == t && (t >= 0 || !strcasecmp(v, "grid") || !strcmp(v, "-1"))) return *out = t, 0;
        return -1;
    }
    if (!strcasecmp(v, "tensor")) { *out = -1; return 0; }
    if (!strcasecmp(v, "row")) { *out = 0; return 0; }
    if (!strcasecmp(v, "search") && ki->min < 0) { *out = -1; return 0; }
    char *end;
    if (ki->unit > 0) {
        double x = strtod(v, &end);
        if (*v == '\0' || *end || !isfinite(x)) return -1;
        long q = lround(x / ki->unit);
        if (q < ki->min || q > ki->max || (q < 0 && x >= 0) || fabs((double)q * ki->unit - x) > ki->unit * 1e-6) return -1;
        *out = (int)q;
        return 0;
    }
    long x = strtol(v, &end, 10);
    if (*v == '\0' || *end || x < ki->min || x > ki->max) return -1;
    *out = (int)x;
    return 0;
}

int qs_qconfig_set(qs_qconfig *c, const char *knob, const char *value, qs_err *err)
{
    for (int k = 0; k < QS_KNOB_COUNT; k++) {
        if (strcasecmp(knobs[k].name, knob)) continue;
        if (!(c->method->ops->knobs & K(k)))
            return qs_err_set(err, QS_E_USAGE, "method %s has no knob '%s'", c->method->name, knob);
        int v;
        if (parse_knob_value(&knobs[k], value, &v))
        {
            char lo[32], hi[32];
            qs_knob_format((qs_knob_id)k, knobs[k].min, lo, sizeof lo);
            qs_knob_format((qs_knob_id)k, knobs[k].max, hi, sizeof hi);
            return knobs[k].is_bool ? qs_err_set(err, QS_E_USAGE, "%s takes true or false, not '%s'", knob, value)
                                    : qs_err_set(err, QS_E_USAGE, "%s takes %s…%s%s, not '%s'", knob, lo, hi,
                                                 k == QS_KNOB_GROUP ? " (or tensor, row)" : "", value);
        }
        put(c, (qs_knob_id)k, v);
        return 0;
    }
    return qs_err_set(err, QS_E_USAGE, "unknown knob '%s'", knob);
}

bool qs_qconfig_equal(const qs_qconfig *x, const qs_qconfig *y)
{
    if (x->method != y->method) return false;
    for (int k = 0; k < QS_KNOB_COUNT; k++)
        if (qs_qconfig_get(x, (qs_knob_id)k) != qs_qconfig_get(y, (qs_knob_id)k)) return false;
    return true;
}

void qs_knob_format(qs_knob_id k, int v, char *buf, size_t n)
{
    const qs_knob_info *ki = &knobs[k];
    if (ki->is_bool) snprintf(buf, n, "%s", v ? "true" : "false");
    else if (k == QS_KNOB_GROUP && v < 0) snprintf(buf, n, "tensor");
    else if (k == QS_KNOB_GROUP && v == 0) snprintf(buf, n, "row");
    else if (k == QS_KNOB_ALPHA && v < 0) snprintf(buf, n, "search");
    else if (k == QS_KNOB_GGML) snprintf(buf, n, "%s", v < 0 ? "grid" : qs_type_name(v));
    else if (ki->unit > 0) snprintf(buf, n, "%g", v * ki->unit);
    else snprintf(buf, n, "%d", v);
}

bool qs_qconfig_step(qs_qconfig *c, qs_knob_id k, int dir)
{
    const qs_knob_info *ki = &knobs[k];
    int v = qs_qconfig_get(c, k);
    if (ki->is_bool) {
        put(c, k, !v);
        return true;
    }
    if (!ki->steps) {
        int nv = v + (dir > 0 ? 1 : -1);
        if (nv < ki->min || nv > ki->max) return false;
        put(c, k, nv);
        return true;
    }
    int i = 0;
    while (i < ki->n_steps && ki->steps[i] != v) i++;
    if (i == ki->n_steps) i = dir > 0 ? -1 : ki->n_steps; /* off the list: enter at an end */
    i += dir > 0 ? 1 : -1;
    if (i < 0 || i >= ki->n_steps) return false;
    put(c, k, ki->steps[i]);
    return true;
}

void qs_qconfig_describe(const qs_qconfig *c, char *buf, size_t n) { c->method->ops->describe(c, buf, n); }

int qs_ggml_fallback_type(int type, int64_t ne0)
{
    const qs_type_info *t = qs_type_get(type);
    if (!t) return -1;
    if (ne0 % t->block_size == 0) return type;
    int fb;
    switch (type) {
    case QS_TYPE_IQ1_S: case QS_TYPE_IQ1_M: case QS_TYPE_IQ2_XXS: case QS_TYPE_IQ2_XS: case QS_TYPE_IQ2_S:
    case QS_TYPE_IQ3_XXS: case QS_TYPE_IQ3_S: case QS_TYPE_IQ4_XS: fb = QS_TYPE_IQ4_NL; break;
    case QS_TYPE_Q2_0: case QS_TYPE_Q2_K: case QS_TYPE_Q3_K: case QS_TYPE_TQ1_0: case QS_TYPE_TQ2_0: fb = QS_TYPE_Q4_0; break;
    case QS_TYPE_Q4_K: fb = QS_TYPE_Q5_0; break;
    case QS_TYPE_Q5_K: fb = QS_TYPE_Q5_1; break;
    case QS_TYPE_Q6_K: fb = QS_TYPE_Q8_0; break;
    default: return -1;
    }
    return ne0 % qs_type_get(fb)->block_size == 0 ? fb : QS_TYPE_F16;
}

double qs_qconfig_bpw(const qs_qconfig *c, int64_t rows, int64_t cols, int effective_type)
{
    return c->method->ops->bpw(c, rows, cols, effective_type);
}

int qs_qconfig_check(const qs_qconfig *c, int64_t rows, int64_t cols, int *effective_type, qs_err *err)
{
    *effective_type = -1;
    if (rows <= 0 || cols <= 0) return qs_err_set(err, QS_E_USAGE, "empty tensor");
    return c->method->ops->check(c, rows, cols, effective_type, err);
}

int qs_qconfig_ggml_request(const qs_qconfig *c)
{
    return c->method->ops->ggml_request ? c->method->ops->ggml_request(c) : -1;
}

int64_t qs_qconfig_row_block(const qs_qconfig *c)
{
    return c->method->ops->row_block ? c->method->ops->row_block(c) : 0;
}

bool qs_qconfig_ggml_native(const qs_qconfig *c) { return c->method->ops->ggml_native; }

int qs_qconfig_explain(const qs_qconfig *c, const qs_explain_in *ex, qs_explain_line *out)
{
    return c->method->ops->explain(c, ex, out);
}

/* ---- results ---- */

void qs_qresult_group_scales(const qs_qresult *r, float *out)
{
    int64_t n = r->rows * r->cols;
    for (int64_t i = 0; i < n; i++)
        out[i] = !r->scales || !r->group_len ? 0 : r->cfg.method->ops->group_scale(r, i / r->cols, i % r->cols);
}

int qs_qresult_levels(const qs_qresult *r, int64_t row, int64_t col, float *levels)
{
    if (!r->group_len || row < 0 || col < 0 || row >= r->rows || col >= r->cols) return 0;
    return r->cfg.method->ops->levels(r, row, col, levels);
}

int qs_qresult_code_at(const qs_qresult *r, int64_t i)
{
    return r->cfg.method->ops->code_at ? r->cfg.method->ops->code_at(r, i) : QS_CODE_NONE;
}

void qs_qresult_dequantize(const qs_qresult *r, float *out) { r->cfg.method->ops->dequantize(r, out); }

int qs_quant_run(const qs_qconfig *cfg, const float *w, int64_t rows, int64_t cols, const struct qs_calib *calib,
                 const float *imatrix, int n_threads, qs_qresult *out, qs_err *err)
{
    return qs_quant_run_progress(cfg, w, rows, cols, calib, imatrix, n_threads, NULL, out, err);
}

int qs_quant_run_progress(const qs_qconfig *cfg, const float *w, int64_t rows, int64_t cols, const struct qs_calib *calib,
                          const float *imatrix, int n_threads, qs_progress *prog, qs_qresult *out, qs_err *err)
{
    memset(out, 0, sizeof *out);
    out->rows = rows;
    out->cols = cols;
    out->cfg = *cfg;
    out->ggml_type = -1;
    out->loss = out->out_err = NAN;
    int type, rc = qs_qconfig_check(cfg, rows, cols, &type, err);
    if (rc) return rc;
    int64_t n = rows * cols;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(w[i]))
            return qs_err_set(err, QS_E_INPUT, "row %lld, column %lld is not finite", (long long)(i / cols),
                              (long long)(i % cols));
    out->deq = malloc((size_t)n * sizeof *out->deq);
    if (!out->deq) return qs_err_set(err, QS_E_OOM, "out of memory");
    qs_quant_in in = {calib, imatrix, n_threads, prog, type};
    if ((rc = cfg->method->ops->run(out, w, &in, err))) {
        qs_qresult_free(out);
        return rc;
    }
    if (calib && calib->X && calib->n_rows > 0 && calib->cols == cols)
        out->out_err = qs_stats_output_error(w, out->deq, rows, cols, calib->X, calib->n_rows);
    return 0;
}

void qs_qresult_free(qs_qresult *r)
{
    free(r->data);
    free(r->scales);
    free(r->zeros);
    free(r->clip_ratio);
    free(r->g_idx);
    free(r->col_scale);
    free(r->deq);
    qs_bnb4_free(&r->bnb);
    memset(r, 0, sizeof *r);
}
