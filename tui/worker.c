/* tui/worker.c — computations for the selected tensor, off the UI thread. */
#include "tui/worker.h"

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

enum long_job { JOB_CALIB = 1, JOB_SCAN = 2, JOB_PARETO = 4, JOB_EXPORT = 8, JOB_PPL = 16 };

struct worker {
    app *a;
    int fd;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool pending, running, quit;
    bool tensor_seen;
    bool tensor_running;     /* the job running is a tensor request: a newer one cancels it */
    qs_progress tensor_prog; /* its progress (into app->jobs.job_pct) and cancel flag */
    int hold_at;             /* test hook: the next tensor job stops at this step until released (-1: none) */
    bool held;               /* it is stopped there */
    bool gen_running;        /* a generation runs: a tensor request cancels it (and queues it again) */
    volatile int gen_cancel;
    /* the long jobs on the calibration text: pending bits, run in this order after tensor requests
     * and before generation */
    unsigned long_pending;
    char calib_path[256];
    qs_progress calib_prog;  /* of the running long job (Esc cancels) */
    const char *job_label;   /* its progress line: "calibrating: chunk" … */
    char label[96];          /* a job label made at run time */
    qs_qconfig scan_cfg;
    app_view_req view;       /* of the pending tensor request */
    qs_recipe_table export_table; /* the export job's recipe (owned), file and format */
    char export_path[512];
    int export_format;
    qs_qconfig *ppl_cfg;     /* the `p` job's per-tensor configs and text */
    char ppl_path[256];
    qs_kld_base kbase;       /* the original model's records on kbase_path (computed once) */
    char kbase_path[256];
    int tensor;
    qs_qconfig cfg;
    tensor_cache cache;
    /* generation: the configs of every tensor at the request, and the two models */
    bool gen_pending;
    qs_qconfig *gen_cfg;
    char gen_prompt[128];
    qs_vocab *vocab;
    qs_llm *base, *quant;
    qs_qconfig *applied;   /* what the quantized model holds per tensor */
    bool *applied_set;
};

enum { GEN_TOKENS = 48, GEN_CTX = 256 };

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
static int calib_view(const app *a, const qs_tensor *x, const qs_qconfig *cfg, qs_calib *v, char *msg, size_t n)
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
    int rc = !w ? snprintf(r->error, sizeof r->error, "out of memory"), -1 : calib_view(a, j->x, cfg, &view, r->error, sizeof r->error);
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
    int rc = calib_view(a, x, cfg, &view, r->error, sizeof r->error);
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
        calib_view(a, x, cfg, &view, r->error, sizeof r->error);
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

/* a GGML config the engine runs on packed rows: quantized in row chunks straight into the bytes
 * (no float copy of the tensor, no dequantized one: the bytes qs_quant_run would give); 1 when
 * the config is not such a one */
static int set_packed_in_chunks(worker *w, const qs_tensor *x, const qs_qconfig *cfg, qs_err *e)
{
    int64_t rows = qs_tensor_nrows(x), cols = x->ne[0];
    int type;
    if (!qs_qconfig_ggml_native(cfg) || rows < 2 || qs_qconfig_check(cfg, rows, cols, &type, e) ||
        qs_qdot_act_type(type, cols) < 0)
        return 1;
    int64_t rb = qs_type_row_bytes(type, cols), chunk = (1 << 20) / cols + 1;
    uint8_t *data = malloc((size_t)(rb * rows));
    float *f = malloc((size_t)((chunk < rows ? chunk : rows) * cols) * sizeof *f);
    int rc = !data || !f ? qs_err_set(e, QS_E_OOM, "out of memory") : 0;
    for (int64_t r0 = 0; !rc && r0 < rows; r0 += chunk) {
        int64_t nr = rows - r0 < chunk ? rows - r0 : chunk;
        if (__atomic_load_n(&w->gen_cancel, __ATOMIC_RELAXED)) rc = qs_err_set(e, QS_E_CANCELLED, "cancelled");
        else rc = qs_tensor_read_rows(x, r0, nr, f, e);
        for (int64_t i = 0; !rc && i < nr * cols; i++)
            if (!isfinite(f[i])) rc = qs_err_set(e, QS_E_INPUT, "not finite");
        if (!rc) rc = qs_ggml_quantize(type, f, data + r0 * rb, nr, cols, NULL, 0, e);
    }
    if (!rc) rc = qs_llm_set_packed(w->quant, x->name, type, data, (size_t)(rb * rows), e);
    free(data), free(f);
    return rc;
}

