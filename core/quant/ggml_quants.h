/* core/quant/ggml_quants.h — llama.cpp's quantizers for the GGML block types, byte-exact
 * (spec/ggml-types.md §4–§8, compiled with -ffp-contract=off).
 *
 * Each qs_<type>_quantize_row encodes n floats (a multiple of the block size) of one tensor
 * row. qw is that row's importance vector (n floats) or NULL: with NULL the `_ref` algorithm
 * runs, with a vector the `_impl` one, exactly as llama-quantize chooses (Q8_0 ignores qw;
 * IQ4_NL/IQ4_XS always use the ntry = 7 search). qs_ggml_quantize does whole tensors,
 * spreading rows over threads (the output does not depend on the thread count) and
 * validating every stored f16 scale as llama-quantize does. */
#ifndef QS_GGML_QUANTS_H
#define QS_GGML_QUANTS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/util/err.h"

void qs_q4_0_quantize_row(const float *x, void *y, int64_t n, const float *qw);
void qs_q4_1_quantize_row(const float *x, void *y, int64_t n, const float *qw);
void qs_q5_0_quantize_row(const float *x, void *y, int64_t n, const float *qw);
void qs_q5_1_quantize_row(const float *x, void *y, int64_t n, const float *qw);
void qs_q8_0_quantize_row(const float *x, void *y, int64_t n, const float *qw);
void qs_q2k_quantize_row(const float *x, void *y, int64_t n, const float *qw);
void qs_q3k_quantize_row(const float *x, void *y, int64_t n, const float *qw);
void qs_q4k_quantize_row(const float *x, void *y, int64_t n, const float *qw);
void qs_q5k_quantize_row(const float *x, void *y, int64_t n, const float *qw);
void qs_q6k_quantize_row(const float *x, void *y, int64_t n, const float *qw);
void qs_q8k_quantize_row(const float *x, void *y, int64_t n, const float *qw);
void qs_iq4nl_quantize_row(const float *x, void *y, int64_t n, const float *qw);
void qs_iq4xs_quantize_row(const float *x, void *y, int64_t n, const float *qw);
/* The ntry = -1 IQ4_NL variant of test-quantize-fns (spec §11.1); never used for export. */
void qs_iq4nl_quantize_row_single_pass(const float *x, void *y, int64_t n);

/* True for the types qs_ggml_quantize can produce (F32, F16, BF16 and the list above). */
bool qs_ggml_can_quantize(int type);

/* Quantizes nrows × n_per_row floats into dst (nrows · row bytes). imatrix: n_per_row floats
 * used for every row, or NULL. n_threads <= 0: all cores. Fails on a shape the type cannot
 * hold or on a non-finite stored scale (naming row and block). */
int qs_ggml_quantize(int type, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                     const float *imatrix, int n_threads, qs_err *err);

/* The same without the checks (finite input, finite stored scales): ggml_quantize_chunk's
 * behaviour, for reference comparisons. */
void qs_ggml_quantize_rows_raw(int type, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                               const float *imatrix, int n_threads);

/* ggml's nearest_int: round half to even for |v| <= 4194303 (spec §3.3). */
static inline int qs_nearest_int(float v)
{
    float t = v + 12582912.f;
    int32_t i;
    __builtin_memcpy(&i, &t, 4);
    return (i & 0x007fffff) - 0x00400000;
}

#endif
