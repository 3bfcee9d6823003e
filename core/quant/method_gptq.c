/* core/quant/method_gptq.c — GPTQ (core/gptq.c): columns quantized in order, the error fed back
 * through the inverse Hessian of the layer's inputs. */
#include "core/quant/method_impl.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/quant/gptq.h"
#include "core/quant/qgrid.h"

#define K(k) (1u << (k))

static void describe(const qs_qconfig *c, char *buf, size_t n)
{
    char g[32];
    if (c->group <= 0) snprintf(g, sizeof g, "per-row");
    else snprintf(g, sizeof g, "g%d", c->group);
    snprintf(buf, n, "gptq w%d %s %s damp %g%s%s", c->bits, g, c->asym ? "asym" : "sym", c->damp * 0.001,
             c->act_order ? " act-order" : "", c->static_groups ? " static" : "");
}

static int check(const qs_qconfig *c, int64_t rows, int64_t cols, int *effective_type, qs_err *err)
{
    (void)rows, (void)effective_type;
    if (c->bits < 2 || c->bits > 8) return qs_err_set(err, QS_E_USAGE, "bits %d: %s takes 2 to 8", c->bits, c->method->name);
    if (c->group < 0) return qs_err_set(err, QS_E_USAGE, "%s has no per-tensor grid: use group=row or a group size", c->method->name);
    return qs_m_check_bits_group(c, cols, c->method->name, err);
}

/* the checkpoint layout: f16 scales, packed zeros and GPTQ's g_idx */
static double bpw(const qs_qconfig *c, int64_t rows, int64_t cols, int effective_type)
{
    (void)effective_type;
    double G = c->group > 0 ? c->group : (double)cols;
    return c->bits + (16.0 + c->bits) / G + 32.0 / (double)rows;
}

static int run(qs_qresult *r, const float *w, const qs_quant_in *in, qs_err *err)
{
    int rc = qs_m_calib_check(r, in->calib, true, err);
    if (rc) return rc;
    const qs_qconfig *c = &r->cfg;
    qs_gptq_params p = {c->bits, c->group, !c->asym, c->act_order, c->static_groups, (float)(c->damp * 0.001), 128};
    if ((rc = qs_m_alloc_grouped(r, qs_gptq_n_groups(&p, r->cols), err))) return rc;
    if (!(r->g_idx = malloc((size_t)r->cols * sizeof *r->g_idx))) return qs_err_set(err, QS_E_OOM, "out of memory");
    qs_gptq_out o = {r->data, r->deq, r->scales, r->zeros, r->g_idx, 0};
    if ((rc = qs_gptq_quantize(&p, w, r->rows, r->cols, in->calib->H, &o, in->prog, err))) return rc;
    r->group_len = p.group > 0 ? p.group : r->cols;
    r->loss = o.loss;
    r->bpw = bpw(c, r->rows, r->cols, -1);
    snprintf(r->report, sizeof r->report, "GPTQ loss %.6g (sum of (w-q)^2/2d^2 over the layer)", o.loss);
    qs_m_calib_count_clipped(r, w);
    return 0;
}

static int explain(const qs_qconfig *c, const qs_explain_in *ex, qs_explain_line *o)
{
    o[0].style = o[1].style = QS_EXPLAIN_FORMULA, o[2].style = QS_EXPLAIN_EXAMPLE;
    snprintf(o[0].text, sizeof o->text,
             "GPTQ, %d bits: columns in order%s; q = clamp(round(w/s) + z, 0, %d) with the group's s, z;", c->bits,
             c->act_order ? " of descending diag(H)" : "", (1 << c->bits) - 1);
    snprintf(o[1].text, sizeof o->text, "the error (w - q)/d, d = U[k][k] of chol(H^-1), is subtracted from the later columns: "
             "W[:, k:] -= err * U[k, k:]");
    snprintf(o[2].text, sizeof o->text, "group 0 (row 0): step s = %.6g, zero z = %.0f; damp %g of mean diag(H)", ex->scale,
             ex->zero, c->damp * 0.001);
    return 3;
}

static bool desc_act(const qs_qconfig *c) { return c->act_order; }

const qs_method_ops qs_gptq_ops = {
    .knobs = K(QS_KNOB_BITS) | K(QS_KNOB_GROUP) | K(QS_KNOB_ASYM) | K(QS_KNOB_DAMP) | K(QS_KNOB_ACT_ORDER) |
             K(QS_KNOB_STATIC_GROUPS),
    .needs_hessian = true,
    .ckpt = QS_CKPT_GPTQ,
    .describe = describe,
    .check = check,
    .bpw = bpw,
    .run = run,
    .dequantize = qs_m_calib_dequantize,
    .code_at = qs_m_calib_code,
    .levels = qs_m_calib_levels,
    .group_scale = qs_m_calib_scale,
    .explain = explain,
    .to_grid = qs_m_grouped_to_grid,
    .desc_act = desc_act,
};
