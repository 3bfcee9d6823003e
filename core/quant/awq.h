/* core/quant/awq.h — AWQ for one linear layer (spec/awq.md §2, §4, §5).
 *
 * W[rows][cols] (rows = outputs), cached inputs X[n][cols]. Per input channel the mean |x|
 * (x_mean; duo scaling also w_mean), scales s = x_mean^α (or x_mean^α / (w_mean^(1−α) + 1e-4)),
 * clamped at 1e-4 and normalised by sqrt(max·min). The search tries α = 0, 0.05, …, 0.95 and
 * keeps the first strict minimum of the output MSE of X·(Q(W·s)/s)ᵀ against X·Wᵀ (the
 * "linear-only" loss: exact for o_proj/down_proj, an approximation for the q/k/v and gate/up
 * groups whose true loss is measured after attention / the MLP). The clip search then bounds each
 * (row, group) of W·s at the shrink (1, 0.95 … 0.55 of its max |w|) with the lowest output MSE on
 * ≤ 512 of the cached tokens (X/s). The quantizer is AWQ's own (§5): per group min–max with a
 * clamped zero point, or absmax without one. */
#ifndef QS_AWQ_H
#define QS_AWQ_H

#include <stdbool.h>
#include <stdint.h>

#include "core/util/err.h"
#include "core/util/progress.h"

#define QS_AWQ_GRID 20

typedef struct qs_awq_params {
    int bits;            /* 2…8 */
    int group;           /* G dividing cols; <= 0: one group per row */
    bool zero_point;     /* true: min–max with zero (AWQ's default) */
    bool duo;            /* AutoAWQ duo scaling (needs w_mean) */
    int alpha;           /* < 0: search the grid; else α = alpha/20 fixed */
    bool clip;           /* run the clip search */
} qs_awq_params;

typedef struct qs_awq_out {
    float *deq;          /* [rows][cols] Q(clip(W·s))/s, in the original weight space */
    uint8_t *codes;      /* [rows][cols] codes of the scaled, clipped weight (0…2^b−1; offset by 2^(b−1) without zero) */
    float *gscales, *gzeros; /* [rows][n_groups] quantizer scale and zero of W·s */
    float *s;            /* [cols] the channel scales (folded into the previous op on export) */
    float *clip_max;     /* [rows][n_groups] (NULL: not wanted) */
    float loss_history[QS_AWQ_GRID];
    float best_ratio;
} qs_awq_out;

void qs_awq_default(qs_awq_params *p);
/* mean over n rows of |X[t][c]| (double sums, rounded once) */
void qs_awq_x_mean(const float *X, int64_t n, int64_t cols, float *out);
/* duo scaling: |w| / (max|w| of its group + 1e-6), averaged over the rows */
void qs_awq_w_mean(const float *W, int64_t rows, int64_t cols, int64_t G, float *out);
/* the normalised scales for one grid point (ratio = r/20) */
void qs_awq_scales(const float *x_mean, const float *w_mean, int64_t cols, int r, float *s);
/* AWQ's pseudo-quantizer on each group of G values of every row (codes, gscales, gzeros may be NULL) */
void qs_awq_pseudo_quantize(const qs_awq_params *p, const float *w, int64_t rows, int64_t cols, float *out,
                            uint8_t *codes, float *gscales, float *gzeros);
/* the clip search on Ws = W·s with input Xs = X/s: best_max [rows][n_groups] */
int qs_awq_clip_search(const qs_awq_params *p, const float *Ws, int64_t rows, int64_t cols, const float *Xs, int64_t n,
                       float *best_max, qs_err *err);
/* The whole single-linear procedure. x_mean may be NULL (computed from X). When fixed_s is not
 * NULL the search is skipped and those scales are used. The caller allocates out's arrays. */
int qs_awq_quantize(const qs_awq_params *p, const float *w, int64_t rows, int64_t cols, const float *X, int64_t n,
                    const float *x_mean, const float *fixed_s, qs_awq_out *out, qs_progress *prog, qs_err *err);

/* Folds channel scales s[cols] into a mapping so the full-precision function is unchanged
 * (spec/awq.md §3): the previous op's output channel c is divided by s[c] — an RMSNorm weight
 * (prev_rows = 1) or the last cols output rows of a linear prev[prev_rows][prev_cols] — and
 * column c of every linear fed by it is multiplied by s[c] (linears[i] is rows[i] × cols). */
void qs_awq_fold(float *prev, int64_t prev_rows, int64_t prev_cols, float *const *linears, const int64_t *rows, int n,
                 int64_t cols, const float *s);

#endif
