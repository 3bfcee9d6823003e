/* core/parallel.h — data parallelism for row-wise work: fn(ctx, i0, i1) is called on
 * disjoint chunks of [0, n) by up to n_threads threads (<= 0: all cores). Results must not
 * depend on the chunking (every caller writes only its own rows). */
#ifndef QS_PARALLEL_H
#define QS_PARALLEL_H

#include <stdint.h>

typedef void (*qs_range_fn)(void *ctx, int64_t i0, int64_t i1);

int qs_cpu_count(void);
void qs_parallel_for(int64_t n, int64_t chunk, int n_threads, qs_range_fn fn, void *ctx);

#endif
