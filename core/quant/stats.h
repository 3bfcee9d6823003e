/* core/stats.h — distribution statistics, histograms, tile maps and error metrics.
 * Accumulations run in double; percentiles are exact order statistics (linear
 * interpolation between neighbours, numpy's default). */
#ifndef QS_STATS_H
#define QS_STATS_H

#include <stdbool.h>
#include <stdint.h>

#define QS_NPCT 9
extern const double qs_pct_levels[QS_NPCT]; /* 0.1 1 5 25 50 75 95 99 99.9 */

typedef struct qs_dist {
    int64_t n;
    double min, max, absmax, mean, std, kurtosis; /* kurtosis: excess (normal = 0) */
    double pct[QS_NPCT];
    double outlier_k;       /* |w − mean| > k·std counts as an outlier */
    int64_t n_outliers;
} qs_dist;

/* n >= 1. Sorts a private copy for the percentiles (O(n log n)). */
int qs_dist_compute(const float *x, int64_t n, double outlier_k, qs_dist *d);

/* Histogram of nbins over [lo, hi]; symlog bins are uniform in sign(x)·log10(1 + |x|/c).
 * Values outside the range are not counted (below/above report them). */
typedef struct qs_hist_spec {
    int nbins;
    double lo, hi;
    bool symlog;
    double linthresh;       /* c of the symlog transform (> 0) */
} qs_hist_spec;

int qs_hist_bin(const qs_hist_spec *h, double x);             /* -1 below, nbins above */
double qs_hist_edge(const qs_hist_spec *h, int i);            /* left edge of bin i (i = nbins: right end) */
void qs_hist_compute(const qs_hist_spec *h, const float *x, int64_t n, int64_t *counts, int64_t *below, int64_t *above);

/* A rows × cols matrix reduced to out_rows × out_cols tiles (tile (i, j) covers rows
 * [i·rows/out_rows, (i+1)·rows/out_rows) and likewise columns; every tile is non-empty when
 * out_rows <= rows and out_cols <= cols). */
typedef enum qs_tile_mode { QS_TILE_MAX_ABS, QS_TILE_MEAN_ABS } qs_tile_mode;
void qs_tilemap(const float *x, int64_t rows, int64_t cols, int out_rows, int out_cols, qs_tile_mode mode, float *out);

/* Per row (axis 0) or per column (axis 1): max |w|, std, excess kurtosis and max/median of |w|. */
typedef struct qs_channel_stats {
    float absmax, std, kurtosis, max_over_median;
} qs_channel_stats;
void qs_channel_stats_compute(const float *x, int64_t rows, int64_t cols, int axis, qs_channel_stats *out);

typedef struct qs_metrics {
    int64_t n;
    double mse, rmse, max_abs, sqnr_db, cosine;
} qs_metrics;

/* original vs dequantized (sqnr: 10·log10(Σx²/Σe²), +inf when identical) */
void qs_stats_compare(const float *orig, const float *deq, int64_t n, qs_metrics *m);
/* relative output error ‖(Q−W)Xᵀ‖² / ‖WXᵀ‖² of weights W[rows][cols] and their quantized Q on
 * inputs X[n][cols] (sgemm products, double sums; NAN when XWᵀ = 0) */
double qs_stats_output_error(const float *w, const float *q, int64_t rows, int64_t cols, const float *x, int64_t n);
/* mean squared error of each row */
void qs_row_mse(const float *orig, const float *deq, int64_t rows, int64_t cols, float *out);

#endif
