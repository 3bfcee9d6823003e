/* tui/worker.c — the worker thread: its loop, queue and cancellation, and the tensor job's
 * steps (preview, full result, publishing); the tensor's computation is in tui/tensor_job.c,
 * the other job kinds are in tui/jobs.c. */
#include "tui/worker.h"

#include "tui/jobs.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* one byte on the pipe: the UI redraws (if the write fails it redraws on its next event anyway) */
void worker_notify(worker *w)
{
    char one = 1;
    if (write(w->fd, &one, 1) < 0) { /* nothing to do */ }
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
    worker_notify(w);
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
    if (changed) worker_notify(w);
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
    worker_notify(w);
    if (step > 1) {
        worker_compute(w->a, t, cfg, view, step, &w->cache, NULL, *r);
        pthread_mutex_lock(&w->mu);
        newer = w->pending;
        pthread_mutex_unlock(&w->mu);
        if (!newer) *r = publish(w, t, *r), worker_notify(w);
    }
    if (!newer) { /* (a newer request replaces the full computation of this one) */
        worker_compute(w->a, t, cfg, view, 1, &w->cache, &w->tensor_prog, *r);
        set_job(w, -1, -1);
        if (!w->tensor_prog.cancel) *r = publish(w, t, *r);
    }
    set_job(w, -1, -1);
}

/* the tensor request: taken off the queue; a newer one cancels it */
static void tensor_start(worker *w, job_args *j)
{
    j->tensor = w->tensor;
    j->cfg = w->cfg;
    j->view = w->view;
    w->pending = false;
    w->tensor_running = true;
    w->tensor_prog = (qs_progress){0, 0, 0, tensor_report, w};
}
static void tensor_run(worker *w, job_args *j) { tensor_job_run(w, j->tensor, &j->cfg, &j->view, &w->result); }
static void tensor_finish(worker *w, job_args *j)
{
    (void)j;
    w->tensor_running = false;
}
static const job_ops tensor_job_ops = {"tensor", tensor_start, tensor_run, tensor_finish};

static const job_ops *const job_table[JOB_KINDS] = {
    [JOB_TENSOR] = &tensor_job_ops, [JOB_CALIB] = &calib_job_ops, [JOB_SCAN] = &scan_job_ops, [JOB_PARETO] = &pareto_job_ops,
    [JOB_EXPORT] = &export_job_ops, [JOB_PPL] = &ppl_job_ops,     [JOB_GEN] = &gen_job_ops,
};

/* the kind of the next job (mu held; something is queued) */
static job_kind next_job(const worker *w)
{
    if (w->pending) return JOB_TENSOR;
    for (int k = JOB_CALIB; k < JOB_GEN; k++)
        if (w->long_pending & (1u << k)) return (job_kind)k;
    return JOB_GEN;
}

static void *run(void *arg)
{
    worker *w = arg;
    w->result = malloc(sizeof *w->result);
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->pending && !w->gen_pending && !w->long_pending && !w->quit) pthread_cond_wait(&w->cv, &w->mu);
        if (w->quit) break;
        const job_ops *ops = job_table[next_job(w)];
        job_args j = {0};
        w->running = true;
        ops->start(w, &j);
        pthread_mutex_unlock(&w->mu);
        ops->run(w, &j);
        pthread_mutex_lock(&w->mu);
        ops->finish(w, &j);
        job_done(w);
    }
    pthread_mutex_unlock(&w->mu);
    free(w->result);
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
static void submit_long(worker *w, job_kind job, const char *path, const qs_qconfig *cfg)
{
    pthread_mutex_lock(&w->mu);
    snprintf(w->calib_path, sizeof w->calib_path, "%s", path);
    if (cfg) w->scan_cfg = *cfg;
    w->long_pending |= 1u << job;
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
    w->long_pending |= 1u << JOB_PPL;
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
    w->long_pending |= 1u << JOB_EXPORT;
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
