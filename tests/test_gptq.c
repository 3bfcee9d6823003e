/* GPTQ against every config of every file in golden/gptq (spec/gptq.md §10): the reference's
 * dequantized Q within 1e-6·max(1, |q|) (1-ulp lazy-update differences allowed there, §4), loss
 * and relative output error within 1e-5; plus the quantizer quirks of §3 computed by hand. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gguf.h"
#include "core/gptq.h"
#include "tests/testutil.h"

static const float *tensor(const qs_gguf *g, const char *name, int64_t n)
{
    const qs_gguf_tensor *t = qs_gguf_find_tensor(g, name);
    cr_assert_not_null(t, "golden tensor %s missing", name);
    cr_assert_eq(t->nbytes, (uint64_t)n * 4, "%s: %llu bytes", name, (unsigned long long)t->nbytes);
    return (const float *)t->data;
}

static double num(const qs_gguf *g, int cfg, const char *key)
{
    char k[64];
    if (cfg >= 0) snprintf(k, sizeof k, "cfg%d.%s", cfg, key);
    else snprintf(k, sizeof k, "golden.%s", key);
    const qs_gguf_kv *kv = qs_gguf_get_kv(g, k);
    cr_assert_not_null(kv, "golden key %s missing", k);
    return qs_gguf_kv_num(kv, 0);
}

static void check_file(const char *path)
{
    qs_err err = {0};
    qs_gguf *g = qs_gguf_open(path, &err);
    cr_assert_not_null(g, "%s", err.msg);
    const qs_gguf_tensor *Wt = qs_gguf_find_tensor(g, "W"), *Xt = qs_gguf_find_tensor(g, "X");
    cr_assert(Wt && Xt, "%s: W and X", path);
    int64_t cols = Wt->ne[0], rows = Wt->ne[1], ntok = Xt->ne[1];
    const float *W = tensor(g, "W", rows * cols), *H = tensor(g, "H", cols * cols), *X = tensor(g, "X", ntok * cols);
    int ncfg = (int)num(g, -1, "nconfigs");
    int64_t n = rows * cols;
    for (int c = 0; c < ncfg; c++) {
        qs_gptq_params p = {(int)num(g, c, "bits"), (int)num(g, c, "groupsize"), num(g, c, "sym") != 0,
                            num(g, c, "actorder") != 0, num(g, c, "static_groups") != 0,
                            (float)num(g, -1, "percdamp"), (int)num(g, -1, "blocksize")};
        int64_t ng = qs_gptq_n_groups(&p, cols);
        qs_gptq_out o = {malloc((size_t)n), malloc((size_t)n * 4), malloc((size_t)(rows * ng) * 4),
                         malloc((size_t)(rows * ng) * 4), malloc((size_t)cols * 4), 0, 0};
        cr_assert_eq(qs_gptq_quantize(&p, W, rows, cols, H, &o, NULL, &err), 0, "cfg%d: %s", c, err.msg);
        char name[32];
        snprintf(name, sizeof name, "cfg%d.Q", c);
        const float *Q = tensor(g, name, n);
        int64_t bad = 0, exact = 0;
        for (int64_t i = 0; i < n; i++) {
            bad += fabsf(o.deq[i] - Q[i]) > 1e-6f * fmaxf(1, fabsf(Q[i]));
            exact += memcmp(&o.deq[i], &Q[i], 4) == 0;
        }
        double loss = num(g, c, "loss"), rel = num(g, c, "rel_output_error");
        double got_rel = qs_rel_output_error(W, o.deq, rows, cols, X, ntok);
        cr_log_info("%s cfg%d (w%d g%d %s%s%s): %.2f %% bit-identical, loss %.4f (ref %.4f), rel %.6f (ref %.6f)", path,
                    c, p.bits, p.group, p.sym ? "sym" : "asym", p.act_order ? " act-order" : "",
                    p.static_groups ? " static" : "", 100.0 * (double)exact / (double)n, o.loss, loss, got_rel, rel);
        cr_expect_eq(bad, 0, "cfg%d: %lld of %lld values differ beyond 1e-6", c, (long long)bad, (long long)n);
        cr_expect_lt(fabs(o.loss / loss - 1), 1e-5, "cfg%d loss %.6f, reference %.6f", c, o.loss, loss);
        cr_expect_lt(fabs(got_rel / rel - 1), 1e-5, "cfg%d rel. output error %.8f, reference %.8f", c, got_rel, rel);
        /* g_idx: each group id occurs G times (the last may hold fewer) */
        int64_t G = p.group > 0 ? p.group : cols, *cnt = calloc((size_t)ng, sizeof *cnt);
        for (int64_t k = 0; k < cols; k++) {
            cr_assert(o.g_idx[k] >= 0 && o.g_idx[k] < ng);
            cnt[o.g_idx[k]]++;
        }
        for (int64_t k = 0; k < ng; k++) cr_expect_eq(cnt[k], k < ng - 1 || cols % G == 0 ? G : cols % G);
        free(cnt);
        /* codes and the recorded scales/zeros reproduce the dequantized values */
        int maxq = (1 << p.bits) - 1;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t k = 0; k < cols; k++) {
                int64_t gi = r * ng + o.g_idx[k];
                uint8_t q = o.codes[r * cols + k];
                cr_assert(q <= maxq);
                float v = o.scales[gi] * ((float)q - o.zeros[gi]);
                if (memcmp(&v, &o.deq[r * cols + k], 4)) cr_assert_fail("cfg%d (%lld, %lld): codes and scales give %g, not %g", c, (long long)r, (long long)k, v, o.deq[r * cols + k]);
            }
        free(o.codes), free(o.deq), free(o.scales), free(o.zeros), free(o.g_idx);
    }
    qs_gguf_close(g);
}

