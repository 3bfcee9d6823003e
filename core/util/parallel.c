#include "core/util/parallel.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

int qs_cpu_count(void)
{
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    return c > 0 ? (int)c : 1;
}

typedef struct pool_job {
    int64_t n, chunk, next;
    qs_pool_fn fn;
    void *ctx;
} pool_job;

/* one thread's share of a loop: chunks taken in turn until none is left */
static void pool_run(pool_job *j, int thread)
{
    for (;;) {
        int64_t i0 = __atomic_fetch_add(&j->next, j->chunk, __ATOMIC_RELAXED);
        if (i0 >= j->n) break;
        j->fn(j->ctx, i0, i0 + j->chunk < j->n ? i0 + j->chunk : j->n, thread);
    }
}

/* qs_parallel_for's function called through a pool job (its threads need no index) */
typedef struct range_call {
    qs_range_fn fn;
    void *ctx;
} range_call;

static void call_range(void *ctx, int64_t i0, int64_t i1, int thread)
{
    (void)thread;
    const range_call *c = ctx;
    c->fn(c->ctx, i0, i1);
}

static void *range_worker(void *arg)
{
    pool_run(arg, 0);
    return NULL;
}

void qs_parallel_for(int64_t n, int64_t chunk, int n_threads, qs_range_fn fn, void *ctx)
{
    if (chunk < 1) chunk = 1;
    if (n_threads <= 0) n_threads = qs_cpu_count();
    if (n_threads > 64) n_threads = 64;
    if ((int64_t)n_threads > (n + chunk - 1) / chunk) n_threads = (int)((n + chunk - 1) / chunk);
    range_call call = {fn, ctx};
    pool_job job = {n, chunk, 0, call_range, &call};
    pthread_t th[64];
    int started = 0;
    for (int i = 1; i < n_threads; i++)
        if (pthread_create(&th[started], NULL, range_worker, &job) == 0) started++;
    pool_run(&job, 0);
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
}

typedef struct pool_thread {
    struct qs_pool *pool;
    int index;                  /* 1 … started (0 is the caller) */
} pool_thread;

struct qs_pool {
    pthread_t th[64];
    pool_thread args[64];
    int started;
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    uint64_t gen;               /* loop number; workers run a loop when it moves */
    int busy;                   /* workers still in the current loop */
    bool quit;
    pool_job job;
};

static void *pool_worker(void *arg)
{
    const pool_thread *me = arg;
    qs_pool *p = me->pool;
    uint64_t seen = 0;
    for (;;) {
        /* spin a little (loops come back to back in a forward pass), then sleep */
        for (int i = 0; i < 2000 && __atomic_load_n(&p->gen, __ATOMIC_ACQUIRE) == seen; i++) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        }
        pthread_mutex_lock(&p->mu);
        while (p->gen == seen && !p->quit) pthread_cond_wait(&p->wake, &p->mu);
        if (p->quit) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        pool_run(&p->job, me->index);
        pthread_mutex_lock(&p->mu);
        if (--p->busy == 0) pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
    }
}

qs_pool *qs_pool_new(int n_threads)
{
    if (n_threads <= 0) n_threads = qs_cpu_count();
    if (n_threads > 64) n_threads = 64;
    qs_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    for (int i = 1; i < n_threads; i++) {
        p->args[p->started] = (pool_thread){p, p->started + 1};
        if (pthread_create(&p->th[p->started], NULL, pool_worker, &p->args[p->started]) == 0) p->started++;
    }
    return p;
}

void qs_pool_free(qs_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->quit = true;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->started; i++) pthread_join(p->th[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p);
}

int qs_pool_threads(const qs_pool *p) { return p ? p->started + 1 : 1; }

void qs_pool_for(qs_pool *p, int64_t n, int64_t chunk, qs_pool_fn fn, void *ctx)
{
    if (chunk < 1) chunk = 1;
    if (!p || !p->started || n <= chunk) {
        if (n > 0) fn(ctx, 0, n, 0); /* one chunk: no hand-off */
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->job = (pool_job){n, chunk, 0, fn, ctx};
    p->busy = p->started;
    __atomic_add_fetch(&p->gen, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    pool_run(&p->job, 0);
    pthread_mutex_lock(&p->mu);
    while (p->busy > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
