/* GPTQ against every config of every file in golden/gptq (spec/gptq.md §10): the reference's
 * dequantized Q within 1e-6·max(1, |q|) (1-ulp lazy-update differences allowed there, §4), loss
 * and relative output error within 1e-5; plus the quantizer quirks of §3 computed by hand. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/gguf.h"
#include "core/data/calib.h"
#include "core/quant/gptq.h"
#include "core/util/progress.h"
#include "core/quant/quant.h"
#include "core/recipe/recipe.h"
#include "core/quant/stats.h"
#include "tests/testutil.h"

static void check_file(const char *path)
{
    qs_err err = {0};
    qs_gguf *g = qs_gguf_open(path, &err);
    cr_assert_not_null(g, "%s", err.msg);
    const qs_gguf_tensor *Wt = qs_gguf_find_tensor(g, "W"), *Xt = qs_gguf_find_tensor(g, "X");
    cr_assert(Wt && Xt, "%s: W and X", path);
    int64_t cols = Wt->ne[0], rows = Wt->ne[1], ntok = Xt->ne[1];
    const float *W = tu_golden_floats(g, -1, "W", rows * cols), *H = tu_golden_floats(g, -1, "H", cols * cols), *X = tu_golden_floats(g, -1, "X", ntok * cols);
    int ncfg = (int)tu_golden_num(g, -1, "nconfigs");
    int64_t n = rows * cols;
    for (int c = 0; c < ncfg; c++) {
        qs_gptq_params p = {(int)tu_golden_num(g, c, "bits"), (int)tu_golden_num(g, c, "groupsize"), tu_golden_num(g, c, "sym") != 0,
                            tu_golden_num(g, c, "actorder") != 0, tu_golden_num(g, c, "static_groups") != 0,
                            (float)tu_golden_num(g, -1, "percdamp"), (int)tu_golden_num(g, -1, "blocksize")};
        int64_t ng = qs_gptq_n_groups(&p, cols);
        qs_gptq_out o = {malloc((size_t)n), malloc((size_t)n * 4), malloc((size_t)(rows * ng) * 4),
                         malloc((size_t)(rows * ng) * 4), malloc((size_t)cols * 4), 0};
        cr_assert_eq(qs_gptq_quantize(&p, W, rows, cols, H, &o, NULL, &err), 0, "cfg%d: %s", c, err.msg);
        const float *Q = tu_golden_floats(g, c, "Q", n);
        int64_t bad = 0, exact = 0;
        for (int64_t i = 0; i < n; i++) {
            bad += fabsf(o.deq[i] - Q[i]) > 1e-6f * fmaxf(1, fabsf(Q[i]));
            exact += memcmp(&o.deq[i], &Q[i], 4) == 0;
        }
        double loss = tu_golden_num(g, c, "loss"), rel = tu_golden_num(g, c, "rel_output_error");
        double got_rel = qs_stats_output_error(W, o.deq, rows, cols, X, ntok);
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
    int n = 0;
    char **files = tu_golden_files("gptq", &n);
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
    qs_gptq_out o = {q, d, sc, zr, gi, 0};
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

/* GPTQ and AWQ through the one quantizer interface: the same numbers as the direct call, grids
 * that hold every reconstructed weight, the output error, clear refusals without calibration */
Test(gptq, through_qs_quant_run)
{
    int nf = 0;
    char **files = tu_golden_files("gptq", &nf);
    qs_err err = {0};
    qs_gguf *g = qs_gguf_open(files[0], &err);
    cr_assert_not_null(g, "%s", err.msg);
    const qs_gguf_tensor *Wt = qs_gguf_find_tensor(g, "W"), *Xt = qs_gguf_find_tensor(g, "X");
    int64_t cols = Wt->ne[0], rows = Wt->ne[1], ntok = Xt->ne[1];
    const float *W = tu_golden_floats(g, -1, "W", rows * cols), *H = tu_golden_floats(g, -1, "H", cols * cols), *X = tu_golden_floats(g, -1, "X", ntok * cols);
    float *xm = malloc((size_t)cols * sizeof *xm);
    for (int64_t c = 0; c < cols; c++) {
        double s = 0;
        for (int64_t t = 0; t < ntok; t++) s += fabs(X[t * cols + c]);
        xm[c] = (float)(s / (double)ntok);
    }
    qs_calib cal = {.cols = cols, .H = H, .x_mean = xm, .X = X, .n_rows = ntok};
    const char *cfgs[] = {"gptq:bits=4,group=128,asym=true,damp=0.01", "gptq:bits=4,group=128,act_order=true,damp=0.01",
                          "awq:bits=4,group=128", "awq:bits=3,group=64,alpha=0.35,duo=true,clip=false"};
    for (size_t k = 0; k < sizeof cfgs / sizeof *cfgs; k++) {
        qs_qconfig c;
        bool keep;
        cr_assert_eq(qs_config_parse(cfgs[k], &c, &keep, &err), 0, "%s: %s", cfgs[k], err.msg);
        qs_qresult r;
        cr_assert_eq(qs_quant_run(&c, W, rows, cols, &cal, NULL, 0, &r, &err), 0, "%s: %s", cfgs[k], err.msg);
        cr_expect(isfinite(r.out_err) && r.out_err > 0 && r.out_err < 0.05, "%s: output error %g", cfgs[k], r.out_err);
        cr_expect_float_eq(r.out_err, qs_stats_output_error(W, r.deq, rows, cols, X, ntok), 1e-12);
        cr_expect(r.bpw > c.bits && r.bpw < c.bits + 1, "%s: bpw %g", cfgs[k], r.bpw);
        /* every reconstructed weight is a level of its own grid */
        float lv[256];
        for (int64_t i = 0; i < rows * cols; i += 997) {
            int n = qs_qresult_levels(&r, i / cols, i % cols, lv);
            cr_assert_eq(n, 1 << c.bits);
            bool on = false;
            for (int q = 0; q < n; q++) on |= fabsf(lv[q] - r.deq[i]) <= 1e-6f * fmaxf(1, fabsf(r.deq[i]));
            cr_assert(on, "%s: weight %lld (%g) is not on its grid", cfgs[k], (long long)i, r.deq[i]);
        }
        if (k == 0) {
            /* the golden cfg0 (4 bits, g128, asym, no act-order): same loss as the direct call */
            cr_expect_lt(fabs(r.loss / tu_golden_num(g, 0, "loss") - 1), 1e-5);
            cr_expect_lt(fabs(r.out_err / tu_golden_num(g, 0, "rel_output_error") - 1), 1e-5);
        }
        qs_qresult_free(&r);
    }
    /* without calibration: a clear refusal */
    qs_qconfig c;
    bool keep;
    qs_config_parse("gptq", &c, &keep, &err);
    cr_expect_lt(qs_quant_run(&c, W, rows, cols, NULL, NULL, 0, &(qs_qresult){0}, &err), 0);
    cr_expect(strstr(err.msg, "calibration") != NULL, "%s", err.msg);
    qs_config_parse("awq", &c, &keep, &err);
    cr_expect_lt(qs_quant_run(&c, W, rows, cols, NULL, NULL, 0, &(qs_qresult){0}, &err), 0);
    cr_expect(strstr(err.msg, "calibration") != NULL, "%s", err.msg);
    free(xm);
    qs_gguf_close(g);
    tu_free_list(files);
}

