/* tui/worker.c — computations for the selected tensor, off the UI thread. */
#include "tui/worker.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ggml_types.h"

struct worker {
    app *a;
    int fd;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool pending, running, quit;
    int tensor;
    qs_qconfig cfg;
    float *cache;          /* the floats of the last tensor read */
    int cache_t;
};

static void fill_explain(const qs_qresult *q, const float *w, app_result *r)
{
    int64_t n = q->group_len ? q->group_len : q->cols;
    r->ex_n = (int)(n < 8 ? n : 8);
    float mn = w[0], mx = w[0];
    for (int64_t i = 0; i < n && i < q->rows * q->cols; i++) mn = fminf(mn, w[i]), mx = fmaxf(mx, w[i]);
    r->ex_min = mn, r->ex_max = mx;
    for (int i = 0; i < r->ex_n; i++) {
        r->ex_w[i] = w[i], r->ex_deq[i] = q->deq[i];
        switch (q->cfg.method->kind) {
        case QS_METHOD_RTN: r->ex_code[i] = q->cfg.asym ? q->data[i] : (int8_t)q->data[i]; break;
        case QS_METHOD_NF4: case QS_METHOD_FP4: r->ex_code[i] = i % 2 ? q->data[i / 2] & 15 : q->data[i / 2] >> 4; break;
        default: r->ex_code[i] = -999;
        }
    }
    r->ex_scale = q->scales ? q->scales[0] : 0;
    r->ex_zero = q->zeros ? q->zeros[0] : 0;
}

static void fill_channels(const float *w, const float *deq, int64_t rows, int64_t cols, app_result *r)
{
    qs_channel_stats *cs = malloc((size_t)rows * sizeof *cs);
    if (!cs) return;
    qs_channel_stats_compute(w, rows, cols, 0, cs);
    int n = 0;
    for (int64_t i = 0; i < rows; i++) { /* keep the 8 largest max/median, descending */
        int pos = n < 8 ? n++ : 8;
        while (pos > 0 && cs[i].max_over_median > r->ch[pos - 1].max_over_median) {
            if (pos < 8) r->ch[pos] = r->ch[pos - 1], r->ch_row[pos] = r->ch_row[pos - 1];
            pos--;
        }
        if (pos < 8) r->ch[pos] = cs[i], r->ch_row[pos] = (int)i;
    }
    for (int k = 0; k < n; k++) {
        double se = 0;
        for (int64_t c = 0; c < cols; c++) {
            double e = (double)deq[r->ch_row[k] * cols + c] - w[r->ch_row[k] * cols + c];
            se += e * e;
        }
        r->ch_err[k] = (float)sqrt(se / (double)cols);
    }
    for (int k = n; k < 8; k++) r->ch_row[k] = -1;
    free(cs);
}

