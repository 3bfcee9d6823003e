/* core/model/ops.c — shared forward-pass row operations. */
#include "core/model/ops.h"

#include <math.h>

void qs_op_rmsnorm(const float *x, const float *g, float *y, int T, int E, float eps, float *inv_rms)
{
    for (int t = 0; t < T; t++) {
        const float *xr = x + (size_t)t * E;
        double sum = 0;
        for (int i = 0; i < E; i++) sum += (double)(xr[i] * xr[i]);
        float mean = (float)(sum / E), scale = 1.0f / sqrtf(mean + eps);
        for (int i = 0; i < E; i++) y[(size_t)t * E + i] = xr[i] * scale * g[i];
        if (inv_rms) inv_rms[t] = scale;
    }
}

void qs_op_rope(float *v, int n_heads, int D, int n_rot, int pos, float base, bool neox, float dir)
{
    float theta_scale = powf(base, -2.0f / (float)n_rot);
    float cs[1024][2];
    float theta = (float)pos;
    for (int i = 0; i < n_rot / 2; i++) {
        cs[i][0] = cosf(theta);
        cs[i][1] = sinf(theta) * dir;
        theta *= theta_scale;
    }
    for (int h = 0; h < n_heads; h++) {
        float *x = v + (size_t)h * D;
        for (int i = 0; i < n_rot / 2; i++) {
            int a = neox ? i : 2 * i, b = neox ? i + n_rot / 2 : 2 * i + 1;
            float x0 = x[a], x1 = x[b];
            x[a] = x0 * cs[i][0] - x1 * cs[i][1];
            x[b] = x0 * cs[i][1] + x1 * cs[i][0];
        }
    }
}

void qs_op_softmax_causal(float *sc, int T, int np, int pos0)
{
    for (int t = 0; t < T; t++) {
        float *row = sc + (size_t)t * np, mx = -INFINITY;
        int n = pos0 + t + 1;
        for (int p = 0; p < n; p++) mx = fmaxf(mx, row[p]);
        double sum = 0;
        for (int p = 0; p < n; p++) sum += row[p] = expf(row[p] - mx);
        float inv = (float)(1.0 / sum);
        for (int p = 0; p < n; p++) row[p] *= inv;
        for (int p = n; p < np; p++) row[p] = 0;
    }
}

void qs_op_swiglu(const float *g, const float *u, float *h, size_t n)
{
    for (size_t i = 0; i < n; i++) h[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}
