/* tui/worker.h — the worker thread: quantizes the selected tensor with its config and
 * computes everything the views show (metrics, histograms, tile maps, grid, explain
 * numbers, outlier channels) into a fresh app_result, swapped into the app under its lock.
 * A newer request replaces a queued one; completion is announced by one byte on the
 * notification pipe the main loop polls. */
#ifndef QS_WORKER_H
#define QS_WORKER_H

#include <stdbool.h>

#include "tui/app.h"

typedef struct worker worker;

worker *worker_start(app *a, int notify_fd);
void worker_submit(worker *w, int tensor, const qs_qconfig *cfg, const app_view_req *view);
/* greedy continuations of prompt by the original model and by the model quantized with cfgs
 * (one config per tensor; only tensors whose config changed are requantized) into app->gen */
void worker_submit_generation(worker *w, const qs_qconfig *cfgs, const char *prompt);
/* runs path through the model (core/calib.h) and hands the statistics to the app; the selected
 * tensor and the generation are then redone with them */
void worker_submit_calibration(worker *w, const char *path);
/* the sensitivity scan of every tensor with cfg on path (core/scan.h) into the app */
void worker_submit_scan(worker *w, const qs_qconfig *cfg, const char *path);
/* scans of the K-quant candidates and the Pareto points of their mixes into the app */
void worker_submit_pareto(worker *w, const char *path);
struct qs_recipe_table;
/* exports the recipe t (taken over, *t emptied) at path: a quantized GGUF, or a GPTQ / AWQ
 * checkpoint directory */
enum { EXPORT_GGUF, EXPORT_GPTQ, EXPORT_AWQ };
void worker_submit_export(worker *w, struct qs_recipe_table *t, const char *path, int format);
/* perplexity and KL divergence of the model quantized with cfgs (one per tensor) against the
 * original on the text at path */
void worker_submit_ppl(worker *w, const qs_qconfig *cfgs, const char *path);
/* cancels a running calibration or scan */
void worker_cancel(worker *w);
bool worker_idle(worker *w);
void worker_wait_idle(worker *w);
void worker_stop(worker *w);
/* what the computation keeps between calls: the last tensor's floats and what depends on them
 * alone (the distribution with its sorted percentiles, the outlier rows) — a knob change on the
 * same tensor recomputes none of it */
typedef struct tensor_cache {
    int t;                   /* -1: empty */
    float *w;
    bool have_stats;         /* dist and the outlier rows computed (a preview goes without) */
    qs_dist dist;
    int ch_row[8];
    qs_channel_stats ch[8];
    int hist_tails;          /* hist holds the original's histogram for this range (-1: none) */
    int64_t hist[APP_HIST_BINS];
} tensor_cache;
void tensor_cache_free(tensor_cache *c);
/* the computation itself (also used by benchmarks): fills r for tensor t of a with cfg; sample > 1
 * quantizes every sample-th row only (a preview: metrics, histogram and grid of those rows) */
struct qs_progress;
void worker_compute(const app *a, int t, const qs_qconfig *cfg, const app_view_req *view, int sample, tensor_cache *cache,
                    struct qs_progress *prog, app_result *r);
/* the row step of the preview a tensor of rows × cols gets first (1: none, it is quick anyway) */
int worker_preview_step(int64_t rows, int64_t cols);

#endif
