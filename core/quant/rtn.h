/* core/quant/rtn.h — integer round-to-nearest quantization, bits 2–8.
 *
 * Symmetric absmax: s = max|w| / (2^(b−1) − 1), q = clamp(round(w/s), ±(2^(b−1) − 1)), w' = q·s.
 * Asymmetric min–max: the range is widened to include 0 (so the zero point is a storable
 * integer), s = (max − min)/(2^b − 1), z = round(−min/s), q = clamp(round(w/s) + z, 0, 2^b − 1),
 * w' = (q − z)·s. round() is half-to-even. Scales are kept in float32 (the docs' int8 example:
 * max 0.932 → 1/s = 127/0.932 = 136.2472, 0.5415 → 74 → 0.5431). Granularity: one scale per
 * tensor (group −1), per row (0) or per group of G consecutive weights of a row (G | cols).
 * Clip search: the range shrinks by factors 1, 0.975, …, 0.525 and each group keeps the
 * factor with the lowest squared weight error. */
#ifndef QS_RTN_H
#define QS_RTN_H

#include <stdbool.h>
#include <stdint.h>

#include "core/util/err.h"

typedef struct qs_rtn_params {
    int bits;
    int group;      /* -1 tensor, 0 row, else group size */
    bool asym;
    bool clip;
} qs_rtn_params;

#define QS_RTN_CLIP_STEPS 20

/* codes: rows·cols bytes (int8 for symmetric, uint8 for asymmetric); scales/zeros: one per
 * group (zeros only when asym, may be NULL otherwise); clip_ratio: one per group or NULL. */
int qs_rtn_quantize(const qs_rtn_params *p, const float *w, int64_t rows, int64_t cols, uint8_t *codes,
                    float *scales, float *zeros, float *clip_ratio, float *deq, int n_threads, qs_err *err);
int64_t qs_rtn_group_len(const qs_rtn_params *p, int64_t rows, int64_t cols);
double qs_rtn_bpw(const qs_rtn_params *p, int64_t rows, int64_t cols);

/* Grid of one group: levels[0 … 2^b−1] (ascending); returns the count. */
int qs_rtn_levels(const qs_rtn_params *p, float scale, float zero, float *levels);

#endif
