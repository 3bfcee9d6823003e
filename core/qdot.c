/* TEMPORARY stand-in for the qdot branch: float paths through qs_dequantize_row. */
#include "qdot.h"

#include "fp16.h"
#include "ggml_quants.h"
#include "ggml_types.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct { uint16_t d, s; int8_t qs[32]; } blk_q8_1;

int qs_qdot_act_type(int wt, int64_t cols)
{
    int a;
    switch (wt) {
    case QS_TYPE_F32: a = QS_TYPE_F32; break;
    case QS_TYPE_F16: a = QS_TYPE_F16; break;
    case QS_TYPE_BF16: a = QS_TYPE_BF16; break;
    case QS_TYPE_Q4_0: case QS_TYPE_Q5_0: case QS_TYPE_Q8_0: case QS_TYPE_IQ4_NL: a = QS_TYPE_Q8_0; break;
    case QS_TYPE_Q4_1: case QS_TYPE_Q5_1: a = QS_TYPE_Q8_1; break;
    case QS_TYPE_Q2_K: case QS_TYPE_Q3_K: case QS_TYPE_Q4_K: case QS_TYPE_Q5_K: case QS_TYPE_Q6_K:
    case QS_TYPE_IQ4_XS: a = QS_TYPE_Q8_K; break;
    default: return -1;
    }
    return qs_type_row_bytes(wt, cols) > 0 && qs_type_row_bytes(a, cols) > 0 ? a : -1;
}

static void q8_0_x86(const float *x, int8_t *q, uint16_t *dd, int32_t *sum)
{
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    float d = amax / 127.f, id = amax != 0 ? 127.f / amax : 0.f;
    *dd = qs_f32_to_f16(d);
    int32_t s = 0;
    for (int j = 0; j < 32; j++) s += q[j] = (int8_t)lrintf(x[j] * id);
    if (sum) *sum = s;
}

void qs_qdot_quantize_act(int at, const float *x, void *vy, int64_t n)
{
    if (at == QS_TYPE_Q8_0) {
        qs_block_q8_0 *y = vy;
        for (int64_t b = 0; b < n / 32; b++) q8_0_x86(x + 32 * b, y[b].qs, &y[b].d, NULL);
    } else if (at == QS_TYPE_Q8_1) {
        blk_q8_1 *y = vy;
        for (int64_t b = 0; b < n / 32; b++) {
            int32_t s;
            q8_0_x86(x + 32 * b, y[b].qs, &y[b].d, &s);
            float d = 0;
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[32 * b + j]));
            d = amax / 127.f;
            y[b].s = qs_f32_to_f16(d * (float)s);
        }
    } else if (at == QS_TYPE_Q8_K) {
        qs_q8k_quantize_row(x, vy, n, NULL);
    } else if (at == QS_TYPE_F16) {
        uint16_t *y = vy;
        for (int64_t i = 0; i < n; i++) y[i] = qs_f32_to_f16(x[i]);
    } else if (at == QS_TYPE_BF16) {
        uint16_t *y = vy;
        for (int64_t i = 0; i < n; i++) y[i] = qs_f32_to_bf16(x[i]);
    } else {
        memcpy(vy, x, (size_t)n * sizeof *x);
    }
}

void qs_qdot_round_act(int at, const float *x, float *xo, float *s_err, int64_t n)
{
    if (at == QS_TYPE_F32) {
        if (xo != x) memmove(xo, x, (size_t)n * sizeof *x);
        return;
    }
    if (at == QS_TYPE_Q8_1) {
        blk_q8_1 *y = malloc((size_t)(n / 32) * sizeof *y);
        qs_qdot_quantize_act(at, x, y, n);
        for (int64_t b = 0; b < n / 32; b++) {
            float d = qs_f16_to_f32(y[b].d);
            int32_t s = 0;
            for (int j = 0; j < 32; j++) xo[32 * b + j] = d * (float)y[b].qs[j], s += y[b].qs[j];
            if (s_err) s_err[b] = qs_f16_to_f32(y[b].s) - d * (float)s;
        }
        free(y);
        return;
    }
    int64_t rb = qs_type_row_bytes(at, n);
    uint8_t *q = malloc((size_t)rb);
    qs_qdot_quantize_act(at, x, q, n);
    qs_dequantize_row(at, q, xo, n);
    free(q);
}

float qs_qdot_vec(int wt, int64_t n, const void *w, const void *a)
{
    int at = qs_qdot_act_type(wt, n);
    float *fw = malloc((size_t)n * 2 * sizeof *fw), *fa = fw + n;
    qs_dequantize_row(wt, w, fw, n);
    double s = 0;
    if (at == QS_TYPE_Q8_1) {
        const blk_q8_1 *y = a;
        for (int64_t b = 0; b < n / 32; b++) {
            float d = qs_f16_to_f32(y[b].d);
            for (int j = 0; j < 32; j++) fa[32 * b + j] = d * (float)y[b].qs[j];
        }
        /* the weight's min times the stored sum */
        const uint8_t *wb = w;
        size_t bs = wt == QS_TYPE_Q4_1 ? 20 : 24;
        for (int64_t b = 0; b < n / 32; b++) {
            uint16_t dm[2];
            memcpy(dm, wb + b * bs, 4);
            float m = qs_f16_to_f32(dm[1]), d = qs_f16_to_f32(y[b].d);
            int32_t sq = 0;
            for (int j = 0; j < 32; j++) sq += y[b].qs[j];
            s += (double)m * (double)(qs_f16_to_f32(y[b].s) - d * (float)sq);
        }
    } else {
        qs_dequantize_row(at, a, fa, n);
    }
    for (int64_t i = 0; i < n; i++) s += (double)fw[i] * fa[i];
    free(fw);
    return (float)s;
}

void qs_qdot_rows(int wt, int64_t n, const void *w, size_t rb, int64_t nrows, const void *a, float *y)
{
    for (int64_t r = 0; r < nrows; r++) y[r] = qs_qdot_vec(wt, n, (const uint8_t *)w + (size_t)r * rb, a);
}

void qs_qdot_dequantize_rows(int type, const void *src, size_t rb, float *dst, int64_t nrows, int64_t n)
{
    for (int64_t r = 0; r < nrows; r++) qs_dequantize_row(type, (const uint8_t *)src + (size_t)r * rb, dst + (size_t)r * n, n);
}