/* the fractional knobs: typed as fractions, held in units, refused off their grid */
Test(gptq, fractional_knobs)
{
    qs_qconfig c;
    bool keep;
    qs_err err = {0};
    cr_assert_eq(qs_config_parse("gptq:damp=0.05,act_order=true", &c, &keep, &err), 0, "%s", err.msg);
    cr_expect_eq(c.damp, 50);
    cr_expect(c.act_order);
    cr_expect_lt(qs_qconfig_set(&c, "damp", "0.0123", &err), 0, "not a multiple of 0.001");
    cr_expect_lt(qs_qconfig_set(&c, "damp", "1.5", &err), 0);
    cr_expect(strstr(err.msg, "0.001") != NULL, "%s", err.msg);
    cr_assert_eq(qs_config_parse("awq:alpha=0.35", &c, &keep, &err), 0, "%s", err.msg);
    cr_expect_eq(c.alpha, 7);
    cr_expect(c.asym && c.clip, "AWQ defaults: zero point and clip search");
    cr_expect_eq(qs_qconfig_set(&c, "alpha", "search", &err), 0);
    cr_expect_eq(c.alpha, -1);
    cr_expect_lt(qs_qconfig_set(&c, "alpha", "1.0", &err), 0, "the grid stops at 0.95");
    char d[96];
    qs_config_parse("gptq:damp=0.1,static_groups=true", &c, &keep, &err);
    qs_qconfig_describe(&c, d, sizeof d);
    cr_expect_str_eq(d, "gptq w4 g128 sym damp 0.1 static");
}

/* a cancelled run stops between column blocks with QS_E_CANCELLED (the workbench cancels an
 * out-of-date GPTQ/AWQ run this way); an uncancelled one with progress gives the same result as
 * without */
Test(gptq, cancelled_run_stops)
{
    enum { R = 32, C = 512 };
    float *w = malloc(sizeof(float) * R * C), *H = calloc((size_t)C * C, sizeof *H), *X = malloc(sizeof(float) * 64 * C);
    uint32_t s = 7;
    for (int i = 0; i < R * C; i++) s = s * 1664525u + 1013904223u, w[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
    for (int i = 0; i < 64 * C; i++) s = s * 1664525u + 1013904223u, X[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
    for (int i = 0; i < C; i++)
        for (int j = 0; j < C; j++) {
            double acc = 0;
            for (int t = 0; t < 64; t++) acc += (double)X[t * C + i] * X[t * C + j];
            H[i * C + j] = (float)(2 * acc / 64);
        }
    qs_calib cv = {C, H, NULL, X, 64, NULL, NULL};
    qs_qconfig cfg;
    qs_qconfig_default(&cfg, qs_method_find("gptq"));
    qs_qresult a, b;
    qs_err err = {0};
    qs_progress stop = {0, 0, 1, NULL, NULL}, go = {0};
    cr_expect_eq(qs_quant_run_progress(&cfg, w, R, C, &cv, NULL, 1, &stop, &a, &err), -QS_E_CANCELLED, "%s", err.msg);
    cr_assert_eq(qs_quant_run_progress(&cfg, w, R, C, &cv, NULL, 1, &go, &a, &err), 0, "%s", err.msg);
    cr_assert_eq(qs_quant_run(&cfg, w, R, C, &cv, NULL, 1, &b, &err), 0, "%s", err.msg);
    cr_expect(!memcmp(a.deq, b.deq, sizeof(float) * R * C), "progress does not change the result");
    cr_expect(go.total > 0 && go.done == go.total, "progress is reported and reaches its total (%lld/%lld)",
              (long long)go.done, (long long)go.total);
    qs_qresult_free(&a), qs_qresult_free(&b);
    free(w), free(H), free(X);
}
