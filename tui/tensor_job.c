/* tui/tensor_job.c — the tensor job's computation (worker_compute, tui/worker.h): the selected
 * tensor quantized with its config, and everything the views show of it. */
#include "tui/worker.h"

#include "tui/jobs.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/data/calib.h"
#include "core/recipe/export.h"
#include "core/quant/qgrid.h"
#include "core/util/fileio.h"
#include "core/quant/ggml_types.h"
#include "core/quant/ggml_quants.h"
#include "core/formats/gguf.h"
#include "core/model/hf_tokenizer.h"
#include "core/model/infer.h"
#include "core/data/kld.h"
#include "core/quant/qdot.h"
#include "core/recipe/recipe.h"
#include "core/recipe/scan.h"
#include "core/recipe/suggest.h"
#include "core/model/tokenizer.h"

static void fill_explain(const qs_qresult *q, const float *w, app_result *r)
{
    int64_t n = q->group_len ? q->group_len : q->cols;
    r->ex_n = (int)(n < 8 ? n : 8);
    float mn = w[0], mx = w[0];
    for (int64_t i = 0; i < n && i < q->rows * q->cols; i++) mn = fminf(mn, w[i]), mx = fmaxf(mx, w[i]);
    r->ex_min = mn, r->ex_max = mx;
    for (int i = 0; i < r->ex_n; i++) {
        r->ex_w[i] = w[i], r->ex_deq[i] = q->deq[i];
        r->ex_code[i] = qs_qresult_code_at(q, i);
    }
    r->ex_scale = q->scales ? q->scales[0] : 0;
    r->ex_zero = q->zeros ? q->zeros[0] : 0;
}

/* ---- the tensor job: everything the views show for one (tensor, config), in row chunks ---- */

/* the outlier rows so far, with rows [row0, row0 + n) and their stats cs: the 8 largest
 * max/median, descending (depends on the weights alone: cached) */
static void keep_outlier_rows(const qs_channel_stats *cs, int64_t n, int64_t row0, tensor_cache *c)
{
    for (int64_t i = 0; i < n; i++) {
        int pos = c->n_ch < 8 ? c->n_ch++ : 8;
        while (pos > 0 && cs[i].max_over_median > c->ch[pos - 1].max_over_median) {
            if (pos < 8) c->ch[pos] = c->ch[pos - 1], c->ch_row[pos] = c->ch_row[pos - 1];
            pos--;
        }
        if (pos < 8) c->ch[pos] = cs[i], c->ch_row[pos] = (int)(row0 + i);
    }
}

void tensor_cache_free(tensor_cache *c)
{
    int64_t chunk = c->chunk_weights;
    memset(c, 0, sizeof *c);
    c->t = -1;
    c->hist_tails = -1;
    c->chunk_weights = chunk;
}

enum { PREVIEW_FROM = 1 << 21, PREVIEW_WEIGHTS = 1 << 19, CHUNK_WEIGHTS = 1 << 20 };

int worker_preview_step(int64_t rows, int64_t cols)
{
    int64_t n = rows * cols;
    if (n < PREVIEW_FROM || rows < 2) return 1;
    int64_t step = (n + PREVIEW_WEIGHTS - 1) / PREVIEW_WEIGHTS;
    return (int)(step < rows ? step : rows);
}

static int64_t gcd64(int64_t a, int64_t b) { return b ? gcd64(b, a % b) : a; }

/* rows per chunk: about `target` weights, and a whole number of the metrics' partial-sum chunks
 * (QS_CMP_CHUNK) and of the method's blocks, so that chunking changes no sum and no block */
static int64_t chunk_rows(int64_t rows, int64_t cols, int64_t target, int64_t block)
{
    int64_t unit_w = QS_CMP_CHUNK / gcd64(QS_CMP_CHUNK, block) * block; /* lcm */
    int64_t unit = unit_w / gcd64(unit_w, cols), k = target / (unit * cols);
    int64_t cr = unit * (k > 1 ? k : 1);
    return cr < rows ? cr : rows;
}

