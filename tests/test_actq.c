/* Activation quantization (core/actq.h): specs, fake quantization against double-precision
 * arithmetic, calibrated ranges against the activations recorded independently, smoothing. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/recipe/actq.h"
#include "core/model/infer.h"
#include "core/model/model.h"
#include "tests/testutil.h"

Test(actq, specs_parse_and_print)
{
    qs_act_spec s;
    qs_err err = {0};
    char buf[64];
    const char *ok[] = {"int8:dynamic", "int4:dynamic", "int8:static:per-tensor", "int8:static:per-channel",
                        "int8:static:per-tensor:p99.9"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        cr_assert_eq(qs_act_spec_parse(ok[i], &s, &err), 0, "%s: %s", ok[i], err.msg);
        qs_act_spec_format(&s, buf, sizeof buf);
        cr_assert_str_eq(buf, ok[i]);
    }
    cr_assert_eq(qs_act_spec_parse("int8:static", &s, &err), 0);
    cr_assert(s.mode == QS_ACT_STATIC && !s.per_channel && s.bits == 8 && s.pct == 0);
    const char *bad[] = {"int9:dynamic", "int1:dynamic", "int8", "int8:dynamic:per-channel", "int8:static:p0",
                         "int8:static:per-channel:p99", "float8:dynamic", "int8:static:p101", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert_neq(qs_act_spec_parse(bad[i], &s, &err), 0, "'%s' accepted", bad[i]);
}

/* the reference: symmetric, round half to even, clamped, in double */
static double ref_fq(double x, double s, int qmax)
{
    if (s <= 0) return 0;
    double q = nearbyint(x / s);
    q = q > qmax ? qmax : q < -qmax ? -qmax : q;
    return q * s;
}

Test(actq, fake_quantization_matches_double_arithmetic)
{
    enum { T = 5, C = 37 };
    float x[T * C], y[T * C], chan[C];
    uint64_t r = 12345;
    for (int i = 0; i < T * C; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(r >> 11) / 9007199254740992.0 - 0.5) * (i % 11 == 3 ? 40.0f : 2.0f);
    }
    for (int bits = 2; bits <= 8; bits += 2) {
        int qmax = (1 << (bits - 1)) - 1;
        /* dynamic: a scale per token */
        memcpy(y, x, sizeof x);
        qs_act_fake_quant(y, T, C, bits, NULL, 0);
        for (int t = 0; t < T; t++) {
            double amax = 0;
            for (int j = 0; j < C; j++) amax = fmax(amax, fabs((double)x[t * C + j]));
            for (int j = 0; j < C; j++) {
                double want = ref_fq(x[t * C + j], (double)(float)(amax / qmax), qmax);
                cr_assert_float_eq(y[t * C + j], want, 1e-5 * amax, "bits %d token %d col %d: %g vs %g", bits, t, j,
                                   y[t * C + j], want);
            }
        }
        /* static per tensor with clipping, and per channel */
        float s1 = 0.05f;
        memcpy(y, x, sizeof x);
        qs_act_fake_quant(y, T, C, bits, &s1, 1);
        for (int i = 0; i < T * C; i++) cr_assert_float_eq(y[i], ref_fq(x[i], s1, qmax), 1e-6);
        for (int j = 0; j < C; j++) chan[j] = j == 4 ? 0.0f : 0.01f * (float)(j + 1);
        memcpy(y, x, sizeof x);
        qs_act_fake_quant(y, T, C, bits, chan, C);
        for (int i = 0; i < T * C; i++) cr_assert_float_eq(y[i], ref_fq(x[i], chan[i % C], qmax), 1e-6);
    }
}


/* every value of one linear input, as recorded by an observer of our own */
typedef struct rec {
    const char *weight;
    double *v;
    int64_t n, cap, cols;
} rec;

