/* core/data/imatrix.h — importance matrices as llama-quantize reads them (spec/imatrix.md §2–§4).
 *
 * GGUF imatrix files (pairs `W.in_sum2` / `W.counts`) and legacy `.dat` files load into one
 * entry per weight name holding the per-column mean squared activation
 * (in_sum2 / count in binary32, count rounded to an integer; 1.0 where the count is 0).
 * Validation: paired F32 tensors, finite values, sizes consistent. */
#ifndef QS_IMATRIX_H
#define QS_IMATRIX_H

#include <stdint.h>

#include "core/util/err.h"

typedef struct qs_imatrix_entry {
    char *name;        /* the weight's name, e.g. "blk.0.attn_q.weight" */
    int64_t n;         /* n_in · n_mat values */
    int64_t n_mat;     /* 1 for dense weights, n_expert for merged experts */
    float *values;
} qs_imatrix_entry;

typedef struct qs_imatrix {
    qs_imatrix_entry *entries;
    int n_entries;
    uint32_t chunk_count, chunk_size;
    char dataset[256];
} qs_imatrix;

qs_imatrix *qs_imatrix_load(const char *path, qs_err *err);
void qs_imatrix_free(qs_imatrix *im);
/* The entry for a weight name, or NULL. */
const qs_imatrix_entry *qs_imatrix_find(const qs_imatrix *im, const char *name);

#endif