/* a method that quantizes rows (or blocks inside rows) independently: chunks give the same
 * bytes; *block: the blocks that must not straddle a chunk */
static bool quantizes_by_rows(const qs_qconfig *c, int64_t *block)
{
    int64_t b = qs_qconfig_row_block(c);
    *block = b > 0 ? b : 1;
    return b > 0;
}

/* rows of the live output error for methods that do not need them (its cost is two products of
 * this many rows) */
enum { LIVE_OUT_ROWS = 256 };

/* the tensor's calibration view: required by gptq/awq, optional (the output error) for the rest */
int worker_calib_view(const app *a, const qs_tensor *x, const qs_qconfig *cfg, qs_calib *v, char *msg, size_t n)
{
    bool need = qs_method_needs_calib(cfg->method);
    qs_err err = {0};
    if (!a->jobs.calib) {
        /* the text's file name only: the screen has no room for a whole path */
        const char *base = strrchr(a->jobs.calib_path, '/') ? strrchr(a->jobs.calib_path, '/') + 1 : a->jobs.calib_path;
        if (need) snprintf(msg, n, "%s needs calibration data: press C to calibrate%s%.150s", cfg->method->name,
                           a->jobs.calib_path[0] ? " on " : " (start with --calib FILE)", base);
        return need ? -1 : 0;
    }
    if (qs_calib_for_tensor(a->jobs.calib, x->gguf_name, qs_method_needs_hessian(cfg->method), v, &err)) {
        if (need) snprintf(msg, n, "%.200s", err.msg);
        return need ? -1 : 0;
    }
    if (!need && v->n_rows > LIVE_OUT_ROWS) v->n_rows = LIVE_OUT_ROWS;
    return 0;
}

/* the histogram of x (tails: of |x| from the cut on) added to counts; tmp: n floats or NULL */
static void histogram_add(const qs_hist_spec *h, const float *x, int64_t n, bool tails, float *tmp, int64_t *counts)
{
    int64_t c[APP_HIST_BINS];
    for (int64_t i = 0; tails && tmp && i < n; i++) tmp[i] = fabsf(x[i]);
    qs_hist_compute(h, tails && tmp ? tmp : x, n, c, NULL, NULL);
    for (int k = 0; k < h->nbins; k++) counts[k] += c[k];
}

/* rows [r0, r0 + nr) of a tensor (x: nr × cols) folded into the view's tile map */
static void tiles_add(const float *x, int64_t r0, int64_t nr, int64_t cols, const app_view_req *v, float *out)
{
    int64_t a = r0 > v->heat_r0 ? r0 : v->heat_r0, b = r0 + nr < v->heat_r0 + v->heat_nr ? r0 + nr : v->heat_r0 + v->heat_nr;
    if (a < b)
        qs_tilemap_max_rows(x + (a - r0) * cols + v->heat_c0, cols, a - v->heat_r0, b - a, v->heat_nr, v->heat_nc, v->heat_pr,
                            v->heat_pc, out);
}

static bool same_window(const app_view_req *x, const app_view_req *y)
{
    return x->heat_r0 == y->heat_r0 && x->heat_c0 == y->heat_c0 && x->heat_nr == y->heat_nr && x->heat_nc == y->heat_nc &&
           x->heat_pr == y->heat_pr && x->heat_pc == y->heat_pc;
}

/* the request's window inside the tensor (the whole of it when unset or out of range) */
static app_view_req clamp_view(const app_view_req *req, int64_t rows, int64_t cols)
{
    app_view_req v = req ? *req : (app_view_req){0};
    if (v.heat_nr <= 0 || v.heat_nc <= 0 || v.heat_r0 < 0 || v.heat_c0 < 0 || v.heat_r0 + v.heat_nr > rows ||
        v.heat_c0 + v.heat_nc > cols)
        v.heat_r0 = v.heat_c0 = 0, v.heat_nr = rows, v.heat_nc = cols;
    int64_t pr = v.heat_pr > 0 ? v.heat_pr : APP_TILE_ROWS, pc = v.heat_pc > 0 ? v.heat_pc : APP_TILE_COLS;
    pr = pr < v.heat_nr ? pr : v.heat_nr, pc = pc < v.heat_nc ? pc : v.heat_nc;
    v.heat_pr = (int)(pr < APP_TILE_ROWS ? pr : APP_TILE_ROWS), v.heat_pc = (int)(pc < APP_TILE_COLS ? pc : APP_TILE_COLS);
    return v;
}