static void record(void *ctx, const char *const *weights, int n, const float *x, int T, int64_t cols)
{
    rec *r = ctx;
    bool mine = false;
    for (int k = 0; k < n; k++) mine |= !strcmp(weights[k], r->weight);
    if (!mine) return;
    r->cols = cols;
    if (r->n + T * cols > r->cap) {
        r->cap = 2 * (r->n + T * cols);
        r->v = realloc(r->v, (size_t)r->cap * sizeof *r->v);
    }
    for (int64_t i = 0; i < T * cols; i++) r->v[r->n++] = x[i];
}

static int cmp_abs(const void *a, const void *b)
{
    double x = fabs(*(const double *)a), y = fabs(*(const double *)b);
    return (x > y) - (x < y);
}

Test(actq, calibrated_ranges_match_the_recorded_activations, .timeout = 120)
{
    qs_model *m = tu_stories();
    qs_err err = {0};
    qs_llm *l = qs_llm_new(m, 64, &err);
    cr_assert_not_null(l, "%s", err.msg);
    int V = qs_llm_n_vocab(l), nc = 2, ctx = 64;
    int32_t toks[128];
    for (int i = 0; i < nc * ctx; i++) toks[i] = (int32_t)((i * 131 + 7) % V);
    const char *weights[] = {"blk.0.attn_q.weight", "blk.2.ffn_down.weight", "output.weight"};
    qs_act_stats st;
    cr_assert_eq(qs_act_calibrate(l, toks, nc, ctx, 1, NULL, &st, &err), 0, "%s", err.msg);
    cr_assert_eq(st.tokens, nc * ctx);
    for (size_t w = 0; w < sizeof weights / sizeof *weights; w++) {
        const char *name = weights[w];
        if (!strcmp(name, "output.weight") && !qs_model_find_tensor(m, name)) name = "token_embd.weight";
        rec r = {name, NULL, 0, 0, 0};
        int32_t chunk[128];
        memcpy(chunk, toks, sizeof chunk);
        chunk[0] = chunk[ctx] = 1;
        float *logits = malloc(sizeof(float) * 128 * (size_t)V);
        qs_llm_set_observer(l, record, &r);
        cr_assert_eq(qs_llm_eval_seqs(l, chunk, nc, ctx, logits, &err), 0, "%s", err.msg);
        qs_llm_set_observer(l, NULL, NULL);
        free(logits);
        const qs_act_input *in = qs_act_stats_find(&st, name);
        cr_assert_not_null(in, "%s not observed", name);
        cr_assert_eq(in->cols, r.cols);
        cr_assert_eq(in->count, r.n, "%s: %lld values, recorded %lld", name, (long long)in->count, (long long)r.n);
        double amax = 0;
        for (int64_t j = 0; j < r.cols; j++) {
            double c = 0;
            for (int64_t i = j; i < r.n; i += r.cols) c = fmax(c, fabs(r.v[i]));
            cr_assert_eq((double)in->chan_absmax[j], c, "%s channel %lld", name, (long long)j);
            amax = fmax(amax, c);
        }
        cr_assert_eq(in->absmax, amax);
        qsort(r.v, (size_t)r.n, sizeof *r.v, cmp_abs);
        for (double pct = 90; pct < 100; pct += 4.995) {
            double want = fabs(r.v[(int64_t)ceil(pct / 100 * (double)r.n) - 1]), got = qs_act_percentile(in, pct);
            cr_assert(got >= want && got <= want * 1.011 + 1e-30, "%s p%g: %g, the values give %g", name, pct, got, want);
        }
        free(r.v);
    }
    qs_act_stats_free(&st);
    qs_llm_free(l);
    qs_model_close(m);
}

