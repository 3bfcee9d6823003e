/* GGML quantizers: byte-identical to llama-quantize on every tensor of golden/ggml/q (files
 * discovered; the imatrix is used where the file's quantize.imatrix.file says so), the
 * all-zero encodings of spec §10, and the test-quantize-fns errors of spec §11.1. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/quant/ggml_ksearch.h"
#include "core/quant/ggml_quants.h"
#include "core/quant/ggml_types.h"
#include "core/formats/gguf.h"
#include "core/data/imatrix.h"
#include "tests/testutil.h"

static const int all_types[] = {QS_TYPE_Q4_0, QS_TYPE_Q4_1, QS_TYPE_Q5_0, QS_TYPE_Q5_1, QS_TYPE_Q8_0,
                                QS_TYPE_Q2_K, QS_TYPE_Q3_K, QS_TYPE_Q4_K, QS_TYPE_Q5_K, QS_TYPE_Q6_K,
                                QS_TYPE_IQ4_NL, QS_TYPE_IQ4_XS};
#define N_TYPES (int)(sizeof all_types / sizeof *all_types)

/* first mismatching byte of a tensor, or -1 */
static int64_t quantize_and_compare(const qs_gguf_tensor *q, const qs_gguf_tensor *src, const float *qw)
{
    int64_t cols = q->ne[0], rows = q->ne[1] * q->ne[2] * q->ne[3];
    uint8_t *out = malloc(q->nbytes);
    qs_err err = {0};
    cr_assert_eq(qs_ggml_quantize(q->type, (const float *)src->data, out, rows, cols, qw, 0, &err), 0, "%s", err.msg);
    int64_t bad = -1;
    for (uint64_t i = 0; i < q->nbytes && bad < 0; i++)
        if (out[i] != q->data[i]) bad = (int64_t)i;
    free(out);
    return bad;
}

Test(ggml_quants, golden_files_byte_identical, .timeout = 600)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/ggml", tu_golden_dir());
    int ns = 0, ni = 0, nq = 0;
    char **src = tu_list(dir, ".f32.gguf", 0, &ns), **imats = NULL, **files = NULL;
    int nimat = 0;
    imats = tu_list(dir, ".gguf", 0, &nimat);
    const char *imat_path = NULL;
    for (char **f = imats; f && *f; f++)
        if (strstr(*f, "/imatrix-")) imat_path = *f, ni++;
    snprintf(dir, sizeof dir, "%s/ggml/q", tu_golden_dir());
    files = tu_list(dir, ".gguf", 0, &nq);
    if (ns != 1 || ni != 1 || nq == 0) {
        tu_free_list(src);
        tu_free_list(imats);
        tu_free_list(files);
        tu_skip("golden/ggml needs one *.f32.gguf, one imatrix-*.gguf and q/*.gguf");
    }
    qs_err err = {0};
    qs_gguf *s = qs_gguf_open(src[0], &err);
    cr_assert_not_null(s, "%s", err.msg);
    qs_imatrix *im = qs_imatrix_load(imat_path, &err);
    cr_assert_not_null(im, "%s: %s", imat_path, err.msg);
    int compared = 0, failed = 0, with_imatrix = 0;
    for (char **f = files; *f; f++) {
        qs_gguf *g = qs_gguf_open(*f, &err);
        cr_assert_not_null(g, "%s", err.msg);
        bool use_imat = qs_gguf_get_kv(g, "quantize.imatrix.file") != NULL;
        for (int64_t i = 0; i < g->n_tensors; i++) {
            const qs_gguf_tensor *q = &g->tensors[i], *x = qs_gguf_find_tensor(s, q->name);
            if (!x || q->type == QS_TYPE_F32) continue;
            const qs_imatrix_entry *e = use_imat ? qs_imatrix_find(im, q->name) : NULL;
            const float *qw = e && e->n == q->ne[0] ? e->values : NULL;
            with_imatrix += qw != NULL;
            int64_t bad = quantize_and_compare(q, x, qw);
            cr_expect_eq(bad, -1, "%s %s (%s%s): first differing byte %lld", *f, q->name, qs_type_name(q->type),
                         qw ? ", imatrix" : "", (long long)bad);
            failed += bad >= 0;
            compared++;
        }
        qs_gguf_close(g);
    }
    cr_log_info("golden GGML tensors compared: %d (%d with imatrix), differing: %d", compared, with_imatrix, failed);
    cr_assert_gt(compared, 0);
    cr_assert_gt(with_imatrix, 0, "no tensor took the imatrix path");
    qs_imatrix_free(im);
    qs_gguf_close(s);
    tu_free_list(src);
    tu_free_list(imats);
    tu_free_list(files);
}

