/* binary16 / bfloat16 conversions against the hardware-independent references:
 * GCC's _Float16 (correctly rounded, IEEE) and nearest-value search in double. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "core/util/fp16.h"

static uint32_t bits_of(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float float_of(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

Test(fp16, widening_is_exact_and_round_trips)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = qs_f16_to_f32((uint16_t)h);
        _Float16 ref;
        uint16_t hh = (uint16_t)h;
        memcpy(&ref, &hh, 2);
        if (isnan((float)ref)) {
            cr_assert(isnan(f), "0x%04x should widen to NaN", h);
            continue;
        }
        cr_assert_eq(bits_of(f), bits_of((float)ref), "widening 0x%04x", h);
        cr_assert_eq(qs_f32_to_f16(f), h, "round trip of 0x%04x", h);
    }
}

Test(fp16, narrowing_matches_ieee_rounding)
{
    /* every 251st float bit pattern: ~17M values over the whole range, NaN excluded */
    for (uint64_t u = 0; u <= 0xffffffffull; u += 251) {
        float f = float_of((uint32_t)u);
        if (isnan(f)) continue;
        _Float16 ref = (_Float16)f;
        uint16_t rb;
        memcpy(&rb, &ref, 2);
        cr_assert_eq(qs_f32_to_f16(f), rb, "f16(%a)", (double)f);
    }
}

Test(fp16, spec_anchor_values)
{
    cr_assert_eq(qs_f32_to_f16(65504.0f), 0x7bff);
    cr_assert_eq(qs_f32_to_f16(65519.99f), 0x7bff);
    cr_assert_eq(qs_f32_to_f16(65520.0f), 0x7c00);
    cr_assert_eq(qs_f32_to_f16(-65520.0f), 0xfc00);
    cr_assert_eq(qs_f32_to_f16(ldexpf(1, -25)), 0x0000, "2^-25 ties to even zero");
    cr_assert_eq(qs_f32_to_f16(ldexpf(1.5f, -25)), 0x0001);
    cr_assert_eq(qs_f32_to_f16(ldexpf(1, -24)), 0x0001);
    cr_assert_eq(qs_f32_to_f16(ldexpf(1, -14)), 0x0400);
    cr_assert_eq(qs_f32_to_f16(-0.0f), 0x8000);
    cr_assert_eq(qs_f32_to_f16(NAN), 0x7e00);
    cr_assert_eq(qs_f32_to_f16(-NAN), 0xfe00);
    cr_assert_eq(qs_f32_to_f16(INFINITY), 0x7c00);
}

/* nearest bf16 by search in double, ties to even mantissa */
static uint16_t bf16_reference(float f)
{
    uint32_t u = bits_of(f);
    uint16_t lo = (uint16_t)(u >> 16), hi = (uint16_t)(lo + 1);
    double x = f, a = qs_bf16_to_f32(lo), b = qs_bf16_to_f32(hi);
    double da = fabs(x - a), db = isinf(b) ? INFINITY : fabs(b - x);
    if (isinf(b) && (u & 0x7fffffff) >= 0x7f7f8000u) return hi; /* rounds up into infinity */
    if (da < db) return lo;
    if (db < da) return hi;
    return (lo & 1) ? hi : lo;
}

Test(fp16, bf16_rounds_to_nearest_even)
{
    for (uint64_t u = 0; u <= 0xffffffffull; u += 997) {
        float f = float_of((uint32_t)u);
        if (isnan(f) || isinf(f)) continue;
        cr_assert_eq(qs_f32_to_bf16(f), bf16_reference(f), "bf16(%a)", (double)f);
    }
    cr_assert_eq(qs_f32_to_bf16(float_of(0x7fc00001u)) & 0x7fc0, 0x7fc0, "NaN stays NaN");
    cr_assert_eq(qs_f32_to_bf16(float_of(0xff800001u)), 0xffc0, "signalling NaN quieted, sign kept");
}
