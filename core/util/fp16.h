/* core/util/fp16.h — binary16 and bfloat16 conversions exactly as ggml performs them
 * (spec/ggml-types.md §3.1, §3.2): round to nearest even, correct subnormals, overflow to
 * infinity, NaN quieted with the sign kept. Widening is exact. */
#ifndef QS_FP16_H
#define QS_FP16_H

#include <stdint.h>
#include <string.h>

uint16_t qs_f32_to_f16(float f);
uint16_t qs_f32_to_bf16(float f);

static inline float qs_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else { /* subnormal: normalise */
        uint32_t e = 113;
        while (!(man & 0x400)) { man <<= 1; e--; }
        bits = sign | (e << 23) | ((man & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline float qs_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

#endif
