/* The quantizer interface, RTN (the docs' int8 worked example, grids, granularities) and
 * the statistics, checked against arithmetic done here in double precision. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/quant/ggml_quants.h"
#include "core/quant/ggml_types.h"
#include "core/quant/quant.h"
#include "core/quant/rtn.h"
#include "core/quant/stats.h"

static qs_qconfig cfg_of(const char *method)
{
    qs_qconfig c;
    const qs_method *m = qs_method_find(method);
    cr_assert_not_null(m, "method %s", method);
    qs_qconfig_default(&c, m);
    return c;
}

static void int8_example(float maxabs, const char *inv_scale)
{
    float w[4] = {0.5415f, -maxabs, 0.1f, 0.0f};
    qs_qconfig c = cfg_of("rtn");
    qs_err err = {0};
    cr_assert_eq(qs_qconfig_set(&c, "bits", "8", &err), 0);
    cr_assert_eq(qs_qconfig_set(&c, "group", "tensor", &err), 0);
    qs_qresult r;
    cr_assert_eq(qs_quant_run(&c, w, 1, 4, NULL, NULL, 1, &r, &err), 0, "%s", err.msg);
    cr_assert_eq(r.n_groups, 1);
    char buf[32];
    snprintf(buf, sizeof buf, "%.4f", 1.0 / r.scales[0]);
    cr_assert_str_eq(buf, inv_scale);
    cr_assert_eq((int8_t)r.data[0], 74);
    cr_assert_eq((int8_t)r.data[1], -127);
    snprintf(buf, sizeof buf, "%.4f", (double)r.deq[0]);
    cr_assert_str_eq(buf, "0.5431");
    qs_qresult_free(&r);
}

Test(quant, int8_worked_example)
{
    /* The docs: max |w| = 0.932 → scale 127/0.932, 0.5415 → 74 → 0.5431. 127/0.932 is
     * 136.2661; the docs print 136.2472…, which is 127/0.93213 — their max rounded to three
     * digits. Both forms give 74 and 0.5431. */
    int8_example(0.932f, "136.2661");
    int8_example((float)(127.0 / 136.2472), "136.2472");
}

/* a reference RTN in double, written from the formulas of the issue */
static double ref_rtn(double w, double mn, double mx, int bits, bool asym)
{
    if (!asym) {
        double qmax = (1 << (bits - 1)) - 1, s = fmax(fabs(mn), fabs(mx)) / qmax;
        if (s == 0) return 0;
        return fmin(qmax, fmax(-qmax, nearbyint(w / s))) * s;
    }
    double maxq = (1 << bits) - 1, lo = fmin(mn, 0), hi = fmax(mx, 0), s = (hi - lo) / maxq;
    if (s == 0) return 0;
    double z = nearbyint(-lo / s);
    return (fmin(maxq, fmax(0, nearbyint(w / s) + z)) - z) * s;
}

Test(quant, rtn_matches_double_reference)
{
    enum { R = 8, C = 256 };
    static float w[R * C];
    srand(3);
    for (int i = 0; i < R * C; i++) w[i] = (float)((rand() / (double)RAND_MAX - 0.3) * (i % 61 == 0 ? 8 : 1));
    int groups[] = {-1, 0, 32, 128};
    for (int bits = 2; bits <= 8; bits++)
        for (int gi = 0; gi < 4; gi++)
            for (int asym = 0; asym < 2; asym++) {
                qs_qconfig c = cfg_of("rtn");
                c.bits = bits;
                c.group = groups[gi];
                c.asym = asym;
                qs_qresult r;
                qs_err err = {0};
                cr_assert_eq(qs_quant_run(&c, w, R, C, NULL, NULL, 2, &r, &err), 0, "%s", err.msg);
                int64_t glen = groups[gi] < 0 ? R * C : groups[gi] == 0 ? C : groups[gi];
                int64_t mism = 0;
                for (int64_t g = 0; g < R * C / glen; g++) {
                    double mn = INFINITY, mx = -INFINITY;
                    for (int64_t i = g * glen; i < (g + 1) * glen; i++) mn = fmin(mn, w[i]), mx = fmax(mx, w[i]);
                    for (int64_t i = g * glen; i < (g + 1) * glen; i++)
                        mism += fabs(ref_rtn(w[i], mn, mx, bits, asym) - r.deq[i]) > 1e-6 * fmax(fabs(mn), fabs(mx));
                }
                cr_expect_eq(mism, 0, "bits %d group %d asym %d: %lld weights differ", bits, groups[gi], asym,
                             (long long)mism);
                double want_bpw = bits + (32.0 + (asym ? bits : 0)) / (double)glen;
                cr_expect_float_eq(r.bpw, want_bpw, 1e-12);
                qs_qresult_free(&r);
            }
}

