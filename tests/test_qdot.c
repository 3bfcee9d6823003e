/* qdot: quantized dot products (core/qdot.h) — every weight type's kernel against a double-precision
 * dot of the dequantized weights with the rounded activations (qs_qdot_round_act, + the Q8_1 sum
 * error for Q4_1/Q5_1); qs_qdot_dequantize_rows bit-identical to qs_dequantize_row; the x86
 * activation quantizers on hand-computed blocks (round half to even, id = 127/amax, Q8_1's s);
 * every ISA variant the CPU runs bit-identical to the generic one. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util/fp16.h"
#include "core/quant/ggml_quants.h"
#include "core/quant/ggml_types.h"
#include "core/quant/qdot.h"

static const int wtypes[] = {QS_TYPE_F32, QS_TYPE_F16, QS_TYPE_BF16, QS_TYPE_Q4_0, QS_TYPE_Q4_1,
                             QS_TYPE_Q5_0, QS_TYPE_Q5_1, QS_TYPE_Q8_0, QS_TYPE_Q2_K, QS_TYPE_Q3_K,
                             QS_TYPE_Q4_K, QS_TYPE_Q5_K, QS_TYPE_Q6_K, QS_TYPE_IQ4_NL, QS_TYPE_IQ4_XS};
#define N_WTYPES (int)(sizeof wtypes / sizeof *wtypes)

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next_u64(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}
static double unif(void) { return (double)(next_u64() >> 11) / 9007199254740992.0; }
static double gauss(void)
{
    double u = unif() + 1e-300, v = unif();
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

/* distribution k: 0 gaussian, 1 heavy-tailed with outliers, 2 gaussian with zero blocks and
 * constant runs, 3 positive-shifted (asymmetric), 4 tiny magnitudes */
static void fill(float *x, int64_t n, int k)
{
    for (int64_t i = 0; i < n; i++) {
        double g = gauss();
        switch (k) {
        case 0: x[i] = (float)(0.02 * g); break;
        case 1: x[i] = (float)(0.02 * g / sqrt(0.05 + unif())) * ((next_u64() % 97) == 0 ? 30.f : 1.f); break;
        case 2: x[i] = ((i / 32) % 5 == 1) ? 0.f : ((i / 32) % 5 == 3) ? 0.75f : (float)g; break;
        case 3: x[i] = (float)(1.5 + 0.3 * g); break;
        default: x[i] = (float)(1e-3 * g); break;
        }
    }
}

static void quantize_weights(int type, const float *x, void *w, int64_t rows, int64_t n)
{
    qs_ggml_quantize_rows_raw(type, x, w, rows, n, NULL, 1);
}

/* ---- activation quantizers: hand-computed blocks ---- */

Test(qdot, act_types)
{
    cr_assert_eq(qs_qdot_act_type(QS_TYPE_Q4_0, 64), QS_TYPE_Q8_0);
    cr_assert_eq(qs_qdot_act_type(QS_TYPE_Q5_0, 64), QS_TYPE_Q8_0);
    cr_assert_eq(qs_qdot_act_type(QS_TYPE_Q8_0, 64), QS_TYPE_Q8_0);
    cr_assert_eq(qs_qdot_act_type(QS_TYPE_IQ4_NL, 64), QS_TYPE_Q8_0);
    cr_assert_eq(qs_qdot_act_type(QS_TYPE_Q4_1, 64), QS_TYPE_Q8_1);
    cr_assert_eq(qs_qdot_act_type(QS_TYPE_Q5_1, 64), QS_TYPE_Q8_1);
    int kt[] = {QS_TYPE_Q2_K, QS_TYPE_Q3_K, QS_TYPE_Q4_K, QS_TYPE_Q5_K, QS_TYPE_Q6_K, QS_TYPE_IQ4_XS};
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(qs_qdot_act_type(kt[i], 512), QS_TYPE_Q8_K);
        cr_assert_eq(qs_qdot_act_type(kt[i], 32), -1, "K-quant with 32 columns");
    }
    cr_assert_eq(qs_qdot_act_type(QS_TYPE_F16, 7), QS_TYPE_F16);
    cr_assert_eq(qs_qdot_act_type(QS_TYPE_BF16, 7), QS_TYPE_BF16);
    cr_assert_eq(qs_qdot_act_type(QS_TYPE_F32, 7), QS_TYPE_F32);
    cr_assert_eq(qs_qdot_act_type(QS_TYPE_Q4_0, 48), -1);
    cr_assert_eq(qs_qdot_act_type(QS_TYPE_Q8_K, 256), -1);
    cr_assert_eq(qs_qdot_act_type(QS_TYPE_IQ2_XXS, 256), -1);
    cr_assert_eq(qs_qdot_act_type(QS_TYPE_Q4_0, 0), -1);
}

