/* core/quant/qgrid.h — a tensor quantized on an integer grid (RTN, GPTQ, AWQ) in one form:
 * codes u[rows][cols] (0 … 2^bits − 1), per row and group a scale and a zero point,
 * w = scale · (u − zero); the group of column c is g_idx[c]. AWQ's grid holds W·s (its channel
 * scales s, col_scale), which an export folds into the operation before it.
 *
 * What is done with it: re-encoded as GGML blocks when the grid is one (4-bit groups of 32 in
 * column order → Q4_0 with zero 8 everywhere, else Q4_1; 8-bit, zero 128 → Q8_0; the scales
 * rounded to f16 as those blocks store them), rows divided by a factor (AWQ folding into a
 * previous linear) or put in another order (HF q/k rows), packed into GPTQ/AWQ checkpoints
 * (core/qpack.h). */
#ifndef QS_QGRID_H
#define QS_QGRID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util/err.h"
#include "core/quant/quant.h"

typedef struct qs_qgrid {
    qs_qconfig cfg;
    int64_t rows, cols;
    int64_t group;           /* columns per group (cols: one group per row) */
    int64_t n_groups;        /* per row */
    uint8_t *codes;          /* [rows][cols] */
    float *scales, *zeros;   /* [rows][n_groups] */
    int32_t *g_idx;          /* [cols] */
    float *col_scale;        /* [cols] AWQ's s; NULL for the other methods */
    /* AWQ followed by a GGML type (awq:ggml=TYPE): W·s already in that type's blocks (codes NULL) */
    int ggml_type;
    uint8_t *ggml;
} qs_qgrid;

/* holds a result (a grid, or AWQ's GGML blocks) */
static inline bool qs_qgrid_has(const qs_qgrid *g) { return g->codes || g->ggml; }

/* Rows [row0, row0 + nrows) of an RTN (group size > 0 or per row), GPTQ or AWQ result (AWQ with
 * a GGML type: its blocks). */
int qs_qgrid_from_result(const qs_qresult *r, int64_t row0, int64_t nrows, qs_qgrid *g, qs_err *err);
void qs_qgrid_free(qs_qgrid *g);
/* the arrays of a grid of rows × cols in ng groups a row (col_scale: with AWQ's channel scales);
 * for the methods' to_grid ops */
int qs_qgrid_alloc(qs_qgrid *g, int64_t rows, int64_t cols, int64_t ng, bool col_scale, qs_err *err);

/* The GGML type a config's grid is, or -1 with *why naming the nearest exportable config
 * (method and knobs as qs_config_parse reads them) and what stands in the way. */
int qs_qconfig_ggml_type(const qs_qconfig *c, char *why, size_t n);
/* The GGML type of this grid (as qs_qconfig_ggml_type, and its zero points as the type needs; AWQ
 * with a GGML type: that type). */
int qs_qgrid_ggml_type(const qs_qgrid *g);
/* GGML blocks of every row (qs_type_row_bytes(type, cols) each); the type from qs_qgrid_ggml_type
 * (AWQ's own blocks are copied). */
void qs_qgrid_encode_ggml(const qs_qgrid *g, int type, void *out);
/* scales of row r divided by div[r] (the row's weights divided, the codes kept) */
void qs_qgrid_divide_rows(qs_qgrid *g, const float *div);
/* row r of the result is row src[r] of g (codes, scales, zeros) */
int qs_qgrid_reorder_rows(qs_qgrid *g, const int64_t *src, qs_err *err);

#endif