Test(quant, rtn_clip_search_never_worse)
{
    enum { C = 512 };
    static float w[C];
    srand(5);
    for (int i = 0; i < C; i++) w[i] = (float)((rand() / (double)RAND_MAX - 0.5) * 0.1);
    w[17] = 0.3f; /* one outlier: clipping it helps the other 127 weights of its group */
    qs_qconfig c = cfg_of("rtn");
    c.bits = 3;
    qs_qresult a, b;
    qs_err err = {0};
    cr_assert_eq(qs_quant_run(&c, w, 1, C, NULL, NULL, 1, &a, &err), 0);
    c.clip = true;
    cr_assert_eq(qs_quant_run(&c, w, 1, C, NULL, NULL, 1, &b, &err), 0);
    qs_metrics ma, mb;
    qs_stats_compare(w, a.deq, C, &ma);
    qs_stats_compare(w, b.deq, C, &mb);
    cr_assert_leq(mb.mse, ma.mse);
    cr_assert_lt(b.clip_ratio[0], 1.0f, "the outlier's group clips");
    cr_assert_gt(b.n_clipped, 0);
    cr_assert_eq(a.n_clipped, 0, "without clipping nothing lies outside the grid");
    qs_qresult_free(&a);
    qs_qresult_free(&b);
}

Test(quant, ggml_methods_match_the_raw_quantizer_and_fall_back)
{
    enum { R = 4, C = 512 };
    static float w[R * C];
    for (int i = 0; i < R * C; i++) w[i] = sinf((float)i * 0.37f) * (1 + (i % 7));
    for (int i = 0; i < qs_method_count; i++) {
        const qs_method *m = &qs_method_table[i];
        if (m->ggml_type < 0) continue;
        qs_qconfig c = cfg_of(m->name);
        qs_qresult r;
        qs_err err = {0};
        cr_assert_eq(qs_quant_run(&c, w, R, C, NULL, NULL, 1, &r, &err), 0, "%s: %s", m->name, err.msg);
        uint8_t *raw = malloc(r.nbytes);
        cr_assert_eq(qs_ggml_quantize(m->ggml_type, w, raw, R, C, NULL, 1, &err), 0);
        cr_assert_eq(memcmp(raw, r.data, r.nbytes), 0, "%s bytes", m->name);
        cr_assert_float_eq(r.bpw, qs_type_bpw(m->ggml_type), 1e-12);
        float lv[256];
        int n = qs_qresult_levels(&r, 1, 100, lv);
        if (m->ggml_type != QS_TYPE_F16 && m->ggml_type != QS_TYPE_BF16) {
            cr_assert_gt(n, 1, "%s has a grid", m->name);
            bool on_grid = false;
            for (int k = 0; k < n; k++) on_grid |= lv[k] == r.deq[1 * C + 100];
            cr_assert(on_grid, "%s: the dequantized weight is one of its group's levels", m->name);
        }
        free(raw);
        qs_qresult_free(&r);
    }
    /* 64 columns: q4_K falls back to q5_0, q6_K to q8_0; 48 columns: q4_K → f16, q4_0 has no fallback */
    qs_qconfig c = cfg_of("q4_K");
    qs_qresult r;
    qs_err err = {0};
    cr_assert_eq(qs_quant_run(&c, w, 2, 64, NULL, NULL, 1, &r, &err), 0);
    cr_assert(r.fell_back);
    cr_assert_eq(r.ggml_type, QS_TYPE_Q5_0);
    qs_qresult_free(&r);
    cr_assert_eq(qs_ggml_fallback_type(QS_TYPE_Q6_K, 64), QS_TYPE_Q8_0);
    cr_assert_eq(qs_ggml_fallback_type(QS_TYPE_Q4_K, 48), QS_TYPE_F16);
    cr_assert_eq(qs_ggml_fallback_type(QS_TYPE_IQ4_XS, 96), QS_TYPE_IQ4_NL);
    cr_assert_eq(qs_ggml_fallback_type(QS_TYPE_Q2_K, 64), QS_TYPE_Q4_0);
    c = cfg_of("q4_0");
    cr_assert_lt(qs_quant_run(&c, w, 2, 48, NULL, NULL, 1, &r, &err), 0);
    cr_assert(strstr(err.msg, "no fallback"), "%s", err.msg);
}