Test(qdot, q8_0_round_half_even)
{
    /* amax = 127: d = 1, id = 1; x·id = 2.5 → 2 (roundf: 3), 3.5 → 4, −2.5 → −2, 0.5 → 0, −1.5 → −2 */
    float x[32] = {127.f, 2.5f, 3.5f, -2.5f, 0.5f, -1.5f, 1.4999999f, -126.5f};
    qs_block_q8_0 b;
    qs_qdot_quantize_act(QS_TYPE_Q8_0, x, &b, 32);
    int8_t want[8] = {127, 2, 4, -2, 0, -2, 1, -126};
    cr_assert_eq(b.d, 0x3c00, "d = f16(1) = 0x3c00, got %#x", b.d);
    for (int j = 0; j < 8; j++) cr_assert_eq(b.qs[j], want[j], "q[%d] = %d, want %d", j, b.qs[j], want[j]);
    for (int j = 8; j < 32; j++) cr_assert_eq(b.qs[j], 0);
    /* the reference quantizer (roundf) differs on exactly these ties: the test tells them apart */
    qs_block_q8_0 r;
    qs_q8_0_quantize_row(x, &r, 32, NULL);
    cr_assert_eq(r.qs[1], 3);
    cr_assert_eq(r.qs[7], -127);
    float xo[32];
    qs_qdot_round_act(QS_TYPE_Q8_0, x, xo, NULL, 32);
    for (int j = 0; j < 8; j++) cr_assert_eq(xo[j], (float)want[j]);
}

Test(qdot, q8_0_id_is_127_over_amax)
{
    /* amax = 0x1.028f5cp+0 (1.01f): x = -0x1.ff0324p-1 gives -126 with id = 127/amax but -125 with
     * id = 1/(amax/127) (found by search; both round the same way under roundf and rne) */
    float x[32] = {0};
    x[0] = 0x1.028f5cp+0f;
    x[5] = -0x1.ff0324p-1f;
    x[9] = -0x1.018ac4p+0f; /* -127 vs -126 */
    qs_block_q8_0 b;
    qs_qdot_quantize_act(QS_TYPE_Q8_0, x, &b, 32);
    cr_assert_eq(b.qs[0], 127);
    cr_assert_eq(b.qs[5], -126, "got %d", b.qs[5]);
    cr_assert_eq(b.qs[9], -127, "got %d", b.qs[9]);
    cr_assert_eq(b.d, 0x2012, "d = f16(1.01f/127) = 0x2012, got %#x", b.d);
    float xo[32];
    qs_qdot_round_act(QS_TYPE_Q8_0, x, xo, NULL, 32);
    cr_assert_eq(xo[5], qs_f16_to_f32(0x2012) * -126.f);
    /* an all-zero block: d = 0, q = 0 */
    float z[32] = {0};
    qs_qdot_quantize_act(QS_TYPE_Q8_0, z, &b, 32);
    cr_assert_eq(b.d, 0);
    for (int j = 0; j < 32; j++) cr_assert_eq(b.qs[j], 0);
}

