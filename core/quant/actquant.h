/* core/quant/actquant.h — fake quantization of activations (the engine's simulated integer
 * inputs of the linear products; core/recipe/actq.h calibrates and applies it): values rounded to
 * a symmetric grid of codes in [−qmax, qmax], qmax = 2^(B−1) − 1, round half to even, and back. */
#ifndef QS_ACTQUANT_H
#define QS_ACTQUANT_H

#include <stdint.h>

static inline int qs_act_qmax(int bits) { return (1 << (bits - 1)) - 1; }

/* x[T][cols] fake-quantized in place: a scale per token (scale == NULL, n_scale 0: max|x_t|/qmax),
 * one scale for all (n_scale 1) or one per column (n_scale cols); a zero scale leaves its values at 0. */
void qs_act_fake_quant(float *x, int64_t T, int64_t cols, int bits, const float *scale, int64_t n_scale);

#endif