Test(quant, configs_parse_step_and_describe)
{
    qs_qconfig c = cfg_of("RTN");
    qs_err err = {0};
    cr_assert_eq(qs_qconfig_set(&c, "group", "row", &err), 0);
    cr_assert_eq(c.group, 0);
    cr_assert_lt(qs_qconfig_set(&c, "bits", "9", &err), 0);
    cr_assert(strstr(err.msg, "bits takes 2…8"), "%s", err.msg);
    cr_assert_lt(qs_qconfig_set(&c, "block", "64", &err), 0, "rtn has no block knob");
    cr_assert(qs_qconfig_step(&c, QS_KNOB_GROUP, +1));
    cr_assert_eq(c.group, 32);
    c.group = 256;
    cr_assert_not(qs_qconfig_step(&c, QS_KNOB_GROUP, +1), "256 is the last step");
    c.bits = 8;
    cr_assert_not(qs_qconfig_step(&c, QS_KNOB_BITS, +1));
    char d[64];
    c.asym = true;
    qs_qconfig_describe(&c, d, sizeof d);
    cr_assert_str_eq(d, "rtn w8 g256 asym");
    qs_qresult r;
    float w[96] = {1};
    c.group = 64;
    cr_assert_lt(qs_quant_run(&c, w, 1, 96, NULL, NULL, 1, &r, &err), 0);
    cr_assert(strstr(err.msg, "does not divide"), "%s", err.msg);
    w[5] = NAN;
    c.group = 32;
    cr_assert_lt(qs_quant_run(&c, w, 1, 96, NULL, NULL, 1, &r, &err), 0);
    cr_assert(strstr(err.msg, "column 5 is not finite"));
    cr_assert_null(qs_method_find("gptq-nonexistent"));
    cr_assert_not_null(qs_method_find("IQ4_XS"));
}

Test(stats, distribution_against_double)
{
    enum { N = 1001 };
    static float x[N];
    for (int i = 0; i < N; i++) x[i] = (float)(i - 500) / 100.0f; /* −5 … 5 */
    x[1000] = 50.0f;                                             /* an outlier */
    qs_dist d;
    cr_assert_eq(qs_dist_compute(x, N, 3.0, &d), 0);
    double s = 0, m2 = 0, m4 = 0;
    for (int i = 0; i < N; i++) s += x[i];
    double mean = s / N;
    for (int i = 0; i < N; i++) m2 += (x[i] - mean) * (x[i] - mean), m4 += pow(x[i] - mean, 4);
    m2 /= N;
    m4 /= N;
    cr_assert_float_eq(d.mean, mean, 1e-12);
    cr_assert_float_eq(d.std, sqrt(m2), 1e-12);
    cr_assert_float_eq(d.kurtosis, m4 / (m2 * m2) - 3, 1e-9);
    cr_assert_eq(d.max, 50.0);
    cr_assert_float_eq(d.pct[4], 0.0, 1e-6, "median of −5…4.99 and 50 is x[500] = 0");
    cr_assert_float_eq(d.pct[0], -5.0 + 0.001 * 1000 / 100.0, 1e-6, "0.1th percentile interpolates");
    cr_assert_eq(d.n_outliers, 1);
}

