/* ggml type table and dequantizers: hand-built blocks packed in the test from the byte maps
 * of spec/ggml-types.md, and llama-quantize's files dequantized against their F32 sources. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util/fp16.h"
#include "core/quant/ggml_types.h"
#include "core/formats/gguf.h"
#include "tests/testutil.h"

Test(types, table_matches_spec)
{
    struct { int id; const char *name; int bs, ts; } want[] = {
        {0, "f32", 1, 4}, {1, "f16", 1, 2}, {30, "bf16", 1, 2}, {2, "q4_0", 32, 18},
        {3, "q4_1", 32, 20}, {6, "q5_0", 32, 22}, {7, "q5_1", 32, 24}, {8, "q8_0", 32, 34},
        {10, "q2_K", 256, 84}, {11, "q3_K", 256, 110}, {12, "q4_K", 256, 144},
        {13, "q5_K", 256, 176}, {14, "q6_K", 256, 210}, {15, "q8_K", 256, 292},
        {20, "iq4_nl", 32, 18}, {23, "iq4_xs", 256, 136}, {16, "iq2_xxs", 256, 66},
        {19, "iq1_s", 256, 50}, {29, "iq1_m", 256, 56}, {39, "mxfp4", 32, 17}, {40, "nvfp4", 64, 36},
        {41, "q1_0", 128, 18}, {42, "q2_0", 64, 18}, {34, "tq1_0", 256, 54}, {35, "tq2_0", 256, 66}};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        const qs_type_info *t = qs_type_get(want[i].id);
        cr_assert_not_null(t, "type %d", want[i].id);
        cr_assert_str_eq(t->name, want[i].name);
        cr_assert_eq(t->block_size, want[i].bs, "%s block", want[i].name);
        cr_assert_eq(t->type_size, want[i].ts, "%s bytes", want[i].name);
        cr_assert_eq(qs_type_from_name(want[i].name), want[i].id);
    }
    int removed[] = {4, 5, 31, 32, 33, 36, 37, 38, 43, -1};
    for (size_t i = 0; i < sizeof removed / sizeof *removed; i++)
        cr_assert_not(qs_type_valid(removed[i]), "id %d must be invalid", removed[i]);
    cr_assert_eq(qs_type_from_name("Q4_K"), QS_TYPE_Q4_K, "names are case-insensitive");
    cr_assert_float_eq(qs_type_bpw(QS_TYPE_Q3_K), 3.4375, 1e-12);
    cr_assert_float_eq(qs_type_bpw(QS_TYPE_IQ4_XS), 4.25, 1e-12);
    cr_assert_eq(qs_type_row_bytes(QS_TYPE_Q4_K, 512), 288);
    cr_assert_eq(qs_type_row_bytes(QS_TYPE_Q4_K, 500), -1);
}

static void deq(int type, const void *blk, float *y, int n)
{
    cr_assert_eq(qs_dequantize_row(type, blk, y, n), 0);
}

Test(types, q4_0_q4_1_q8_0_blocks)
{
    qs_block_q4_0 a = {.d = 0x3800}; /* 0.5 */
    for (int j = 0; j < 16; j++) a.qs[j] = (uint8_t)(j | ((15 - j) << 4));
    float y[32];
    deq(QS_TYPE_Q4_0, &a, y, 32);
    for (int j = 0; j < 16; j++) {
        cr_assert_eq(y[j], (j - 8) * 0.5f, "q4_0 low nibble %d", j);
        cr_assert_eq(y[j + 16], (7 - j) * 0.5f, "q4_0 high nibble %d", j);
    }
    qs_block_q4_1 b = {.d = 0x3400, .m = 0xbc00}; /* 0.25, -1 */
    for (int j = 0; j < 16; j++) b.qs[j] = (uint8_t)(j | ((15 - j) << 4));
    deq(QS_TYPE_Q4_1, &b, y, 32);
    for (int j = 0; j < 16; j++) {
        cr_assert_eq(y[j], j * 0.25f - 1.0f);
        cr_assert_eq(y[j + 16], (15 - j) * 0.25f - 1.0f);
    }
    qs_block_q8_0 c = {.d = 0x3c00};
    for (int j = 0; j < 32; j++) c.qs[j] = (int8_t)(j * 8 - 128);
    deq(QS_TYPE_Q8_0, &c, y, 32);
    for (int j = 0; j < 32; j++) cr_assert_eq(y[j], (float)(j * 8 - 128));
}

