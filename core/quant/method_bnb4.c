/* core/quant/method_bnb4.c — what NF4 and FP4 share (core/bnb4.c): blocks of absmax × a 16-value table. */
#include "core/quant/method_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int group_levels(const qs_qresult *r, int64_t g, float *lv)
{
    const float *t = r->bnb.fp4 ? qs_bnb4_fp4_table : qs_bnb4_nf4_table;
    float am = qs_bnb4_block_absmax(&r->bnb, g);
    int n;
    for (n = 0; n < 16; n++) lv[n] = t[n] * am;
    return n;
}

int qs_m_bnb4_run(qs_qresult *r, const float *w, bool fp4, int n_threads, qs_err *err)
{
    int rc = qs_bnb4_quantize(w, r->rows * r->cols, r->cfg.block, fp4, r->cfg.double_quant, &r->bnb, err);
    if (rc) return rc;
    qs_bnb4_dequantize(&r->bnb, r->deq);
    r->nbytes = (size_t)((r->rows * r->cols + 1) / 2);
    r->data = malloc(r->nbytes);
    r->scales = malloc((size_t)r->bnb.n_blocks * sizeof *r->scales);
    if (!r->data || !r->scales) return qs_err_set(err, QS_E_OOM, "out of memory");
    memcpy(r->data, r->bnb.packed, r->nbytes);
    for (int64_t b = 0; b < r->bnb.n_blocks; b++) r->scales[b] = qs_bnb4_block_absmax(&r->bnb, b);
    r->group_len = r->cfg.block;
    r->n_groups = r->bnb.n_blocks;
    r->bpw = qs_bnb4_bpw(r->cfg.block, r->cfg.double_quant);
    if (r->cfg.double_quant) snprintf(r->report, sizeof r->report, "absmax offset %.6g", (double)r->bnb.offset);
    qs_m_count_clipped(r, w, n_threads, group_levels);
    return 0;
}

int64_t qs_m_bnb4_row_block(const qs_qconfig *c) { return c->double_quant ? 0 : c->block; }

int qs_m_bnb4_check(const qs_qconfig *c, int64_t rows, int64_t cols, int *effective_type, qs_err *err)
{
    (void)rows, (void)cols, (void)effective_type;
    if (c->block < 32 || c->block > 4096 || (c->block & (c->block - 1)))
        return qs_err_set(err, QS_E_USAGE, "block size %d: a power of two from 32 to 4096", c->block);
    return 0;
}

double qs_m_bnb4_bpw(const qs_qconfig *c, int64_t rows, int64_t cols, int effective_type)
{
    (void)rows, (void)cols, (void)effective_type;
    return qs_bnb4_bpw(c->block, c->double_quant);
}

void qs_m_bnb4_describe(const qs_qconfig *c, char *buf, size_t n)
{
    snprintf(buf, n, "%s b%d%s", c->method->name, c->block, c->double_quant ? " dq" : "");
}

void qs_m_bnb4_dequantize(const qs_qresult *r, float *out) { qs_bnb4_dequantize(&r->bnb, out); }

/* two codes a byte, the first in the high nibble */
int qs_m_bnb4_code_at(const qs_qresult *r, int64_t i) { return i % 2 ? r->data[i / 2] & 15 : r->data[i / 2] >> 4; }

int qs_m_bnb4_levels(const qs_qresult *r, int64_t row, int64_t col, float *lv)
{
    return qs_m_flat_levels(r, row, col, lv, group_levels);
}

int qs_m_bnb4_explain(const qs_qconfig *c, const qs_explain_in *ex, const char *table, qs_explain_line *o)
{
    o[0].style = o[1].style = QS_EXPLAIN_FORMULA, o[2].style = QS_EXPLAIN_EXAMPLE;
    snprintf(o[0].text, sizeof o[0].text, "%s: blocks of %d; absmax = max|w|; code = nearest of 16 %s values to w / absmax;",
             c->method->name, c->block, table);
    snprintf(o[1].text, sizeof o[1].text, "w' = table[code] · absmax%s",
             c->double_quant ? "  (absmax itself stored in 8 bits)" : "");
    snprintf(o[2].text, sizeof o[2].text, "block 0: absmax = %.6g", ex->scale);
    return 3;
}