Test(stats, histogram_tiles_channels_metrics)
{
    float x[8] = {-4, -1, -0.5f, 0, 0.25f, 0.5f, 1, 4};
    qs_hist_spec h = {4, -2, 2, false, 1};
    int64_t counts[4], below, above;
    qs_hist_compute(&h, x, 8, counts, &below, &above);
    cr_assert_eq(below, 1);
    cr_assert_eq(above, 1);
    cr_assert(counts[0] == 0 && counts[1] == 2 && counts[2] == 3 && counts[3] == 1, "%lld %lld %lld %lld",
              (long long)counts[0], (long long)counts[1], (long long)counts[2], (long long)counts[3]);
    qs_hist_spec sl = {6, -100, 100, true, 1};
    cr_assert_float_eq(qs_hist_edge(&sl, 3), 0.0, 1e-12);
    cr_assert_float_eq(qs_hist_edge(&sl, 6), 100.0, 1e-9);
    cr_assert_eq(qs_hist_bin(&sl, 0.5), 3);
    cr_assert_eq(qs_hist_bin(&sl, -0.5), 2);

    float m[4 * 6];
    for (int i = 0; i < 24; i++) m[i] = (float)(i % 5) - 2;
    float tiles[2 * 3];
    qs_tilemap(m, 4, 6, 2, 3, QS_TILE_MAX_ABS, tiles);
    for (int ti = 0; ti < 2; ti++)
        for (int tj = 0; tj < 3; tj++) {
            double want = 0;
            for (int r = 2 * ti; r < 2 * ti + 2; r++)
                for (int c = 2 * tj; c < 2 * tj + 2; c++) want = fmax(want, fabs(m[r * 6 + c]));
            cr_assert_eq(tiles[ti * 3 + tj], (float)want);
        }
    qs_channel_stats cs[4];
    qs_channel_stats_compute(m, 4, 6, 0, cs);
    cr_assert_eq(cs[0].absmax, 2.0f);
    qs_channel_stats cc[6];
    qs_channel_stats_compute(m, 4, 6, 1, cc);
    cr_assert_eq(cc[0].absmax, 2.0f, "column 0 holds −2, 2, 1, 0");

    float a[4] = {1, 2, 3, 4}, b[4] = {1, 2, 3, 5};
    qs_metrics mt;
    qs_stats_compare(a, b, 4, &mt);
    cr_assert_float_eq(mt.mse, 0.25, 1e-15);
    cr_assert_float_eq(mt.max_abs, 1.0, 1e-15);
    cr_assert_float_eq(mt.sqnr_db, 10 * log10(30.0 / 1.0), 1e-12);
    cr_assert_float_eq(mt.cosine, 34.0 / sqrt(30.0 * 39.0), 1e-12);
    qs_stats_compare(a, a, 4, &mt);
    cr_assert(isinf(mt.sqnr_db));
}

static int cmp_f(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* the percentiles (selected, not sorted, in the library) equal those of a sorted copy, on data
 * with ties, constant runs and odd and even sizes */
Test(quant, percentiles_equal_a_sorted_copy)
{
    static const int64_t sizes[] = {1, 2, 3, 10, 1001, 4096, 100000};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        int64_t n = sizes[k];
        float *x = malloc((size_t)n * sizeof *x), *s = malloc((size_t)n * sizeof *s);
        uint32_t st = 12345u + (uint32_t)k;
        for (int64_t i = 0; i < n; i++) {
            st = st * 1664525u + 1013904223u;
            x[i] = k % 2 ? (float)((st >> 8) % 17) - 8.0f : (float)(st >> 8) / 16777216.0f - 0.5f; /* ties for odd k */
        }
        memcpy(s, x, (size_t)n * sizeof *s);
        qsort(s, (size_t)n, sizeof *s, cmp_f);
        qs_dist d;
        cr_assert_eq(qs_dist_compute(x, n, 3.0, &d), 0);
        for (int p = 0; p < QS_NPCT; p++) {
            double pos = qs_pct_levels[p] / 100.0 * (double)(n - 1), f = pos - floor(pos);
            int64_t i = (int64_t)floor(pos);
            double want = i >= n - 1 ? s[n - 1] : (double)s[i] + f * ((double)s[i + 1] - (double)s[i]);
            cr_expect_eq(d.pct[p], want, "n %lld, p %g: %.9g, want %.9g", (long long)n, qs_pct_levels[p], d.pct[p], want);
        }
        free(x), free(s);
    }
}