Test(types, q5_0_q5_1_blocks)
{
    qs_block_q5_0 a = {.d = 0x3800, .qh = {0xaa, 0xaa, 0xaa, 0xaa}}; /* high bit on odd elements */
    for (int j = 0; j < 16; j++) a.qs[j] = (uint8_t)(j | ((15 - j) << 4));
    float y[32];
    deq(QS_TYPE_Q5_0, &a, y, 32);
    for (int j = 0; j < 32; j++) {
        int low = j < 16 ? j : 15 - (j - 16);
        int q = low | ((j & 1) << 4);
        cr_assert_eq(y[j], (q - 16) * 0.5f, "q5_0 element %d", j);
    }
    qs_block_q5_1 b = {.d = 0x3c00, .m = 0x4000, .qh = {0x0f, 0x00, 0x00, 0x80}};
    memset(b.qs, 0x21, sizeof b.qs);
    deq(QS_TYPE_Q5_1, &b, y, 32);
    for (int j = 0; j < 32; j++) {
        int q = (j < 16 ? 1 : 2) + ((j < 4 || j == 31) ? 16 : 0);
        cr_assert_eq(y[j], q * 1.0f + 2.0f, "q5_1 element %d", j);
    }
}

/* ---- K-quants: the test packs L and scales from the spec's byte maps ---- */

static void pack_2bit_planes(uint8_t *qs, const int *L) /* §6.8 */
{
    memset(qs, 0, 64);
    for (int e = 0; e < 256; e++) qs[32 * (e / 128) + e % 32] |= (uint8_t)((L[e] & 3) << (2 * ((e % 128) / 32)));
}

Test(types, q2_k_block)
{
    qs_block_q2_k b = {.d = 0x3800, .dmin = 0x3400}; /* 0.5, 0.25 */
    int L[256];
    for (int e = 0; e < 256; e++) L[e] = (e * 7 + e / 16) % 4;
    for (int j = 0; j < 16; j++) b.scales[j] = (uint8_t)(j | ((15 - j) << 4));
    pack_2bit_planes(b.qs, L);
    float y[256];
    deq(QS_TYPE_Q2_K, &b, y, 256);
    for (int e = 0; e < 256; e++) {
        int j = e / 16;
        cr_assert_eq(y[e], 0.5f * j * L[e] - 0.25f * (15 - j), "q2_K element %d", e);
    }
}

Test(types, q3_k_block)
{
    qs_block_q3_k b = {.d = 0x3c00};
    int L[256], lq[256], sc[16];
    for (int j = 0; j < 16; j++) sc[j] = (j * 5) % 64 - 32; /* −32…31 */
    for (int j = 0; j < 16; j++) {                           /* §6.7 packing, biased by 32 */
        int l = sc[j] + 32;
        if (j < 8) b.scales[j] |= (uint8_t)(l & 15);
        else b.scales[j - 8] |= (uint8_t)((l & 15) << 4);
        b.scales[8 + j % 4] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
    }
    for (int e = 0; e < 256; e++) {
        L[e] = (e * 3 + 1) % 8;
        lq[e] = L[e];
        if (lq[e] > 3) {
            b.hmask[e % 32] |= (uint8_t)(1 << (e / 32));
            lq[e] -= 4;
        }
    }
    pack_2bit_planes(b.qs, lq);
    float y[256];
    deq(QS_TYPE_Q3_K, &b, y, 256);
    for (int e = 0; e < 256; e++) cr_assert_eq(y[e], (float)sc[e / 16] * (float)(L[e] - 4), "q3_K element %d", e);
}

static void pack_scale_min_k4(uint8_t *s, const int *ls, const int *lm) /* §6.6 byte map */
{
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)((ls[j] & 63) | ((ls[j + 4] >> 4) << 6));
        s[j + 4] = (uint8_t)((lm[j] & 63) | ((lm[j + 4] >> 4) << 6));
        s[j + 8] = (uint8_t)((ls[j + 4] & 15) | ((lm[j + 4] & 15) << 4));
    }
}

Test(types, q4_k_and_q5_k_blocks)
{
    int ls[8] = {1, 2, 3, 63, 40, 17, 33, 62}, lm[8] = {0, 5, 63, 7, 48, 31, 16, 1};
    qs_block_q4_k a = {.d = 0x3c00, .dmin = 0x3800};
    qs_block_q5_k b = {.d = 0x3c00, .dmin = 0x3800};
    pack_scale_min_k4(a.scales, ls, lm);
    pack_scale_min_k4(b.scales, ls, lm);
    int L4[256], L5[256];
    for (int e = 0; e < 256; e++) {
        L4[e] = (e * 5 + 3) % 16;
        L5[e] = (e * 7 + 2) % 32;
    }
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            a.qs[32 * c + l] = (uint8_t)(L4[64 * c + l] | (L4[64 * c + l + 32] << 4));
            int p = L5[64 * c + l], q = L5[64 * c + l + 32];
            b.qs[32 * c + l] = (uint8_t)((p & 15) | ((q & 15) << 4));
            b.qh[l] |= (uint8_t)(((p >> 4) << (2 * c)) | ((q >> 4) << (2 * c + 1)));
        }
    float y[256];
    deq(QS_TYPE_Q4_K, &a, y, 256);
    for (int e = 0; e < 256; e++)
        cr_assert_eq(y[e], (float)ls[e / 32] * L4[e] - 0.5f * lm[e / 32], "q4_K element %d", e);
    deq(QS_TYPE_Q5_K, &b, y, 256);
    for (int e = 0; e < 256; e++)
        cr_assert_eq(y[e], (float)ls[e / 32] * L5[e] - 0.5f * lm[e / 32], "q5_K element %d", e);
}

