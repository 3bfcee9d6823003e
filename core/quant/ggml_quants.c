/* core/quant/ggml_quants.c — byte-exact GGML quantizers (spec/ggml-types.md).
 * Every float expression is written in the spec's evaluation order; the file is compiled
 * with -ffp-contract=off (Makefile), so no multiply-add is fused. */
#include "core/quant/ggml_quants.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util/fp16.h"
#include "core/quant/ggml_ksearch.h"
#include "core/quant/ggml_types.h"
#include "core/util/parallel.h"

#define GROUP_MAX_EPS 1e-15f
#define MAXI(a, b) ((a) > (b) ? (a) : (b))
#define MINI(a, b) ((a) < (b) ? (a) : (b))

/* ---- shared helpers (spec §1, §6) ---- */

/* element of largest magnitude, the first of equal magnitudes; *amax_out = its magnitude */
static float signed_max(const float *x, int n, float *amax_out)
{
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    *amax_out = amax;
    return max;
}

static int best_index_int8(const int8_t *v, float x)
{
    if (x <= (float)v[0]) return 0;
    if (x >= (float)v[15]) return 15;
    int lo = 0, hi = 15;
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (x < (float)v[mid]) hi = mid;
        else lo = mid;
    }
    return x - (float)v[hi - 1] < (float)v[hi] - x ? hi - 1 : hi;
}

/* §6.2 with rmse_type = 1; w NULL means x² */
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L, const float *w)
{
    float amax, max = signed_max(x, n, &amax);
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = (float)(-nmax) / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = MAXI(-nmax, MINI(nmax - 1, qs_nearest_int(iscale * x[i])));
        L[i] = (int8_t)(l + nmax);
        float wi = w ? w[i] : x[i] * x[i];
        sumlx += wi * x[i] * (float)l;
        suml2 += wi * (float)l * (float)l;
    }
    float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = MAXI(-nmax, MINI(nmax - 1, qs_nearest_int(iscale * x[i])));
            float wi = w ? w[i] : x[i] * x[i];
            sumlx += wi * x[i] * (float)l;
            suml2 += wi * (float)l * (float)l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)(nmax + MAXI(-nmax, MINI(nmax - 1, qs_nearest_int(iscale * x[i]))));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* §6.3 (n = 16, weights x²) */
static float make_q3_quants(int n, int nmax, const float *x, int8_t *L)
{
    float amax, max = signed_max(x, n, &amax);
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = (float)(-nmax) / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = MAXI(-nmax, MINI(nmax - 1, qs_nearest_int(iscale * x[i])));
        L[i] = (int8_t)l;
        float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * (float)L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * (float)L[i] * (float)L[i];
                int nl = MAXI(-nmax, MINI(nmax - 1, qs_nearest_int(x[i] * sl2 / slx)));
                if (nl != L[i]) {
                    slx += w * x[i] * (float)nl;
                    sl2 += w * (float)nl * (float)nl;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)nl;
                        sumlx = slx;
                        suml2 = sl2;
                        changed++;
                    }
                }
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0 ? sumlx / suml2 : 0.0f;
}

/* §6.4: qkx2 (strict == test) and qkx3 (<=) share everything else */
static float make_qkx_quants(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min,
                             uint8_t *Laux, float rmin, float rdelta, int nstep, bool use_mad, bool v3)
{
    float min = x[0], max = x[0];
    float sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (v3 ? max <= min : max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.f;
    }
    float iscale = (float)nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        int l = qs_nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)MAXI(0, MINI(nmax, l));
        float diff = scale * (float)L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_error += w[i] * diff;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = MAXI(0, MINI(nmax, qs_nearest_int(iscale * (x[i] - min))));
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * (float)l;
            sum_l2 += w[i] * (float)l * (float)l;
            sum_xl += w[i] * (float)l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * (float)Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                cur_error += w[i] * diff;
            }
            if (cur_error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* §6.5 */
static float make_qp_quants(int n, int nmax, const float *x, uint8_t *L, const float *qw)
{
    float max = 0;
    for (int i = 0; i < n; i++) max = x[i] > max ? x[i] : max;
    if (max < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = (float)nmax / max;
    for (int i = 0; i < n; i++) L[i] = (uint8_t)qs_nearest_int(iscale * x[i]);
    float scale = 1 / iscale;
    float best_mse = 0;
    for (int i = 0; i < n; i++) {
        float diff = x[i] - scale * (float)L[i];
        best_mse += qw[i] * diff * diff;
    }
    for (int is = -4; is <= 4; is++) {
        if (is == 0) continue;
        float iscale_is = (0.1f * (float)is + (float)nmax) / max;
        float scale_is = 1 / iscale_is;
        float mse = 0;
        for (int i = 0; i < n; i++) {
            int l = MINI(nmax, qs_nearest_int(iscale_is * x[i]));
            float diff = x[i] - scale_is * (float)l;
            mse += qw[i] * diff * diff;
        }
        if (mse < best_mse) {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = MINI(nmax, qs_nearest_int(iscale * x[i]));
        L[i] = (uint8_t)l;
        sumlx += qw[i] * x[i] * (float)l;
        suml2 += qw[i] * (float)l * (float)l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float slx = sumlx - qw[i] * x[i] * (float)L[i];
            float sl2 = suml2 - qw[i] * (float)L[i] * (float)L[i];
            if (slx > 0 && sl2 > 0) {
                int nl = MINI(nmax, qs_nearest_int(x[i] * sl2 / slx));
                if (nl != L[i]) {
                    slx += qw[i] * x[i] * (float)nl;
                    sl2 += qw[i] * (float)nl * (float)nl;
                    if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (uint8_t)nl;
                        sumlx = slx;
                        suml2 = sl2;
                        changed++;
                    }
                }
            }
        }
        if (!changed) break;
    }
    return suml2 > 0 ? sumlx / suml2 : 0.0f;
}

/* weights of the _impl paths: qw · sqrt(sigma2 + x²) */
static void impl_weights(const float *x, const float *qw, float sigma2, int n, float *w)
{
    for (int i = 0; i < n; i++) w[i] = qw[i] * sqrtf(sigma2 + x[i] * x[i]);
}

static float row_sigma2(const float *x, int64_t n)
{
    float s = 0;
    for (int64_t i = 0; i < n; i++) s += x[i] * x[i];
    return s / (float)n;
}

/* ---- legacy 32-element types (§5) ---- */

static void pack_nibbles32(uint8_t *qs, const int *q)
{
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)((q[j] & 15) | ((q[j + 16] & 15) << 4));
}

