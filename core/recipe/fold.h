/* core/recipe/fold.h — folding AWQ's channel scales into a model on export (spec/awq.md §3).
 *
 * An AWQ grid holds W·s; the model stays the same function when the operation before it is
 * divided by s: the norm before attn_q/k/v, ffn_gate/up or output (and every other reader of
 * that norm multiplied by s, unless it was searched jointly with the same s), or the rows of
 * attn_v / ffn_up before attn_output / ffn_down. The plan says, per recipe entry, which columns
 * are multiplied and which rows divided; readers that are themselves grids with other scales,
 * and scales with nothing to fold into, are errors. All-ones scales (GQA's attn_output, a tied
 * output) need no folding. */
#ifndef QS_FOLD_H
#define QS_FOLD_H

#include <stdint.h>

#include "core/util/err.h"
#include "core/quant/qgrid.h"
#include "core/recipe/recipe.h"

typedef struct qs_fold {
    float *col_mul;   /* [cols] or NULL: column c multiplied by col_mul[c] */
    float *row_div;   /* [rows] or NULL: row r divided by row_div[r] */
} qs_fold;

/* folds[t->n] zeroed; grids[t->n] as qs_export_opts.grids (NULL: nothing to fold) */
int qs_fold_plan(const qs_recipe_table *t, const qs_qgrid *grids, qs_fold *folds, qs_err *err);
void qs_fold_apply(const qs_fold *f, float *x, int64_t rows, int64_t cols);
void qs_fold_free(qs_fold *folds, int64_t n);

#endif
