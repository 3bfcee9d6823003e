/* core/quant/method_ggml.c — llama.cpp's types (core/ggml_quants.c): one ops for every GGML type
 * in the method list, the type in qs_method.ggml_type. */
#include "core/quant/method_impl.h"

#include <stdio.h>

#include "core/quant/ggml_types.h"

static bool uses_imatrix(const qs_method *m)
{
    return m->ggml_type != QS_TYPE_F16 && m->ggml_type != QS_TYPE_BF16 && m->ggml_type != QS_TYPE_Q8_0;
}

static void describe(const qs_qconfig *c, char *buf, size_t n) { snprintf(buf, n, "%s", c->method->name); }

static int check(const qs_qconfig *c, int64_t rows, int64_t cols, int *effective_type, qs_err *err)
{
    (void)rows;
    *effective_type = qs_ggml_fallback_type(c->method->ggml_type, cols);
    if (*effective_type < 0)
        return qs_err_set(err, QS_E_USAGE, "%lld columns are not a multiple of the %s block size %d and "
                          "llama-quantize defines no fallback for %s", (long long)cols, c->method->name,
                          qs_type_get(c->method->ggml_type)->block_size, c->method->name);
    return 0;
}

static double bpw(const qs_qconfig *c, int64_t rows, int64_t cols, int effective_type)
{
    (void)rows, (void)cols;
    return qs_type_bpw(effective_type >= 0 ? effective_type : c->method->ggml_type);
}

static int ggml_request(const qs_qconfig *c) { return c->method->ggml_type; }

static int run(qs_qresult *r, const float *w, const qs_quant_in *in, qs_err *err)
{
    int rc = qs_m_ggml_encode(r, w, in->effective_type, r->cfg.method->ggml_type, in->imatrix, in->n_threads, err);
    if (!rc) qs_m_count_clipped(r, w, in->n_threads, qs_m_ggml_group_levels);
    return rc;
}

static int levels(const qs_qresult *r, int64_t row, int64_t col, float *lv)
{
    return qs_m_flat_levels(r, row, col, lv, qs_m_ggml_group_levels);
}

static int explain(const qs_qconfig *c, const qs_explain_in *ex, qs_explain_line *o)
{
    int n = 0;
    o[n].style = QS_EXPLAIN_FORMULA;
    snprintf(o[n++].text, sizeof o->text, "%s: %s", c->method->name, c->method->desc);
    o[n].style = QS_EXPLAIN_EXAMPLE;
    snprintf(o[n++].text, sizeof o->text,
             "llama.cpp's quantizer, byte-identical; sub-block 0 of block 0: step %.6g, grid of %d levels", ex->scale,
             ex->n_levels);
    if (ex->ggml_type >= 0 && ex->ggml_type != c->method->ggml_type) {
        o[n].style = QS_EXPLAIN_WARN;
        snprintf(o[n++].text, sizeof o->text, "this tensor falls back to %s (row length %lld)", qs_type_name(ex->ggml_type),
                 (long long)ex->cols);
    }
    return n;
}

static int64_t row_block(const qs_qconfig *c)
{
    (void)c;
    return 1; /* blocks never straddle rows */
}

const qs_method_ops qs_ggml_ops = {
    .row_block = row_block,
    .ggml_native = true,
    .ckpt = QS_CKPT_NONE,
    .uses_imatrix = uses_imatrix,
    .describe = describe,
    .check = check,
    .bpw = bpw,
    .ggml_request = ggml_request,
    .run = run,
    .dequantize = qs_m_ggml_decode,
    .levels = levels,
    .group_scale = qs_m_flat_scale,
    .explain = explain,
};