/* one run of the tensor job: the tensor in chunks of `chunk` rows, progress in steps (a chunk read
 * and processed is one), cancelled through prog */
typedef struct tensor_job {
    const qs_tensor *x;
    int64_t rows, cols, chunk, n_chunks;
    qs_progress *prog, sub;  /* sub: a whole-tensor quantizer's own progress, mapped into prog */
    int64_t done, total;
    app_view_req v;
    float *buf, *tmp, *tmp2; /* a chunk's floats, and two scratch chunks */
} tensor_job;

static bool job_step(tensor_job *j)
{
    j->done++;
    return qs_progress_step(j->prog, j->done, j->total);
}

static void sub_report(void *ctx, int64_t done, int64_t total)
{
    tensor_job *j = ctx;
    j->sub.cancel = j->prog->cancel;
    if (j->prog->report && total > 0) j->prog->report(j->prog->ctx, j->done * total + done, j->total * total);
}

static int read_chunk(tensor_job *j, int64_t r0, int64_t nr, char *msg, size_t n)
{
    qs_err err = {0};
    if (!qs_tensor_read_rows(j->x, r0, nr, j->buf, &err)) return 0;
    snprintf(msg, n, "%s", err.msg);
    return -1;
}

/* the statistics of the weights alone (once per tensor): the distribution in three passes, the
 * outlier rows in the first */
static int tensor_stats(tensor_job *j, tensor_cache *c, char *msg, size_t n)
{
    qs_dist_stream ds;
    qs_channel_stats *cs = malloc((size_t)j->chunk * sizeof *cs);
    if (!cs || qs_dist_stream_init(&ds, 3.0)) {
        free(cs);
        return snprintf(msg, n, "out of memory"), -1;
    }
    c->n_ch = 0;
    for (int k = 0; k < 8; k++) c->ch_row[k] = -1;
    int left = 3;
    while (left > 0) {
        for (int64_t r0 = 0; r0 < j->rows; r0 += j->chunk) {
            int64_t nr = j->rows - r0 < j->chunk ? j->rows - r0 : j->chunk;
            if (read_chunk(j, r0, nr, msg, n)) goto fail;
            qs_dist_stream_add(&ds, j->buf, nr * j->cols);
            if (ds.pass == 0) qs_channel_stats_compute(j->buf, nr, j->cols, 0, cs), keep_outlier_rows(cs, nr, r0, c);
            if (!job_step(j)) goto fail;
        }
        if ((left = qs_dist_stream_end_pass(&ds, &c->dist)) < 0) {
            snprintf(msg, n, "out of memory");
            goto fail;
        }
    }
    c->have_stats = true;
    free(cs);
    qs_dist_stream_free(&ds);
    return 0;
fail:
    free(cs);
    qs_dist_stream_free(&ds);
    return -1;
}

/* what the quantized chunks add up to */
typedef struct chunk_sums {
    qs_compare_acc cmp;
    qs_outerr_acc oe;
    bool have_oe;
    int64_t n_clipped, clip_groups;
    double clip_sum;
    bool hist_orig, tiles_w; /* the weights' histogram and tiles are made in this pass too */
} chunk_sums;