/* brings the quantized model up to date with cfgs: only tensors whose config changed */
static int update_quantized(worker *w, const qs_qconfig *cfgs, char *err, size_t errn)
{
    const qs_model *m = w->a->model;
    int n = 0;
    for (int64_t t = 0; t < m->n_tensors; t++) {
        if (__atomic_load_n(&w->gen_cancel, __ATOMIC_RELAXED)) return snprintf(err, errn, "cancelled"), -1;
        if (!app_tensor_quantizable(w->a, (int)t)) continue;
        if (w->applied_set[t] && qs_qconfig_equal(&w->applied[t], &cfgs[t])) {
            n++;
            continue;
        }
        const qs_tensor *x = &m->tensors[t];
        int64_t rows = qs_tensor_nrows(x), cols = x->ne[0];
        qs_err e = {0};
        int pk = set_packed_in_chunks(w, x, &cfgs[t], &e);
        if (e.code == QS_E_CANCELLED) return snprintf(err, errn, "cancelled"), -1;
        if (pk == 0) {
            w->applied[t] = cfgs[t];
            w->applied_set[t] = true;
            n++;
            continue;
        }
        float *f = malloc((size_t)(rows * cols) * sizeof *f);
        qs_qresult q;
        if (!f || qs_tensor_read_rows(x, 0, rows, f, &e)) {
            snprintf(err, errn, "%.150s", f ? e.msg : "out of memory");
            free(f);
            return -1;
        }
        qs_calib view = {0};
        char why[8];
        bool have_view = qs_method_needs_calib(cfgs[t].method) && calib_view(w->a, x, &cfgs[t], &view, why, sizeof why) == 0;
        int rc = qs_quant_run(&cfgs[t], f, rows, cols, have_view ? &view : NULL, NULL, 0, &q, &e);
        qs_calib_free(&view);
        if (rc == 0) {
            qs_llm_set_result(w->quant, x->name, &q, 0, &e);
            qs_qresult_free(&q);
            n++;
        } else { /* a config this shape cannot take: the tensor stays as in the file */
            qs_llm_set_weights(w->quant, x->name, f, qs_llama_cpp_act_type(x->type, cols), &e);
        }
        free(f);
        w->applied[t] = cfgs[t];
        w->applied_set[t] = true;
    }
    return n;
}

/* greedy continuation of ids[0..n) by GEN_TOKENS tokens into text (stops when *cancel is set) */
static int continue_greedy(qs_llm *l, const qs_vocab *v, const int32_t *ids, int n, int32_t *out, volatile int *cancel,
                           qs_err *err)
{
    int V = qs_llm_n_vocab(l), k = 0;
    float *logits = malloc((size_t)n * (size_t)V * sizeof *logits);
    if (!logits || qs_llm_eval(l, ids, n, 0, logits, err)) {
        free(logits);
        return -1;
    }
    const float *last = logits + (size_t)(n - 1) * V;
    for (; k < GEN_TOKENS && n + k < GEN_CTX; k++) {
        int best = 0;
        for (int i = 1; i < V; i++)
            if (last[i] > last[best]) best = i;
        out[k] = best;
        if (qs_vocab_is_eog(v, best) || __atomic_load_n(cancel, __ATOMIC_RELAXED) ||
            qs_llm_eval(l, &out[k], 1, n + k, logits, err))
            break;
        last = logits;
    }
    free(logits);
    return k;
}

static size_t pieces(const qs_vocab *v, const int32_t *ids, int n, int upto, char *buf, size_t cap)
{
    size_t o = 0;
    for (int i = 0; i < n && i < upto && o + 1 < cap; i++) o += qs_token_piece(v, ids[i], false, 0, buf + o, cap - 1 - o);
    buf[o] = '\0';
    return o;
}

/* one byte on the pipe: the UI redraws (if the write fails it redraws on its next event anyway) */
static void notify(worker *w)
{
    char one = 1;
    if (write(w->fd, &one, 1) < 0) { /* nothing to do */ }
}

/* the vocabulary and the two models (the original one also serves the calibration) */
static int ensure_models(worker *w, qs_err *err)
{
    if (w->quant) return 0;
    const qs_model *m = w->a->model;
    int64_t n = m->n_tensors;
    if (!w->applied) w->applied = calloc((size_t)(n ? n : 1), sizeof *w->applied);
    if (!w->applied_set) w->applied_set = calloc((size_t)(n ? n : 1), sizeof *w->applied_set);
    if (!w->applied || !w->applied_set) return qs_err_set(err, QS_E_OOM, "out of memory");
    if (!w->vocab && !(w->vocab = qs_model_vocab(m, err))) return -1; /* GGUF, or the checkpoint's tokenizer.json */
    if (!w->base && !(w->base = qs_llm_new(m, GEN_CTX, err))) return -1;
    if (!(w->quant = qs_llm_new(m, GEN_CTX, err))) return -1;
    return 0;
}

/* progress of the running calibration or scan, into the status line */
static void job_report(void *ctx, int64_t done, int64_t total)
{
    worker *w = ctx;
    pthread_mutex_lock(&w->a->lock);
    snprintf(w->a->jobs.calib_status, sizeof w->a->jobs.calib_status, "%s %lld/%lld (Esc cancels)", w->job_label, (long long)done,
             (long long)total);
    pthread_mutex_unlock(&w->a->lock);
    notify(w);
}