Test(qdot, q8_1_sum)
{
    /* amax = 1.01f, q = {127, -124}: Σq = 3; s = f16(d32·3) = 0x261c with the binary32 d (with the
     * f16-rounded d it would be 0x261b) */
    float x[64] = {0};
    x[0] = 1.01f;
    float d32 = 1.01f / 127.f;
    x[1] = -124.f * d32;
    /* block 1: amax = 127 (d = 1), Σq = 2049 → f16 rounds to 2048 (tie to even): s_err = -1 */
    x[32] = 127.f;
    for (int j = 33; j < 49; j++) x[j] = 120.f; /* 127 + 16·120 = 2047 */
    x[49] = 2.f; /* 2049 */
    qs_block_q8_1 b[2];
    qs_qdot_quantize_act(QS_TYPE_Q8_1, x, b, 64);
    cr_assert_eq(b[0].d, 0x2012);
    cr_assert_eq(b[0].qs[0], 127);
    cr_assert_eq(b[0].qs[1], -124);
    cr_assert_eq(b[0].s, 0x261c, "s = %#x, want 0x261c", b[0].s);
    cr_assert_eq(b[1].d, 0x3c00);
    cr_assert_eq(b[1].s, 0x6800, "s = %#x, want 0x6800 (2048)", b[1].s);
    /* qs and d as Q8_0 */
    qs_block_q8_0 b0[2];
    qs_qdot_quantize_act(QS_TYPE_Q8_0, x, b0, 64);
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(b0[k].d, b[k].d);
        cr_assert_eq(memcmp(b0[k].qs, b[k].qs, 32), 0);
    }
    float xo[64], serr[2];
    qs_qdot_round_act(QS_TYPE_Q8_1, x, xo, serr, 64);
    cr_assert_eq(serr[1], -1.f, "s_err = %g", serr[1]);
    cr_assert_eq(serr[0], qs_f16_to_f32(0x261c) - qs_f16_to_f32(0x2012) * 3.f);
    cr_assert_neq(serr[0], 0.f);
}

Test(qdot, q8_k_and_plain_acts)
{
    float x[512];
    fill(x, 512, 1);
    x[300] = -5.f; /* signed max negative in block 1 */
    qs_block_q8_k a[2], r[2];
    qs_qdot_quantize_act(QS_TYPE_Q8_K, x, a, 512);
    qs_q8k_quantize_row(x, r, 512, NULL);
    cr_assert_eq(memcmp(a, r, sizeof a), 0);
    cr_assert_eq(a[1].qs[300 - 256], -127);
    cr_assert_eq(a[1].d, 1.f / (-127.f / -5.f));
    float xo[512];
    qs_qdot_round_act(QS_TYPE_Q8_K, x, xo, NULL, 512);
    for (int i = 0; i < 512; i++) cr_assert_eq(xo[i], a[i / 256].d * (float)a[i / 256].qs[i % 256]);

    /* F16: round to nearest even (1 + 2^-11 is a tie → 1); BF16: spec §3.2 */
    float p[4] = {1.f + 0x1p-11f, 1.f + 3 * 0x1p-11f, 1.f + 0x1p-8f, -70000.f};
    uint16_t h[4], bf[4];
    qs_qdot_quantize_act(QS_TYPE_F16, p, h, 4);
    cr_assert_eq(h[0], 0x3c00);
    cr_assert_eq(h[1], 0x3c02);
    cr_assert_eq(h[3], 0xfc00);
    qs_qdot_quantize_act(QS_TYPE_BF16, p, bf, 4);
    cr_assert_eq(bf[0], 0x3f80);
    cr_assert_eq(bf[2], 0x3f80, "1 + 2^-8 is a bf16 tie → even"); /* 0x3f808000 → 0x3f80 */
    float po[4];
    qs_qdot_round_act(QS_TYPE_F16, p, po, NULL, 4);
    cr_assert_eq(po[1], 1.f + 0x1p-9f);
    qs_qdot_round_act(QS_TYPE_BF16, p, po, NULL, 4);
    cr_assert_eq(po[2], 1.f);
    float f[4];
    qs_qdot_quantize_act(QS_TYPE_F32, p, f, 4);
    cr_assert_eq(memcmp(f, p, sizeof p), 0);
}

/* ---- dot products against the dequantized reference ---- */