Test(actq, smoothing_scales_follow_the_formula)
{
    enum { C = 4 };
    float ch[C] = {8, 0.5f, 0, 2};
    qs_act_input in = {.cols = C, .chan_absmax = ch};
    float w0[2 * C] = {0.1f, -2, 1, 0.5f, -0.3f, 1, 1, 0}, w1[C] = {0.2f, 0.1f, 0, -0.25f}, s[C];
    const float *w[] = {w0, w1};
    int64_t rows[] = {2, 1};
    qs_act_smooth_scales(&in, w, rows, 2, 0.5, s);
    double mw[C] = {0.3, 2, 1, 0.5};
    for (int j = 0; j < C; j++) {
        double want = ch[j] > 0 && mw[j] > 0 ? sqrt(ch[j]) / sqrt(mw[j]) : 1;
        cr_assert_float_eq(s[j], want, 1e-6 * want, "channel %d: %g vs %g", j, s[j], want);
    }
    qs_act_smooth_scales(&in, w, rows, 2, 1.0, s);
    cr_assert_float_eq(s[0], 8.0, 1e-6);
    cr_assert_float_eq(s[3], 2.0, 1e-6);
}

/* smoothing moves scale between activations and weights: with float weights and no activation
 * quantization the logits stay (x/s)·(W·s)ᵀ = x·Wᵀ up to rounding */
Test(actq, smoothing_float_weights_keeps_the_logits, .timeout = 120)
{
    qs_model *m = tu_stories();
    qs_err err = {0};
    qs_llm *l = qs_llm_new(m, 64, &err);
    cr_assert_not_null(l, "%s", err.msg);
    int V = qs_llm_n_vocab(l), n = 48;
    int32_t toks[48];
    for (int i = 0; i < n; i++) toks[i] = i ? (int32_t)((i * 53 + 5) % V) : 1;
    float *a = malloc(sizeof(float) * (size_t)n * V), *b = malloc(sizeof(float) * (size_t)n * V);
    cr_assert_eq(qs_llm_eval(l, toks, n, 0, a, &err), 0, "%s", err.msg);
    qs_act_stats st;
    cr_assert_eq(qs_act_calibrate(l, toks, 1, n, 1, NULL, &st, &err), 0, "%s", err.msg);
    cr_assert_eq(qs_act_smooth(l, m, &st, 0.8, NULL, NULL, &err), 0, "%s", err.msg);
    cr_assert_not_null(qs_llm_in_div(l, "blk.0.attn_q.weight"), "no smoothing scales installed");
    cr_assert_eq(qs_llm_eval(l, toks, n, 0, b, &err), 0, "%s", err.msg);
    double worst = 0, spread = 0;
    for (int i = 0; i < n * V; i++) worst = fmax(worst, fabs((double)a[i] - b[i])), spread = fmax(spread, fabs(a[i]));
    cr_assert_lt(worst, 1e-4 * spread, "logits moved by %g (max |logit| %g)", worst, spread);
    /* and 8-bit dynamic activations move them, but little; static per-tensor int4 more */
    qs_act_spec dyn = {QS_ACT_DYNAMIC, 8, false, 0};
    cr_assert_eq(qs_act_apply(l, &dyn, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(qs_llm_eval(l, toks, n, 0, b, &err), 0, "%s", err.msg);
    double d8 = 0;
    for (int i = 0; i < n * V; i++) d8 = fmax(d8, fabs((double)a[i] - b[i]));
    cr_assert(d8 > worst && d8 < 0.1 * spread, "int8 dynamic moved the logits by %g", d8);
    qs_act_spec_parse("int4:static", &dyn, &err);
    qs_act_stats_free(&st);
    cr_assert_eq(qs_act_calibrate(l, toks, 1, n, 1, NULL, &st, &err), 0, "%s", err.msg);
    cr_assert_eq(qs_act_apply(l, &dyn, &st, &err), 0, "%s", err.msg);
    cr_assert_eq(qs_llm_eval(l, toks, n, 0, b, &err), 0, "%s", err.msg);
    double d4 = 0;
    for (int i = 0; i < n * V; i++) d4 = fmax(d4, fabs((double)a[i] - b[i]));
    cr_assert_gt(d4, d8, "int4 static (%g) should move the logits more than int8 dynamic (%g)", d4, d8);
    qs_act_stats_free(&st);
    free(a), free(b);
    qs_llm_free(l);
    qs_model_close(m);
}
