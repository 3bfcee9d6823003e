/* bench/bench_gptq.c — GPTQ and AWQ on a 4096 × 4096 layer with a 4096-column Hessian (issue #7):
 * seconds for the whole GPTQ call (w4 g128, and with act-order), split into the inverse-Hessian
 * factor (run alone, once) and the column sweep; AWQ's α search + clip on 512 cached rows.
 * Baseline measured in the same run: RTN with the same grid on the same weights, and one sgemm of
 * the layer with 512 rows (what one AWQ grid point costs at least, twice). */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/quant/awq.h"
#include "core/quant/gptq.h"
#include "core/quant/quant.h"

enum { N = 4096, TOK = 4096, KEEP = 512 };

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static float rnd(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return (float)((double)(*s >> 11) / 9007199254740992.0 - 0.5);
}

int main(void)
{
    float *w = malloc((size_t)N * N * sizeof *w), *x = malloc((size_t)TOK * N * sizeof *x),
          *h = malloc((size_t)N * N * sizeof *h);
    if (!w || !x || !h) return 1;
    uint64_t s = 88172645463325252ull;
    for (int64_t i = 0; i < (int64_t)N * N; i++) w[i] = 0.02f * rnd(&s) * ((i % N) % 509 == 0 ? 8 : 1);
    /* activations with outlier channels; H = 2/N_seq · XᵀX with N_seq = TOK/512 sequences */
    for (int64_t i = 0; i < (int64_t)TOK * N; i++) x[i] = rnd(&s) * ((i % N) % 97 == 0 ? 20.0f : 1.0f);
    double t0 = now();
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, N, TOK, 2.0f / (TOK / 512), x, N, 0.0f, h, N);
    for (int a = 0; a < N; a++)
        for (int b = 0; b < a; b++) h[(int64_t)a * N + b] = h[(int64_t)b * N + a];
    double t_h = now() - t0;
    qs_gptq_params p;
    qs_gptq_default(&p);
    int64_t ng = qs_gptq_n_groups(&p, N);
    qs_gptq_out o = {malloc((size_t)N * N), malloc((size_t)N * N * 4), malloc((size_t)(N * ng) * 4),
                     malloc((size_t)(N * ng) * 4), malloc((size_t)N * 4), 0};
    qs_err err = {0};
    printf("layer %d x %d, Hessian from %d tokens: %.2f s (ssyrk)\n", N, N, TOK, t_h);
    for (int ao = 0; ao < 2; ao++) {
        p.act_order = ao;
        t0 = now();
        if (qs_gptq_quantize(&p, w, N, N, h, &o, NULL, &err)) {
            fprintf(stderr, "gptq: %s\n", err.msg);
            return 1;
        }
        printf("gptq w4 g128 sym%s: %.2f s, loss %.6g\n", ao ? " act-order" : "", now() - t0, o.loss);
    }
    qs_qconfig c;
    qs_qconfig_default(&c, qs_method_find("rtn"));
    c.asym = false;
    qs_qresult r;
    t0 = now();
    if (qs_quant_run(&c, w, N, N, NULL, NULL, 0, &r, &err)) return 1;
    double t_rtn = now() - t0;
    qs_qresult_free(&r);
    printf("baseline rtn w4 g128: %.3f s\n", t_rtn);
    float *y = malloc((size_t)KEEP * N * sizeof *y);
    t0 = now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, KEEP, N, N, 1.0f, x, N, w, N, 0.0f, y, N);
    double t_mm = now() - t0;
    printf("baseline sgemm %d x %d x %d: %.3f s\n", KEEP, N, N, t_mm);
    qs_awq_params ap;
    qs_awq_default(&ap);
    qs_awq_out ao = {o.deq, o.codes, o.scales, o.zeros, malloc((size_t)N * 4), NULL, {0}, 0};
    t0 = now();
    if (qs_awq_quantize(&ap, w, N, N, x, KEEP, NULL, NULL, &ao, NULL, &err)) {
        fprintf(stderr, "awq: %s\n", err.msg);
        return 1;
    }
    double t_awq = now() - t0;
    printf("awq w4 g128 (20-point search + clip, %d rows): %.2f s = %.1f sgemms, alpha %.2f\n", KEEP, t_awq, t_awq / t_mm,
           (double)ao.best_ratio);
    return 0;
}