/* |kernel − reference| / Σ|w·x| over rows of one type and one pair of distributions */
static double check_type(int type, int64_t n, int rows, int wdist, int xdist, double *worst_abs)
{
    int act = qs_qdot_act_type(type, n);
    cr_assert_geq(act, 0);
    float *wf = malloc(sizeof(float) * n * rows), *x = malloc(sizeof(float) * n);
    float *wd = malloc(sizeof(float) * n), *xr = malloc(sizeof(float) * n), *serr = malloc(sizeof(float) * (n / 32 + 1));
    fill(wf, n * rows, wdist);
    fill(x, n, xdist);
    int64_t rb = qs_type_row_bytes(type, n);
    uint8_t *w = malloc((size_t)rb * rows), *a = malloc((size_t)n * 4 + 4096);
    quantize_weights(type, wf, w, rows, n);
    qs_qdot_quantize_act(act, x, a, n);
    qs_qdot_round_act(act, x, xr, serr, n);
    float *y = malloc(sizeof(float) * rows);
    qs_qdot_rows(type, n, w, (size_t)rb, rows, a, y);
    double worst = 0;
    for (int r = 0; r < rows; r++) {
        cr_assert_eq(qs_dequantize_row(type, w + (size_t)r * rb, wd, n), 0);
        double ref = 0, mag = 0;
        for (int64_t i = 0; i < n; i++) {
            ref += (double)wd[i] * (double)xr[i];
            mag += fabs((double)wd[i] * (double)xr[i]);
        }
        if (type == QS_TYPE_Q4_1 || type == QS_TYPE_Q5_1)
            for (int64_t b = 0; b < n / 32; b++) {
                uint16_t mh;
                memcpy(&mh, w + (size_t)r * rb + (size_t)b * (type == QS_TYPE_Q4_1 ? 20 : 24) + 2, 2);
                ref += (double)qs_f16_to_f32(mh) * (double)serr[b];
                mag += fabs((double)qs_f16_to_f32(mh) * (double)serr[b]);
            }
        float v = qs_qdot_vec(type, n, w + (size_t)r * rb, a);
        cr_assert(v == y[r] || (isnan(v) && isnan(y[r])), "%s row %d: qs_qdot_rows %g != qs_qdot_vec %g",
                  qs_type_name(type), r, y[r], v);
        double err = fabs((double)v - ref);
        if (mag == 0) {
            cr_assert_eq(v, 0.f, "%s row %d: zero dot expected, got %g", qs_type_name(type), r, v);
            continue;
        }
        if (err / mag > worst) worst = err / mag;
        if (worst_abs && err > *worst_abs) *worst_abs = err;
    }
    free(wf), free(x), free(wd), free(xr), free(serr), free(w), free(a), free(y);
    return worst;
}

/* every kernel set the CPU runs, each against the reference (not only against each other); row
 * lengths with and without a partial group of 8 blocks */
Test(qdot, kernels_match_dequantized_dot, .timeout = 120)
{
    for (int isa = 0; isa < QS_QDOT_ISA_COUNT; isa++) {
        if (!qs_qdot_isa_supported(isa)) continue;
        cr_assert_eq(qs_qdot_set_isa(isa), 0);
        for (int t = 0; t < N_WTYPES; t++)
            for (int wd = 0; wd < 5; wd++)
                for (int xd = 0; xd < 5; xd++) {
                    int bs = qs_type_get(wtypes[t])->block_size == 256 ? 256 : 32;
                    int64_t n = (wd + xd) % 2 ? 1280 : 512 + 3 * bs; /* 32-blocks: 40 and 19 */
                    double rel = check_type(wtypes[t], n, 4, wd, xd, NULL);
                    cr_assert_lt(rel, 1e-5, "%s (%s) weights dist %d, activations dist %d: rel err %g",
                                 qs_type_name(wtypes[t]), qs_qdot_isa_name(isa), wd, xd, rel);
                }
    }
}

Test(qdot, plain_types_odd_lengths)
{
    /* F32/F16/BF16 take any length: the tail after the last 16-element chunk */
    int types[] = {QS_TYPE_F32, QS_TYPE_F16, QS_TYPE_BF16};
    for (int t = 0; t < 3; t++)
        for (int64_t n = 1; n < 70; n += 7) {
            double rel = check_type(types[t], n, 3, 0, 3, NULL);
            cr_assert_lt(rel, 1e-6, "%s n = %ld: rel err %g", qs_type_name(types[t]), (long)n, rel);
        }
}

/* A wrong formula must show: the reference without Q4_1's s_err correction is off by far more
 * than the tolerance, i.e. the tolerance is tight enough to see the f16 rounding of s. */