static void pack_q5(uint8_t *qs, uint8_t *qh, const int *q)
{
    uint32_t h = 0;
    for (int j = 0; j < 32; j++) h |= (uint32_t)((q[j] >> 4) & 1) << j;
    pack_nibbles32(qs, q);
    qh[0] = (uint8_t)h;
    qh[1] = (uint8_t)(h >> 8);
    qh[2] = (uint8_t)(h >> 16);
    qh[3] = (uint8_t)(h >> 24);
}

static void minmax(const float *x, int n, float *mn, float *mx)
{
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < min) min = x[j];
        if (x[j] > max) max = x[j];
    }
    *mn = min;
    *mx = max;
}

/* Q4_0 / Q5_0: one scale, codes 0 … 2·nmax−1 (nmax 8 or 16); fills q and returns f16(d) */
static uint16_t legacy_sym_block(const float *x, const float *w, int nmax, int *q)
{
    if (w) {
        int8_t L[32];
        float d = make_qx_quants(32, nmax, x, L, w);
        for (int j = 0; j < 32; j++) q[j] = L[j];
        return qs_f32_to_f16(d);
    }
    float amax, max = signed_max(x, 32, &amax);
    float d = max / (float)-nmax, id = d != 0 ? 1.0f / d : 0.0f, bias = (float)nmax + 0.5f; /* 8.5f, 16.5f */
    for (int j = 0; j < 32; j++) q[j] = MINI(2 * nmax - 1, (int)(x[j] * id + bias));
    return qs_f32_to_f16(d);
}

/* Q4_1 / Q5_1: scale and min, codes 0 … nmax (15 or 31); fills q, *m and returns f16(d) */
static uint16_t legacy_affine_block(const float *x, const float *w, int nmax, int *q, uint16_t *m)
{
    float d;
    if (w) {
        uint8_t L[32], Laux[32];
        float the_min;
        d = make_qkx_quants(32, nmax, x, w, L, &the_min, Laux, -0.9f, 0.05f, 36, false, true);
        *m = qs_f32_to_f16(-the_min);
        for (int j = 0; j < 32; j++) q[j] = L[j];
        return qs_f32_to_f16(d);
    }
    float min, max;
    minmax(x, 32, &min, &max);
    d = (max - min) / (float)nmax;
    float id = d != 0 ? 1.0f / d : 0.0f;
    *m = qs_f32_to_f16(min);
    /* Q4_1 clamps to 15; Q5_1's (uint8) cast cannot exceed 31: the same clamp */
    for (int j = 0; j < 32; j++) q[j] = MINI(nmax, (int)((x[j] - min) * id + 0.5f));
    return qs_f32_to_f16(d);
}

/* the importance weights of block b of a row, or NULL without an imatrix */
static const float *legacy_weights(const float *x, const float *qw, float sigma2, int64_t b, float *w)
{
    if (!qw) return NULL;
    impl_weights(x, qw + 32 * b, sigma2, 32, w);
    return w;
}

void qs_q4_0_quantize_row(const float *x, void *vy, int64_t n, const float *qw)
{
    qs_block_q4_0 *y = vy;
    float sigma2 = qw ? row_sigma2(x, n) : 0, w[32];
    for (int64_t b = 0; b < n / 32; b++, x += 32) {
        int q[32];
        y[b].d = legacy_sym_block(x, legacy_weights(x, qw, sigma2, b, w), 8, q);
        pack_nibbles32(y[b].qs, q);
    }
}

void qs_q4_1_quantize_row(const float *x, void *vy, int64_t n, const float *qw)
{
    qs_block_q4_1 *y = vy;
    float sigma2 = qw ? row_sigma2(x, n) : 0, w[32];
    for (int64_t b = 0; b < n / 32; b++, x += 32) {
        int q[32];
        y[b].d = legacy_affine_block(x, legacy_weights(x, qw, sigma2, b, w), 15, q, &y[b].m);
        pack_nibbles32(y[b].qs, q);
    }
}

