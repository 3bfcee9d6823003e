/* bench/bench_quant.c — what a knob change costs: quantize + dequantize + metrics of a
 * 4096 × 4096 F32 tensor for every method at its default config (GGML types also with an
 * importance vector), single-threaded and on all cores.
 * Baseline measured in the same run: one pass computing Σw² over the tensor (memory speed).
 * Reference: llama.cpp's reference quantizers on this kind of machine, single-threaded, in
 * M weights/s without / with imatrix (figures from the issue). Target: < 100 ms on 2 cores. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/util/parallel.h"
#include "core/quant/quant.h"
#include "core/quant/stats.h"

enum { ROWS = 4096, COLS = 4096 };

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* heavy-tailed weights: Student-t(5)-like with a few outlier columns */
static void make_weights(float *w)
{
    uint64_t s = 88172645463325252ull;
    for (int64_t i = 0; i < (int64_t)ROWS * COLS; i++) {
        double acc = 0;
        for (int k = 0; k < 4; k++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            acc += (double)(s >> 11) / 9007199254740992.0 - 0.5;
        }
        double g = acc * 1.7, t = g / sqrt(0.6 + 0.4 * ((s >> 20) % 1000) / 1000.0);
        w[i] = (float)(0.02 * t * ((i % COLS) % 509 == 0 ? 8 : 1));
    }
}

static const struct { const char *name; double plain, imat; } llama_ref[] = {
    {"q4_0", 571, 34}, {"q8_0", 242, 252}, {"q2_K", 17, 7}, {"q3_K", 84, 27}, {"q4_K", 15, 9},
    {"q5_K", 19, 8}, {"q6_K", 31, 32}, {"iq4_nl", 5.5, 5.5}, {"iq4_xs", 5.5, 5.2}};

static double ref_speed(const char *name, bool imat)
{
    for (size_t i = 0; i < sizeof llama_ref / sizeof *llama_ref; i++)
        if (!strcmp(llama_ref[i].name, name)) return imat ? llama_ref[i].imat : llama_ref[i].plain;
    return 0;
}

static double time_method(const qs_qconfig *c, const float *w, const float *qw, int threads)
{
    double best = 1e9;
    for (int rep = 0; rep < 2; rep++) {
        qs_qresult r;
        qs_err err = {0};
        double t0 = now();
        if (qs_quant_run(c, w, ROWS, COLS, NULL, qw, threads, &r, &err) != 0) {
            fprintf(stderr, "bench_quant: %s: %s\n", c->method->name, err.msg);
            return -1;
        }
        qs_metrics m;
        qs_stats_compare(w, r.deq, (int64_t)ROWS * COLS, &m);
        double dt = now() - t0;
        qs_qresult_free(&r);
        best = dt < best ? dt : best;
    }
    return best;
}

int main(void)
{
    float *w = malloc(sizeof(float) * ROWS * COLS), qw[COLS];
    make_weights(w);
    for (int i = 0; i < COLS; i++) qw[i] = 0.5f + (float)(i % 97) / 50.0f;
    int cores = qs_cpu_count();
    double t0 = now(), sink = 0;
    for (int64_t i = 0; i < (int64_t)ROWS * COLS; i++) sink += (double)w[i] * w[i];
    double base = now() - t0;
    printf("4096 x 4096 F32; baseline (one pass of sum w^2): %.1f ms%s\n", base * 1e3, sink < 0 ? "!" : "");
    printf("%-8s %-6s %10s %10s %9s %12s %11s %9s\n", "method", "imat", "1 thread", "all cores", "Mw/s(1t)",
           "x baseline", "vs llama.cpp", "<100ms");
    const char *only = getenv("BENCH_METHOD"); /* one method only (profiling) */
    for (int i = 0; i < qs_method_count; i++) {
        const qs_method *m = &qs_method_table[i];
        if (only && strcmp(only, m->name)) continue;
        for (int im = 0; im < (qs_method_uses_imatrix(m) ? 2 : 1); im++) {
            qs_qconfig c;
            qs_qconfig_default(&c, m);
            double t1 = time_method(&c, w, im ? qw : NULL, 1), tn = time_method(&c, w, im ? qw : NULL, cores);
            if (t1 < 0 || tn < 0) return 1;
            double mws = (double)ROWS * COLS / t1 / 1e6, ref = ref_speed(m->name, im);
            char vs[32] = "-";
            if (ref > 0) snprintf(vs, sizeof vs, "%.2fx", mws / ref);
            printf("%-8s %-6s %8.1fms %8.1fms %9.1f %12.1f %11s %9s\n", m->name, im ? "yes" : "no", t1 * 1e3,
                   tn * 1e3, mws, tn / base, vs, tn < 0.1 ? "yes" : "NO");
        }
    }
    printf("(%d cores; 'vs llama.cpp' = our single-thread speed / llama.cpp's reference quantizer speed)\n", cores);
    free(w);
    return 0;
}