void worker_compute(const app *a, int t, const qs_qconfig *cfg, float **cache, int *cache_t, app_result *r)
{
    memset(r, 0, sizeof *r);
    r->tensor = t;
    r->cfg = *cfg;
    r->ggml_type = -1;
    const qs_tensor *x = &a->model->tensors[t];
    int64_t rows = qs_tensor_nrows(x), cols = x->ne[0];
    r->rows = rows, r->cols = cols;
    qs_err err = {0};
    if (*cache_t != t) {
        free(*cache);
        *cache = malloc((size_t)(rows * cols) * sizeof **cache);
        *cache_t = -1;
        if (!*cache || qs_tensor_read_rows(x, 0, rows, *cache, &err)) {
            snprintf(r->error, sizeof r->error, "%s", *cache ? err.msg : "out of memory");
            return;
        }
        *cache_t = t;
    }
    const float *w = *cache;
    qs_dist_compute(w, rows * cols, 3.0, &r->dist);
    double am = r->dist.absmax > 0 ? r->dist.absmax : 1;
    r->hist = (qs_hist_spec){APP_HIST_BINS, -am, am, false, 1};
    qs_hist_compute(&r->hist, w, rows * cols, r->hist_orig, NULL, NULL);
    r->tile_rows = (int)(rows < APP_TILE_ROWS ? rows : APP_TILE_ROWS);
    r->tile_cols = (int)(cols < APP_TILE_COLS ? cols : APP_TILE_COLS);
    qs_tilemap(w, rows, cols, r->tile_rows, r->tile_cols, QS_TILE_MAX_ABS, r->tiles_w);
    qs_qresult q;
    if (qs_quant_run(cfg, w, rows, cols, NULL, NULL, 0, &q, &err)) {
        snprintf(r->error, sizeof r->error, "%s", err.msg);
        return;
    }
    r->ok = true;
    qs_stats_compare(w, q.deq, rows * cols, &r->m);
    r->bpw = q.bpw;
    r->bytes = (int64_t)(q.bpw * (double)(rows * cols) / 8.0 + 0.5);
    r->n_clipped = q.n_clipped;
    r->ggml_type = q.ggml_type;
    snprintf(r->report, sizeof r->report, "%s", q.report);
    qs_hist_compute(&r->hist, q.deq, rows * cols, r->hist_deq, NULL, NULL);
    r->n_levels = qs_qresult_levels(&q, 0, 0, r->levels);
    float *e = malloc((size_t)(rows * cols) * sizeof *e);
    if (e) {
        for (int64_t i = 0; i < rows * cols; i++) e[i] = q.deq[i] - w[i];
        qs_tilemap(e, rows, cols, r->tile_rows, r->tile_cols, QS_TILE_MAX_ABS, r->tiles_err);
        free(e);
    }
    fill_explain(&q, w, r);
    fill_channels(w, q.deq, rows, cols, r);
    qs_qresult_free(&q);
}

static void *run(void *arg)
{
    worker *w = arg;
    app_result *r = malloc(sizeof *r);
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->pending && !w->quit) pthread_cond_wait(&w->cv, &w->mu);
        if (w->quit) break;
        int t = w->tensor;
        qs_qconfig cfg = w->cfg;
        w->pending = false;
        w->running = true;
        pthread_mutex_unlock(&w->mu);
        worker_compute(w->a, t, &cfg, &w->cache, &w->cache_t, r);
        pthread_mutex_lock(&w->a->lock);
        app_result *old = w->a->res;
        w->a->res = r;
        if (r->ok && r->m.n) {
            double ss = r->m.mse > 0 ? r->m.mse / (r->dist.std * r->dist.std + r->dist.mean * r->dist.mean) : 0;
            w->a->rel_err[t] = (float)sqrt(ss);
        }
        pthread_mutex_unlock(&w->a->lock);
        r = old;
        pthread_mutex_lock(&w->mu);
        w->running = false;
        pthread_cond_broadcast(&w->cv);
        char one = 1;
        if (write(w->fd, &one, 1) < 0) { /* the UI will still redraw on its next event */ }
    }
    pthread_mutex_unlock(&w->mu);
    free(r);
    free(w->cache);
    return NULL;
}

worker *worker_start(app *a, int notify_fd)
{
    worker *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->a = a;
    w->fd = notify_fd;
    w->cache_t = -1;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->th, NULL, run, w) != 0) {
        free(w);
        return NULL;
    }
    return w;
}

void worker_submit(worker *w, int tensor, const qs_qconfig *cfg)
{
    pthread_mutex_lock(&w->mu);
    w->tensor = tensor;
    w->cfg = *cfg;
    w->pending = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

bool worker_idle(worker *w)
{
    pthread_mutex_lock(&w->mu);
    bool idle = !w->pending && !w->running;
    pthread_mutex_unlock(&w->mu);
    return idle;
}

void worker_wait_idle(worker *w)
{
    pthread_mutex_lock(&w->mu);
    while (w->pending || w->running) pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

void worker_stop(worker *w)
{
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->quit = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->th, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}
