/* core/quant/method_rtn.c — integer round-to-nearest (core/rtn.c) as a method. */
#include "core/quant/method_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/quant/ggml_types.h"
#include "core/quant/qgrid.h"
#include "core/quant/rtn.h"

#define K(k) (1u << (k))

static qs_rtn_params params(const qs_qconfig *c) { return (qs_rtn_params){c->bits, c->group, c->asym, c->clip}; }

static void describe(const qs_qconfig *c, char *buf, size_t n)
{
    char g[32];
    if (c->group < 0) snprintf(g, sizeof g, "per-tensor");
    else if (c->group == 0) snprintf(g, sizeof g, "per-row");
    else snprintf(g, sizeof g, "g%d", c->group);
    snprintf(buf, n, "rtn w%d %s %s%s", c->bits, g, c->asym ? "asym" : "sym", c->clip ? " clip" : "");
}

static int check(const qs_qconfig *c, int64_t rows, int64_t cols, int *effective_type, qs_err *err)
{
    (void)rows, (void)effective_type;
    return qs_m_check_bits_group(c, cols, "RTN", err);
}

static double bpw(const qs_qconfig *c, int64_t rows, int64_t cols, int effective_type)
{
    (void)effective_type;
    qs_rtn_params p = params(c);
    return qs_rtn_bpw(&p, rows, cols);
}

static int group_levels(const qs_qresult *r, int64_t g, float *lv)
{
    qs_rtn_params p = params(&r->cfg);
    return qs_rtn_levels(&p, r->scales[g], r->zeros ? r->zeros[g] : 0, lv);
}

static int run(qs_qresult *r, const float *w, const qs_quant_in *in, qs_err *err)
{
    qs_rtn_params p = params(&r->cfg);
    int64_t n = r->rows * r->cols;
    r->group_len = qs_rtn_group_len(&p, r->rows, r->cols);
    r->n_groups = n / r->group_len;
    r->nbytes = (size_t)n;
    r->data = malloc((size_t)n);
    r->scales = malloc((size_t)r->n_groups * sizeof *r->scales);
    r->zeros = p.asym ? malloc((size_t)r->n_groups * sizeof *r->zeros) : NULL;
    r->clip_ratio = p.clip ? malloc((size_t)r->n_groups * sizeof *r->clip_ratio) : NULL;
    if (!r->data || !r->scales || (p.asym && !r->zeros) || (p.clip && !r->clip_ratio))
        return qs_err_set(err, QS_E_OOM, "out of memory");
    int rc = qs_rtn_quantize(&p, w, r->rows, r->cols, r->data, r->scales, r->zeros, r->clip_ratio, r->deq,
                             in->n_threads, err);
    if (rc) return rc;
    r->bpw = qs_rtn_bpw(&p, r->rows, r->cols);
    if (p.clip) {
        double s = 0;
        for (int64_t g = 0; g < r->n_groups; g++) s += r->clip_ratio[g];
        snprintf(r->report, sizeof r->report, "mean clip ratio %.3f", s / (double)r->n_groups);
    }
    qs_m_count_clipped(r, w, in->n_threads, group_levels);
    return 0;
}

/* symmetric codes are int8, asymmetric uint8 */
static int code_at(const qs_qresult *r, int64_t i) { return r->cfg.asym ? r->data[i] : (int8_t)r->data[i]; }

static void dequantize(const qs_qresult *r, float *out)
{
    for (int64_t i = 0; i < r->rows * r->cols; i++) {
        int64_t g = i / r->group_len;
        out[i] = ((float)code_at(r, i) - (r->zeros ? r->zeros[g] : 0)) * r->scales[g];
    }
}

static int levels(const qs_qresult *r, int64_t row, int64_t col, float *lv)
{
    return qs_m_flat_levels(r, row, col, lv, group_levels);
}

static int explain(const qs_qconfig *c, const qs_explain_in *ex, qs_explain_line *o)
{
    if (!c->asym) {
        int qmax = (1 << (c->bits - 1)) - 1;
        o[0].style = QS_EXPLAIN_FORMULA, o[1].style = QS_EXPLAIN_EXAMPLE;
        snprintf(o[0].text, sizeof o[0].text,
                 "symmetric absmax, %d bits: s = max|w| / %d;  q = round(w / s) in [-%d, %d];  w' = q · s", c->bits, qmax,
                 qmax, qmax);
        snprintf(o[1].text, sizeof o[1].text, "group 0: max|w| = %.4g  →  s = %.6g  (1/s = %.4f)",
                 fmax(fabs(ex->min), fabs(ex->max)), ex->scale, ex->scale > 0 ? 1 / ex->scale : 0);
        return 2;
    }
    int maxq = (1 << c->bits) - 1;
    o[0].style = o[1].style = QS_EXPLAIN_FORMULA, o[2].style = QS_EXPLAIN_EXAMPLE;
    snprintf(o[0].text, sizeof o[0].text, "asymmetric min-max, %d bits: s = (max - min) / %d;  z = round(-min / s);", c->bits,
             maxq);
    snprintf(o[1].text, sizeof o[1].text, "q = clamp(round(w / s) + z, 0, %d);  w' = (q - z) · s   (the range includes 0)",
             maxq);
    snprintf(o[2].text, sizeof o[2].text, "group 0: min %.4g  max %.4g  →  s = %.6g, z = %.0f", ex->min, ex->max, ex->scale,
             ex->zero);
    return 3;
}

/* one scale per G consecutive weights of the flattened tensor (G = cols: per row, G = rows·cols:
 * one for the tensor); signed codes when symmetric */
static int to_grid(const qs_qresult *r, int64_t row0, int64_t nrows, qs_qgrid *g, qs_err *err)
{
    int64_t cols = r->cols, G = r->group_len, ng = G >= cols ? 1 : cols / G;
    if (qs_qgrid_alloc(g, nrows, cols, ng, false, err)) return -QS_E_OOM;
    g->group = G >= cols ? cols : G;
    int half = 1 << (r->cfg.bits - 1);
    for (int64_t c = 0; c < cols; c++) g->g_idx[c] = (int32_t)(c / g->group);
    for (int64_t i = 0; i < nrows; i++) {
        int64_t row = row0 + i;
        for (int64_t k = 0; k < ng; k++) {
            int64_t src = (row * cols + k * g->group) / G;
            g->scales[i * ng + k] = r->scales[src];
            g->zeros[i * ng + k] = r->zeros ? r->zeros[src] : (float)half;
        }
        const uint8_t *in = r->data + row * cols;
        for (int64_t c = 0; c < cols; c++)
            g->codes[i * cols + c] = r->zeros ? in[c] : (uint8_t)((int8_t)in[c] + half);
    }
    return 0;
}

/* groups never straddle rows; a per-tensor scale needs the whole tensor */
static int64_t row_block(const qs_qconfig *c) { return c->group >= 0 ? 1 : 0; }

const qs_method_ops qs_rtn_ops = {
    .row_block = row_block,
    .knobs = K(QS_KNOB_BITS) | K(QS_KNOB_GROUP) | K(QS_KNOB_ASYM) | K(QS_KNOB_CLIP),
    .ckpt = QS_CKPT_GPTQ,
    .describe = describe,
    .check = check,
    .bpw = bpw,
    .run = run,
    .dequantize = dequantize,
    .code_at = code_at,
    .levels = levels,
    .group_scale = qs_m_flat_scale,
    .explain = explain,
    .to_grid = to_grid,
};