/* rows [r0, r0 + nr) of the weights w, their dequantized deq and group scales gs (per weight) */
static void add_chunk(tensor_job *j, const float *w, const float *deq, const float *gs, int64_t r0, int64_t nr, const tensor_cache *c,
                      chunk_sums *s, app_result *r)
{
    int64_t n = nr * j->cols;
    qs_compare_add(&s->cmp, w, deq, n);
    if (s->have_oe) qs_outerr_add(&s->oe, w, deq, r0, nr);
    if (gs) tiles_add(gs, r0, nr, j->cols, &j->v, r->tiles_scale); /* (gs may be tmp, used below) */
    for (int64_t i = 0; i < n; i++) j->tmp2[i] = deq[i] - w[i];
    tiles_add(j->tmp2, r0, nr, j->cols, &j->v, r->tiles_err);
    histogram_add(&r->hist, deq, n, j->v.tails, j->tmp, r->hist_deq);
    for (int k = 0; k < 8 && c->ch_row[k] >= 0; k++) {
        int64_t row = c->ch_row[k];
        if (row < r0 || row >= r0 + nr) continue;
        double se = 0;
        for (int64_t col = 0; col < j->cols; col++) {
            double e = (double)deq[(row - r0) * j->cols + col] - w[(row - r0) * j->cols + col];
            se += e * e;
        }
        r->ch_err[k] = (float)sqrt(se / (double)j->cols);
    }
}

/* the weights' own histogram and tiles from a chunk, where the cache lacks them for this view */
static void add_weights(tensor_job *j, int64_t r0, int64_t nr, const chunk_sums *s, tensor_cache *c, const app_result *r)
{
    if (s->hist_orig) histogram_add(&r->hist, j->buf, nr * j->cols, j->v.tails, j->tmp, c->hist);
    if (s->tiles_w) tiles_add(j->buf, r0, nr, j->cols, &j->v, c->tiles_w);
}

static bool first_non_finite(const float *w, int64_t n, int64_t r0, int64_t cols, char *msg, size_t mn)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(w[i])) {
            snprintf(msg, mn, "row %lld, column %lld is not finite", (long long)(r0 + i / cols), (long long)(i % cols));
            return true;
        }
    return false;
}

/* a row-wise method: every chunk read, quantized and measured on its own */
static int quantize_chunked(tensor_job *j, const qs_qconfig *cfg, tensor_cache *c, chunk_sums *s, app_result *r, qs_qresult *first)
{
    for (int64_t r0 = 0; r0 < j->rows; r0 += j->chunk) {
        int64_t nr = j->rows - r0 < j->chunk ? j->rows - r0 : j->chunk;
        qs_qresult q;
        qs_err err = {0};
        if (read_chunk(j, r0, nr, r->error, sizeof r->error)) return -1;
        add_weights(j, r0, nr, s, c, r);
        if (first_non_finite(j->buf, nr * j->cols, r0, j->cols, r->error, sizeof r->error)) return -1;
        if (qs_quant_run_progress(cfg, j->buf, nr, j->cols, NULL, NULL, 0, NULL, &q, &err))
            return snprintf(r->error, sizeof r->error, "%s", err.msg), -1;
        qs_qresult_group_scales(&q, j->tmp);
        add_chunk(j, j->buf, q.deq, j->tmp, r0, nr, c, s, r);
        s->n_clipped += q.n_clipped;
        for (int64_t g = 0; q.clip_ratio && g < q.n_groups; g++) s->clip_sum += q.clip_ratio[g];
        s->clip_groups += q.n_groups;
        if (r0 == 0) *first = q, fill_explain(&q, j->buf, r); /* q kept for the grid */
        else qs_qresult_free(&q);
        if (!job_step(j)) return -1;
    }
    return 0;
}

/* a method that needs the whole tensor (GPTQ, AWQ, per-tensor scales, double quantization): read
 * whole, quantized once, then measured chunk by chunk; *q stays the caller's */
