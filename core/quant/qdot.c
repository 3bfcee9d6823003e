/* core/quant/qdot.c — activation quantizers of llama.cpp's x86 CPU backend, and the run-time choice of
 * the dot-product kernel set (core/qdot_kernels.inc compiled for generic x86-64, AVX2 and
 * AVX-512). See core/qdot.h. */
#include "core/quant/qdot.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "core/util/fp16.h"
#include "core/quant/ggml_quants.h"
#include "core/quant/qdot_impl.h"

/* ---- types ---- */

static const qs_qdot_kernels *kernels(void);

int qs_qdot_act_type(int weight_type, int64_t cols)
{
    int act, bs;
    switch (weight_type) {
    case QS_TYPE_Q4_0: case QS_TYPE_Q5_0: case QS_TYPE_Q8_0: case QS_TYPE_IQ4_NL:
        act = QS_TYPE_Q8_0, bs = 32; break;
    case QS_TYPE_Q4_1: case QS_TYPE_Q5_1:
        act = QS_TYPE_Q8_1, bs = 32; break;
    case QS_TYPE_Q2_K: case QS_TYPE_Q3_K: case QS_TYPE_Q4_K: case QS_TYPE_Q5_K: case QS_TYPE_Q6_K:
    case QS_TYPE_IQ4_XS:
        act = QS_TYPE_Q8_K, bs = 256; break;
    case QS_TYPE_F32: case QS_TYPE_F16: case QS_TYPE_BF16:
        act = weight_type, bs = 1; break;
    default:
        return -1;
    }
    if (cols <= 0 || cols % bs) return -1;
    return act;
}

/* ---- activation quantizers ---- */

/* quantize_row_q8_0 / q8_1 of ggml-cpu's AVX2 path: amax, d = amax/127, id = 127/amax,
 * q = round-half-even(x·id) (_mm256_round_ps(_MM_ROUND_NEAREST)); returns Σq for Q8_1. */
static int q8_block(const float *x, uint16_t *d_out, int8_t *qs, float *d32)
{
    float amax = 0;
    for (int j = 0; j < 32; j++) {
        float a = fabsf(x[j]);
        amax = a > amax ? a : amax;
    }
    float d = amax / 127.f;
    float id = amax != 0.0f ? 127.f / amax : 0.0f;
    *d_out = qs_f32_to_f16(d);
    int sum = 0;
    for (int j = 0; j < 32; j++) {
        int q = qs_nearest_int(x[j] * id);
        qs[j] = (int8_t)q;
        sum += q;
    }
    *d32 = d;
    return sum;
}

void qs_qdot_quantize_act(int act_type, const float *x, void *vy, int64_t n)
{
    switch (act_type) {
    case QS_TYPE_Q8_0: {
        qs_block_q8_0 *y = vy;
        float d;
        for (int64_t b = 0; b < n / 32; b++) q8_block(x + 32 * b, &y[b].d, y[b].qs, &d);
        break;
    }
    case QS_TYPE_Q8_1: {
        qs_block_q8_1 *y = vy;
        for (int64_t b = 0; b < n / 32; b++) {
            float d;
            int sum = q8_block(x + 32 * b, &y[b].d, y[b].qs, &d);
            y[b].s = qs_f32_to_f16(d * (float)sum);
        }
        break;
    }
    case QS_TYPE_Q8_K:
        qs_q8k_quantize_row(x, vy, n, NULL);
        break;
    case QS_TYPE_F16: {
        uint16_t *y = vy;
        for (int64_t i = 0; i < n; i++) y[i] = qs_f32_to_f16(x[i]);
        break;
    }
    case QS_TYPE_BF16: {
        uint16_t *y = vy;
        for (int64_t i = 0; i < n; i++) y[i] = qs_f32_to_bf16(x[i]);
        break;
    }
    case QS_TYPE_F32:
        if ((const void *)x != vy) memmove(vy, x, (size_t)n * sizeof *x);
        break;
    }
}