void qs_q5_0_quantize_row(const float *x, void *vy, int64_t n, const float *qw)
{
    qs_block_q5_0 *y = vy;
    float sigma2 = qw ? row_sigma2(x, n) : 0, w[32];
    for (int64_t b = 0; b < n / 32; b++, x += 32) {
        int q[32];
        y[b].d = legacy_sym_block(x, legacy_weights(x, qw, sigma2, b, w), 16, q);
        pack_q5(y[b].qs, y[b].qh, q);
    }
}

void qs_q5_1_quantize_row(const float *x, void *vy, int64_t n, const float *qw)
{
    qs_block_q5_1 *y = vy;
    float sigma2 = qw ? row_sigma2(x, n) : 0, w[32];
    for (int64_t b = 0; b < n / 32; b++, x += 32) {
        int q[32];
        y[b].d = legacy_affine_block(x, legacy_weights(x, qw, sigma2, b, w), 31, q, &y[b].m);
        pack_q5(y[b].qs, y[b].qh, q);
    }
}

void qs_q8_0_quantize_row(const float *x, void *vy, int64_t n, const float *qw)
{
    (void)qw; /* llama-quantize ignores the imatrix for Q8_0 */
    qs_block_q8_0 *y = vy;
    for (int64_t b = 0; b < n / 32; b++, x += 32) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127, id = d != 0 ? 1.0f / d : 0.0f;
        y[b].d = qs_f32_to_f16(d);
        for (int j = 0; j < 32; j++) y[b].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

/* IQ4 sub-block scale search (§8 step 3, ntry = 7); the initial indices are not kept: the
 * finish recomputes every index */
static float iq4_subblock(const float *xb, const float *w)
{
    const int8_t *v = qs_kvalues_iq4nl;
    float amax, max = signed_max(xb, 32, &amax);
    if (amax < GROUP_MAX_EPS) return 0;
    float d = -max / (float)v[0], id = 1 / d;
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < 32; j++) {
        float q = (float)v[best_index_int8(v, id * xb[j])];
        sumqx += w[j] * q * xb[j];
        sumq2 += w[j] * q * q;
    }
    d = sumq2 > 0 ? sumqx / sumq2 : 0;
    float best = d * sumqx;
    for (int itry = -7; itry <= 7; itry++) {
        id = (float)(itry + v[0]) / max;
        sumqx = sumq2 = 0;
        for (int j = 0; j < 32; j++) {
            float q = (float)v[best_index_int8(v, id * xb[j])];
            sumqx += w[j] * q * xb[j];
            sumq2 += w[j] * q * q;
        }
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    return d;
}

/* ---- K-quants (§7) and IQ4 (§8) ----
 * Each type is split into a search (the sub-block scale searches: nearly all of the work,
 * done here in scalar or, 8 blocks at a time, in ggml_quants_simd.c with the identical
 * per-lane operation sequence) and a finish (super-block scales, requantization, packing). */

void qs_ksearch_block(int type, const float *x, const float *qw, qs_ksearch *s)
{
    uint8_t Laux[32];
    float w[32];
    switch (type) {
    case QS_TYPE_Q2_K: {
        float sigma2 = 0;
        if (qw) {
            for (int j = 0; j < 256; j++) sigma2 += x[j] * x[j];
            sigma2 = sigma2 / 256;
        }
        for (int j = 0; j < 16; j++) {
            const float *xs = x + 16 * j;
            if (qw) {
                impl_weights(xs, qw + 16 * j, sigma2, 16, w);
                s->sw[j] = 0;
                for (int l = 0; l < 16; l++) s->sw[j] += w[l];
                s->scales[j] = make_qkx_quants(16, 3, xs, w, s->L + 16 * j, &s->mins[j], Laux, -0.9f, 0.05f, 36, false, true);
            } else {
                for (int l = 0; l < 16; l++) w[l] = fabsf(xs[l]);
                s->scales[j] = make_qkx_quants(16, 3, xs, w, s->L + 16 * j, &s->mins[j], Laux, -0.5f, 0.1f, 15, true, false);
            }
        }
        break;
    }
    case QS_TYPE_Q3_K: {
        float sigma2 = 0;
        if (qw) {
            for (int j = 0; j < 256; j++) sigma2 += x[j] * x[j];
            sigma2 = 2 * sigma2 / 256;
        }
        for (int j = 0; j < 16; j++) {
            int8_t L[16];
            if (qw) {
                impl_weights(x + 16 * j, qw + 16 * j, sigma2, 16, w);
                s->sw[j] = 0;
                for (int l = 0; l < 16; l++) s->sw[j] += w[l];
                s->scales[j] = make_qx_quants(16, 4, x + 16 * j, L, w);
            } else {
                s->scales[j] = make_q3_quants(16, 4, x + 16 * j, L);
            }
            for (int l = 0; l < 16; l++) s->L[16 * j + l] = (uint8_t)L[l];
        }
        break;
    }
    case QS_TYPE_Q4_K: case QS_TYPE_Q5_K: {
        int nmax = type == QS_TYPE_Q4_K ? 15 : 31;
        float sigma2 = 0;
        if (qw) {
            for (int l = 0; l < 256; l++) sigma2 += x[l] * x[l];
            sigma2 = 2 * sigma2 / 256;
        }
        for (int j = 0; j < 8; j++) {
            const float *xs = x + 32 * j;
            if (qw) {
                impl_weights(xs, qw + 32 * j, sigma2, 32, w);
                s->sw[j] = 0;
                for (int l = 0; l < 32; l++) s->sw[j] += w[l];
                s->scales[j] = make_qkx_quants(32, nmax, xs, w, s->L + 32 * j, &s->mins[j], Laux, -0.9f, 0.05f, 36, false, true);
            } else {
                float sum_x2 = 0;
                for (int l = 0; l < 32; l++) sum_x2 += xs[l] * xs[l];
                float av_x = sqrtf(sum_x2 / 32);
                for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(xs[l]);
                s->scales[j] = nmax == 15
                    ? make_qkx_quants(32, 15, xs, w, s->L + 32 * j, &s->mins[j], Laux, -1.f, 0.1f, 20, false, false)
                    : make_qkx_quants(32, 31, xs, w, s->L + 32 * j, &s->mins[j], Laux, -0.5f, 0.1f, 15, false, false);
            }
        }
        break;
    }
    case QS_TYPE_Q6_K:
        for (int j = 0; j < 16; j++) {
            int8_t L[16];
            s->scales[j] = make_qx_quants(16, 32, x + 16 * j, L, qw ? qw + 16 * j : NULL);
            for (int l = 0; l < 16; l++) s->L[16 * j + l] = (uint8_t)L[l];
        }
        break;
    case QS_TYPE_IQ4_XS: case QS_TYPE_IQ4_NL: {
        int S = type == QS_TYPE_IQ4_XS ? 256 : 32;
        float sigma2 = 0;
        for (int j = 0; j < S; j++) sigma2 += x[j] * x[j];
        sigma2 *= 2.f / (float)S;
        for (int ib = 0; ib < S / 32; ib++) {
            const float *xb = x + 32 * ib;
            if (qw) impl_weights(xb, qw + 32 * ib, sigma2, 32, w);
            else for (int j = 0; j < 32; j++) w[j] = xb[j] * xb[j];
            s->scales[ib] = iq4_subblock(xb, w);
        }
        break;
    }
    }
}

static void pack_2bit_planes(uint8_t *qs, const uint8_t *L) /* §6.8 */
{
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *p = L + 128 * h + l;
            qs[32 * h + l] = (uint8_t)(p[0] | (p[32] << 2) | (p[64] << 4) | (p[96] << 6));
        }
}

