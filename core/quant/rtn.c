/* core/quant/rtn.c — integer RTN quantization. */
#include "core/quant/rtn.h"

#include <math.h>
#include <string.h>

#include "core/util/parallel.h"

int64_t qs_rtn_group_len(const qs_rtn_params *p, int64_t rows, int64_t cols)
{
    return p->group < 0 ? rows * cols : p->group == 0 ? cols : p->group;
}

double qs_rtn_bpw(const qs_rtn_params *p, int64_t rows, int64_t cols)
{
    double g = (double)qs_rtn_group_len(p, rows, cols);
    return p->bits + (32.0 + (p->asym ? p->bits : 0)) / (g > 0 ? g : 1);
}

/* scale and zero of a range [mn, mx] shrunk by ratio */
static void params_for(const qs_rtn_params *p, float mn, float mx, float ratio, float *s, float *z)
{
    if (p->asym) {
        int maxq = (1 << p->bits) - 1;
        float lo = fminf(mn, 0) * ratio, hi = fmaxf(mx, 0) * ratio;
        *s = (hi - lo) / (float)maxq;
        *z = *s > 0 ? fminf((float)maxq, fmaxf(0, rintf(-lo / *s))) : 0;
    } else {
        int qmax = (1 << (p->bits - 1)) - 1;
        *s = fmaxf(fabsf(mn), fabsf(mx)) * ratio / (float)qmax;
        *z = 0;
    }
}

static float quantize_one(const qs_rtn_params *p, float w, float s, float z, int *code)
{
    if (s <= 0) {
        *code = (int)z;
        return 0;
    }
    int q;
    if (p->asym) {
        int maxq = (1 << p->bits) - 1;
        q = (int)fminf((float)maxq, fmaxf(0, rintf(w / s) + z));
    } else {
        int qmax = (1 << (p->bits - 1)) - 1;
        q = (int)fminf((float)qmax, fmaxf((float)-qmax, rintf(w / s)));
    }
    *code = q;
    return ((float)q - z) * s;
}

typedef struct rtn_job {
    const qs_rtn_params *p;
    const float *w;
    int64_t glen;
    uint8_t *codes;
    float *scales, *zeros, *ratio, *deq;
} rtn_job;

static void rtn_group(const rtn_job *j, int64_t g)
{
    const float *x = j->w + g * j->glen;
    float mn = x[0], mx = x[0];
    for (int64_t i = 1; i < j->glen; i++) {
        mn = fminf(mn, x[i]);
        mx = fmaxf(mx, x[i]);
    }
    float best_r = 1, s, z;
    if (j->p->clip) {
        double best = INFINITY;
        for (int k = 0; k < QS_RTN_CLIP_STEPS; k++) {
            float r = 1.0f - 0.025f * (float)k;
            params_for(j->p, mn, mx, r, &s, &z);
            double e = 0;
            int code;
            for (int64_t i = 0; i < j->glen; i++) {
                double d = (double)quantize_one(j->p, x[i], s, z, &code) - x[i];
                e += d * d;
            }
            if (e < best) {
                best = e;
                best_r = r;
            }
        }
    }
    params_for(j->p, mn, mx, best_r, &s, &z);
    j->scales[g] = s;
    if (j->zeros) j->zeros[g] = z;
    if (j->ratio) j->ratio[g] = best_r;
    for (int64_t i = 0; i < j->glen; i++) {
        int code;
        j->deq[g * j->glen + i] = quantize_one(j->p, x[i], s, z, &code);
        j->codes[g * j->glen + i] = (uint8_t)(int8_t)code;
    }
}

static void rtn_groups(void *ctx, int64_t g0, int64_t g1)
{
    for (int64_t g = g0; g < g1; g++) rtn_group(ctx, g);
}

int qs_rtn_quantize(const qs_rtn_params *p, const float *w, int64_t rows, int64_t cols, uint8_t *codes,
                    float *scales, float *zeros, float *clip_ratio, float *deq, int n_threads, qs_err *err)
{
    if (p->bits < 2 || p->bits > 8) return qs_err_set(err, QS_E_USAGE, "bits %d: RTN takes 2 to 8", p->bits);
    if (p->group < -1 || (p->group > 0 && cols % p->group))
        return qs_err_set(err, QS_E_USAGE, "group size %d does not divide the %lld columns", p->group, (long long)cols);
    if (p->asym && !zeros) return qs_err_set(err, QS_E_USAGE, "asymmetric RTN needs a zero-point array");
    if (rows <= 0 || cols <= 0) return qs_err_set(err, QS_E_USAGE, "empty tensor");
    int64_t glen = qs_rtn_group_len(p, rows, cols), ng = rows * cols / glen;
    rtn_job j = {p, w, glen, codes, scales, p->asym ? zeros : NULL, clip_ratio, deq};
    int64_t chunk = glen >= 4096 ? 1 : 4096 / glen;
    qs_parallel_for(ng, chunk, n_threads, rtn_groups, &j);
    return 0;
}

int qs_rtn_levels(const qs_rtn_params *p, float scale, float zero, float *levels)
{
    int n = 0;
    if (p->asym)
        for (int q = 0; q < (1 << p->bits); q++) levels[n++] = ((float)q - zero) * scale;
    else
        for (int q = -((1 << (p->bits - 1)) - 1); q <= (1 << (p->bits - 1)) - 1; q++) levels[n++] = (float)q * scale;
    return n;
}
