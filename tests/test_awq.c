/* AWQ against every config of every file in golden/awq (spec/awq.md §9): the search (best ratio
 * exact, scales within 1e-6, loss history within 1e-4), clip and quantization given the golden
 * scales (within 1e-6·max(1, |q|)), and end to end with our own scales (≥ 95 % identical Q, the
 * three relative output errors within 1e-3). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/quant/awq.h"
#include "core/formats/gguf.h"
#include "core/quant/stats.h"
#include "tests/testutil.h"

/* values within 1e-6·max(1, |want|); returns how many are not */
static int64_t n_off(const float *got, const float *want, int64_t n)
{
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) bad += !(fabsf(got[i] - want[i]) <= 1e-6f * fmaxf(1, fabsf(want[i])));
    return bad;
}

static double max_rel(const float *got, const float *want, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)got[i] / want[i] - 1));
    return m;
}

typedef struct bufs {
    qs_awq_out o;
    float *tmp, *tmp2;
} bufs;

static void bufs_new(bufs *b, int64_t rows, int64_t cols, int64_t ng)
{
    int64_t n = rows * cols;
    b->o = (qs_awq_out){.deq = malloc((size_t)n * 4), .codes = malloc((size_t)n), .gscales = malloc((size_t)(rows * ng) * 4),
                        .gzeros = malloc((size_t)(rows * ng) * 4), .s = malloc((size_t)cols * 4),
                        .clip_max = malloc((size_t)(rows * ng) * 4)};
    b->tmp = malloc((size_t)n * 4), b->tmp2 = malloc((size_t)n * 4);
}

static void bufs_free(bufs *b)
{
    free(b->o.deq), free(b->o.codes), free(b->o.gscales), free(b->o.gzeros), free(b->o.s), free(b->o.clip_max);
    free(b->tmp), free(b->tmp2);
}

static void check_config(const qs_gguf *g, int c, const float *W, const float *X, int64_t rows, int64_t cols, int64_t ntok)
{
    qs_awq_params p;
    qs_awq_default(&p);
    p.bits = (int)tu_golden_num(g, c, "w_bit"), p.group = (int)tu_golden_num(g, c, "group"), p.duo = tu_golden_num(g, c, "duo") != 0;
    int64_t n = rows * cols, ng = cols / p.group;
    const float *gs = tu_golden_floats(g, c, "scales", cols), *lh = tu_golden_floats(g, c, "loss_history", QS_AWQ_GRID),
                *cm = tu_golden_floats(g, c, "clip_max_val", rows * ng), *Qrtn = tu_golden_floats(g, c, "Q_rtn", n),
                *Qnc = tu_golden_floats(g, c, "Q_noclip", n), *Q = tu_golden_floats(g, c, "Q", n);
    qs_err err = {0};
    bufs b;
    bufs_new(&b, rows, cols, ng);
    /* RTN: AWQ's quantizer on W */
    qs_awq_pseudo_quantize(&p, W, rows, cols, b.tmp, NULL, NULL, NULL);
    cr_expect_eq(n_off(b.tmp, Qrtn, n), 0, "cfg%d Q_rtn", c);
    double rel_rtn = qs_stats_output_error(W, b.tmp, rows, cols, X, ntok);
    /* given the golden scales: Q_noclip, clip_max_val and Q */
    for (int64_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < cols; k++) b.tmp2[r * cols + k] = W[r * cols + k] * gs[k];
    qs_awq_pseudo_quantize(&p, b.tmp2, rows, cols, b.tmp, NULL, NULL, NULL);
    for (int64_t i = 0; i < n; i++) b.tmp[i] = b.tmp[i] / gs[i % cols];
    cr_expect_eq(n_off(b.tmp, Qnc, n), 0, "cfg%d Q_noclip from the golden scales", c);
    double rel_nc = qs_stats_output_error(W, b.tmp, rows, cols, X, ntok);
    cr_assert_eq(qs_awq_quantize(&p, W, rows, cols, X, ntok, NULL, gs, &b.o, NULL, &err), 0, "%s", err.msg);
    cr_expect_eq(n_off(b.o.clip_max, cm, rows * ng), 0, "cfg%d clip_max_val from the golden scales", c);
    cr_expect_eq(n_off(b.o.deq, Q, n), 0, "cfg%d Q from the golden scales", c);
    /* our own search */
    cr_assert_eq(qs_awq_quantize(&p, W, rows, cols, X, ntok, NULL, NULL, &b.o, NULL, &err), 0, "%s", err.msg);
    cr_expect_eq(b.o.best_ratio, (float)tu_golden_num(g, c, "best_ratio"), "cfg%d best ratio %g", c, (double)b.o.best_ratio);
    double srel = max_rel(b.o.s, gs, cols), lrel = max_rel(b.o.loss_history, lh, QS_AWQ_GRID);
    cr_expect_lt(srel, 1e-6, "cfg%d scales %.3g relative off", c, srel);
    cr_expect_lt(lrel, 1e-4, "cfg%d loss history %.3g relative off", c, lrel);
    int64_t same = n - n_off(b.o.deq, Q, n);
    double rel_clip = qs_stats_output_error(W, b.o.deq, rows, cols, X, ntok);
    cr_expect_geq(same, n * 95 / 100, "cfg%d: %lld of %lld Q identical", c, (long long)same, (long long)n);
    struct { const char *key; double got; } e[] = {{"rel_output_error_rtn", rel_rtn},
                                                  {"rel_output_error_awq_noclip", rel_nc},
                                                  {"rel_output_error_awq_clip", rel_clip}};
    for (int k = 0; k < 3; k++) {
        double want = tu_golden_num(g, c, e[k].key);
        cr_expect_lt(fabs(e[k].got / want - 1), 1e-3, "cfg%d %s %.6f, reference %.6f", c, e[k].key, e[k].got, want);
    }
    cr_log_info("cfg%d (w%d g%d%s): ratio %.2f, scales %.2g / losses %.2g rel. off, Q %.2f %% identical, rel. errors "
                "RTN %.6f AWQ %.6f +clip %.6f", c, p.bits, p.group, p.duo ? " duo" : "", (double)b.o.best_ratio, srel,
                lrel, 100.0 * (double)same / (double)n, rel_rtn, rel_nc, rel_clip);
    bufs_free(&b);
}