static void q2k_finish(const float *x, const float *qw, qs_ksearch *s, qs_block_q2_k *y)
{
    uint8_t *L = s->L;
    if (!qw) {
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 16; j++) {
            if (s->scales[j] > max_scale) max_scale = s->scales[j];
            if (s->mins[j] > max_min) max_min = s->mins[j];
        }
        if (max_scale > 0) {
            float iscale = 15.f / max_scale;
            for (int j = 0; j < 16; j++) y->scales[j] = (uint8_t)qs_nearest_int(iscale * s->scales[j]);
            y->d = qs_f32_to_f16(max_scale / 15.f);
        } else {
            memset(y->scales, 0, 16);
            y->d = qs_f32_to_f16(0.f);
        }
        if (max_min > 0) {
            float iscale = 15.f / max_min;
            for (int j = 0; j < 16; j++) y->scales[j] |= (uint8_t)(qs_nearest_int(iscale * s->mins[j]) << 4);
            y->dmin = qs_f32_to_f16(max_min / 15.f);
        } else {
            y->dmin = qs_f32_to_f16(0.f);
        }
    } else {
        uint8_t Ls[16], Lm[16];
        float dm = make_qp_quants(16, 15, s->scales, Ls, s->sw);
        float mm = make_qp_quants(16, 15, s->mins, Lm, s->sw);
        y->d = qs_f32_to_f16(dm);
        y->dmin = qs_f32_to_f16(mm);
        for (int j = 0; j < 16; j++) y->scales[j] = (uint8_t)(Ls[j] | (Lm[j] << 4));
    }
    float d = qs_f16_to_f32(y->d), dmin = qs_f16_to_f32(y->dmin);
    for (int j = 0; j < 16; j++) {
        float dj = d * (float)(y->scales[j] & 0xF);
        if (dj == 0) continue;
        float mj = dmin * (float)(y->scales[j] >> 4);
        for (int i = 0; i < 16; i++)
            L[16 * j + i] = (uint8_t)MAXI(0, MINI(3, qs_nearest_int((x[16 * j + i] + mj) / dj)));
    }
    pack_2bit_planes(y->qs, L);
}

static void q3k_pack_scale(uint8_t *sc, int j, int l) /* §6.7, l biased 0…63 */
{
    if (j < 8) sc[j] = (uint8_t)(l & 0xF);
    else sc[j - 8] |= (uint8_t)((l & 0xF) << 4);
    sc[8 + j % 4] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
}

