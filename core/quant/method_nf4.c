/* core/quant/method_nf4.c — bitsandbytes NormalFloat4: 16 normal quantiles × blockwise absmax (core/bnb4.c). */
#include "core/quant/method_impl.h"

#define K(k) (1u << (k))

static int run(qs_qresult *r, const float *w, const qs_quant_in *in, qs_err *err)
{
    return qs_m_bnb4_run(r, w, false, in->n_threads, err);
}

static int explain(const qs_qconfig *c, const qs_explain_in *ex, qs_explain_line *o)
{
    return qs_m_bnb4_explain(c, ex, "normal-quantile", o);
}

const qs_method_ops qs_nf4_ops = {
    .row_block = qs_m_bnb4_row_block,
    .knobs = K(QS_KNOB_BLOCK) | K(QS_KNOB_DOUBLE_QUANT),
    .ckpt = QS_CKPT_NONE,
    .gguf_near = "iq4_nl",
    .describe = qs_m_bnb4_describe,
    .check = qs_m_bnb4_check,
    .bpw = qs_m_bnb4_bpw,
    .run = run,
    .dequantize = qs_m_bnb4_dequantize,
    .code_at = qs_m_bnb4_code_at,
    .levels = qs_m_bnb4_levels,
    .group_scale = qs_m_flat_scale,
    .explain = explain,
};