static int quantize_whole(tensor_job *j, const app *a, const qs_qconfig *cfg, tensor_cache *c, chunk_sums *s, app_result *r,
                          qs_qresult *q)
{
    int64_t n = j->rows * j->cols;
    float *w = malloc((size_t)n * sizeof *w), *gs = NULL;
    qs_err err = {0};
    qs_calib view = {0};
    int rc = !w ? snprintf(r->error, sizeof r->error, "out of memory"), -1 : worker_calib_view(a, j->x, cfg, &view, r->error, sizeof r->error);
    float *chunk_buf = j->buf;
    for (int64_t r0 = 0; !rc && r0 < j->rows; r0 += j->chunk) { /* read (the weights' histogram and tiles on the way) */
        int64_t nr = j->rows - r0 < j->chunk ? j->rows - r0 : j->chunk;
        j->buf = w + r0 * j->cols;
        if (read_chunk(j, r0, nr, r->error, sizeof r->error) || (add_weights(j, r0, nr, s, c, r), !job_step(j))) rc = -1;
    }
    j->buf = chunk_buf;
    j->sub = (qs_progress){0, 0, j->prog ? j->prog->cancel : 0, sub_report, j};
    if (!rc && qs_quant_run_progress(cfg, w, j->rows, j->cols, view.cols ? &view : NULL, NULL, 0, &j->sub, q, &err))
        rc = -1, snprintf(r->error, sizeof r->error, "%s", err.msg);
    qs_calib_free(&view);
    if (!rc && (!job_step(j) || !(gs = malloc((size_t)n * sizeof *gs)))) {
        if (!gs) snprintf(r->error, sizeof r->error, "out of memory");
        qs_qresult_free(q);
        rc = -1;
    }
    if (!rc) qs_qresult_group_scales(q, gs);
    for (int64_t r0 = 0; !rc && r0 < j->rows; r0 += j->chunk) {
        int64_t nr = j->rows - r0 < j->chunk ? j->rows - r0 : j->chunk;
        add_chunk(j, w + r0 * j->cols, q->deq + r0 * j->cols, gs + r0 * j->cols, r0, nr, c, s, r);
        if (!job_step(j)) qs_qresult_free(q), rc = -1;
    }
    if (!rc) s->n_clipped = q->n_clipped, fill_explain(q, w, r);
    free(w), free(gs);
    return rc;
}

/* every step-th row of the tensor (nr rows), read from the file */
static float *sample_rows(const qs_tensor *x, int64_t rows, int64_t cols, int step, int64_t *nr)
{
    *nr = (rows + step - 1) / step;
    float *s = malloc((size_t)(*nr * cols) * sizeof *s);
    qs_err err = {0};
    for (int64_t i = 0; s && i < *nr; i++)
        if (qs_tensor_read_rows(x, i * step, 1, s + i * cols, &err)) {
            free(s);
            return NULL;
        }
    return s;
}

/* the preview: every sample-th row quantized; the weights' statistics from the cache where it
 * has them, else from the sample (scaled to the whole) */
