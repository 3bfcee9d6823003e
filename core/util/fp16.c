#include "core/util/fp16.h"

uint16_t qs_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) /* NaN */
        return sign | 0x7e00;
    if (ax >= 0x477ff000u) /* >= 65520 rounds to infinity */
        return sign | 0x7c00;
    if (ax < 0x38800000u) { /* below 2^-14: subnormal or zero */
        if (ax < 0x33000000u) /* < 2^-25 */
            return sign;
        if (ax == 0x33000000u) /* exactly 2^-25: tie to even (0) */
            return sign;
        uint32_t e = ax >> 23;               /* 102..112 */
        uint32_t m = (ax & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e;            /* value = m * 2^(e-150); unit 2^-24 */
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1)))
            q++;
        return sign | (uint16_t)q;
    }
    /* normal: rebias exponent, round mantissa from 23 to 10 bits */
    uint32_t r = ax - 0x38000000u;           /* exponent - 112 */
    uint32_t q = r >> 13;
    uint32_t rem = r & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (q & 1)))
        q++;
    return sign | (uint16_t)q;
}

uint16_t qs_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x0040);
    return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}