static void check_file(const char *path)
{
    qs_err err = {0};
    qs_gguf *g = qs_gguf_open(path, &err);
    cr_assert_not_null(g, "%s", err.msg);
    const qs_gguf_tensor *Wt = qs_gguf_find_tensor(g, "W"), *Xt = qs_gguf_find_tensor(g, "X");
    cr_assert(Wt && Xt, "%s: W and X", path);
    int64_t cols = Wt->ne[0], rows = Wt->ne[1], ntok = Xt->ne[1];
    const float *W = tu_golden_floats(g, -1, "W", rows * cols), *X = tu_golden_floats(g, -1, "X", ntok * cols);
    int ncfg = (int)tu_golden_num(g, -1, "nconfigs");
    for (int c = 0; c < ncfg; c++) check_config(g, c, W, X, rows, cols, ntok);
    qs_gguf_close(g);
}

Test(awq, golden, .timeout = 300)
{
    int n = 0;
    char **files = tu_golden_files("awq", &n);
    for (int i = 0; i < n; i++) check_file(files[i]);
    tu_free_list(files);
}

/* α = 0 with x-only scaling is plain RTN (spec §8); §5's quantizer by hand */
Test(awq, ratio_zero_is_rtn_and_quantizer_by_hand)
{
    enum { R = 4, C = 64, N = 32 };
    float w[R * C], x[N * C], a[R * C], b[R * C];
    uint32_t st = 12345;
    for (int i = 0; i < R * C; i++) st = st * 1664525u + 1013904223u, w[i] = (float)((int)(st >> 8) % 2001 - 1000) / 997.0f;
    for (int i = 0; i < N * C; i++) st = st * 1664525u + 1013904223u, x[i] = (float)((int)(st >> 8) % 2001 - 1000) / 311.0f;
    qs_awq_params p;
    qs_awq_default(&p);
    p.group = 32, p.alpha = 0, p.clip = false;
    float s[C], gs[R * 2], gz[R * 2];
    uint8_t codes[R * C];
    qs_awq_out o = {.deq = a, .codes = codes, .gscales = gs, .gzeros = gz, .s = s};
    qs_err err = {0};
    cr_assert_eq(qs_awq_quantize(&p, w, R, C, x, N, NULL, NULL, &o, NULL, &err), 0, "%s", err.msg);
    qs_awq_pseudo_quantize(&p, w, R, C, b, NULL, NULL, NULL);
    for (int c = 0; c < C; c++) cr_expect_eq(s[c], 1.0f);
    cr_expect_eq(memcmp(a, b, sizeof a), 0);
    /* [−0.3, 1.2] 4 bits: scale 1.5/15 = 0.1, zero round(3) = 3, 0.46 → 5+3 = 8 → 0.5 */
    float g[2] = {-0.3f, 1.2f}, q[2];
    qs_awq_params one = p;
    one.group = 2;
    qs_awq_pseudo_quantize(&one, g, 1, 2, q, codes, gs, gz);
    cr_expect_float_eq(gs[0], 0.1f, 1e-7);
    cr_expect_eq(gz[0], 3.0f);
    float h[2] = {0.46f, 1.2f};
    qs_awq_pseudo_quantize(&one, h, 1, 2, q, codes, gs, gz);
    cr_expect_float_eq(gs[0], (1.2f - 0.46f) / 15, 1e-7);
    /* the range need not contain 0, but the zero point is clamped to 0…15: zero −round(9.32) → 0,
     * so 0.46 → 9 and 1.2 → round(24.3) clamps to 15 (reconstructed as 0.74) */
    cr_expect_eq(gz[0], 0.0f);
    cr_expect_eq(codes[0], 9);
    cr_expect_eq(codes[1], 15);
    cr_expect_float_eq(q[1], 15 * gs[0], 1e-6);
    err = (qs_err){0};
    p.group = 48;
    cr_expect_lt(qs_awq_quantize(&p, w, R, C, x, N, NULL, NULL, &o, NULL, &err), 0);
    cr_expect(strstr(err.msg, "divide") != NULL, "%s", err.msg);
}