static void q3k_finish(const float *x, const float *qw, qs_ksearch *s, qs_block_q3_k *y)
{
    uint8_t *L = s->L;
    memset(y->scales, 0, 12);
    if (!qw) {
        float max_scale = 0, amax = 0;
        for (int j = 0; j < 16; j++) {
            float a = fabsf(s->scales[j]);
            if (a > amax) {
                amax = a;
                max_scale = s->scales[j];
            }
        }
        if (max_scale != 0) {
            float iscale = -32.f / max_scale;
            for (int j = 0; j < 16; j++)
                q3k_pack_scale(y->scales, j, MAXI(-32, MINI(31, qs_nearest_int(iscale * s->scales[j]))) + 32);
            y->d = qs_f32_to_f16(1 / iscale);
        } else {
            y->d = qs_f32_to_f16(0.f);
        }
    } else {
        int8_t Ls[16];
        float d_block = make_qx_quants(16, 32, s->scales, Ls, s->sw);
        for (int j = 0; j < 16; j++) q3k_pack_scale(y->scales, j, Ls[j]);
        y->d = qs_f32_to_f16(d_block);
    }
    float d = qs_f16_to_f32(y->d);
    for (int j = 0; j < 16; j++) {
        float dj = d * (float)qs_q3k_get_scale(j, y->scales);
        if (dj == 0) continue;
        for (int i = 0; i < 16; i++)
            L[16 * j + i] = (uint8_t)(MAXI(-4, MINI(3, qs_nearest_int(x[16 * j + i] / dj))) + 4);
    }
    memset(y->hmask, 0, 32);
    for (int e = 0; e < 256; e++)
        if (L[e] > 3) {
            y->hmask[e % 32] |= (uint8_t)(1 << (e / 32));
            L[e] -= 4;
        }
    pack_2bit_planes(y->qs, L);
}

static void pack_scale_min_k4(uint8_t *sc, const uint8_t *ls, const uint8_t *lm) /* §6.6 */
{
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            sc[j] = ls[j];
            sc[j + 4] = lm[j];
        } else {
            sc[j + 4] = (uint8_t)((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
            sc[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            sc[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
}

/* Q4_K and Q5_K: super-block scales and requantization; nmax 15 or 31 */
static void k45_finish(const float *x, const float *qw, qs_ksearch *s, uint16_t *dh, uint16_t *dminh, uint8_t *sc,
                       int nmax)
{
    uint8_t ls[8], lm[8], *L = s->L;
    if (!qw) {
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 8; j++) {
            if (s->scales[j] > max_scale) max_scale = s->scales[j];
            if (s->mins[j] > max_min) max_min = s->mins[j];
        }
        float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
        float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
        for (int j = 0; j < 8; j++) {
            ls[j] = (uint8_t)MINI(63, (uint8_t)qs_nearest_int(inv_scale * s->scales[j]));
            lm[j] = (uint8_t)MINI(63, (uint8_t)qs_nearest_int(inv_min * s->mins[j]));
        }
        pack_scale_min_k4(sc, ls, lm);
        *dh = qs_f32_to_f16(max_scale / 63.f);
        *dminh = qs_f32_to_f16(max_min / 63.f);
    } else {
        float d_block = make_qp_quants(8, 63, s->scales, ls, s->sw);
        float m_block = make_qp_quants(8, 63, s->mins, lm, s->sw);
        pack_scale_min_k4(sc, ls, lm);
        *dh = qs_f32_to_f16(d_block);
        *dminh = qs_f32_to_f16(m_block);
    }
    float d = qs_f16_to_f32(*dh), dmin = qs_f16_to_f32(*dminh);
    for (int j = 0; j < 8; j++) {
        uint8_t a, m;
        qs_q4k_get_scale_min(j, sc, &a, &m);
        float dj = d * (float)a;
        if (dj == 0) continue;
        float dm = dmin * (float)m;
        for (int i = 0; i < 32; i++)
            L[32 * j + i] = (uint8_t)MAXI(0, MINI(nmax, qs_nearest_int((x[32 * j + i] + dm) / dj)));
    }
}

static void q4k_finish(const float *x, const float *qw, qs_ksearch *s, qs_block_q4_k *y)
{
    k45_finish(x, qw, s, &y->d, &y->dmin, y->scales, 15);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) y->qs[32 * c + l] = (uint8_t)(s->L[64 * c + l] | (s->L[64 * c + l + 32] << 4));
}

static void q5k_finish(const float *x, const float *qw, qs_ksearch *s, qs_block_q5_k *y)
{
    k45_finish(x, qw, s, &y->d, &y->dmin, y->scales, 31);
    memset(y->qh, 0, 32);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            int a = s->L[64 * c + l], b = s->L[64 * c + l + 32];
            y->qs[32 * c + l] = (uint8_t)((a & 15) | ((b & 15) << 4));
            y->qh[l] |= (uint8_t)(((a >> 4) << (2 * c)) | ((b >> 4) << (2 * c + 1)));
        }
}

static void q6k_finish(const float *x, const float *qw, qs_ksearch *s, qs_block_q6_k *y)
{
    (void)qw;
    uint8_t *L = s->L;
    float max_scale = 0, max_abs = 0;
    for (int j = 0; j < 16; j++) {
        float a = fabsf(s->scales[j]);
        if (a > max_abs) {
            max_abs = a;
            max_scale = s->scales[j];
        }
    }
    if (max_abs < GROUP_MAX_EPS) {
        memset(y, 0, sizeof *y);
        return;
    }
    float iscale = -128.f / max_scale;
    y->d = qs_f32_to_f16(1 / iscale);
    for (int j = 0; j < 16; j++) y->scales[j] = (int8_t)MINI(127, qs_nearest_int(iscale * s->scales[j]));
    float d = qs_f16_to_f32(y->d);
    for (int j = 0; j < 16; j++) {
        float dj = d * (float)y->scales[j];
        if (dj == 0) continue;
        for (int i = 0; i < 16; i++)
            L[16 * j + i] = (uint8_t)(MAXI(-32, MINI(31, qs_nearest_int(x[16 * j + i] / dj))) + 32);
    }
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *p = L + 128 * h + l;
            y->ql[64 * h + l] = (uint8_t)((p[0] & 15) | ((p[64] & 15) << 4));
            y->ql[64 * h + l + 32] = (uint8_t)((p[32] & 15) | ((p[96] & 15) << 4));
            y->qh[32 * h + l] = (uint8_t)((p[0] >> 4) | ((p[32] >> 4) << 2) | ((p[64] >> 4) << 4) | ((p[96] >> 4) << 6));
        }
}