Test(qdot, tolerance_sees_q8_1_sum_rounding)
{
    int64_t n = 1024;
    float *wf = malloc(sizeof(float) * n), *x = malloc(sizeof(float) * n), *wd = malloc(sizeof(float) * n);
    float *xr = malloc(sizeof(float) * n), serr[32];
    fill(wf, n, 3);
    fill(x, n, 3);
    qs_block_q4_1 w[32];
    qs_block_q8_1 a[32];
    quantize_weights(QS_TYPE_Q4_1, wf, w, 1, n);
    qs_qdot_quantize_act(QS_TYPE_Q8_1, x, a, n);
    qs_qdot_round_act(QS_TYPE_Q8_1, x, xr, serr, n);
    qs_dequantize_row(QS_TYPE_Q4_1, w, wd, n);
    double ref = 0, mag = 0;
    for (int i = 0; i < n; i++) ref += (double)wd[i] * xr[i], mag += fabs((double)wd[i] * xr[i]);
    double v = qs_qdot_vec(QS_TYPE_Q4_1, n, w, a);
    cr_assert_gt(fabs(v - ref) / mag, 1e-5, "without s_err the reference should disagree (%g)", fabs(v - ref) / mag);
    free(wf), free(x), free(wd), free(xr);
}

/* ---- dequantization ---- */

static void random_bytes(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(next_u64() >> 32);
}

static void check_deq_identical(int type, const uint8_t *w, int64_t rows, int64_t n, const char *what)
{
    int64_t rb = qs_type_row_bytes(type, n);
    float *a = malloc(sizeof(float) * n * rows), *b = malloc(sizeof(float) * n * rows);
    qs_qdot_dequantize_rows(type, w, (size_t)rb, a, rows, n);
    for (int64_t r = 0; r < rows; r++) qs_dequantize_row(type, w + r * rb, b + r * n, n);
    for (int64_t i = 0; i < n * rows; i++) {
        uint32_t ua, ub;
        memcpy(&ua, a + i, 4), memcpy(&ub, b + i, 4);
        /* a NaN scale gives a NaN whose sign and payload depend on the operand order the compiler
         * chose (x86 propagates the first operand's NaN): any NaN matches any NaN */
        if (ua != ub && !(isnan(a[i]) && isnan(b[i])))
            cr_assert_fail("%s (%s, %s): element %ld: %#x (%g) != qs_dequantize_row %#x (%g)", qs_type_name(type), what,
                    qs_qdot_isa_name(qs_qdot_get_isa()), (long)i, ua, a[i], ub, b[i]);
    }
    free(a), free(b);
}

static void deq_all_types(void)
{
    int64_t n = 512, rows = 6;
    for (int t = 0; t < N_WTYPES; t++) {
        int type = wtypes[t];
        int64_t rb = qs_type_row_bytes(type, n);
        uint8_t *w = malloc((size_t)rb * rows);
        random_bytes(w, (size_t)rb * rows);
        check_deq_identical(type, w, rows, n, "random bytes");
        float *x = malloc(sizeof(float) * n * rows);
        fill(x, n * rows, t % 5);
        quantize_weights(type, x, w, rows, n);
        check_deq_identical(type, w, rows, n, "quantized");
        free(w), free(x);
    }
    /* every binary16 / bfloat16 bit pattern (NaN payloads included) */
    uint16_t *all = malloc(65536 * 2);
    for (int i = 0; i < 65536; i++) all[i] = (uint16_t)i;
    check_deq_identical(QS_TYPE_F16, (const uint8_t *)all, 1, 65536, "all patterns");
    check_deq_identical(QS_TYPE_BF16, (const uint8_t *)all, 1, 65536, "all patterns");
    free(all);
}

Test(qdot, dequantize_rows_bit_identical)
{
    for (int isa = 0; isa < QS_QDOT_ISA_COUNT; isa++) {
        if (!qs_qdot_isa_supported(isa)) continue;
        cr_assert_eq(qs_qdot_set_isa(isa), 0);
        deq_all_types();
    }
}

/* ---- ISA variants ---- */

