/* core/quant/stats.h — distribution statistics, histograms, tile maps and error metrics.
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

/* ---- the same statistics over a matrix streamed in row chunks (bounded memory) ----
 * Each gives exactly what the whole-array function gives on the concatenated chunks. */

/* qs_dist_compute in passes over the data (each pass sees every value once, in the same order,
 * in chunks of any size): init, then add every chunk and end the pass until end_pass returns 0.
 * Percentiles come from counts of the floats' order keys (two levels of 16 bits: 0.5 MiB per level)
 * instead of a sorted copy. After the second pass d holds everything but n_outliers; after the
 * third, all of it. */
#define QS_DIST_RANKS (2 * QS_NPCT)
typedef struct qs_dist_stream {
    int pass;
    int64_t n, n_outliers;
    double outlier_k, sum, mn, mx, mean, m2, m4, std;
    int64_t *hi;                          /* pass 0: counts per high 16 bits of the key */
    int64_t rank[QS_DIST_RANKS];          /* the order statistics the percentiles need */
    int64_t below[QS_DIST_RANKS];         /* values below rank's high bin */
    uint32_t bin[QS_DIST_RANKS];          /* rank's high bin */
    int64_t *lo[QS_DIST_RANKS];           /* pass 1: counts per low 16 bits inside bin */
    int16_t *slot;                        /* high bin → index in lo (-1: not needed) */
    float value[QS_DIST_RANKS];
    qs_dist d;
} qs_dist_stream;
int qs_dist_stream_init(qs_dist_stream *s, double outlier_k);
void qs_dist_stream_add(qs_dist_stream *s, const float *x, int64_t n);
/* ends the pass; returns the passes still needed (0: done), -1 when no value was seen or without
 * memory */
int qs_dist_stream_end_pass(qs_dist_stream *s, qs_dist *d);
void qs_dist_stream_free(qs_dist_stream *s);

/* qs_stats_compare in pieces: every call but the last must cover a multiple of QS_CMP_CHUNK
 * values (the partial sums are the same fixed chunks, added in the same order) */
#define QS_CMP_CHUNK 65536
typedef struct qs_compare_acc {
    int64_t n;
    double se, sx, sy, sxy, mx;
} qs_compare_acc;
void qs_compare_add(qs_compare_acc *a, const float *orig, const float *deq, int64_t n);
void qs_compare_finish(const qs_compare_acc *a, qs_metrics *m);

/* qs_stats_output_error in row chunks: begin (keeps n × rows floats twice), add rows
 * [row0, row0 + nrows) of w and q (any order, each row once), end (frees). begin returns -1
 * without memory. */
typedef struct qs_outerr_acc {
    const float *x;
    int64_t n, rows, cols;
    float *y, *e;
} qs_outerr_acc;
int qs_outerr_begin(qs_outerr_acc *a, const float *x, int64_t n, int64_t rows, int64_t cols);
void qs_outerr_add(qs_outerr_acc *a, const float *w, const float *q, int64_t row0, int64_t nrows);
double qs_outerr_end(qs_outerr_acc *a);

/* qs_tilemap's QS_TILE_MAX_ABS of a rows × cols matrix seen in row chunks: rows [r0, r0 + nr)
 * of it (x: nr rows of ld floats, the matrix's first column at x) folded into out (zeroed before
 * the first chunk) */
void qs_tilemap_max_rows(const float *x, int64_t ld, int64_t r0, int64_t nr, int64_t rows, int64_t cols, int out_rows,
                         int out_cols, float *out);

#endif
