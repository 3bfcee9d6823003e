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
 * (one config per tensor; only tensors whose config changed are requantized) into app->jobs.gen */
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
/* waits until every queued job is done (or the held tensor job is stopped, see worker_hold) */
void worker_wait_idle(worker *w);
/* test hook (script mode's `:hold N`, `:release`): the next tensor job's full result stops after
 * step N of its progress (0: at its start) until worker_hold(w, -1); meanwhile worker_wait_idle
 * returns and the screen shows the job in progress */
void worker_hold(worker *w, int step);
void worker_stop(worker *w);
/* what the computation keeps between calls: what depends on the last tensor's weights alone (the
 * distribution with its percentiles, the outlier rows, the histogram and tiles of the last view)
 * — a knob change on the same tensor recomputes none of it. No floats of the tensor are kept:
 * every pass reads row chunks from the mapped file. */
typedef struct tensor_cache {
    int t;                   /* -1: empty */
    bool have_stats;         /* dist and the outlier rows computed (a preview goes without) */
    qs_dist dist;
    int ch_row[8], n_ch;
    qs_channel_stats ch[8];
    int hist_tails;          /* hist holds the original's histogram for this range (-1: none) */
    int64_t hist[APP_HIST_BINS];
    bool have_tiles;         /* tiles_w: max |w| per cell of tiles_view's window */
    app_view_req tiles_view;
    float tiles_w[APP_TILE_ROWS * APP_TILE_COLS];
    int64_t chunk_weights;   /* weights per chunk (0: the default, about 1 Mi); tests set it small */
} tensor_cache;
void tensor_cache_free(tensor_cache *c);
/* the computation itself (also used by benchmarks and tests): fills r for tensor t of a with cfg;
 * sample > 1 quantizes every sample-th row only (a preview: metrics, histogram and grid of those
 * rows). The full result reads the tensor in row chunks and holds a bounded working set (a few
 * chunks; methods that need the whole tensor — GPTQ, AWQ, per-tensor RTN, double-quantized
 * NF4/FP4 — a whole copy and their result); its numbers do not depend on the chunk size. prog
 * (may be NULL): progress in chunks, and cancel (r->error "cancelled", r->ok false). */
struct qs_progress;
void worker_compute(const app *a, int t, const qs_qconfig *cfg, const app_view_req *view, int sample, tensor_cache *cache,
                    struct qs_progress *prog, app_result *r);
/* the row step of the preview a tensor of rows × cols gets first (1: none, it is quick anyway) */
int worker_preview_step(int64_t rows, int64_t cols);

#endif
