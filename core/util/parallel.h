/* core/util/parallel.h — data parallelism for row-wise work: fn(ctx, i0, i1) is called on
 * disjoint chunks of [0, n) by up to n_threads threads (<= 0: all cores). Results must not
 * depend on the chunking (every caller writes only its own rows). */
#ifndef QS_PARALLEL_H
#define QS_PARALLEL_H

#include <stdint.h>

typedef void (*qs_range_fn)(void *ctx, int64_t i0, int64_t i1);

int qs_cpu_count(void);
void qs_parallel_for(int64_t n, int64_t chunk, int n_threads, qs_range_fn fn, void *ctx);

/* A pool of threads kept for many short parallel loops (the forward pass runs hundreds a token):
 * qs_pool_for is qs_parallel_for without creating threads each call, and it tells fn which of the
 * qs_pool_threads threads runs the chunk (0 is the caller), so callers can give each thread its
 * own scratch. The calling thread takes part; workers spin briefly, then sleep. One loop at a
 * time per pool (the caller's thread owns it). */
typedef struct qs_pool qs_pool;
typedef void (*qs_pool_fn)(void *ctx, int64_t i0, int64_t i1, int thread);
qs_pool *qs_pool_new(int n_threads);
void qs_pool_free(qs_pool *p);
int qs_pool_threads(const qs_pool *p);
void qs_pool_for(qs_pool *p, int64_t n, int64_t chunk, qs_pool_fn fn, void *ctx);

#endif