/* where the calibration cache lives: $XDG_CACHE_HOME/quantscope or ~/.cache/quantscope (made on
 * demand); false when neither is known */
static bool cache_path(const app *a, const char *text, size_t len, const qs_calib_opts *o, char *out, size_t n, bool make)
{
    const char *x = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char dir[512];
    if (x && x[0]) snprintf(dir, sizeof dir, "%.400s/quantscope", x);
    else if (home && home[0]) snprintf(dir, sizeof dir, "%.400s/.cache/quantscope", home);
    else return false;
    if (make) {
        char parent[512];
        snprintf(parent, sizeof parent, "%s", dir);
        *strrchr(parent, '/') = '\0';
        mkdir(parent, 0755), mkdir(dir, 0755);
    }
    char th[32], key[40];
    qs_model_table_hash(a->model, th);
    qs_calib_key(th, text, len, o, key);
    snprintf(out, n, "%s/%s.gguf", dir, key);
    return true;
}

/* the calibration run (or its cached result); the set goes to the app, and the tensors waiting
 * for it are redone */
static void calib_compute(worker *w, const char *path)
{
    app *a = w->a;
    qs_err err = {0};
    qs_calib_set *s = NULL;
    size_t len = 0;
    char *text = NULL;
    pthread_mutex_lock(&a->lock);
    a->jobs.calib_running = true, a->jobs.calib_done = 0, a->jobs.calib_total = 0;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(a->jobs.calib_status, sizeof a->jobs.calib_status, "calibrating on %.120s… (Esc cancels)", base);
    pthread_mutex_unlock(&a->lock);
    int rc = ensure_models(w, &err);
    if (!rc && !(text = qs_read_file(path, (size_t)1 << 30, &len, &err))) rc = -1;
    qs_calib_opts o;
    qs_calib_opts_default(&o);
    char cp[600], key[40] = "";
    bool cached = false, saved = false;
    qs_err refused = {0}; /* a cache file that was there and was refused (damaged, another version) */
    if (!rc && cache_path(a, text, len, &o, cp, sizeof cp, false)) {
        snprintf(key, sizeof key, "%s", strrchr(cp, '/') + 1);
        *strstr(key, ".gguf") = '\0';
        qs_err ce = {0};
        cached = (s = qs_calib_load(cp, key, &ce)) != NULL;
        if (!cached && access(cp, F_OK) == 0) refused = ce;
    }
    if (!rc && !cached) rc = qs_calib_collect(w->base, w->vocab, text, len, &o, &w->calib_prog, &s, &err);
    if (!rc && !cached && key[0] && cache_path(a, text, len, &o, cp, sizeof cp, true)) {
        qs_err ce = {0};
        saved = qs_calib_save(s, cp, key, &ce) == 0;
    }
    free(text);
    pthread_mutex_lock(&a->lock);
    a->jobs.calib_running = false;
    if (!rc) {
        qs_calib_set_free(a->jobs.calib);
        a->jobs.calib = s;
        if (refused.msg[0])
            snprintf(a->jobs.calib_status, sizeof a->jobs.calib_status, "calibrated anew: the cache was refused (%.100s)", refused.msg);
        else
            snprintf(a->jobs.calib_status, sizeof a->jobs.calib_status, "calibrated%s: %d chunks of %d tokens of %.80s — gptq and awq are live, "
                     "every method shows its output error", cached ? " (from the cache)" : saved ? " (cached)" : "", s->n_chunks,
                     s->n_ctx, base);
    } else {
        snprintf(a->jobs.calib_status, sizeof a->jobs.calib_status, "calibration %.140s", err.code == QS_E_CANCELLED ? "cancelled" : err.msg);
    }
    pthread_mutex_unlock(&a->lock);
    if (rc) return;
    /* the generation model: tensors that waited for calibration are quantized anew */
    for (int64_t t = 0; w->applied_set && t < a->model->n_tensors; t++)
        if (w->applied_set[t] && qs_method_needs_calib(w->applied[t].method)) w->applied_set[t] = false;
    pthread_mutex_lock(&w->mu);
    w->pending |= w->tensor_seen;
    w->gen_pending |= w->gen_cfg != NULL;
    pthread_mutex_unlock(&w->mu);
}

enum { SCAN_CHUNKS = 4 };