static void compute_preview(const app *a, const qs_tensor *x, const qs_qconfig *cfg, int sample, tensor_cache *cache,
                            app_result *r)
{
    int64_t rows = r->rows, cols = r->cols, nq;
    const app_view_req *v = &r->view;
    float *ws = sample_rows(x, rows, cols, sample, &nq);
    if (!ws) return (void)snprintf(r->error, sizeof r->error, "out of memory or unreadable rows");
    if (cache->have_stats) r->dist = cache->dist;
    else qs_dist_compute(ws, nq * cols, 3.0, &r->dist); /* a tensor just opened: of its sample */
    double am = r->dist.absmax > 0 ? r->dist.absmax : 1;
    r->tail_cut = 3 * r->dist.std < am ? 3 * r->dist.std : am / 2;
    r->hist = (qs_hist_spec){APP_HIST_BINS, v->tails ? r->tail_cut : -am, am, false, 1};
    float *tmp = malloc((size_t)(nq * cols) * sizeof *tmp);
    if (cache->have_stats && cache->hist_tails == (int)v->tails) memcpy(r->hist_orig, cache->hist, sizeof r->hist_orig);
    else {
        histogram_add(&r->hist, ws, nq * cols, v->tails, tmp, r->hist_orig);
        for (int k = 0; k < APP_HIST_BINS; k++) r->hist_orig[k] *= rows / nq;
    }
    if (cache->have_tiles && same_window(&cache->tiles_view, v)) memcpy(r->tiles_w, cache->tiles_w, sizeof r->tiles_w);
    else
        for (int64_t i = 0; i < nq; i++) tiles_add(ws + i * cols, i * sample, 1, cols, v, r->tiles_w);
    qs_qresult q;
    qs_calib view = {0};
    qs_err err = {0};
    int rc = worker_calib_view(a, x, cfg, &view, r->error, sizeof r->error);
    if (!rc) rc = qs_quant_run_progress(cfg, ws, nq, cols, view.cols ? &view : NULL, NULL, 0, NULL, &q, &err);
    qs_calib_free(&view);
    if (rc) {
        if (!r->error[0]) snprintf(r->error, sizeof r->error, "%s", err.msg);
        free(ws), free(tmp);
        return;
    }
    r->ok = true;
    r->sampled = sample;
    r->out_err = q.out_err;
    qs_stats_compare(ws, q.deq, nq * cols, &r->m);
    r->bpw = q.bpw;
    r->bytes = (int64_t)(q.bpw * (double)(rows * cols) / 8.0 + 0.5);
    r->n_clipped = q.n_clipped * (rows / nq);
    r->ggml_type = q.ggml_type;
    snprintf(r->report, sizeof r->report, "preview on every %dth row (%lld rows); the whole tensor follows", sample, (long long)nq);
    histogram_add(&r->hist, q.deq, nq * cols, v->tails, tmp, r->hist_deq);
    for (int k = 0; k < APP_HIST_BINS; k++) r->hist_deq[k] *= rows / nq; /* on the original's scale */
    r->n_levels = qs_qresult_levels(&q, 0, 0, r->levels);
    for (int k = 0; v->tails && k < r->n_levels; k++) r->levels[k] = fabsf(r->levels[k]);
    fill_explain(&q, ws, r);
    memcpy(r->ch, cache->ch, sizeof r->ch), memcpy(r->ch_row, cache->ch_row, sizeof r->ch_row);
    for (int k = 0; k < 8; k++) r->ch_err[k] = NAN, r->ch_row[k] = cache->have_stats ? r->ch_row[k] : -1;
    qs_qresult_free(&q);
    free(ws), free(tmp);
}

/* the full result: the weights' statistics (once per tensor), then the quantization chunk by
 * chunk (row-wise methods) or whole, every metric summed over the chunks */