/* IQ4: super-block scale (IQ4_XS), final indices, packing */
static void iq4_finish(const float *x, int S, const qs_ksearch *s, uint16_t *dh, uint16_t *scales_h,
                       uint8_t *scales_l, uint8_t *q4)
{
    const int8_t *v = qs_kvalues_iq4nl;
    uint8_t L[256];
    if (S > 32) {
        float max_scale = 0, amax_scale = 0;
        for (int ib = 0; ib < S / 32; ib++) {
            float a = fabsf(s->scales[ib]);
            if (a > amax_scale) {
                amax_scale = a;
                max_scale = s->scales[ib];
            }
        }
        *scales_h = 0;
        float d = -max_scale / 32;
        *dh = qs_f32_to_f16(d);
        float id = d != 0 ? 1 / d : 0.f;
        for (int ib = 0; ib < S / 32; ib++) {
            int l = MAXI(-32, MINI(31, qs_nearest_int(id * s->scales[ib])));
            float dl = d * (float)l, idl = dl != 0 ? 1 / dl : 0.f;
            for (int j = 0; j < 32; j++) L[32 * ib + j] = (uint8_t)best_index_int8(v, idl * x[32 * ib + j]);
            l += 32;
            if (ib % 2 == 0) scales_l[ib / 2] = (uint8_t)(l & 15);
            else scales_l[ib / 2] |= (uint8_t)((l & 15) << 4);
            *scales_h |= (uint16_t)((l >> 4) << (2 * ib));
        }
    } else {
        *dh = qs_f32_to_f16(s->scales[0]);
        float id = s->scales[0] != 0 ? 1 / s->scales[0] : 0;
        for (int j = 0; j < 32; j++) L[j] = (uint8_t)best_index_int8(v, id * x[j]);
    }
    for (int g = 0; g < S / 32; g++)
        for (int j = 0; j < 16; j++) q4[16 * g + j] = (uint8_t)(L[32 * g + j] | (L[32 * g + 16 + j] << 4));
}

void qs_kfinish_block(int type, const float *x, const float *qw, qs_ksearch *s, void *y)
{
    switch (type) {
    case QS_TYPE_Q2_K: q2k_finish(x, qw, s, y); break;
    case QS_TYPE_Q3_K: q3k_finish(x, qw, s, y); break;
    case QS_TYPE_Q4_K: q4k_finish(x, qw, s, y); break;
    case QS_TYPE_Q5_K: q5k_finish(x, qw, s, y); break;
    case QS_TYPE_Q6_K: q6k_finish(x, qw, s, y); break;
    case QS_TYPE_IQ4_NL: {
        qs_block_iq4_nl *b = y;
        iq4_finish(x, 32, s, &b->d, NULL, NULL, b->qs);
        break;
    }
    case QS_TYPE_IQ4_XS: {
        qs_block_iq4_xs *b = y;
        uint16_t sh;
        iq4_finish(x, 256, s, &b->d, &sh, b->scales_l, b->qs);
        b->scales_h = sh;
        break;
    }
    }
}

/* a row of any searched type: block after block */
static void searched_row(int type, const float *x, void *vy, int64_t n, const float *qw)
{
    const qs_type_info *t = qs_type_get(type);
    for (int64_t b = 0; b < n / t->block_size; b++) {
        qs_ksearch s;
        int64_t o = b * t->block_size;
        qs_ksearch_block(type, x + o, qw ? qw + o : NULL, &s);
        qs_kfinish_block(type, x + o, qw ? qw + o : NULL, &s, (uint8_t *)vy + b * t->type_size);
    }
}

#define SEARCHED_ROW(name, type) \
    void name(const float *x, void *y, int64_t n, const float *qw) { searched_row(type, x, y, n, qw); }