/* the sensitivity scan of every tensor with cfg, on SCAN_CHUNKS chunks of the calibration text */
static void scan_compute(worker *w, const qs_qconfig *cfg, const char *path)
{
    app *a = w->a;
    qs_err err = {0};
    char cs[64];
    qs_config_format(cfg, false, cs, sizeof cs);
    pthread_mutex_lock(&a->lock);
    a->jobs.scan_running = true;
    snprintf(a->jobs.calib_status, sizeof a->jobs.calib_status, "scan of %s… (Esc cancels)", cs);
    pthread_mutex_unlock(&a->lock);
    size_t len = 0;
    char *text = NULL;
    int rc = !path[0] ? qs_err_set(&err, QS_E_USAGE, "needs a text: start the workbench with --calib FILE") : ensure_models(w, &err);
    if (!rc && !(text = qs_read_file(path, (size_t)1 << 30, &len, &err))) rc = -1;
    qs_scan_opts o = {*cfg, false, GEN_CTX, SCAN_CHUNKS};
    qs_scan_row *rows = NULL;
    int n = 0;
    double ppl = 0;
    if (!rc) rc = qs_scan_run(w->base, a->model, w->vocab, text, len, &o, NULL, 0, NULL, NULL, &w->calib_prog, &rows, &n, &ppl, &err);
    free(text);
    int *rank = rc ? NULL : malloc((size_t)(a->model->n_tensors ? a->model->n_tensors : 1) * sizeof *rank);
    if (rank) {
        for (int64_t t = 0; t < a->model->n_tensors; t++) rank[t] = -1;
        for (int i = 0; i < n; i++) {
            const qs_tensor *t = qs_model_find_tensor(a->model, rows[i].unit);
            if (t) rank[t - a->model->tensors] = i;
        }
    }
    pthread_mutex_lock(&a->lock);
    a->jobs.scan_running = false;
    if (!rc && rank) {
        free(a->jobs.scan), free(a->jobs.scan_rank);
        a->jobs.scan = rows, a->jobs.n_scan = n, a->jobs.scan_rank = rank, a->jobs.scan_sel = 0, a->jobs.scan_top = 0;
        snprintf(a->jobs.scan_cfg, sizeof a->jobs.scan_cfg, "%s", cs);
        snprintf(a->jobs.calib_status, sizeof a->jobs.calib_status, "scan of %s: %d tensors ranked by KLD (base PPL %.3f on %d chunks of the "
                 "calibration text); the layer list is coloured by rank", cs, n, ppl, SCAN_CHUNKS);
    } else {
        free(rows), free(rank);
        snprintf(a->jobs.calib_status, sizeof a->jobs.calib_status, "scan %.200s", err.code == QS_E_CANCELLED ? "cancelled" : err.msg);
    }
    pthread_mutex_unlock(&a->lock);
}

/* the Pareto view: per-tensor scans of the K-quant candidates, the suggested mixes from the
 * cheapest to the dearest, and where llama-quantize's presets would sit */
