/* core/quant/qdot_impl.h — internal to core/qdot.c and core/qdot_kernels.inc: one table of kernels per
 * instruction set. The same source (qdot_kernels.inc) is compiled once per ISA with different
 * flags (Makefile); qdot.c picks a table at run time. */
#ifndef QS_QDOT_IMPL_H
#define QS_QDOT_IMPL_H

#include <stdint.h>

#include "core/quant/ggml_types.h"

typedef float (*qs_qdot_vec_fn)(int64_t n, const void *w, const void *a);
typedef void (*qs_qdot_rows_fn)(int64_t n, const void *w, size_t row_bytes, int64_t nrows, const void *a, float *y);
typedef void (*qs_qdot_deq_fn)(const void *src, float *dst, int64_t n);

typedef void (*qs_qdot_round_fn)(const float *x, float *y, int64_t n);

typedef struct qs_qdot_kernels {
    qs_qdot_round_fn round_f16; /* y = f16(x) widened again, as qs_f32_to_f16 rounds */
    qs_qdot_vec_fn vec[QS_TYPE_COUNT];
    qs_qdot_rows_fn rows[QS_TYPE_COUNT];
    qs_qdot_deq_fn deq[QS_TYPE_COUNT];
} qs_qdot_kernels;

extern const qs_qdot_kernels qs_qdot_kernels_generic;
extern const qs_qdot_kernels qs_qdot_kernels_avx2;
extern const qs_qdot_kernels qs_qdot_kernels_avx512;

#endif