Test(qdot, isa_variants_bit_identical, .timeout = 120)
{
    cr_assert_eq(qs_qdot_set_isa(QS_QDOT_ISA_GENERIC), 0);
    cr_assert_eq(qs_qdot_get_isa(), QS_QDOT_ISA_GENERIC);
    cr_assert_eq(qs_qdot_set_isa(QS_QDOT_ISA_COUNT), -1);
    int tested = 0;
    int64_t n = 4096 + 256, rows = 5; /* 4352: 17 super-blocks, 136 blocks: partial last 8-group */
    for (int isa = 1; isa < QS_QDOT_ISA_COUNT; isa++) {
        if (!qs_qdot_isa_supported(isa)) {
            cr_log_info("qdot: CPU lacks %s, variant not tested", qs_qdot_isa_name(isa));
            continue;
        }
        tested++;
        for (int t = 0; t < N_WTYPES; t++) {
            int type = wtypes[t], act = qs_qdot_act_type(type, n);
            for (int dist = 0; dist < 5; dist++) {
                int64_t m = type == QS_TYPE_F32 || type == QS_TYPE_F16 || type == QS_TYPE_BF16 ? n - 3 : n;
                int64_t rb = qs_type_row_bytes(type, m);
                float *wf = malloc(sizeof(float) * m * rows), *x = malloc(sizeof(float) * m);
                fill(wf, m * rows, dist);
                fill(x, m, (dist + 1) % 5);
                uint8_t *w = malloc((size_t)rb * rows), *a = malloc((size_t)m * 4 + 4096);
                quantize_weights(type, wf, w, rows, m);
                qs_qdot_quantize_act(act, x, a, m);
                float yg[5], yi[5];
                qs_qdot_set_isa(QS_QDOT_ISA_GENERIC);
                qs_qdot_rows(type, m, w, (size_t)rb, rows, a, yg);
                float vg = qs_qdot_vec(type, m, w, a);
                cr_assert_eq(qs_qdot_set_isa(isa), 0);
                cr_assert_eq(qs_qdot_get_isa(), isa);
                qs_qdot_rows(type, m, w, (size_t)rb, rows, a, yi);
                float vi = qs_qdot_vec(type, m, w, a);
                cr_assert_eq(memcmp(&vg, &vi, 4), 0, "%s %s dist %d: vec %a != generic %a", qs_qdot_isa_name(isa),
                             qs_type_name(type), dist, vi, vg);
                for (int r = 0; r < rows; r++)
                    cr_assert_eq(memcmp(&yg[r], &yi[r], 4), 0, "%s %s dist %d row %d: %a != generic %a",
                                 qs_qdot_isa_name(isa), qs_type_name(type), dist, r, yi[r], yg[r]);
                free(wf), free(x), free(w), free(a);
            }
        }
    }
    cr_log_info("qdot: %d ISA variant(s) compared with generic", tested);
    cr_assert_eq(qs_qdot_set_isa(QS_QDOT_ISA_AUTO), 0);
}

/* F16 activations: every kernel set rounds as qs_f32_to_f16 does (ties to even, subnormals,
 * overflow to infinity), checked on every f16 value, the midpoints between neighbours and random
 * floats */
Test(qdot, f16_activation_rounding_every_isa)
{
    enum { N = 3 * 65536 + 4096 };
    float *x = malloc(sizeof(float) * N), *got = malloc(sizeof(float) * N);
    int64_t n = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        if (((h >> 10) & 0x1f) == 0x1f) continue; /* inf/NaN */
        float a = qs_f16_to_f32((uint16_t)h), b = qs_f16_to_f32((uint16_t)(h + 1));
        x[n++] = a;
        if (((h + 1) >> 10 & 0x1f) != 0x1f && (h & 0x7fff) != 0x7fff) x[n++] = (float)(((double)a + b) / 2); /* a tie */
    }
    uint64_t s = 12345;
    while (n < N) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        uint32_t bits = (uint32_t)s;
        float f;
        memcpy(&f, &bits, 4);
        if (isfinite(f)) x[n++] = f;
    }
    for (int isa = 0; isa < QS_QDOT_ISA_COUNT; isa++) {
        if (!qs_qdot_isa_supported(isa)) continue;
        cr_assert_eq(qs_qdot_set_isa(isa), 0);
        qs_qdot_round_act(QS_TYPE_F16, x, got, NULL, n);
        for (int64_t i = 0; i < n; i++) {
            float want = qs_f16_to_f32(qs_f32_to_f16(x[i]));
            cr_assert(!memcmp(&got[i], &want, 4), "%s: f16(%a) = %a, want %a", qs_qdot_isa_name(isa), (double)x[i],
                      (double)got[i], (double)want);
        }
    }
    qs_qdot_set_isa(QS_QDOT_ISA_AUTO);
    free(x);
    free(got);
}
