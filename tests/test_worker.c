/* The workbench's tensor job in row chunks: every number it shows is the same whatever the chunk
 * size (one chunk, several, an uneven last one), and the streamed statistics equal the
 * whole-array ones and a double-precision reference. The one exception: the output error on
 * calibration rows, whose sgemm products round differently for another product width. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/formats/gguf.h"
#include "core/model/model.h"
#include "core/quant/quant.h"
#include "core/recipe/recipe.h"
#include "core/quant/stats.h"
#include "tests/testutil.h"
#include "tui/app.h"
#include "tui/worker.h"

/* heavy-tailed weights with repeated values, zeros of both signs and a few outlier columns */
static void fill_weights(float *w, int64_t n, int64_t cols)
{
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (int64_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        double u = (double)(s >> 11) / 9007199254740992.0 - 0.5;
        float v = (float)(0.02 * u / sqrt(0.3 + fabs(u)) * ((i % cols) % 97 == 0 ? 9 : 1));
        if (i % 1009 == 0) v = (i / 1009) % 2 ? -0.0f : 0.0f;
        if (i % 523 == 0) v = 0.0125f;
        w[i] = v;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* the distribution computed plainly in double: a sorted copy, two-pass moments */
static void dist_reference(const float *x, int64_t n, qs_dist *d)
{
    double *s = malloc((size_t)n * sizeof *s), sum = 0, m2 = 0, m4 = 0;
    for (int64_t i = 0; i < n; i++) s[i] = x[i], sum += x[i];
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    d->mean = sum / (double)n;
    for (int64_t i = 0; i < n; i++) m2 += (s[i] - d->mean) * (s[i] - d->mean), m4 += pow(s[i] - d->mean, 4);
    m2 /= (double)n, m4 /= (double)n;
    d->min = s[0], d->max = s[n - 1], d->std = sqrt(m2), d->kurtosis = m4 / (m2 * m2) - 3;
    for (int k = 0; k < QS_NPCT; k++) {
        double pos = qs_pct_levels[k] / 100.0 * (double)(n - 1);
        int64_t i = (int64_t)floor(pos);
        d->pct[k] = i + 1 < n ? s[i] + (pos - (double)i) * (s[i + 1] - s[i]) : s[n - 1];
    }
    d->n_outliers = 0;
    for (int64_t i = 0; i < n; i++) d->n_outliers += fabs(x[i] - d->mean) > 3 * d->std;
    free(s);
}

Test(worker, streamed_distribution_equals_whole_and_double)
{
    enum { N = 300007 };
    float *x = malloc(N * sizeof *x);
    fill_weights(x, N, 1000);
    qs_dist whole, ref, st;
    cr_assert_eq(qs_dist_compute(x, N, 3.0, &whole), 0);
    dist_reference(x, N, &ref);
    qs_dist_stream s;
    cr_assert_eq(qs_dist_stream_init(&s, 3.0), 0);
    int left = 3, passes = 0;
    while (left > 0) {
        for (int64_t i = 0, c = 1; i < N; i += c, c = c * 3 + 7) /* uneven chunks */
            qs_dist_stream_add(&s, x + i, i + c < N ? c : N - i);
        left = qs_dist_stream_end_pass(&s, &st);
        passes++;
    }
    qs_dist_stream_free(&s);
    cr_assert_eq(passes, 3);
    cr_expect_eq(st.n, N);
    cr_expect(st.min == whole.min && st.max == whole.max && st.mean == whole.mean && st.std == whole.std &&
              st.kurtosis == whole.kurtosis && st.absmax == whole.absmax && st.n_outliers == whole.n_outliers);
    for (int k = 0; k < QS_NPCT; k++) {
        cr_expect(st.pct[k] == whole.pct[k], "pct %d: %.9g vs %.9g", k, st.pct[k], whole.pct[k]);
        cr_expect(st.pct[k] == ref.pct[k], "pct %d: %.9g vs reference %.9g", k, st.pct[k], ref.pct[k]);
    }
    cr_expect(st.min == ref.min && st.max == ref.max && st.n_outliers == ref.n_outliers);
    cr_expect(fabs(st.mean - ref.mean) <= 1e-12 * fabs(ref.std) && fabs(st.std - ref.std) <= 1e-12 * ref.std);
    cr_expect(fabs(st.kurtosis - ref.kurtosis) <= 1e-9 * fabs(ref.kurtosis));
    free(x);
}

Test(worker, chunked_compare_tiles_and_output_error_equal_whole)
{
    enum { R = 96, C = 2048, N = R * C, XN = 5 };
    float *w = malloc(N * sizeof *w), *q = malloc(N * sizeof *q), *x = malloc(XN * C * sizeof *x);
    fill_weights(w, N, C);
    for (int64_t i = 0; i < N; i++) q[i] = roundf(w[i] * 300) / 300;
    fill_weights(x, XN * C, 7);
    qs_metrics whole, part;
    qs_stats_compare(w, q, N, &whole);
    qs_compare_acc acc = {0};
    for (int64_t r0 = 0; r0 < R; r0 += 32) qs_compare_add(&acc, w + r0 * C, q + r0 * C, (R - r0 < 32 ? R - r0 : 32) * C);
    qs_compare_finish(&acc, &part);
    cr_expect(part.n == whole.n && part.mse == whole.mse && part.max_abs == whole.max_abs && part.sqnr_db == whole.sqnr_db &&
              part.cosine == whole.cosine);
    double se = 0, sx = 0;
    for (int64_t i = 0; i < N; i++) se += ((double)q[i] - w[i]) * ((double)q[i] - w[i]), sx += (double)w[i] * w[i];
    cr_expect(fabs(part.mse - se / N) <= 1e-12 * (se / N) && fabs(part.sqnr_db - 10 * log10(sx / se)) < 1e-9);
    /* tiles: a window of 60 × 1000 from (17, 300), 40 × 44 cells (and more cells than rows) */
    int grids[2][2] = {{40, 44}, {64, 44}};
    for (int g = 0; g < 2; g++) {
        int pr = grids[g][0], pc = grids[g][1];
        float *win = malloc(60 * 1000 * sizeof *win), *t1 = calloc((size_t)(pr * pc), sizeof *t1), *t2 = calloc((size_t)(pr * pc), sizeof *t2);
        for (int r = 0; r < 60; r++) memcpy(win + r * 1000, w + (17 + r) * C + 300, 1000 * sizeof *win);
        qs_tilemap(win, 60, 1000, pr, pc, QS_TILE_MAX_ABS, t1);
        for (int r0 = 0; r0 < 60; r0 += 7) qs_tilemap_max_rows(win + r0 * 1000, 1000, r0, 60 - r0 < 7 ? 60 - r0 : 7, 60, 1000, pr, pc, t2);
        cr_expect(!memcmp(t1, t2, (size_t)(pr * pc) * sizeof *t1), "tiles %dx%d differ", pr, pc);
        free(win), free(t1), free(t2);
    }
    double oe = qs_stats_output_error(w, q, R, C, x, XN);
    qs_outerr_acc a;
    cr_assert_eq(qs_outerr_begin(&a, x, XN, R, C), 0);
    for (int64_t r0 = 0; r0 < R; r0 += 40) qs_outerr_add(&a, w + r0 * C, q + r0 * C, r0, R - r0 < 40 ? R - r0 : 40);
    double oc = qs_outerr_end(&a);
    /* (OpenBLAS's sgemm rounds differently for other widths of the product: not bit for bit) */
    cr_expect(fabs(oc - oe) <= 1e-6 * oe, "output error in chunks %.17g vs whole %.17g", oc, oe);
    free(w), free(q), free(x);
}

/* a one-tensor model of rows × cols F32 weights */
static qs_model *one_tensor_model(const char *path, int64_t rows, int64_t cols)
{
    float *w = malloc((size_t)(rows * cols) * sizeof *w);
    fill_weights(w, rows * cols, cols);
    qs_gguf_writer *g = qs_gguf_writer_new();
    qs_gguf_writer_set_str(g, "general.architecture", "llama");
    int64_t ne[4] = {cols, rows, 1, 1};
    qs_err err = {0};
    cr_assert_eq(qs_gguf_writer_add_tensor(g, "blk.0.ffn_down.weight", 0, 0, ne, w, &err) || qs_gguf_writer_write(g, path, &err), 0,
                 "%s", err.msg);
    qs_gguf_writer_free(g);
    free(w);
    qs_model *m = qs_model_open(path, &err);
    cr_assert_not_null(m, "%s", err.msg);
    return m;
}

static void expect_same_result(const app_result *a, const app_result *b, const char *what)
{
    cr_assert(a->ok && b->ok, "%s: %s / %s", what, a->error, b->error);
    cr_expect(a->m.n == b->m.n && a->m.mse == b->m.mse && a->m.rmse == b->m.rmse && a->m.max_abs == b->m.max_abs &&
              a->m.sqnr_db == b->m.sqnr_db && a->m.cosine == b->m.cosine, "%s: metrics differ (mse %.17g vs %.17g)", what,
              a->m.mse, b->m.mse);
    cr_expect(a->bpw == b->bpw && a->bytes == b->bytes && a->n_clipped == b->n_clipped && a->ggml_type == b->ggml_type,
              "%s: bpw/bytes/clipped differ (%lld vs %lld clipped)", what, (long long)a->n_clipped, (long long)b->n_clipped);
    cr_expect(!strcmp(a->report, b->report), "%s: report '%s' vs '%s'", what, a->report, b->report);
    cr_expect(!memcmp(&a->dist.pct, &b->dist.pct, sizeof a->dist.pct) && a->dist.mean == b->dist.mean && a->dist.std == b->dist.std &&
              a->dist.n_outliers == b->dist.n_outliers, "%s: distribution differs", what);
    cr_expect(!memcmp(a->hist_orig, b->hist_orig, sizeof a->hist_orig) && !memcmp(a->hist_deq, b->hist_deq, sizeof a->hist_deq),
              "%s: histograms differ", what);
    size_t nt = (size_t)(a->tile_rows * a->tile_cols) * sizeof(float);
    cr_expect(a->tile_rows == b->tile_rows && a->tile_cols == b->tile_cols && !memcmp(a->tiles_w, b->tiles_w, nt) &&
              !memcmp(a->tiles_err, b->tiles_err, nt) && !memcmp(a->tiles_scale, b->tiles_scale, nt), "%s: tiles differ", what);
    cr_expect(a->n_levels == b->n_levels && !memcmp(a->levels, b->levels, (size_t)a->n_levels * sizeof(float)), "%s: grid", what);
    cr_expect(a->ex_n == b->ex_n && !memcmp(a->ex_w, b->ex_w, sizeof a->ex_w) && !memcmp(a->ex_deq, b->ex_deq, sizeof a->ex_deq) &&
              !memcmp(a->ex_code, b->ex_code, sizeof a->ex_code) && a->ex_scale == b->ex_scale && a->ex_min == b->ex_min,
              "%s: explain numbers differ", what);
    cr_expect(!memcmp(a->ch_row, b->ch_row, sizeof a->ch_row) && !memcmp(a->ch_err, b->ch_err, sizeof a->ch_err) &&
              !memcmp(a->ch, b->ch, sizeof a->ch), "%s: outlier rows differ", what);
}

Test(worker, chunked_job_equals_one_chunk_and_double, .timeout = 120)
{
    enum { R = 200, C = 1536 }; /* 65536-weight chunks: 128 rows, 73 in the last chunk */
    char path[] = "/tmp/qs-test-worker-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    qs_model *m = one_tensor_model(path, R, C);
    static app a;
    char msg[256];
    cr_assert_eq(app_init(&a, m, msg, sizeof msg), 0, "%s", msg);
    static const char *const cfgs[] = {"q4_K", "q8_0", "q2_K", "rtn:bits=4,group=128", "rtn:bits=3,group=row,asym=true,clip=true",
                                       "nf4:block=64", "fp4:block=128", "nf4:block=64,double_quant=true", "rtn:bits=4,group=tensor"};
    app_view_req views[2] = {{.heat_pr = 40, .heat_pc = 44}, {true, 17, 300, 150, 1000, 30, 50}};
    app_result *one = malloc(sizeof *one), *many = malloc(sizeof *many);
    float *w = malloc((size_t)R * C * sizeof *w);
    fill_weights(w, (int64_t)R * C, C);
    for (size_t k = 0; k < sizeof cfgs / sizeof *cfgs; k++)
        for (int v = 0; v < 2; v++) {
            qs_qconfig c;
            bool keep;
            qs_err err = {0};
            cr_assert_eq(qs_config_parse(cfgs[k], &c, &keep, &err), 0, "%s", err.msg);
            tensor_cache c1 = {.t = -1, .chunk_weights = 1 << 30}, c2 = {.t = -1, .chunk_weights = 65536};
            worker_compute(&a, 0, &c, &views[v], 1, &c1, NULL, one);
            worker_compute(&a, 0, &c, &views[v], 1, &c2, NULL, many);
            char what[96];
            snprintf(what, sizeof what, "%s, view %d", cfgs[k], v);
            expect_same_result(one, many, what);
            /* and the metrics against a double-precision pass over the whole quantization */
            qs_qresult q;
            cr_assert_eq(qs_quant_run(&c, w, R, C, NULL, NULL, 0, &q, &err), 0, "%s", err.msg);
            double se = 0, sx = 0, sy = 0, sxy = 0;
            for (int64_t i = 0; i < (int64_t)R * C; i++) {
                double x = w[i], y = q.deq[i];
                se += (y - x) * (y - x), sx += x * x, sy += y * y, sxy += x * y;
            }
            cr_expect(fabs(many->m.mse - se / (R * C)) <= 1e-10 * se / (R * C), "%s: mse %.17g vs %.17g", what, many->m.mse, se / (R * C));
            cr_expect(fabs(many->m.cosine - sxy / sqrt(sx * sy)) <= 1e-10, "%s: cosine %.17g vs %.17g", what, many->m.cosine,
                      sxy / sqrt(sx * sy));
            cr_expect_eq(many->n_clipped, q.n_clipped, "%s: clipped", what);
            cr_expect_eq(many->bpw, q.bpw, "%s: bpw", what);
            qs_qresult_free(&q);
            tensor_cache_free(&c1), tensor_cache_free(&c2);
        }
    free(one), free(many), free(w);
    app_free(&a);
    qs_model_close(m);
    unlink(path);
}
