/* core/quant/method_impl.h — helpers the method files share (not for code outside core/quant/).
 *
 * Group grids, clip counting and the side-tensor layouts that more than one method uses: the
 * per-group grids of RTN/NF4/FP4/GGML (one scale per group_len consecutive weights), the
 * per-column groups of the calibrated methods (GPTQ, AWQ: scales and zeros [rows][groups per
 * row], the group of a column from g_idx or runs of group_len), and the GGML encoding AWQ
 * reuses for its GGML route. */
#ifndef QS_QUANT_METHOD_IMPL_H
#define QS_QUANT_METHOD_IMPL_H

#include "core/quant/quant.h"

/* a group's grid, unsorted (the group g of group_len consecutive weights) */
typedef int (*qs_m_group_levels_fn)(const qs_qresult *r, int64_t g, float *lv);

void qs_m_sort_levels(float *v, int n);
/* r->n_clipped: weights beyond their group's grid by more than half the end step (GGML results:
 * also each group's scale, the mean level spacing) */
void qs_m_count_clipped(qs_qresult *r, const float *w, int n_threads, qs_m_group_levels_fn levels);
/* the sorted grid and the scale of the flat group holding (row, col) */
int qs_m_flat_levels(const qs_qresult *r, int64_t row, int64_t col, float *lv, qs_m_group_levels_fn levels);
float qs_m_flat_scale(const qs_qresult *r, int64_t row, int64_t col);
/* "bits %d …", "group size … does not divide …" */
int qs_m_check_bits_group(const qs_qconfig *c, int64_t cols, const char *who, qs_err *err);

/* ---- the calibrated methods' per-column groups (GPTQ, AWQ) ---- */
int64_t qs_m_calib_group(const qs_qresult *r, int64_t row, int64_t col);
int qs_m_calib_levels(const qs_qresult *r, int64_t row, int64_t col, float *lv);
float qs_m_calib_scale(const qs_qresult *r, int64_t row, int64_t col);
void qs_m_calib_count_clipped(qs_qresult *r, const float *w);
void qs_m_calib_dequantize(const qs_qresult *r, float *out);
int qs_m_alloc_grouped(qs_qresult *r, int64_t ng_per_row, qs_err *err);
/* the calibration a method needs: H (hessian) or input rows, with the columns of the weights */
int qs_m_calib_check(const qs_qresult *r, const struct qs_calib *calib, bool hessian, qs_err *err);
int qs_m_calib_code(const qs_qresult *r, int64_t i);
/* the grids of GPTQ/AWQ group layouts: RTN shares the integer-grid GGML mapping */
int qs_m_grouped_to_grid(const qs_qresult *r, int64_t row0, int64_t nrows, struct qs_qgrid *g, qs_err *err);

/* ---- GGML blocks (the GGML methods, AWQ's GGML route) ---- */
/* quantizes w (rows × cols of r) with type (want: the type asked for, before fallback) */
int qs_m_ggml_encode(qs_qresult *r, const float *w, int type, int want, const float *imatrix, int n_threads, qs_err *err);
int qs_m_ggml_group_levels(const qs_qresult *r, int64_t g, float *lv);
void qs_m_ggml_decode(const qs_qresult *r, float *out);

/* ---- bitsandbytes 4-bit (NF4, FP4): the two differ in their 16-value table ---- */
int qs_m_bnb4_run(qs_qresult *r, const float *w, bool fp4, int n_threads, qs_err *err);
/* blocks of the flattened tensor; double quantization: one offset for the tensor (0) */
int64_t qs_m_bnb4_row_block(const qs_qconfig *c);
int qs_m_bnb4_check(const qs_qconfig *c, int64_t rows, int64_t cols, int *effective_type, qs_err *err);
double qs_m_bnb4_bpw(const qs_qconfig *c, int64_t rows, int64_t cols, int effective_type);
void qs_m_bnb4_describe(const qs_qconfig *c, char *buf, size_t n);
void qs_m_bnb4_dequantize(const qs_qresult *r, float *out);
int qs_m_bnb4_code_at(const qs_qresult *r, int64_t i);
int qs_m_bnb4_levels(const qs_qresult *r, int64_t row, int64_t col, float *lv);
int qs_m_bnb4_explain(const qs_qconfig *c, const qs_explain_in *ex, const char *table, qs_explain_line *o);

#endif
