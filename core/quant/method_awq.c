/* core/quant/method_awq.c — AWQ (core/awq.c): per-channel scales from the activations, searched on
 * the output error, then its own clipped integer grid or (awq:ggml=TYPE) a GGML type. */
#include "core/quant/method_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/quant/awq.h"
#include "core/quant/ggml_types.h"
#include "core/quant/qgrid.h"

#define K(k) (1u << (k))

/* spec/awq.md §6: a zero point and the clip search */
static void defaults(qs_qconfig *c) { c->asym = true, c->clip = true; }

static void describe(const qs_qconfig *c, char *buf, size_t n)
{
    char g[32], a[32];
    if (c->group <= 0) snprintf(g, sizeof g, "per-row");
    else snprintf(g, sizeof g, "g%d", c->group);
    qs_knob_format(QS_KNOB_ALPHA, c->alpha, a, sizeof a);
    snprintf(buf, n, "awq w%d %s %s alpha %s%s%s%s%s", c->bits, g, c->asym ? "zero-point" : "sym", a, c->duo ? " duo" : "",
             c->clip ? " clip" : "", c->ggml >= 0 ? " → " : "", c->ggml >= 0 ? qs_type_name(c->ggml) : "");
}

static int check(const qs_qconfig *c, int64_t rows, int64_t cols, int *effective_type, qs_err *err)
{
    (void)rows;
    if (c->bits < 2 || c->bits > 8) return qs_err_set(err, QS_E_USAGE, "bits %d: %s takes 2 to 8", c->bits, c->method->name);
    if (c->group < 0) return qs_err_set(err, QS_E_USAGE, "%s has no per-tensor grid: use group=row or a group size", c->method->name);
    int rc = qs_m_check_bits_group(c, cols, c->method->name, err);
    if (rc) return rc;
    if (c->ggml >= 0 && (*effective_type = qs_ggml_fallback_type(c->ggml, cols)) < 0)
        return qs_err_set(err, QS_E_USAGE, "%lld columns are not a multiple of the %s block size and llama-quantize "
                          "defines no fallback", (long long)cols, qs_type_name(c->ggml));
    return 0;
}

/* the AutoAWQ GEMM layout: f16 scales, packed zeros */
static double bpw(const qs_qconfig *c, int64_t rows, int64_t cols, int effective_type)
{
    (void)rows;
    if (c->ggml >= 0) return qs_type_bpw(effective_type >= 0 ? effective_type : c->ggml);
    double G = c->group > 0 ? c->group : (double)cols;
    return c->bits + (16.0 + (c->asym ? c->bits : 0)) / G;
}

static int ggml_request(const qs_qconfig *c) { return c->ggml; }

static int run_grid(qs_qresult *r, const float *w, const qs_quant_in *in, qs_err *err)
{
    const qs_qconfig *c = &r->cfg;
    qs_awq_params p = {c->bits, c->group, c->asym, c->duo, c->alpha, c->clip};
    int64_t G = c->group > 0 ? c->group : r->cols;
    int rc = qs_m_alloc_grouped(r, r->cols / G, err);
    if (rc) return rc;
    if (!(r->col_scale = malloc((size_t)r->cols * sizeof *r->col_scale))) return qs_err_set(err, QS_E_OOM, "out of memory");
    qs_awq_out o = {r->deq, r->data, r->scales, r->zeros, r->col_scale, NULL, {0}, 0};
    const qs_calib *cal = in->calib;
    if ((rc = qs_awq_quantize(&p, w, r->rows, r->cols, cal->X, cal->n_rows, cal->x_mean, NULL, &o, in->prog, err)))
        return rc;
    r->group_len = G;
    int best = c->alpha >= 0 ? -1 : (int)lrintf(o.best_ratio * QS_AWQ_GRID);
    r->loss = best >= 0 ? o.loss_history[best] : NAN;
    r->bpw = bpw(c, r->rows, r->cols, -1);
    if (best >= 0)
        snprintf(r->report, sizeof r->report, "AWQ alpha %.2f searched (linear-only output MSE %.4g)%s", (double)o.best_ratio,
                 r->loss, c->clip ? ", clipped" : "");
    else snprintf(r->report, sizeof r->report, "AWQ alpha %.2f fixed%s", (double)o.best_ratio, c->clip ? ", clipped" : "");
    qs_m_calib_count_clipped(r, w);
    return 0;
}

/* AWQ, then a GGML type (llama.cpp's route for AWQ models): the scale search on AWQ's own grid,
 * then W·s quantized with the type (the imatrix, if any, divided by s² as the inputs are divided
 * by s); the dequantized weights divided by s again. No clip: AWQ's clip search fits its own grid
 * and hurts the GGML types (kjv-tiny, w4 g128 → q4_K: PPL 36.60 without, 37.73 with it) */