SEARCHED_ROW(qs_q2k_quantize_row, QS_TYPE_Q2_K)
SEARCHED_ROW(qs_q3k_quantize_row, QS_TYPE_Q3_K)
SEARCHED_ROW(qs_q4k_quantize_row, QS_TYPE_Q4_K)
SEARCHED_ROW(qs_q5k_quantize_row, QS_TYPE_Q5_K)
SEARCHED_ROW(qs_q6k_quantize_row, QS_TYPE_Q6_K)
SEARCHED_ROW(qs_iq4nl_quantize_row, QS_TYPE_IQ4_NL)
SEARCHED_ROW(qs_iq4xs_quantize_row, QS_TYPE_IQ4_XS)
#undef SEARCHED_ROW

void qs_q8k_quantize_row(const float *x, void *vy, int64_t n, const float *qw)
{
    (void)qw;
    qs_block_q8_k *y = vy;
    for (int64_t b = 0; b < n / 256; b++, x += 256) {
        float amax, max = signed_max(x, 256, &amax);
        memset(&y[b], 0, sizeof y[b]);
        if (amax == 0) continue;
        float iscale = -127.f / max;
        for (int j = 0; j < 256; j++) y[b].qs[j] = (int8_t)MINI(127, qs_nearest_int(iscale * x[j]));
        for (int j = 0; j < 16; j++)
            for (int i = 0; i < 16; i++) y[b].bsums[j] = (int16_t)(y[b].bsums[j] + y[b].qs[16 * j + i]);
        y[b].d = 1 / iscale;
    }
}

void qs_iq4nl_quantize_row_single_pass(const float *x, void *vy, int64_t n)
{
    const int8_t *v = qs_kvalues_iq4nl;
    qs_block_iq4_nl *y = vy;
    for (int64_t b = 0; b < n / 32; b++, x += 32) {
        float amax, max = signed_max(x, 32, &amax);
        int L[32] = {0};
        float d = 0;
        if (amax >= GROUP_MAX_EPS) {
            d = max / (float)v[0];
            float id = 1 / d, sumqx = 0, sumq2 = 0;
            for (int j = 0; j < 32; j++) {
                L[j] = best_index_int8(v, id * x[j]);
                float q = (float)v[L[j]], w = x[j] * x[j];
                sumqx += w * q * x[j];
                sumq2 += w * q * q;
            }
            d = sumq2 > 0 ? sumqx / sumq2 : 0;
        }
        y[b].d = qs_f32_to_f16(d);
        pack_nibbles32(y[b].qs, L);
    }
}

/* ---- whole tensors ---- */

typedef void (*row_fn)(const float *, void *, int64_t, const float *);

static row_fn row_function(int type)
{
    switch (type) {
    case QS_TYPE_Q4_0: return qs_q4_0_quantize_row;
    case QS_TYPE_Q4_1: return qs_q4_1_quantize_row;
    case QS_TYPE_Q5_0: return qs_q5_0_quantize_row;
    case QS_TYPE_Q5_1: return qs_q5_1_quantize_row;
    case QS_TYPE_Q8_0: return qs_q8_0_quantize_row;
    case QS_TYPE_Q2_K: return qs_q2k_quantize_row;
    case QS_TYPE_Q3_K: return qs_q3k_quantize_row;
    case QS_TYPE_Q4_K: return qs_q4k_quantize_row;
    case QS_TYPE_Q5_K: return qs_q5k_quantize_row;
    case QS_TYPE_Q6_K: return qs_q6k_quantize_row;
    case QS_TYPE_Q8_K: return qs_q8k_quantize_row;
    case QS_TYPE_IQ4_NL: return qs_iq4nl_quantize_row;
    case QS_TYPE_IQ4_XS: return qs_iq4xs_quantize_row;
    }
    return NULL;
}

bool qs_ggml_can_quantize(int type)
{
    return type == QS_TYPE_F32 || type == QS_TYPE_F16 || type == QS_TYPE_BF16 || row_function(type) != NULL;
}

static void plain_row(int type, const float *x, void *y, int64_t n)
{
    if (type == QS_TYPE_F32) memcpy(y, x, (size_t)n * 4);
    else if (type == QS_TYPE_F16) for (int64_t i = 0; i < n; i++) ((uint16_t *)y)[i] = qs_f32_to_f16(x[i]);
    else for (int64_t i = 0; i < n; i++) ((uint16_t *)y)[i] = qs_f32_to_bf16(x[i]);
}

typedef struct qjob {
    int type;
    const float *src, *imatrix;
    uint8_t *dst;
    int64_t n_per_row, row_bytes;
    bool simd;
} qjob;

bool qs_ksearch_simd_available(void)
{
    static int ok = -1;
    if (ok < 0) __atomic_store_n(&ok, __builtin_cpu_supports("avx2") ? 1 : 0, __ATOMIC_RELAXED);
    return ok == 1;
}

static bool is_searched(int type)
{
    return type == QS_TYPE_Q2_K || type == QS_TYPE_Q3_K || type == QS_TYPE_Q4_K || type == QS_TYPE_Q5_K ||
           type == QS_TYPE_Q6_K || type == QS_TYPE_IQ4_NL || type == QS_TYPE_IQ4_XS;
}