static void pareto_compute(worker *w, const char *path)
{
    static const char *const cands[] = {"q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "q8_0"};
    enum { K = sizeof cands / sizeof *cands, NP = 25 };
    app *a = w->a;
    qs_err err = {0};
    pthread_mutex_lock(&a->lock);
    a->jobs.pareto_running = true;
    snprintf(a->jobs.calib_status, sizeof a->jobs.calib_status, "Pareto: scanning %d candidates… (Esc cancels)", K);
    pthread_mutex_unlock(&a->lock);
    size_t len = 0;
    char *text = NULL, cfgs[K][256];
    qs_scan_row *rows[K] = {0};
    int nrows[K] = {0};
    int rc = !path[0] ? qs_err_set(&err, QS_E_USAGE, "needs a text: start the workbench with --calib FILE") : ensure_models(w, &err);
    if (!rc && !(text = qs_read_file(path, (size_t)1 << 30, &len, &err))) rc = -1;
    for (int j = 0; !rc && j < K; j++) {
        qs_scan_opts o = {.per_block = false, .n_ctx = GEN_CTX, .n_chunks = SCAN_CHUNKS};
        bool keep;
        qs_config_parse(cands[j], &o.cfg, &keep, NULL);
        snprintf(cfgs[j], sizeof cfgs[j], "%s", cands[j]);
        snprintf(w->label, sizeof w->label, "Pareto: %s (%d/%d), tensor", cands[j], j + 1, K);
        rc = qs_scan_run(w->base, a->model, w->vocab, text, len, &o, NULL, 0, NULL, NULL, &w->calib_prog, &rows[j], &nrows[j],
                         NULL, &err);
    }
    free(text);
    qs_mp_table t = {0};
    double x[48], y[48];
    char mark[48], names[48][8] = {{0}};
    int n = 0, n_tensors = 0;
    if (!rc) rc = qs_mp_table_build(a->model, K, (const char(*)[256])cfgs, (const qs_scan_row *const *)rows, nrows, &t, &err);
    if (!rc) {
        qs_mp_problem pb = qs_mp_table_problem(&t);
        n_tensors = t.n;
        n = qs_mp_pareto(&pb, NP, x, y);
        for (int i = 0; i < n; i++) x[i] /= qs_mp_table_params(&t), mark[i] = '*';
        for (int i = 0; qs_mp_presets[i] && n < 48; i++)
            if (qs_mp_preset_point(a->model, &t, qs_mp_presets[i], &x[n], &y[n]))
                snprintf(names[n], sizeof names[n], "%s", qs_mp_presets[i]), mark[n++] = (char)('A' + i);
        qs_mp_table_free(&t);
    }
    for (int j = 0; j < K; j++) free(rows[j]);
    pthread_mutex_lock(&a->lock);
    a->jobs.pareto_running = false;
    if (!rc) {
        memcpy(a->jobs.pareto_x, x, sizeof x), memcpy(a->jobs.pareto_y, y, sizeof y), memcpy(a->jobs.pareto_mark, mark, sizeof mark);
        memcpy(a->jobs.pareto_name, names, sizeof names);
        a->jobs.n_pareto = n;
        snprintf(a->jobs.calib_status, sizeof a->jobs.calib_status, "Pareto: %d tensors scanned with %d K-quants on %d chunks of the "
                 "calibration text", n_tensors, K, SCAN_CHUNKS);
    } else {
        snprintf(a->jobs.calib_status, sizeof a->jobs.calib_status, "Pareto %.200s", err.code == QS_E_CANCELLED ? "cancelled" : err.msg);
    }
    pthread_mutex_unlock(&a->lock);
}

/* the recipe as a quantized GGUF: RTN/GPTQ/AWQ entries quantized first (on the calibration set
 * the workbench has), then every tensor written (progress over both, Esc cancels) */
static void export_compute(worker *w, qs_recipe_table *t, const char *path, int format)
{
    app *a = w->a;
    qs_err err = {0};
    pthread_mutex_lock(&a->lock);
    const qs_calib_set *calib = a->jobs.calib;
    snprintf(a->jobs.calib_status, sizeof a->jobs.calib_status, "exporting %.200s… (Esc cancels)", path);
    pthread_mutex_unlock(&a->lock);
    bool grid = qs_recipe_table_has_non_ggml(t);
    qs_qgrid *grids = grid ? calloc((size_t)t->n, sizeof *grids) : NULL;
    qs_recipe_sink sink = qs_export_grid_sink(grids);
    int rc = grid && !grids ? qs_err_set(&err, QS_E_OOM, "out of memory") : 0;
    if (!rc && grids) {
        snprintf(w->label, sizeof w->label, "export: quantizing tensor");
        rc = qs_recipe_apply(t, NULL, calib, 0, &sink, &w->calib_prog, &err);
    }
    snprintf(w->label, sizeof w->label, "export: writing tensor");
    qs_export_opts o = {-1, NULL, NULL, 0, grids, NULL};
    char warn[256] = "", file[600];
    if (!rc && format == EXPORT_GGUF) rc = qs_export_gguf(a->model, t, &o, path, &w->calib_prog, &err);
    else if (!rc)
        rc = qs_export_hf_quant(a->model, t, grids, format == EXPORT_AWQ ? QS_CKPT_AWQ : QS_CKPT_GPTQ, a->model->tok.bos,
                                a->model->tok.eos, path, warn, sizeof warn, &err);
    qs_export_grids_free(grids, t->n);
    snprintf(file, sizeof file, format == EXPORT_GGUF ? "%s" : "%s/model.safetensors", path);
    struct stat st;
    pthread_mutex_lock(&a->lock);
    if (!rc && stat(file, &st) == 0)
    {
        char note[96];
        snprintf(note, sizeof note, "%s%.70s", format == EXPORT_GGUF ? " (llama.cpp reads it)" : warn[0] ? "; " : " (with config.json)",
                 warn);
        snprintf(a->jobs.calib_status, sizeof a->jobs.calib_status, "exported %.120s: %.2f MiB%s", path, (double)st.st_size / 1048576.0,
                 note);
    }
    else snprintf(a->jobs.calib_status, sizeof a->jobs.calib_status, "export %.200s", err.code == QS_E_CANCELLED ? "cancelled" : err.msg);
    pthread_mutex_unlock(&a->lock);
}

enum { PPL_CHUNKS = 8, PPL_CTX = 128 };

/* `p`: the recipe so far applied to the quantized model, then its KLD records against the
 * original's (kept for the next run on the same text) */
static void ppl_compute(worker *w, const qs_qconfig *cfgs, const char *path)
{
    app *a = w->a;
    app_ppl p = {0};
    qs_err err = {0};
    pthread_mutex_lock(&a->lock);
    a->jobs.ppl.running = true;
    pthread_mutex_unlock(&a->lock);
    qs_ppl base = {0};
    qs_kld_stats st;
    size_t len = 0;
    char *text = NULL;
    int rc = ensure_models(w, &err);
    if (!rc && update_quantized(w, cfgs, err.msg, sizeof err.msg) < 0) rc = -1;
    if (!rc && strcmp(w->kbase_path, path)) {
        qs_kld_base_free(&w->kbase);
        w->kbase_path[0] = '\0';
        snprintf(w->label, sizeof w->label, "perplexity: original, chunk");
        if (!(text = qs_read_file(path, (size_t)1 << 30, &len, &err))) rc = -1;
        else if (!(rc = qs_kld_base_compute(w->base, w->vocab, text, len, PPL_CTX, PPL_CHUNKS, &w->calib_prog, &w->kbase,
                                             &base, &err)))
            snprintf(w->kbase_path, sizeof w->kbase_path, "%s", path);
        free(text);
    }
    snprintf(w->label, sizeof w->label, "perplexity: quantized, chunk");
    int32_t bos = qs_vocab_add_bos(w->vocab) ? qs_vocab_bos(w->vocab) : -1;
    if (!rc) rc = qs_kld_compare(w->quant, &w->kbase, bos, &w->calib_prog, &st, &err);
    if (!rc) {
        p = (app_ppl){false, true, st.ppl_base, st.ppl_q, st.kld_mean, st.same_top, w->kbase.n_chunk, PPL_CTX, ""};
    } else snprintf(p.error, sizeof p.error, "%.150s", err.code == QS_E_CANCELLED ? "cancelled" : err.msg);
    pthread_mutex_lock(&a->lock);
    a->jobs.ppl = p;
    pthread_mutex_unlock(&a->lock);
}

static void gen_compute(worker *w, const qs_qconfig *cfgs, const char *prompt)
{
    app *a = w->a;
    app_gen g = {0};
    qs_err err = {0};
    if (ensure_models(w, &err)) {
        snprintf(g.error, sizeof g.error, "generation unavailable: %.120s", err.msg);
        goto publish;
    }
    g.n_quantized = update_quantized(w, cfgs, g.error, sizeof g.error);
    int32_t *ids, ob[GEN_TOKENS], oq[GEN_TOKENS];
    int64_t n;
    if (g.n_quantized < 0 || qs_tokenize(w->vocab, prompt, strlen(prompt), true, false, &ids, &n, &err)) {
        if (!g.error[0]) snprintf(g.error, sizeof g.error, "%.150s", err.msg);
        goto publish;
    }
    int nb = n < GEN_CTX ? continue_greedy(w->base, w->vocab, ids, (int)n, ob, &w->gen_cancel, &err) : -1;
    int nq = nb >= 0 ? continue_greedy(w->quant, w->vocab, ids, (int)n, oq, &w->gen_cancel, &err) : -1;
    free(ids);
    if (nb < 0 || nq < 0) {
        snprintf(g.error, sizeof g.error, "%.150s", err.msg);
        goto publish;
    }
    int d = 0;
    while (d < nb && d < nq && ob[d] == oq[d]) d++;
    pieces(w->vocab, ob, nb, nb, g.base, sizeof g.base);
    pieces(w->vocab, oq, nq, nq, g.quant, sizeof g.quant);
    char tmp[1024];
    g.diverge_base = d < nb ? (int)pieces(w->vocab, ob, nb, d, tmp, sizeof tmp) : -1;
    g.diverge_quant = d < nq ? (int)pieces(w->vocab, oq, nq, d, tmp, sizeof tmp) : -1;
    g.ready = true;
publish:
    if (__atomic_load_n(&w->gen_cancel, __ATOMIC_RELAXED)) return; /* a tensor request went first: done again after it */
    g.enabled = true;
    snprintf(g.prompt, sizeof g.prompt, "%s", prompt);
    pthread_mutex_lock(&a->lock);
    a->jobs.gen = g;
    pthread_mutex_unlock(&a->lock);
}

/* r becomes the app's result (the tensor's measured error with it, unless a preview); returns the
 * previous one for reuse */
static app_result *publish(worker *w, int t, app_result *r)
{
    pthread_mutex_lock(&w->a->lock);
    app_result *old = w->a->res;
    w->a->res = r;
    if (r->ok && r->m.n && !r->sampled) {
        double ss = r->m.mse > 0 ? r->m.mse / (r->dist.std * r->dist.std + r->dist.mean * r->dist.mean) : 0;
        w->a->rec.rel_err[t] = (float)sqrt(ss);
    }
    pthread_mutex_unlock(&w->a->lock);
    return old;
}

/* the end of any job (with mu held): idle again, waiters woken, the UI told */
static void job_done(worker *w)
{
    w->running = false;
    pthread_cond_broadcast(&w->cv);
    notify(w);
}

/* the job's progress into the metrics pane (redrawn when the percent changes); the test hook
 * stops the job at hold_at until released */
static void tensor_report(void *ctx, int64_t done, int64_t total)
{
    worker *w = ctx;
    int pct = total > 0 ? (int)(done * 100 / total) : 0;
    pthread_mutex_lock(&w->a->lock);
    bool changed = w->a->jobs.job_pct != pct;
    w->a->jobs.job_pct = pct;
    pthread_mutex_unlock(&w->a->lock);
    if (changed) notify(w);
    pthread_mutex_lock(&w->mu);
    if (w->hold_at >= 0 && done >= w->hold_at && !w->pending) {
        w->held = true;
        pthread_cond_broadcast(&w->cv);
        while (w->hold_at >= 0 && !w->quit) pthread_cond_wait(&w->cv, &w->mu);
        w->held = false;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
}

static void set_job(worker *w, int t, int pct)
{
    pthread_mutex_lock(&w->a->lock);
    w->a->jobs.job_tensor = t, w->a->jobs.job_pct = pct;
    pthread_mutex_unlock(&w->a->lock);
}

/* a tensor request: a preview first on a big tensor (drawn at once), then the full result with
 * its progress in the pane; a newer request cancels either */
static void tensor_job_run(worker *w, int t, const qs_qconfig *cfg, const app_view_req *view, app_result **r)
{
    const qs_tensor *x = &w->a->model->tensors[t];
    int step = worker_preview_step(qs_tensor_nrows(x), x->ne[0]);
    bool newer = false;
    set_job(w, t, 0);
    notify(w);
    if (step > 1) {
        worker_compute(w->a, t, cfg, view, step, &w->cache, NULL, *r);
        pthread_mutex_lock(&w->mu);
        newer = w->pending;
        pthread_mutex_unlock(&w->mu);
        if (!newer) *r = publish(w, t, *r), notify(w);
    }
    if (!newer) { /* (a newer request replaces the full computation of this one) */
        worker_compute(w->a, t, cfg, view, 1, &w->cache, &w->tensor_prog, *r);
        set_job(w, -1, -1);
        if (!w->tensor_prog.cancel) *r = publish(w, t, *r);
    }
    set_job(w, -1, -1);
}

static void *run(void *arg)
{
    worker *w = arg;
    app_result *r = malloc(sizeof *r);
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->pending && !w->gen_pending && !w->long_pending && !w->quit) pthread_cond_wait(&w->cv, &w->mu);
        if (w->quit) break;
        if (!w->pending && w->long_pending) {
            unsigned job = w->long_pending & -w->long_pending; /* the lowest bit: calibration, scan, Pareto */
            char path[256];
            qs_qconfig cfg = w->scan_cfg;
            qs_recipe_table et = w->export_table;
            char epath[512];
            snprintf(epath, sizeof epath, "%s", w->export_path);
            if (job == JOB_EXPORT) memset(&w->export_table, 0, sizeof w->export_table);
            qs_qconfig *pcfg = job == JOB_PPL ? w->ppl_cfg : NULL;
            char ppath[256];
            snprintf(ppath, sizeof ppath, "%s", w->ppl_path);
            if (job == JOB_PPL) w->ppl_cfg = NULL;
            snprintf(path, sizeof path, "%s", w->calib_path);
            w->long_pending &= ~job;
            w->running = true;
            w->job_label = job == JOB_CALIB ? "calibrating: chunk" : job == JOB_SCAN ? "scan: tensor" : w->label;
            w->calib_prog = (qs_progress){0, 0, 0, job_report, w};
            pthread_mutex_unlock(&w->mu);
            if (job == JOB_CALIB) calib_compute(w, path);
            else if (job == JOB_SCAN) scan_compute(w, &cfg, path);
            else if (job == JOB_PARETO) pareto_compute(w, path);
            else if (job == JOB_EXPORT) export_compute(w, &et, epath, w->export_format);
            else if (pcfg) ppl_compute(w, pcfg, ppath);
            free(pcfg);
            if (job == JOB_EXPORT) qs_recipe_table_free(&et);
            pthread_mutex_lock(&w->mu);
            job_done(w);
            continue;
        }
        if (!w->pending) { /* a generation request (tensor requests go first, and cancel it) */
            int64_t nt = w->a->model->n_tensors;
            qs_qconfig *cfgs = malloc((size_t)(nt ? nt : 1) * sizeof *cfgs);
            char prompt[128];
            if (cfgs) memcpy(cfgs, w->gen_cfg, (size_t)nt * sizeof *cfgs);
            snprintf(prompt, sizeof prompt, "%s", w->gen_prompt);
            w->gen_pending = false;
            w->running = w->gen_running = true;
            w->gen_cancel = 0;
            pthread_mutex_unlock(&w->mu);
            if (cfgs) gen_compute(w, cfgs, prompt);
            free(cfgs);
            pthread_mutex_lock(&w->mu);
            if (w->gen_cancel) w->gen_pending = true; /* (with the newest configs) */
            w->gen_running = false;
            w->gen_cancel = 0;
            job_done(w);
            continue;
        }
        int t = w->tensor;
        qs_qconfig cfg = w->cfg;
        app_view_req view = w->view;
        w->pending = false;
        w->running = w->tensor_running = true;
        w->tensor_prog = (qs_progress){0, 0, 0, tensor_report, w};
        pthread_mutex_unlock(&w->mu);
        tensor_job_run(w, t, &cfg, &view, &r);
        pthread_mutex_lock(&w->mu);
        w->tensor_running = false;
        job_done(w);
    }
    pthread_mutex_unlock(&w->mu);
    free(r);
    tensor_cache_free(&w->cache);
    qs_llm_free(w->base);
    qs_llm_free(w->quant);
    qs_vocab_free(w->vocab);
    free(w->applied);
    free(w->applied_set);
    free(w->gen_cfg);
    return NULL;
}