Test(ggml_quants, all_zero_blocks_match_spec_table)
{
    /* spec §10, last table: first bytes of the all-zero block without / with an imatrix */
    float x[256] = {0}, qw[256];
    for (int i = 0; i < 256; i++) qw[i] = 1.0f;
    uint8_t out[256];
    struct { int type; const char *plain, *imat; } c[] = {
        {QS_TYPE_Q4_0, "0080" "88888888888888888888888888888888", "0000" "00000000000000000000000000000000"},
        {QS_TYPE_Q5_0, "0080" "ffffffff" "00000000000000000000000000000000", "0000" "00000000" "00000000000000000000000000000000"},
        {QS_TYPE_Q4_1, "00000000" "00000000000000000000000000000000", "00000000" "00000000000000000000000000000000"},
        {QS_TYPE_Q8_0, "0000" "0000000000000000000000000000000000000000000000000000000000000000", NULL},
        {QS_TYPE_IQ4_NL, "0000" "88888888888888888888888888888888", "0000" "88888888888888888888888888888888"},
        {QS_TYPE_IQ4_XS, "0080" "aaaa" "00000000" "8888888888888888", "0080" "aaaa" "00000000" "8888888888888888"},
    };
    for (size_t k = 0; k < sizeof c / sizeof *c; k++)
        for (int with = 0; with < 2; with++) {
            const char *hex = with ? c[k].imat : c[k].plain;
            if (!hex) continue;
            int n = qs_type_get(c[k].type)->block_size;
            qs_err err = {0};
            cr_assert_eq(qs_ggml_quantize(c[k].type, x, out, 1, n, with ? qw : NULL, 1, &err), 0, "%s", err.msg);
            for (size_t i = 0; i < strlen(hex) / 2; i++) {
                unsigned v;
                sscanf(hex + 2 * i, "%2x", &v);
                cr_assert_eq(out[i], v, "%s%s byte %zu: %02x, spec says %02x", qs_type_name(c[k].type),
                             with ? " (imatrix)" : "", i, out[i], v);
            }
        }
    int kq[] = {QS_TYPE_Q2_K, QS_TYPE_Q3_K, QS_TYPE_Q4_K, QS_TYPE_Q5_K, QS_TYPE_Q6_K};
    for (size_t k = 0; k < 5; k++)
        for (int with = 0; with < 2; with++) {
            qs_err err = {0};
            memset(out, 0xee, sizeof out);
            cr_assert_eq(qs_ggml_quantize(kq[k], x, out, 1, 256, with ? qw : NULL, 1, &err), 0, "%s", err.msg);
            for (int i = 0; i < qs_type_get(kq[k])->type_size; i++)
                cr_assert_eq(out[i], 0, "%s: all bytes zero (byte %d)", qs_type_name(kq[k]), i);
        }
}

/* spec §11.1: x_i = 0.1 + 2 cos(i), error = sqrt(Σ(x − x̂)²)/n, printed with 6 decimals */
Test(ggml_quants, test_quantize_fns_anchor_errors)
{
    struct { int type; double err; } want[] = {
        {QS_TYPE_Q4_0, 0.001121}, {QS_TYPE_Q4_1, 0.001144}, {QS_TYPE_Q5_0, 0.000591}, {QS_TYPE_Q5_1, 0.000556},
        {QS_TYPE_Q8_0, 0.000074}, {QS_TYPE_Q2_K, 0.004672}, {QS_TYPE_Q3_K, 0.002510}, {QS_TYPE_Q4_K, 0.000982},
        {QS_TYPE_Q5_K, 0.000531}, {QS_TYPE_Q6_K, 0.000261}, {QS_TYPE_IQ4_XS, 0.001256}, {QS_TYPE_IQ4_NL, 0.001296},
        {QS_TYPE_F16, 0.000004}, {QS_TYPE_BF16, 0.000036}};
    enum { N = 4096 };
    static float x[N], y[N];
    static uint8_t q[N * 4];
    for (int i = 0; i < N; i++) x[i] = (float)(0.1 + 2.0 * (double)cosf((float)i));
    for (size_t k = 0; k < sizeof want / sizeof *want; k++) {
        int t = want[k].type;
        qs_err err = {0};
        if (t == QS_TYPE_IQ4_NL) qs_iq4nl_quantize_row_single_pass(x, q, N);
        else cr_assert_eq(qs_ggml_quantize(t, x, q, 1, N, NULL, 1, &err), 0, "%s", err.msg);
        qs_dequantize_row(t, q, y, N);
        double s = 0;
        for (int i = 0; i < N; i++) s += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
        char got[32], exp[32];
        snprintf(got, sizeof got, "%.6f", sqrt(s) / N);
        snprintf(exp, sizeof exp, "%.6f", want[k].err);
        cr_expect_str_eq(got, exp, "%s", qs_type_name(t));
    }
}

