/* core/util/progress.h — progress and cancellation for long work (design.md "Jobs and threads").
 * A long core function takes a qs_progress * (NULL allowed): it sets total, advances done,
 * calls report (if any) now and then, and stops with QS_E_CANCELLED once cancel is set. */
#ifndef QS_PROGRESS_H
#define QS_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct qs_progress {
    int64_t done, total;
    volatile int cancel;
    void (*report)(void *ctx, int64_t done, int64_t total);
    void *ctx;
} qs_progress;

/* Records progress; returns false when the work should stop (cancelled). */
static inline bool qs_progress_step(qs_progress *p, int64_t done, int64_t total)
{
    if (!p) return true;
    __atomic_store_n(&p->done, done, __ATOMIC_RELAXED);
    __atomic_store_n(&p->total, total, __ATOMIC_RELAXED);
    if (p->report) p->report(p->ctx, done, total);
    return !__atomic_load_n(&p->cancel, __ATOMIC_RELAXED);
}

#endif