worker *worker_start(app *a, int notify_fd)
{
    worker *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->a = a;
    w->fd = notify_fd;
    w->cache.t = -1;
    w->hold_at = -1;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->th, NULL, run, w) != 0) {
        free(w);
        return NULL;
    }
    return w;
}

void worker_submit(worker *w, int tensor, const qs_qconfig *cfg, const app_view_req *view)
{
    pthread_mutex_lock(&w->mu);
    w->tensor = tensor;
    w->cfg = *cfg;
    w->view = *view;
    if (w->tensor_running) w->tensor_prog.cancel = 1; /* the running one is out of date */
    if (w->gen_running) w->gen_cancel = 1;            /* the generation waits for this one */
    w->pending = true;
    w->tensor_seen = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void worker_submit_generation(worker *w, const qs_qconfig *cfgs, const char *prompt)
{
    int64_t nt = w->a->model->n_tensors;
    pthread_mutex_lock(&w->mu);
    if (!w->gen_cfg) w->gen_cfg = malloc((size_t)(nt ? nt : 1) * sizeof *w->gen_cfg);
    if (w->gen_cfg) {
        memcpy(w->gen_cfg, cfgs, (size_t)nt * sizeof *cfgs);
        snprintf(w->gen_prompt, sizeof w->gen_prompt, "%s", prompt);
        w->gen_pending = true;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
}

/* a long job on path (cfg: the scan's config, else NULL) */
static void submit_long(worker *w, unsigned job, const char *path, const qs_qconfig *cfg)
{
    pthread_mutex_lock(&w->mu);
    snprintf(w->calib_path, sizeof w->calib_path, "%s", path);
    if (cfg) w->scan_cfg = *cfg;
    w->long_pending |= job;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void worker_submit_calibration(worker *w, const char *path) { submit_long(w, JOB_CALIB, path, NULL); }
void worker_submit_scan(worker *w, const qs_qconfig *cfg, const char *path) { submit_long(w, JOB_SCAN, path, cfg); }
void worker_submit_pareto(worker *w, const char *path) { submit_long(w, JOB_PARETO, path, NULL); }

void worker_submit_ppl(worker *w, const qs_qconfig *cfgs, const char *path)
{
    int64_t n = w->a->model->n_tensors;
    qs_qconfig *c = malloc((size_t)(n ? n : 1) * sizeof *c);
    if (!c) return;
    memcpy(c, cfgs, (size_t)n * sizeof *c);
    pthread_mutex_lock(&w->mu);
    free(w->ppl_cfg);
    w->ppl_cfg = c;
    snprintf(w->ppl_path, sizeof w->ppl_path, "%s", path);
    w->long_pending |= JOB_PPL;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void worker_submit_export(worker *w, qs_recipe_table *t, const char *path, int format)
{
    pthread_mutex_lock(&w->mu);
    w->export_format = format;
    qs_recipe_table_free(&w->export_table);
    w->export_table = *t;
    memset(t, 0, sizeof *t);
    snprintf(w->export_path, sizeof w->export_path, "%s", path);
    w->long_pending |= JOB_EXPORT;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void worker_cancel(worker *w)
{
    __atomic_store_n(&w->calib_prog.cancel, 1, __ATOMIC_RELAXED);
}

bool worker_idle(worker *w)
{
    pthread_mutex_lock(&w->mu);
    bool idle = !w->pending && !w->gen_pending && !w->long_pending && !w->running;
    pthread_mutex_unlock(&w->mu);
    return idle;
}

void worker_wait_idle(worker *w)
{
    pthread_mutex_lock(&w->mu);
    while ((w->pending || w->gen_pending || w->long_pending || w->running) && !w->held) pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

void worker_hold(worker *w, int step)
{
    pthread_mutex_lock(&w->mu);
    w->hold_at = step;
    pthread_cond_broadcast(&w->cv);
    while (step < 0 && w->held) pthread_cond_wait(&w->cv, &w->mu); /* released: it runs on */
    pthread_mutex_unlock(&w->mu);
}

void worker_stop(worker *w)
{
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->quit = true;
    w->hold_at = -1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->th, NULL);
    qs_recipe_table_free(&w->export_table);
    free(w->ppl_cfg);
    qs_kld_base_free(&w->kbase);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}
