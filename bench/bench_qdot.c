/* bench/bench_qdot.c — the decode GEMV: qs_qdot_rows over a 4096 × 4096 weight of every type,
 * single thread, for each kernel set the CPU runs (generic, AVX2, AVX-512), plus
 * qs_qdot_dequantize_rows (the prefill path) and the activation quantizer.
 * Reported: GB/s of weight bytes read, and GiB/s of fp32-equivalent data (4 bytes per weight),
 * the unit of llama.cpp's test-quantize-perf vec_dot column (spec/anchors.md §7.1, measured on
 * 2.5 MB of data, single thread: ~60–120 GiB/s). Baseline measured in the same run: one pass
 * summing the same bytes as uint64 (memory speed for this working set).
 * Times are the thread's CPU time (best of 5), so that a shared, oversubscribed machine
 * measures the kernels rather than the scheduler. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/quant/ggml_quants.h"
#include "core/quant/ggml_types.h"
#include "core/quant/qdot.h"

enum { ROWS = 4096, COLS = 4096, DISTINCT = 128 };

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t s = 88172645463325252ull;
static float rnd(void)
{
    double acc = 0;
    for (int k = 0; k < 4; k++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        acc += (double)(s >> 11) / 9007199254740992.0 - 0.5;
    }
    return (float)(0.02 * acc * 1.7);
}

static volatile uint64_t sink;

/* seconds per call of f, best of several runs of at least 50 ms */
#define TIME_BEST(expr, out)                                             \
    do {                                                                 \
        double best_ = 1e9;                                              \
        for (int rep_ = 0; rep_ < 5; rep_++) {                           \
            int it_ = 0;                                                 \
            double t0_ = now(), t_;                                      \
            do { expr; it_++; } while ((t_ = now() - t0_) < 0.05);       \
            if (t_ / it_ < best_) best_ = t_ / it_;                      \
        }                                                                \
        (out) = best_;                                                   \
    } while (0)

int main(void)
{
    static const int types[] = {QS_TYPE_F32, QS_TYPE_F16, QS_TYPE_BF16, QS_TYPE_Q4_0, QS_TYPE_Q4_1,
                                QS_TYPE_Q5_0, QS_TYPE_Q5_1, QS_TYPE_Q8_0, QS_TYPE_Q2_K, QS_TYPE_Q3_K,
                                QS_TYPE_Q4_K, QS_TYPE_Q5_K, QS_TYPE_Q6_K, QS_TYPE_IQ4_NL, QS_TYPE_IQ4_XS};
    int ntypes = (int)(sizeof types / sizeof *types);
    float *wf = malloc(sizeof(float) * DISTINCT * COLS), *x = malloc(sizeof(float) * COLS);
    float *y = malloc(sizeof(float) * ROWS), *deq = malloc(sizeof(float) * 64 * COLS);
    uint8_t *w = malloc((size_t)ROWS * COLS * 4), *a = malloc((size_t)COLS * 4);
    for (int64_t i = 0; i < (int64_t)DISTINCT * COLS; i++) wf[i] = rnd();
    for (int i = 0; i < COLS; i++) x[i] = rnd() * 50;

    /* memory baseline over an F32-sized (64 MiB) and a Q4-sized (9 MiB) working set */
    memset(w, 1, (size_t)ROWS * COLS * 4);
    size_t sizes[2] = {(size_t)ROWS * COLS * 4, (size_t)ROWS * COLS * 9 / 16};
    for (int k = 0; k < 2; k++) {
        double t;
        TIME_BEST(({ uint64_t acc = 0; const uint64_t *p = (const uint64_t *)w;
                     for (size_t i = 0; i < sizes[k] / 8; i++) acc += p[i]; sink = acc; }), t);
        printf("baseline: summing %5.1f MiB as uint64: %6.1f GB/s\n", (double)sizes[k] / 1048576, (double)sizes[k] / t * 1e-9);
    }

    int isas[QS_QDOT_ISA_COUNT], nisa = 0;
    for (int isa = 0; isa < QS_QDOT_ISA_COUNT; isa++)
        if (qs_qdot_isa_supported(isa)) isas[nisa++] = isa;
    printf("\nqs_qdot_rows, %d x %d, single thread: GB/s of weight bytes (GiB/s fp32-equivalent)\n", ROWS, COLS);
    printf("%-7s %9s", "type", "MiB");
    for (int i = 0; i < nisa; i++) printf("  %22s", qs_qdot_isa_name(isas[i]));
    printf("  %18s  %10s\n", "dequantize (best)", "act quant");
    for (int t = 0; t < ntypes; t++) {
        int type = types[t], act = qs_qdot_act_type(type, COLS);
        size_t rb = (size_t)qs_type_row_bytes(type, COLS);
        qs_ggml_quantize_rows_raw(type, wf, w, DISTINCT, COLS, NULL, 1);
        for (int r = DISTINCT; r < ROWS; r++) memcpy(w + (size_t)r * rb, w + (size_t)(r % DISTINCT) * rb, rb);
        double bytes = (double)rb * ROWS;
        printf("%-7s %9.2f", qs_type_name(type), bytes / 1048576);
        for (int i = 0; i < nisa; i++) {
            qs_qdot_set_isa(isas[i]);
            qs_qdot_quantize_act(act, x, a, COLS);
            double tm;
            TIME_BEST(qs_qdot_rows(type, COLS, w, rb, ROWS, a, y), tm);
            printf("  %8.1f GB/s (%6.1f)", bytes / tm * 1e-9, (double)ROWS * COLS * 4 / tm / 1073741824.0);
        }
        double td, ta;
        TIME_BEST(for (int r0 = 0; r0 < ROWS; r0 += 64) qs_qdot_dequantize_rows(type, w + (size_t)r0 * rb, rb, deq, 64, COLS), td);
        TIME_BEST(qs_qdot_quantize_act(act, x, a, COLS), ta);
        printf("  %9.2f Gw/s  %7.2f us\n", (double)ROWS * COLS / td * 1e-9, ta * 1e6);
        fflush(stdout);
    }
    qs_qdot_set_isa(QS_QDOT_ISA_AUTO);
    printf("(kernel set used by default: %s)\n", qs_qdot_isa_name(qs_qdot_get_isa()));
    free(wf), free(x), free(y), free(deq), free(w), free(a);
    return 0;
}
