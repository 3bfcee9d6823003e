#include "parallel.h"

#include <pthread.h>
#include <unistd.h>

int qs_cpu_count(void)
{
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    return c > 0 ? (int)c : 1;
}

typedef struct pf_job {
    int64_t n, chunk, next;
    qs_range_fn fn;
    void *ctx;
} pf_job;

static void *pf_worker(void *arg)
{
    pf_job *j = arg;
    for (;;) {
        int64_t i0 = __atomic_fetch_add(&j->next, j->chunk, __ATOMIC_RELAXED);
        if (i0 >= j->n) break;
        j->fn(j->ctx, i0, i0 + j->chunk < j->n ? i0 + j->chunk : j->n);
    }
    return NULL;
}

void qs_parallel_for(int64_t n, int64_t chunk, int n_threads, qs_range_fn fn, void *ctx)
{
    if (chunk < 1) chunk = 1;
    if (n_threads <= 0) n_threads = qs_cpu_count();
    if (n_threads > 64) n_threads = 64;
    if ((int64_t)n_threads > (n + chunk - 1) / chunk) n_threads = (int)((n + chunk - 1) / chunk);
    pf_job job = {n, chunk, 0, fn, ctx};
    pthread_t th[64];
    int started = 0;
    for (int i = 1; i < n_threads; i++)
        if (pthread_create(&th[started], NULL, pf_worker, &job) == 0) started++;
    pf_worker(&job);
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
}
