/* GPTQ and AWQ GEMM packing against the layouts of spec/gptq.md §8 and spec/awq.md §7 written out
 * by hand (3-bit word layout, the AWQ nibble order, the sym zero words), and round trips of real
 * GPTQ/AWQ results whose dequantization with f16 scales matches ours to f16 precision. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/quant/awq.h"
#include "core/util/fp16.h"
#include "core/formats/gguf.h"
#include "core/quant/gptq.h"
#include "core/quant/qpack.h"
#include "tests/testutil.h"

Test(qpack, gptq_sym_zero_words)
{
    enum { OUT = 32, IN = 64 };
    static uint8_t codes[OUT * IN];
    float zeros[OUT], scales[OUT];
    struct { int bits; uint32_t word; } c[] = {{2, 0x55555555u}, {3, 0}, {4, 0x77777777u}, {8, 0x7F7F7F7Fu}};
    for (size_t t = 0; t < sizeof c / sizeof *c; t++) {
        int b = c[t].bits;
        for (int n = 0; n < OUT; n++) zeros[n] = (float)(1 << (b - 1)), scales[n] = 0.01f;
        uint32_t qw[IN * 8 / 32 * OUT], qz[OUT * 8 / 32];
        uint16_t s16[OUT];
        qs_gptq_pack(b, codes, zeros, scales, OUT, IN, 1, qw, qz, s16);
        if (b == 3) {
            /* zero 4 stored as 3 = 0b011 in every field: the 96-bit run 011 011 … */
            uint32_t want[3] = {0, 0, 0};
            for (int m = 0; m < 32; m++)
                for (int k = 0; k < 3; k++)
                    if ((3 >> k) & 1) want[(3 * m + k) / 32] |= 1u << ((3 * m + k) % 32);
            for (int w = 0; w < 3; w++) cr_expect_eq(qz[w], want[w], "3-bit zero word %d: %08x", w, qz[w]);
        } else {
            for (int64_t i = 0; i < qs_gptq_qzeros_cols(b, OUT); i++) cr_expect_eq(qz[i], c[t].word, "%d bits: %08x", b, qz[i]);
        }
    }
}

/* spec/gptq.md §8.3 word by word: v0…v9 in word 0 bits 3m…3m+2, v10 split 2 + 1, v11…v20 in word 1
 * bits 3m+1…3m+3, v21 split 1 + 2, v22…v31 in word 2 bits 3m+2…3m+4 */
Test(qpack, gptq_three_bit_words)
{
    enum { OUT = 32, IN = 32 };
    static uint8_t codes[OUT * IN];
    float zeros[OUT], scales[OUT];
    for (int n = 0; n < OUT; n++)
        for (int k = 0; k < IN; k++) codes[n * IN + k] = (uint8_t)((k * 5 + n) % 8);
    for (int n = 0; n < OUT; n++) zeros[n] = 4, scales[n] = 1;
    uint32_t qw[3 * OUT], qz[3];
    uint16_t s16[OUT];
    qs_gptq_pack(3, codes, zeros, scales, OUT, IN, 1, qw, qz, s16);
    for (int n = 0; n < OUT; n++) {
        const uint8_t *v = codes + n * IN;
        uint32_t w0 = 0, w1 = 0, w2 = 0;
        for (int m = 0; m < 10; m++) w0 |= (uint32_t)v[m] << (3 * m);
        w0 |= (uint32_t)(v[10] & 3) << 30;
        w1 |= (uint32_t)(v[10] >> 2) & 1;
        for (int m = 0; m < 10; m++) w1 |= (uint32_t)v[11 + m] << (3 * m + 1);
        w1 |= (uint32_t)(v[21] & 1) << 31;
        w2 |= (uint32_t)(v[21] >> 1) & 3;
        for (int m = 0; m < 10; m++) w2 |= (uint32_t)v[22 + m] << (3 * m + 2);
        cr_assert_eq(qw[0 * OUT + n], w0, "column %d word 0", n);
        cr_assert_eq(qw[1 * OUT + n], w1, "column %d word 1", n);
        cr_assert_eq(qw[2 * OUT + n], w2, "column %d word 2", n);
    }
    uint8_t back[OUT * IN];
    float zb[OUT];
    qs_gptq_unpack(3, qw, qz, OUT, IN, 1, back, zb);
    cr_expect_eq(memcmp(back, codes, sizeof codes), 0);
    for (int n = 0; n < OUT; n++) cr_expect_eq(zb[n], 4.0f);
}

/* nibble i of word c holds output column 8c + (0 2 4 6 1 3 5 7)[i]: codes = column number → 0x75316420 */
Test(qpack, awq_nibble_order)
{
    enum { OUT = 16, IN = 8 };
    uint8_t codes[OUT * IN];
    float zeros[OUT], scales[OUT];
    for (int n = 0; n < OUT; n++) {
        zeros[n] = (float)(n % 8), scales[n] = 0.5f;
        for (int k = 0; k < IN; k++) codes[n * IN + k] = (uint8_t)(n % 8);
    }
    uint32_t qw[IN * 2], qz[2];
    uint16_t s16[OUT];
    qs_awq_pack(codes, zeros, scales, OUT, IN, 1, qw, qz, s16);
    for (int i = 0; i < IN * 2; i++) cr_expect_eq(qw[i], 0x75316420u, "word %d: %08x", i, qw[i]);
    cr_expect_eq(qz[0], 0x75316420u, "zeros are packed the same way, without the -1");
    cr_expect_eq(s16[3], qs_f32_to_f16(0.5f));
}

