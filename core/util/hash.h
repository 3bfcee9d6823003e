/* core/util/hash.h — FNV-1a, 64 bits: for hash tables, the recipe's tensor-table identity and the
 * calibration cache key (not for security). qs_fnv1a_u64 folds a whole word in one step. */
#ifndef QS_HASH_H
#define QS_HASH_H

#include <stddef.h>
#include <stdint.h>

#define QS_FNV1A_INIT 1469598103934665603ull

static inline uint64_t qs_fnv1a_bytes(uint64_t h, const void *data, size_t n)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static inline uint64_t qs_fnv1a_u64(uint64_t h, uint64_t v) { return (h ^ v) * 1099511628211ull; }

#endif
