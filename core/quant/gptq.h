/* core/quant/gptq.h — GPTQ (spec/gptq.md §3–§6): the IST-DASLab fasterquant algorithm.
 *
 * Input: W[rows][cols] (rows = outputs, cols = inputs) and the Hessian H[cols][cols]
 * (2/N_seq · Σ x xᵀ). Dead columns (H[k][k] = 0) are zeroed, H is damped by damp·mean(diag H),
 * the upper Cholesky factor of H⁻¹ is formed (factorisation and inverse in double, LAPACK), then
 * columns are quantized in order (act-order: by descending diag H) in lazy blocks with error
 * feedback, all in binary32. The quantizer is GPTQ's own (§3): the range always contains 0,
 * symmetric grids are 0…maxq around the fixed zero (maxq+1)/2. Output: codes (0…maxq), the
 * dequantized weights, per-row group scales and zeros in the order they were recorded (the
 * checkpoint order), g_idx (the group of each input column), and the loss Σ ½(w−q)²/d². */
#ifndef QS_GPTQ_H
#define QS_GPTQ_H

#include <stdbool.h>
#include <stdint.h>

#include "core/util/err.h"
#include "core/util/progress.h"

typedef struct qs_gptq_params {
    int bits;            /* 2…8 */
    int group;           /* <= 0: one group per row, else G (need not divide cols) */
    bool sym, act_order, static_groups;
    float damp;          /* percdamp: a fraction of mean(diag H), 0 < damp < 1 */
    int blocksize;       /* lazy-update block (128) */
} qs_gptq_params;

typedef struct qs_gptq_out {
    uint8_t *codes;      /* [rows][cols] */
    float *deq;          /* [rows][cols] */
    float *scales, *zeros; /* [rows][n_groups] */
    int32_t *g_idx;      /* [cols] */
    double loss;
} qs_gptq_out;

void qs_gptq_default(qs_gptq_params *p);
/* ⌈cols / G⌉ (1 for per-row) */
int64_t qs_gptq_n_groups(const qs_gptq_params *p, int64_t cols);
/* GPTQ's quantizer parameters (§3) for the n values x[0], x[stride], … */
void qs_gptq_find_params(int bits, bool sym, const float *x, int64_t n, int64_t stride, float *scale, float *zero);
/* The caller allocates every array of out (sizes above). */
int qs_gptq_quantize(const qs_gptq_params *p, const float *w, int64_t rows, int64_t cols, const float *H,
                     qs_gptq_out *out, qs_progress *prog, qs_err *err);

/* q = clamp(round(x/scale) + zero, 0, maxq) (half to even, division); returns scale·(q − zero) */
static inline float qs_gptq_quantize_value(float x, float scale, float zero, int maxq, int *code)
{
    float q = __builtin_rintf(x / scale) + zero;
    q = q < 0 ? 0 : q > (float)maxq ? (float)maxq : q;
    *code = (int)q;
    return scale * (q - zero);
}

#endif
