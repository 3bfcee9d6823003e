/* bitsandbytes NF4/FP4 against every config of every file in golden/bnb4 (bit for bit). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/quant/bnb4.h"
#include "core/quant/ggml_types.h"
#include "core/formats/gguf.h"
#include "tests/testutil.h"

static const qs_gguf_tensor *need(const qs_gguf *g, const char *fmt, int i)
{
    char name[64];
    snprintf(name, sizeof name, fmt, i);
    const qs_gguf_tensor *t = qs_gguf_find_tensor(g, name);
    cr_assert_not_null(t, "golden tensor %s missing", name);
    return t;
}

static void expect_floats(const float *got, const qs_gguf_tensor *t, int64_t n, const char *what, int cfg)
{
    cr_assert_eq(t->nbytes, (uint64_t)n * 4, "cfg%d %s size", cfg, what);
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < n; i++) {
        float want;
        memcpy(&want, t->data + 4 * i, 4);
        if (memcmp(&want, &got[i], 4) != 0) {
            bad++;
            if (first < 0) first = i;
        }
    }
    cr_expect_eq(bad, 0, "cfg%d %s: %lld of %lld differ (first at %lld)", cfg, what, (long long)bad, (long long)n,
                 (long long)first);
}

static void expect_bytes(const uint8_t *got, const qs_gguf_tensor *t, int64_t n, const char *what, int cfg)
{
    cr_assert_eq(t->nbytes, (uint64_t)n, "cfg%d %s size", cfg, what);
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) bad += got[i] != t->data[i];
    cr_expect_eq(bad, 0, "cfg%d %s: %lld of %lld bytes differ", cfg, what, (long long)bad, (long long)n);
}

static void check_file(const char *path)
{
    qs_err err = {0};
    qs_gguf *g = qs_gguf_open(path, &err);
    cr_assert_not_null(g, "%s", err.msg);
    const qs_gguf_tensor *W = qs_gguf_find_tensor(g, "W"), *map = qs_gguf_find_tensor(g, "dynamic_map");
    cr_assert(W && map);
    expect_floats(qs_bnb4_dynamic_map, map, 256, "dynamic_map", -1);
    int64_t n = W->ne[0] * W->ne[1];
    uint32_t ncfg = 0;
    cr_assert_eq(qs_gguf_get_u32(g, "golden.nconfigs", &ncfg, &err), 0);
    float *deq = malloc((size_t)n * sizeof *deq);
    for (uint32_t c = 0; c < ncfg; c++) {
        char key[64];
        const char *qt;
        size_t len;
        snprintf(key, sizeof key, "cfg%u.quant_type", c);
        cr_assert_eq(qs_gguf_get_str(g, key, &qt, &len, &err), 0);
        snprintf(key, sizeof key, "cfg%u.blocksize", c);
        const qs_gguf_kv *bkv = qs_gguf_get_kv(g, key);
        cr_assert_not_null(bkv);
        int bs = (int)qs_gguf_kv_num(bkv, 0);
        bool fp4 = len == 3 && memcmp(qt, "fp4", 3) == 0;
        for (int dq = 0; dq < 2; dq++) {
            qs_bnb4 q;
            cr_assert_eq(qs_bnb4_quantize((const float *)W->data, n, bs, fp4, dq, &q, &err), 0, "%s", err.msg);
            qs_bnb4_dequantize(&q, deq);
            if (!dq) {
                expect_bytes(q.packed, need(g, "cfg%d.packed", (int)c), (n + 1) / 2, "packed", (int)c);
                expect_floats(q.absmax, need(g, "cfg%d.absmax", (int)c), q.n_blocks, "absmax", (int)c);
                expect_floats(deq, need(g, "cfg%d.dequant", (int)c), n, "dequant", (int)c);
            } else {
                snprintf(key, sizeof key, "cfg%u.dq_offset", c);
                float off = 0;
                cr_assert_eq(qs_gguf_get_f32(g, key, &off, &err), 0);
                cr_expect_eq(q.offset, off, "cfg%u offset %.9g vs %.9g", c, (double)q.offset, (double)off);
                expect_bytes(q.qabsmax, need(g, "cfg%d.dq_qabsmax", (int)c), q.n_blocks, "dq_qabsmax", (int)c);
                expect_floats(q.absmax2, need(g, "cfg%d.dq_absmax2", (int)c), q.n_blocks2, "dq_absmax2", (int)c);
                expect_floats(deq, need(g, "cfg%d.dequant_double_quant", (int)c), n, "dequant_double_quant", (int)c);
            }
            double mse = 0;
            for (int64_t i = 0; i < n; i++) {
                double e = (double)deq[i] - ((const float *)W->data)[i];
                mse += e * e;
            }
            snprintf(key, sizeof key, dq ? "cfg%u.mse_double_quant" : "cfg%u.mse", c);
            float want = 0;
            qs_gguf_get_f32(g, key, &want, &err);
            cr_expect(fabs(mse / (double)n - want) <= 1e-5 * want, "cfg%u %s: %.6g vs %.6g", c, key, mse / (double)n,
                      (double)want);
            qs_bnb4_free(&q);
        }
    }
    free(deq);
    qs_gguf_close(g);
}

Test(bnb4, golden_bit_exact)
{
    int n = 0;
    char **files = tu_golden_files("bnb4", &n);
    for (char **f = files; *f; f++) check_file(*f);
    tu_free_list(files);
}

Test(bnb4, sizes_padding_and_errors)
{
    float w[7] = {0.5f, -1.0f, 0.25f, 0.0f, 1.0f, -0.125f, 0.75f};
    qs_bnb4 q;
    qs_err err = {0};
    cr_assert_eq(qs_bnb4_quantize(w, 7, 32, false, false, &q, &err), 0);
    cr_assert_eq(q.n_blocks, 1);
    cr_assert_eq(q.absmax[0], 1.0f);
    cr_assert_eq(q.packed[3] & 15, 7, "odd count padded with the NF4 code of 0");
    cr_assert_eq(q.packed[0] >> 4, 12, "0.5 is nearer to NF4 code 12 (0.4407) than to 13 (0.5626)");
    cr_assert_eq(q.packed[0] & 15, 0, "-1 is code 0, second element in the low nibble");
    float y[7];
    qs_bnb4_dequantize(&q, y);
    cr_assert_eq(y[4], 1.0f);
    qs_bnb4_free(&q);
    float z[64] = {0};
    cr_assert_eq(qs_bnb4_quantize(z, 64, 64, true, true, &q, &err), 0, "all-zero input");
    qs_bnb4_dequantize(&q, z);
    for (int i = 0; i < 64; i++) cr_assert_eq(z[i], 0.0f);
    qs_bnb4_free(&q);
    cr_assert_lt(qs_bnb4_quantize(w, 7, 48, false, false, &q, &err), 0);
    cr_assert_float_eq(qs_bnb4_bpw(64, false), 4.5, 1e-12);
    cr_assert_float_eq(qs_bnb4_bpw(64, true), 4.127, 1e-3);
}