Test(types, q6_k_block)
{
    qs_block_q6_k b = {.d = 0x3800};
    int L[256];
    for (int j = 0; j < 16; j++) b.scales[j] = (int8_t)(j * 17 - 128);
    for (int e = 0; e < 256; e++) L[e] = (e * 11 + 5) % 64;
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            int A = L[128 * h + l], B = L[128 * h + l + 32], C = L[128 * h + l + 64], E = L[128 * h + l + 96];
            b.ql[64 * h + l] = (uint8_t)((A & 15) | ((C & 15) << 4));
            b.ql[64 * h + l + 32] = (uint8_t)((B & 15) | ((E & 15) << 4));
            b.qh[32 * h + l] = (uint8_t)((A >> 4) | ((B >> 4) << 2) | ((C >> 4) << 4) | ((E >> 4) << 6));
        }
    float y[256];
    deq(QS_TYPE_Q6_K, &b, y, 256);
    for (int e = 0; e < 256; e++)
        cr_assert_eq(y[e], 0.5f * (float)b.scales[e / 16] * (float)(L[e] - 32), "q6_K element %d", e);
}

Test(types, iq4_blocks)
{
    static const int kv[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
    qs_block_iq4_nl a = {.d = 0x3800};
    for (int j = 0; j < 16; j++) a.qs[j] = (uint8_t)(j | ((15 - j) << 4));
    float y[256];
    deq(QS_TYPE_IQ4_NL, &a, y, 32);
    for (int j = 0; j < 16; j++) {
        cr_assert_eq(y[j], 0.5f * kv[j]);
        cr_assert_eq(y[j + 16], 0.5f * kv[15 - j]);
    }
    qs_block_iq4_xs b = {.d = 0x3800};
    for (int ib = 0; ib < 8; ib++) {
        int ls = ib * 8 + 3;
        b.scales_l[ib / 2] |= (uint8_t)((ls & 15) << (4 * (ib % 2)));
        b.scales_h |= (uint16_t)((ls >> 4) << (2 * ib));
        for (int j = 0; j < 16; j++) b.qs[16 * ib + j] = (uint8_t)(((j + ib) & 15) | (((j * 3) & 15) << 4));
    }
    deq(QS_TYPE_IQ4_XS, &b, y, 256);
    for (int ib = 0; ib < 8; ib++)
        for (int j = 0; j < 16; j++) {
            float dl = 0.5f * (float)(ib * 8 + 3 - 32);
            cr_assert_eq(y[32 * ib + j], dl * kv[(j + ib) & 15], "iq4_xs %d/%d", ib, j);
            cr_assert_eq(y[32 * ib + j + 16], dl * kv[(j * 3) & 15], "iq4_xs %d/%d", ib, j + 16);
        }
    /* the all-zero IQ4_XS encoding of spec §10: d = -0, scales 32, indices 8 → zeros */
    qs_block_iq4_xs z = {.d = 0x8000, .scales_h = 0xaaaa};
    memset(z.qs, 0x88, sizeof z.qs);
    deq(QS_TYPE_IQ4_XS, &z, y, 256);
    for (int e = 0; e < 256; e++) cr_assert_eq(y[e], 0.0f);
}

Test(types, plain_types)
{
    uint16_t h[3] = {0x3c00, 0xc000, 0x7bff};
    float y[3];
    deq(QS_TYPE_F16, h, y, 3);
    cr_assert_eq(y[0], 1.0f);
    cr_assert_eq(y[1], -2.0f);
    cr_assert_eq(y[2], 65504.0f);
    uint16_t bf[2] = {0x3f80, 0xc0a0};
    deq(QS_TYPE_BF16, bf, y, 2);
    cr_assert_eq(y[0], 1.0f);
    cr_assert_eq(y[1], -5.0f);
    int8_t i8[2] = {-128, 127};
    deq(QS_TYPE_I8, i8, y, 2);
    cr_assert_eq(y[0], -128.0f);
    cr_assert_eq(qs_dequantize_row(QS_TYPE_IQ2_XXS, h, y, 256), -1, "no dequantizer for lattice types");
}

/* ---- llama-quantize outputs against their F32 sources ---- */

/* Upper bounds on rms(x̂−x)/rms(x): 1.6 × the heavy-tailed figures of spec §11.2;
 * lower bounds 0.3 × (the data really went through that many bits). */
static double expected_rel_rmse(int type)
{
    switch (type) {
    case QS_TYPE_Q4_0: return 0.10777;
    case QS_TYPE_Q4_1: return 0.09009;
    case QS_TYPE_Q5_0: return 0.05393;
    case QS_TYPE_Q5_1: return 0.04361;
    case QS_TYPE_Q8_0: return 0.00678;
    case QS_TYPE_Q2_K: return 0.33216;
    case QS_TYPE_Q3_K: return 0.17661;
    case QS_TYPE_Q4_K: return 0.08316;
    case QS_TYPE_Q5_K: return 0.04214;
    case QS_TYPE_Q6_K: return 0.02151;
    case QS_TYPE_IQ4_NL: return 0.08858;
    case QS_TYPE_IQ4_XS: return 0.08946;
    case QS_TYPE_F16: return 0.0003;
    }
    return -1;
}

static double rel_rmse(const qs_gguf_tensor *q, const qs_gguf_tensor *src)
{
    int64_t cols = q->ne[0], rows = q->ne[1] * q->ne[2] * q->ne[3];
    int64_t rb = qs_type_row_bytes(q->type, cols);
    float *a = malloc((size_t)cols * sizeof *a), *b = malloc((size_t)cols * sizeof *b);
    double se = 0, ss = 0;
    for (int64_t r = 0; r < rows; r++) {
        cr_assert_eq(qs_dequantize_row(q->type, q->data + r * rb, a, cols), 0);
        qs_dequantize_row(src->type, src->data + r * qs_type_row_bytes(src->type, cols), b, cols);
        for (int64_t c = 0; c < cols; c++) {
            se += ((double)a[c] - b[c]) * ((double)a[c] - b[c]);
            ss += (double)b[c] * b[c];
        }
    }
    free(a);
    free(b);
    return ss > 0 ? sqrt(se / ss) : 0;
}

/* For every quantized tensor of every file in qdir: dequantized vs the same tensor of src. */
static int check_against_source(const char *src_path, char **files, double slack)
{
    qs_err err = {0};
    qs_gguf *src = qs_gguf_open(src_path, &err);
    cr_assert_not_null(src, "%s: %s", src_path, err.msg);
    int checked = 0;
    for (char **f = files; f && *f; f++) {
        qs_gguf *g = qs_gguf_open(*f, &err);
        cr_assert_not_null(g, "%s: %s", *f, err.msg);
        for (int64_t i = 0; i < g->n_tensors; i++) {
            const qs_gguf_tensor *t = &g->tensors[i];
            const qs_gguf_tensor *s = qs_gguf_find_tensor(src, t->name);
            double want = expected_rel_rmse(t->type);
            if (!s || t->type == s->type || want < 0) continue;
            double got = rel_rmse(t, s);
            cr_expect(got < want * slack && got > want * 0.3 / slack,
                      "%s %s (%s): relative RMSE %.5f outside (%.5f, %.5f)", *f, t->name,
                      qs_type_name(t->type), got, want * 0.3 / slack, want * slack);
            checked++;
        }
        qs_gguf_close(g);
    }
    qs_gguf_close(src);
    return checked;
}

Test(types, golden_quantized_files_dequantize_close_to_source)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/ggml", tu_golden_dir());
    int ns = 0, nq = 0;
    char **src = tu_list(dir, ".f32.gguf", 0, &ns);
    snprintf(dir, sizeof dir, "%s/ggml/q", tu_golden_dir());
    char **q = tu_list(dir, ".gguf", 0, &nq);
    if (ns != 1 || nq == 0) {
        tu_free_list(src);
        tu_free_list(q);
        tu_skip("golden/ggml (one *.f32.gguf and q/*.gguf) not found under %s", tu_golden_dir());
    }
    int checked = check_against_source(src[0], q, 1.6);
    cr_assert_gt(checked, 100, "only %d tensors compared", checked);
    tu_free_list(src);
    tu_free_list(q);
}

Test(types, model_quants_dequantize_close_to_f32)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/stories260K.gguf", tu_models_dir());
    int n = 0;
    char **files = tu_list(tu_models_dir(), ".gguf", 0, &n);
    FILE *f = fopen(path, "rb");
    if (!f || n < 2) {
        if (f) fclose(f);
        tu_free_list(files);
        tu_skip("models dir %s lacks stories260K.gguf and its quantizations", tu_models_dir());
    }
    fclose(f);
    /* the tiny model's rows (64, 172) are far from heavy-tailed 4096-wide rows: wider slack */
    int checked = check_against_source(path, files, 3.0);
    cr_assert_gt(checked, 10);
    tu_free_list(files);
}