void qs_qdot_round_act(int act_type, const float *x, float *x_out, float *s_err, int64_t n)
{
    switch (act_type) {
    case QS_TYPE_Q8_0: case QS_TYPE_Q8_1:
        for (int64_t b = 0; b < n / 32; b++) {
            uint16_t dh;
            int8_t qs[32];
            float d32;
            int sum = q8_block(x + 32 * b, &dh, qs, &d32);
            float d = qs_f16_to_f32(dh);
            for (int j = 0; j < 32; j++) x_out[32 * b + j] = d * (float)qs[j];
            if (act_type == QS_TYPE_Q8_1 && s_err)
                s_err[b] = qs_f16_to_f32(qs_f32_to_f16(d32 * (float)sum)) - d * (float)sum;
        }
        break;
    case QS_TYPE_Q8_K:
        for (int64_t b = 0; b < n / 256; b++) {
            qs_block_q8_k blk;
            qs_q8k_quantize_row(x + 256 * b, &blk, 256, NULL);
            for (int j = 0; j < 256; j++) x_out[256 * b + j] = blk.d * (float)blk.qs[j];
        }
        break;
    case QS_TYPE_F16:
        kernels()->round_f16(x, x_out, n);
        break;
    case QS_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) x_out[i] = qs_bf16_to_f32(qs_f32_to_bf16(x[i]));
        break;
    case QS_TYPE_F32:
        if (x != x_out) memmove(x_out, x, (size_t)n * sizeof *x);
        break;
    }
}

/* ---- ISA selection ---- */

static const qs_qdot_kernels *const tables[QS_QDOT_ISA_COUNT] = {
    &qs_qdot_kernels_generic, &qs_qdot_kernels_avx2, &qs_qdot_kernels_avx512};
static const qs_qdot_kernels *current; /* atomic; NULL until the first call */

#if defined(__x86_64__) || defined(__i386__)
/* F16C (CPUID.1:ECX bit 29): clang's __builtin_cpu_supports does not know "f16c" */
static int has_f16c(void)
{
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}
#endif

int qs_qdot_isa_supported(int isa)
{
    switch (isa) {
    case QS_QDOT_ISA_GENERIC: return 1;
#if defined(__x86_64__) || defined(__i386__)
    case QS_QDOT_ISA_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c();
    case QS_QDOT_ISA_AVX512:
        return qs_qdot_isa_supported(QS_QDOT_ISA_AVX2) && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#endif
    default: return 0;
    }
}

static int best_isa(void)
{
    for (int isa = QS_QDOT_ISA_COUNT - 1; isa > 0; isa--)
        if (qs_qdot_isa_supported(isa)) return isa;
    return QS_QDOT_ISA_GENERIC;
}

int qs_qdot_set_isa(int isa)
{
    if (isa == QS_QDOT_ISA_AUTO) isa = best_isa();
    if (isa < 0 || isa >= QS_QDOT_ISA_COUNT || !qs_qdot_isa_supported(isa)) return -1;
    __atomic_store_n(&current, tables[isa], __ATOMIC_RELEASE);
    return 0;
}

static const qs_qdot_kernels *kernels(void)
{
    const qs_qdot_kernels *k = __atomic_load_n(&current, __ATOMIC_ACQUIRE);
    if (!k) {
        k = tables[best_isa()];
        __atomic_store_n(&current, k, __ATOMIC_RELEASE);
    }
    return k;
}

int qs_qdot_get_isa(void)
{
    const qs_qdot_kernels *k = kernels();
    for (int isa = 0; isa < QS_QDOT_ISA_COUNT; isa++)
        if (tables[isa] == k) return isa;
    return QS_QDOT_ISA_GENERIC;
}

const char *qs_qdot_isa_name(int isa)
{
    static const char *const names[QS_QDOT_ISA_COUNT] = {"generic", "avx2", "avx512"};
    return isa >= 0 && isa < QS_QDOT_ISA_COUNT ? names[isa] : "?";
}

/* ---- entry points ---- */

float qs_qdot_vec(int weight_type, int64_t n, const void *w, const void *a)
{
    if (weight_type < 0 || weight_type >= QS_TYPE_COUNT) return 0;
    qs_qdot_vec_fn f = kernels()->vec[weight_type];
    return f ? f(n, w, a) : 0;
}

void qs_qdot_rows(int weight_type, int64_t n, const void *w, size_t row_bytes, int64_t nrows, const void *a, float *y)
{
    qs_qdot_rows_fn f = weight_type >= 0 && weight_type < QS_TYPE_COUNT ? kernels()->rows[weight_type] : NULL;
    if (f) {
        f(n, w, row_bytes, nrows, a, y);
        return;
    }
    for (int64_t r = 0; r < nrows; r++) y[r] = 0;
}

void qs_qdot_dequantize_rows(int type, const void *src, size_t row_bytes, float *dst, int64_t nrows, int64_t n)
{
    qs_qdot_deq_fn f = type >= 0 && type < QS_TYPE_COUNT ? kernels()->deq[type] : NULL;
    for (int64_t r = 0; r < nrows; r++) {
        const void *row = (const uint8_t *)src + (size_t)r * row_bytes;
        if (f)
            f(row, dst + r * n, n);
        else
            qs_dequantize_row(type, row, dst + r * n, n);
    }
}
