/* core/quant/actquant.c — fake quantization of activations. */
#include "core/quant/actquant.h"

#include <math.h>

static float fq(float v, float inv, float s, float qmax)
{
    float q = nearbyintf(v * inv);
    q = q > qmax ? qmax : q < -qmax ? -qmax : q;
    return q * s;
}

void qs_act_fake_quant(float *x, int64_t T, int64_t cols, int bits, const float *scale, int64_t n_scale)
{
    float qmax = (float)qs_act_qmax(bits);
    for (int64_t t = 0; t < T; t++) {
        float *r = x + t * cols, s = n_scale == 1 ? scale[0] : 0;
        if (n_scale == 0) {
            float amax = 0;
            for (int64_t j = 0; j < cols; j++) amax = fabsf(r[j]) > amax ? fabsf(r[j]) : amax;
            s = amax / qmax;
        }
        if (n_scale > 1) {
            for (int64_t j = 0; j < cols; j++) r[j] = scale[j] > 0 ? fq(r[j], 1.0f / scale[j], scale[j], qmax) : 0.0f;
        } else {
            float inv = s > 0 ? 1.0f / s : 0.0f;
            for (int64_t j = 0; j < cols; j++) r[j] = fq(r[j], inv, s, qmax);
        }
    }
}