Test(ggml_quants, threads_do_not_change_bytes)
{
    enum { R = 37, C = 512 };
    static float x[R * C];
    static uint8_t a[R * C * 2], b[R * C * 2];
    srand(7);
    for (int i = 0; i < R * C; i++) x[i] = (float)((rand() / (double)RAND_MAX - 0.5) * (i % 97 == 0 ? 40 : 1));
    for (int k = 0; k < N_TYPES; k++) {
        qs_err err = {0};
        int t = all_types[k];
        cr_assert_eq(qs_ggml_quantize(t, x, a, R, C, NULL, 1, &err), 0);
        cr_assert_eq(qs_ggml_quantize(t, x, b, R, C, NULL, 4, &err), 0);
        cr_assert_eq(memcmp(a, b, (size_t)(R * qs_type_row_bytes(t, C))), 0, "%s", qs_type_name(t));
    }
}

Test(ggml_quants, bad_shapes_and_values_are_errors)
{
    float x[64] = {0};
    uint8_t out[256];
    qs_err err = {0};
    cr_assert_lt(qs_ggml_quantize(QS_TYPE_Q4_K, x, out, 1, 64, NULL, 1, &err), 0);
    cr_assert(strstr(err.msg, "not a multiple of the q4_K block size 256"), "%s", err.msg);
    x[3] = NAN;
    cr_assert_lt(qs_ggml_quantize(QS_TYPE_Q8_0, x, out, 1, 64, NULL, 1, &err), 0);
    cr_assert(strstr(err.msg, "column 3 is not finite"), "%s", err.msg);
    x[3] = 1e9f; /* the Q8_0 scale 1e9/127 overflows float16 */
    cr_assert_lt(qs_ggml_quantize(QS_TYPE_Q8_0, x, out, 1, 64, NULL, 1, &err), 0);
    cr_assert(strstr(err.msg, "block 0: q8_0 scale overflows float16"), "%s", err.msg);
    cr_assert_lt(qs_ggml_quantize(QS_TYPE_IQ2_XXS, x, out, 1, 256, NULL, 1, &err), 0);
}

/* The 8-lane searches must give the scalar bytes, degenerate blocks included: zero blocks,
 * constants, exact magnitude ties, values near 1e-15, single spikes, mixed scales. */
Test(ggml_quants, simd_search_equals_scalar)
{
    if (!qs_ksearch_simd_available()) cr_skip_test("this CPU has no AVX2: only the scalar path exists");
    enum { R = 64, C = 512 };
    static float x[R * C], qw[C];
    static uint8_t a[R * C * 2], b[R * C * 2];
    uint64_t s = 12345;
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            float u = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5);
            float v;
            switch (r % 8) {
            case 0: v = 0; break;                                 /* all zero */
            case 1: v = 0.25f; break;                             /* constant */
            case 2: v = c % 2 ? 0.5f : -0.5f; break;              /* equal magnitudes of both signs */
            case 3: v = u * 1e-15f; break;                        /* near the epsilon */
            case 4: v = c == 37 ? 100.0f : u * 0.01f; break;      /* one spike */
            case 5: v = u * (c % 32 < 16 ? 1e-4f : 1.0f); break;  /* mixed scales */
            case 6: v = c % 16 == 0 ? 0 : u; break;               /* sparse-ish */
            default: v = u * (1 + c % 5); break;
            }
            x[r * C + c] = v;
        }
    for (int c = 0; c < C; c++) qw[c] = c % 11 == 0 ? 0.0f : 0.1f + (float)(c % 13);
    int types[] = {QS_TYPE_Q2_K, QS_TYPE_Q3_K, QS_TYPE_Q4_K, QS_TYPE_Q5_K, QS_TYPE_Q6_K, QS_TYPE_IQ4_NL, QS_TYPE_IQ4_XS};
    for (size_t k = 0; k < sizeof types / sizeof *types; k++)
        for (int im = 0; im < 2; im++) {
            qs_err e1 = {0}, e2 = {0};
            setenv("QS_NO_SIMD", "1", 1);
            int r1 = qs_ggml_quantize(types[k], x, a, R, C, im ? qw : NULL, 2, &e1);
            unsetenv("QS_NO_SIMD");
            int r2 = qs_ggml_quantize(types[k], x, b, R, C, im ? qw : NULL, 2, &e2);
            cr_assert_eq(r1, r2, "%s: %s / %s", qs_type_name(types[k]), e1.msg, e2.msg);
            int64_t rb = qs_type_row_bytes(types[k], C);
            for (int r = 0; r < R; r++)
                cr_expect_eq(memcmp(a + r * rb, b + r * rb, (size_t)rb), 0, "%s%s row %d (pattern %d) differs",
                             qs_type_name(types[k]), im ? " imatrix" : "", r, r % 8);
        }
}