Test(qpack, real_layers_round_trip, .timeout = 120)
{
    int nf = 0;
    char **files = tu_golden_files("gptq", &nf);
    qs_err err = {0};
    qs_gguf *g = qs_gguf_open(files[0], &err);
    cr_assert_not_null(g, "%s", err.msg);
    int64_t in = qs_gguf_find_tensor(g, "W")->ne[0], out = qs_gguf_find_tensor(g, "W")->ne[1],
            nt = qs_gguf_find_tensor(g, "X")->ne[1], n = in * out;
    const float *W = tu_golden_floats(g, -1, "W", n), *H = tu_golden_floats(g, -1, "H", in * in),
                *X = tu_golden_floats(g, -1, "X", nt * in);
    uint8_t *codes = malloc((size_t)n), *back = malloc((size_t)n);
    float *deq = malloc((size_t)n * 4);
    for (int bits = 2; bits <= 8; bits++) {
        if (bits == 5 || bits == 6 || bits == 7) continue;
        qs_gptq_params p;
        qs_gptq_default(&p);
        p.bits = bits, p.sym = bits != 3, p.act_order = bits == 4;
        int64_t ng = qs_gptq_n_groups(&p, in);
        float *sc = malloc((size_t)(out * ng) * 4), *zr = malloc((size_t)(out * ng) * 4), *zb = malloc((size_t)(out * ng) * 4);
        int32_t *gi = malloc((size_t)in * 4);
        qs_gptq_out o = {codes, deq, sc, zr, gi, 0};
        cr_assert_eq(qs_gptq_quantize(&p, W, out, in, H, &o, NULL, &err), 0, "%s", err.msg);
        cr_assert_eq(qs_gptq_pack_check(bits, in, out, &err), 0, "%s", err.msg);
        uint32_t *qw = malloc((size_t)(qs_gptq_qweight_rows(bits, in) * out) * 4),
                 *qz = malloc((size_t)(ng * qs_gptq_qzeros_cols(bits, out)) * 4);
        uint16_t *s16 = malloc((size_t)(ng * out) * 2);
        qs_gptq_pack(bits, codes, zr, sc, out, in, ng, qw, qz, s16);
        qs_gptq_unpack(bits, qw, qz, out, in, ng, back, zb);
        cr_expect_eq(memcmp(back, codes, (size_t)n), 0, "%d bits: codes", bits);
        /* what a loader computes (§8.4) against our dequantized weights, to f16 precision of the scale */
        int64_t bad = 0;
        for (int64_t r = 0; r < out; r++)
            for (int64_t k = 0; k < in; k++) {
                int64_t gg = r * ng + gi[k];
                float s = qs_f16_to_f32(s16[gi[k] * out + r]), v = s * ((float)back[r * in + k] - zb[gg]);
                bad += !(fabsf(v - deq[r * in + k]) <= fabsf(s - sc[gg]) * 256 + 1e-7f);
                bad += zb[gg] != zr[gg] && !(zr[gg] == 0); /* a zero 0 comes back as 2^bits (v1) */
            }
        cr_expect_eq(bad, 0, "%d bits: %lld weights off", bits, (long long)bad);
        free(sc), free(zr), free(zb), free(gi), free(qw), free(qz), free(s16);
    }
    /* AWQ: 4 bits g128 with its zero point */
    qs_awq_params ap;
    qs_awq_default(&ap);
    int64_t ng = in / ap.group;
    float *sc = malloc((size_t)(out * ng) * 4), *zr = malloc((size_t)(out * ng) * 4), *zb = malloc((size_t)(out * ng) * 4),
          *s = malloc((size_t)in * 4);
    qs_awq_out ao = {deq, codes, sc, zr, s, NULL, {0}, 0};
    cr_assert_eq(qs_awq_quantize(&ap, W, out, in, X, nt, NULL, NULL, &ao, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(qs_awq_pack_check(4, in, out, ap.group, &err), 0);
    uint32_t *qw = malloc((size_t)(in * out / 8) * 4), *qz = malloc((size_t)(ng * out / 8) * 4);
    uint16_t *s16 = malloc((size_t)(ng * out) * 2);
    qs_awq_pack(codes, zr, sc, out, in, ng, qw, qz, s16);
    qs_awq_unpack(qw, qz, out, in, ng, back, zb);
    cr_expect_eq(memcmp(back, codes, (size_t)n), 0, "AWQ codes");
    cr_expect_eq(memcmp(zb, zr, (size_t)(out * ng) * 4), 0, "AWQ zeros");
    free(sc), free(zr), free(zb), free(s), free(qw), free(qz), free(s16);
    cr_expect_lt(qs_awq_pack_check(3, in, out, 128, &err), 0, "AWQ GEMM is 4-bit only");
    cr_expect_lt(qs_gptq_pack_check(5, in, out, &err), 0);
    free(codes), free(back), free(deq);
    qs_gguf_close(g);
    tu_free_list(files);
}