Test(gptq, golden)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/gptq", tu_golden_dir());
    int n = 0;
    char **files = tu_list(dir, ".gguf", 0, &n);
    if (!n) cr_skip_test("no golden files in %s", dir);
    for (int i = 0; i < n; i++) check_file(files[i]);
    tu_free_list(files);
}

/* §3's quirks, worked by hand */
Test(gptq, quantizer_quirks)
{
    float s, z;
    int code;
    /* symmetric 4-bit: amax 1.5 → s = 3/15 = 0.2, zero 8; +amax clips to 7s, −amax rounds to −8s */
    float x[3] = {-1.5f, 0.3f, 1.5f};
    qs_gptq_find_params(4, true, x, 3, 1, &s, &z);
    cr_expect_float_eq(s, 3.0f / 15.0f, 1e-7);
    cr_expect_eq(z, 8.0f);
    cr_expect_float_eq(qs_gptq_quantize_value(1.5f, s, z, 15, &code), 7 * s, 1e-7);
    cr_expect_eq(code, 15);
    cr_expect_float_eq(qs_gptq_quantize_value(-1.5f, s, z, 15, &code), -8 * s, 1e-7);
    cr_expect_eq(code, 0);
    /* symmetric, all ≥ 0: xmin stays 0, scale = xmax/15, above 7/15·xmax clips */
    float y[2] = {0.5f, 1.5f};
    qs_gptq_find_params(4, true, y, 2, 1, &s, &z);
    cr_expect_float_eq(s, 0.1f, 1e-7);
    cr_expect_float_eq(qs_gptq_quantize_value(1.5f, s, z, 15, &code), 0.7f, 1e-6);
    /* all zero: ±1 → scale 2/maxq; asymmetric zero round(1/scale) in binary32, as torch computes
     * it: f32(2/15) = 0.13333334 and 1/0.13333334 = 7.4999995 → 7 (the spec's 8 is exact
     * arithmetic); 2 bits: 1/f32(2/3) = 1.5 exactly → 2 (half to even) */
    float zz[2] = {0, 0};
    qs_gptq_find_params(4, false, zz, 2, 1, &s, &z);
    cr_expect_float_eq(s, 2.0f / 15.0f, 1e-7);
    cr_expect_eq(z, 7.0f);
    qs_gptq_find_params(2, false, zz, 2, 1, &s, &z);
    cr_expect_eq(z, 2.0f);
    /* asymmetric range widened to contain 0: [0.2, 1.7] → [0, 1.7], zero 0 */
    float a[2] = {0.2f, 1.7f};
    qs_gptq_find_params(4, false, a, 2, 1, &s, &z);
    cr_expect_float_eq(s, 1.7f / 15.0f, 1e-7);
    cr_expect_eq(z, 0.0f);
}

Test(gptq, rejects_bad_parameters)
{
    float w[4] = {1, 2, 3, 4}, H[4] = {1, 0, 0, 1}, d[4], sc[2], zr[2];
    uint8_t q[4];
    int32_t gi[2];
    qs_gptq_out o = {q, d, sc, zr, gi, 0, 0};
    qs_err err = {0};
    qs_gptq_params p;
    qs_gptq_default(&p);
    p.group = -1, p.bits = 9;
    cr_expect_lt(qs_gptq_quantize(&p, w, 2, 2, H, &o, NULL, &err), 0);
    p.bits = 4, p.damp = 0;
    cr_expect_lt(qs_gptq_quantize(&p, w, 2, 2, H, &o, NULL, &err), 0);
    /* indefinite Hessian: a clear error, not a crash */
    float bad[4] = {1, 5, 5, 1};
    p.damp = 0.01f;
    cr_expect_lt(qs_gptq_quantize(&p, w, 2, 2, bad, &o, NULL, &err), 0);
    cr_expect(strstr(err.msg, "positive definite") != NULL, "%s", err.msg);
}