/* golden/ggml-edge: degenerate and boundary rows quantized by ggml_quantize_chunk, for every
 * type in golden.types, without and with each importance vector */
Test(ggml_quants, edge_rows_byte_identical)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/ggml-edge", tu_golden_dir());
    int n = 0;
    char **files = tu_list(dir, ".gguf", 0, &n);
    if (!n) tu_skip("no files in %s", dir);
    int compared = 0;
    for (char **f = files; *f; f++) {
        qs_err err = {0};
        qs_gguf *g = qs_gguf_open(*f, &err);
        cr_assert_not_null(g, "%s", err.msg);
        const qs_gguf_tensor *x = qs_gguf_find_tensor(g, "x");
        const qs_gguf_kv *types = qs_gguf_get_kv(g, "golden.types"), *ims = qs_gguf_get_kv(g, "golden.imatrix_names"),
                         *rows = qs_gguf_get_kv(g, "golden.row_names");
        cr_assert(x && types && ims);
        int64_t R = x->ne[1], C = x->ne[0];
        for (uint64_t t = 0; t < types->n; t++) {
            size_t len;
            const char *tn = qs_gguf_kv_arr_str(types, t, &len);
            char tname[32], name[96];
            snprintf(tname, sizeof tname, "%.*s", (int)len, tn);
            int type = qs_type_from_name(tname);
            cr_assert_geq(type, 0, "unknown type %s", tname);
            for (int64_t k = -1; k < (int64_t)ims->n; k++) {
                const float *qw = NULL;
                if (k < 0) snprintf(name, sizeof name, "q.%s", tname);
                else {
                    const char *in = qs_gguf_kv_arr_str(ims, (uint64_t)k, &len);
                    snprintf(name, sizeof name, "q.%s.imatrix.%.*s", tname, (int)len, in);
                    char iname[64];
                    snprintf(iname, sizeof iname, "imatrix.%.*s", (int)len, in);
                    const qs_gguf_tensor *it = qs_gguf_find_tensor(g, iname);
                    cr_assert_not_null(it, "%s", iname);
                    qw = (const float *)it->data;
                }
                const qs_gguf_tensor *want = qs_gguf_find_tensor(g, name);
                if (!want) continue;
                int64_t rb = qs_type_row_bytes(type, C);
                cr_assert_eq((int64_t)want->nbytes, rb * R, "%s size", name);
                uint8_t *out = malloc(want->nbytes);
                qs_ggml_quantize_rows_raw(type, (const float *)x->data, out, R, C, qw, 2);
                for (int64_t r = 0; r < R; r++) {
                    size_t rl;
                    const char *rn = rows ? qs_gguf_kv_arr_str(rows, (uint64_t)r, &rl) : "";
                    cr_expect_eq(memcmp(out + r * rb, want->data + r * rb, (size_t)rb), 0, "%s row %lld (%.*s) differs",
                                 name, (long long)r, (int)(rows ? rl : 0), rn);
                }
                free(out);
                compared++;
            }
        }
        qs_gguf_close(g);
    }
    cr_log_info("edge tensors compared: %d", compared);
    cr_assert_gt(compared, 0);
    tu_free_list(files);
}