/* searched types on SIMD: the blocks of rows r0…r1, eight at a time, then finished one by one */
static void searched_rows_simd(const qjob *j, int64_t r0, int64_t r1)
{
    const qs_type_info *t = qs_type_get(j->type);
    int64_t nb = j->n_per_row / t->block_size, total = (r1 - r0) * nb, b = 0;
    qs_ksearch s[8];
    const float *x[8], *qw[8];
    for (; b + 8 <= total; b += 8) {
        for (int l = 0; l < 8; l++) {
            int64_t r = r0 + (b + l) / nb, o = (b + l) % nb * t->block_size;
            x[l] = j->src + r * j->n_per_row + o;
            qw[l] = j->imatrix ? j->imatrix + o : NULL;
        }
        qs_ksearch_block8(j->type, x, qw, s);
        for (int l = 0; l < 8; l++) {
            int64_t r = r0 + (b + l) / nb, bi = (b + l) % nb;
            qs_kfinish_block(j->type, x[l], qw[l], &s[l], j->dst + r * j->row_bytes + bi * t->type_size);
        }
    }
    for (; b < total; b++) {
        int64_t r = r0 + b / nb, o = b % nb * t->block_size;
        const float *xb = j->src + r * j->n_per_row + o, *q = j->imatrix ? j->imatrix + o : NULL;
        qs_ksearch_block(j->type, xb, q, &s[0]);
        qs_kfinish_block(j->type, xb, q, &s[0], j->dst + r * j->row_bytes + b % nb * t->type_size);
    }
}

static void quantize_rows(void *ctx, int64_t r0, int64_t r1)
{
    const qjob *j = ctx;
    if (j->simd && is_searched(j->type)) {
        searched_rows_simd(j, r0, r1);
        return;
    }
    row_fn fn = row_function(j->type);
    for (int64_t r = r0; r < r1; r++) {
        const float *x = j->src + r * j->n_per_row;
        void *y = j->dst + r * j->row_bytes;
        if (fn) fn(x, y, j->n_per_row, j->imatrix);
        else plain_row(j->type, x, y, j->n_per_row);
    }
}

/* every f16 scale field of each block must be finite (llama-quantize's validation) */
static int validate(int type, const uint8_t *dst, int64_t nrows, int64_t row_bytes, qs_err *err)
{
    int nf = 0, off[2] = {0, 0};
    switch (type) {
    case QS_TYPE_Q4_0: case QS_TYPE_Q5_0: case QS_TYPE_Q8_0: case QS_TYPE_IQ4_NL: case QS_TYPE_IQ4_XS:
    case QS_TYPE_Q6_K: nf = 1; off[0] = type == QS_TYPE_Q6_K ? 208 : 0; break;
    case QS_TYPE_Q4_1: case QS_TYPE_Q5_1: case QS_TYPE_Q4_K: case QS_TYPE_Q5_K: nf = 2; off[1] = 2; break;
    case QS_TYPE_Q2_K: nf = 2; off[0] = 80; off[1] = 82; break;
    case QS_TYPE_Q3_K: nf = 1; off[0] = 108; break;
    default: return 0;
    }
    const qs_type_info *t = qs_type_get(type);
    int64_t nb = row_bytes / t->type_size;
    for (int64_t r = 0; r < nrows; r++)
        for (int64_t b = 0; b < nb; b++)
            for (int f = 0; f < nf; f++) {
                uint16_t h;
                memcpy(&h, dst + r * row_bytes + b * t->type_size + off[f], 2);
                if ((h & 0x7c00) == 0x7c00)
                    return qs_err_set(err, QS_E_INPUT, "row %lld, block %lld: %s scale overflows float16",
                                      (long long)r, (long long)b, t->name);
            }
    return 0;
}

void qs_ggml_quantize_rows_raw(int type, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                               const float *imatrix, int n_threads)
{
    qjob job = {type, src, imatrix, dst, n_per_row, qs_type_row_bytes(type, n_per_row),
                qs_ksearch_simd_available() && !getenv("QS_NO_SIMD")};
    qs_parallel_for(nrows, 16, n_threads, quantize_rows, &job);
}

int qs_ggml_quantize(int type, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                     const float *imatrix, int n_threads, qs_err *err)
{
    if (!qs_ggml_can_quantize(type))
        return qs_err_set(err, QS_E_UNSUPPORTED, "cannot quantize to type %s", qs_type_name(type));
    int64_t rb = qs_type_row_bytes(type, n_per_row);
    if (rb < 0 || nrows < 0)
        return qs_err_set(err, QS_E_USAGE, "%lld columns are not a multiple of the %s block size %d",
                          (long long)n_per_row, qs_type_name(type), qs_type_get(type)->block_size);
    for (int64_t i = 0; i < nrows * n_per_row; i++)
        if (!isfinite(src[i]))
            return qs_err_set(err, QS_E_INPUT, "row %lld, column %lld is not finite", (long long)(i / n_per_row),
                              (long long)(i % n_per_row));
    qs_ggml_quantize_rows_raw(type, src, dst, nrows, n_per_row, imatrix, n_threads);
    return validate(type, dst, nrows, rb, err);
}