static void compute_full(const app *a, const qs_tensor *x, const qs_qconfig *cfg, tensor_cache *cache, qs_progress *prog,
                         app_result *r)
{
    int64_t rows = r->rows, cols = r->cols, block;
    bool by_rows = quantizes_by_rows(cfg, &block);
    int64_t chunk = chunk_rows(rows, cols, cache->chunk_weights > 0 ? cache->chunk_weights : CHUNK_WEIGHTS, block);
    tensor_job j = {x, rows, cols, chunk, (rows + chunk - 1) / chunk, prog, {0}, 0, 0, r->view, NULL, NULL, NULL};
    j.total = (cache->have_stats ? 0 : 3 * j.n_chunks) + (by_rows ? j.n_chunks : 2 * j.n_chunks + 1);
    j.buf = malloc((size_t)(chunk * cols) * sizeof *j.buf);
    j.tmp = malloc((size_t)(chunk * cols) * sizeof *j.tmp);
    j.tmp2 = malloc((size_t)(chunk * cols) * sizeof *j.tmp2);
    chunk_sums s = {0};
    qs_qresult q = {0};
    qs_calib view = {0};
    int type, rc = !j.buf || !j.tmp || !j.tmp2 ? snprintf(r->error, sizeof r->error, "out of memory"), -1 : 0;
    qs_err err = {0};
    if (!rc && !qs_progress_step(prog, 0, j.total)) rc = -1;
    if (!rc && !cache->have_stats) rc = tensor_stats(&j, cache, r->error, sizeof r->error);
    if (!rc && qs_qconfig_check(cfg, rows, cols, &type, &err)) rc = -1, snprintf(r->error, sizeof r->error, "%s", err.msg);
    if (rc) goto done;
    r->dist = cache->dist;
    double am = r->dist.absmax > 0 ? r->dist.absmax : 1;
    r->tail_cut = 3 * r->dist.std < am ? 3 * r->dist.std : am / 2;
    r->hist = (qs_hist_spec){APP_HIST_BINS, r->view.tails ? r->tail_cut : -am, am, false, 1};
    s.hist_orig = cache->hist_tails != (int)r->view.tails;
    s.tiles_w = !cache->have_tiles || !same_window(&cache->tiles_view, &r->view);
    if (s.hist_orig) memset(cache->hist, 0, sizeof cache->hist), cache->hist_tails = -1;
    if (s.tiles_w) memset(cache->tiles_w, 0, sizeof cache->tiles_w), cache->have_tiles = false;
    memcpy(r->ch, cache->ch, sizeof r->ch), memcpy(r->ch_row, cache->ch_row, sizeof r->ch_row);
    if (by_rows) { /* the output error on the calibration rows, summed over the chunks */
        worker_calib_view(a, x, cfg, &view, r->error, sizeof r->error);
        s.have_oe = view.X && view.n_rows > 0 && view.cols == cols && !qs_outerr_begin(&s.oe, view.X, view.n_rows, rows, cols);
    }
    rc = by_rows ? quantize_chunked(&j, cfg, cache, &s, r, &q) : quantize_whole(&j, a, cfg, cache, &s, r, &q);
    if (rc) goto done;
    if (s.hist_orig) cache->hist_tails = r->view.tails;
    if (s.tiles_w) cache->have_tiles = true, cache->tiles_view = r->view;
    memcpy(r->hist_orig, cache->hist, sizeof r->hist_orig);
    memcpy(r->tiles_w, cache->tiles_w, sizeof r->tiles_w);
    r->ok = true;
    qs_compare_finish(&s.cmp, &r->m);
    r->out_err = s.have_oe ? qs_outerr_end(&s.oe) : q.out_err;
    s.have_oe = false;
    r->bpw = q.bpw;
    r->bytes = (int64_t)(q.bpw * (double)(rows * cols) / 8.0 + 0.5);
    r->n_clipped = s.n_clipped;
    r->ggml_type = q.ggml_type;
    snprintf(r->report, sizeof r->report, "%s", q.report);
    if (by_rows && q.clip_ratio) snprintf(r->report, sizeof r->report, "mean clip ratio %.3f", s.clip_sum / (double)s.clip_groups);
    r->n_levels = qs_qresult_levels(&q, 0, 0, r->levels);
    for (int k = 0; r->view.tails && k < r->n_levels; k++) r->levels[k] = fabsf(r->levels[k]);
done:
    if (s.have_oe) qs_outerr_end(&s.oe);
    if (rc && !r->error[0]) snprintf(r->error, sizeof r->error, "cancelled");
    qs_calib_free(&view);
    qs_qresult_free(&q);
    free(j.buf), free(j.tmp), free(j.tmp2);
}

void worker_compute(const app *a, int t, const qs_qconfig *cfg, const app_view_req *req, int sample, tensor_cache *cache,
                    qs_progress *prog, app_result *r)
{
    memset(r, 0, sizeof *r);
    r->tensor = t;
    r->cfg = *cfg;
    r->ggml_type = -1;
    r->out_err = NAN;
    const qs_tensor *x = &a->model->tensors[t];
    r->rows = qs_tensor_nrows(x), r->cols = x->ne[0];
    if (cache->t != t) { /* another tensor: what the previous one kept goes */
        tensor_cache_free(cache);
        cache->t = t;
    }
    r->view = clamp_view(req, r->rows, r->cols);
    r->tile_rows = r->view.heat_pr, r->tile_cols = r->view.heat_pc;
    if (sample > 1) compute_preview(a, x, cfg, sample, cache, r);
    else compute_full(a, x, cfg, cache, prog, r);
}