static int run_ggml(qs_qresult *r, const float *w, const qs_quant_in *in, qs_err *err)
{
    const qs_qconfig *c = &r->cfg;
    const qs_calib *cal = in->calib;
    const float *imatrix = in->imatrix;
    qs_awq_params p = {c->bits, c->group, c->asym, c->duo, c->alpha, false};
    int64_t R = r->rows, C = r->cols, G = c->group > 0 ? c->group : C, ng = C / G, n = R * C;
    float *deq = malloc((size_t)n * sizeof *deq), *gs = malloc((size_t)(R * ng) * sizeof *gs),
          *gz = malloc((size_t)(R * ng) * sizeof *gz), *ws = malloc((size_t)n * sizeof *ws),
          *iw = imatrix ? malloc((size_t)C * sizeof *iw) : NULL;
    uint8_t *codes = malloc((size_t)n);
    r->col_scale = malloc((size_t)C * sizeof *r->col_scale);
    int rc = !deq || !gs || !gz || !ws || (imatrix && !iw) || !codes || !r->col_scale
                 ? qs_err_set(err, QS_E_OOM, "out of memory")
                 : 0;
    qs_awq_out o = {deq, codes, gs, gz, r->col_scale, NULL, {0}, 0};
    if (!rc) rc = qs_awq_quantize(&p, w, R, C, cal->X, cal->n_rows, cal->x_mean, NULL, &o, in->prog, err);
    for (int64_t i = 0; !rc && i < n; i++) ws[i] = w[i] * r->col_scale[i % C];
    for (int64_t k = 0; !rc && iw && k < C; k++) iw[k] = imatrix[k] / (r->col_scale[k] * r->col_scale[k]);
    free(deq), free(gs), free(gz), free(codes);
    if (!rc) rc = qs_m_ggml_encode(r, ws, in->effective_type, c->ggml, iw, in->n_threads, err);
    if (!rc) {
        qs_m_count_clipped(r, ws, in->n_threads, qs_m_ggml_group_levels);
        for (int64_t i = 0; i < n; i++) r->deq[i] /= r->col_scale[i % C];
        snprintf(r->report, sizeof r->report, "AWQ alpha %.2f %s, then %s (the scales fold into the previous op; no clip)",
                 (double)o.best_ratio, c->alpha >= 0 ? "fixed" : "searched", qs_type_name(in->effective_type));
    }
    free(ws), free(iw);
    return rc;
}

static int run(qs_qresult *r, const float *w, const qs_quant_in *in, qs_err *err)
{
    int rc = qs_m_calib_check(r, in->calib, false, err);
    if (rc) return rc;
    return r->cfg.ggml >= 0 ? run_ggml(r, w, in, err) : run_grid(r, w, in, err);
}

static void dequantize(const qs_qresult *r, float *out)
{
    if (r->ggml_type < 0) {
        qs_m_calib_dequantize(r, out);
        return;
    }
    qs_m_ggml_decode(r, out);
    for (int64_t i = 0; i < r->rows * r->cols; i++) out[i] /= r->col_scale[i % r->cols];
}

static int levels(const qs_qresult *r, int64_t row, int64_t col, float *lv)
{
    if (r->ggml_type < 0) return qs_m_calib_levels(r, row, col, lv);
    int n = qs_m_flat_levels(r, row, col, lv, qs_m_ggml_group_levels); /* the GGML levels of W·s, divided by s */
    for (int i = 0; i < n; i++) lv[i] /= r->col_scale[col];
    return n;
}

static float group_scale(const qs_qresult *r, int64_t row, int64_t col)
{
    return r->ggml_type < 0 ? qs_m_calib_scale(r, row, col) : qs_m_flat_scale(r, row, col);
}

static int explain(const qs_qconfig *c, const qs_explain_in *ex, qs_explain_line *o)
{
    o[0].style = o[1].style = QS_EXPLAIN_FORMULA, o[2].style = QS_EXPLAIN_EXAMPLE;
    snprintf(o[0].text, sizeof o->text, "AWQ, %d bits: s[c] = mean|x[c]|^alpha%s, normalised; w' = Q(w · s) / s", c->bits,
             c->duo ? " / mean|w[c]|^(1-alpha)" : "");
    snprintf(o[1].text, sizeof o->text, "alpha minimises |X(W - W')^T|^2 over 0, 0.05 ... 0.95%s",
             c->clip ? "; then each group of W·s is clipped at the shrink with the lowest output error" : "");
    snprintf(o[2].text, sizeof o->text, "group 0 (row 0) of W·s: step %.6g, zero %.0f (w' = (code - zero) · step / s[c])",
             ex->scale, ex->zero);
    return 3;
}

/* the grid, or with a GGML type the rows' blocks and the channel scales */
static int to_grid(const qs_qresult *r, int64_t row0, int64_t nrows, qs_qgrid *g, qs_err *err)
{
    if (r->ggml_type < 0) return qs_m_grouped_to_grid(r, row0, nrows, g, err);
    size_t rb = qs_type_row_bytes(r->ggml_type, r->cols);
    g->rows = nrows, g->cols = r->cols, g->ggml_type = r->ggml_type;
    g->ggml = malloc(rb * (size_t)nrows + 1);
    g->col_scale = malloc((size_t)r->cols * sizeof *g->col_scale);
    if (!g->ggml || !g->col_scale) {
        qs_qgrid_free(g);
        return qs_err_set(err, QS_E_OOM, "out of memory");
    }
    memcpy(g->ggml, r->data + rb * (size_t)row0, rb * (size_t)nrows);
    memcpy(g->col_scale, r->col_scale, (size_t)r->cols * sizeof *g->col_scale);
    return 0;
}

/* no op to fold the scales into: s ≡ 1 */
static void unfolded(qs_qconfig *c) { c->alpha = 0, c->duo = false; }

const qs_method_ops qs_awq_ops = {
    .knobs = K(QS_KNOB_BITS) | K(QS_KNOB_GROUP) | K(QS_KNOB_ASYM) | K(QS_KNOB_CLIP) | K(QS_KNOB_ALPHA) | K(QS_KNOB_DUO) |
             K(QS_KNOB_GGML),
    .needs_calib_rows = true,
    .joint_by_input = true,
    .ckpt = QS_CKPT_AWQ,
    .defaults = defaults,
    .describe = describe,
    .check = check,
    .bpw = bpw,
    .ggml_request = ggml_request,
    .run = run,
    .dequantize = dequantize,
    .code_at = qs_m_calib_code,
    .levels = levels,
    .group_scale = group_scale,
    .explain = explain,
    .to_grid = to_grid,
    .unfolded = unfolded,
};
