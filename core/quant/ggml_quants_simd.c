/* core/quant/ggml_quants_simd.c — the K-quant / IQ4 scale searches for 8 blocks at once.
 *
 * Lane l of every vector belongs to block l and executes exactly the scalar operation
 * sequence of ggml_quants.c (same operations, same order, IEEE single precision, no fused
 * multiply-add: -ffp-contract=off), so each lane's result is bit-identical to the scalar
 * search. Branches become per-lane masks; where the scalar code stops early (degenerate
 * blocks, refinement passes without change) the lane's state is either restored or provably
 * unchanged by the extra work. Compiled with -mavx2: call it only after qs_ksearch_simd_available(). */
#include "core/quant/ggml_ksearch.h"

#include <immintrin.h>
#include <string.h>

#include "core/quant/ggml_types.h"

#define GROUP_MAX_EPS 1e-15f

typedef float vf __attribute__((vector_size(32)));
typedef int32_t vi __attribute__((vector_size(32)));

static inline vf vsel(vi m, vf a, vf b) { return (vf)((m & (vi)a) | (~m & (vi)b)); }
static inline vi isel(vi m, vi a, vi b) { return (m & a) | (~m & b); }
static inline vf vabs(vf x) { return (vf)((vi)x & 0x7fffffff); }
static inline vf vsqrt(vf x) { return (vf)_mm256_sqrt_ps((__m256)x); }
static inline vf vfl(vi i) { return __builtin_convertvector(i, vf); }
static inline vi vclamp(vi a, int lo, int hi)
{
    a = isel(a < lo, (vi){} + lo, a);
    return isel(a > hi, (vi){} + hi, a);
}
static inline vi vrne(vf v)
{
    vf t = v + 12582912.f;
    return ((vi)t & 0x007fffff) - 0x00400000;
}
static inline bool any(vi m) { return !_mm256_testz_si256((__m256i)m, (__m256i)m); }

static vf vsigned_max(const vf *x, int n, vf *amax_out)
{
    vf amax = {0}, max = {0};
    for (int i = 0; i < n; i++) {
        vf ax = vabs(x[i]);
        vi m = ax > amax;
        amax = vsel(m, ax, amax);
        max = vsel(m, x[i], max);
    }
    *amax_out = amax;
    return max;
}

/* make_qx_quants, rmse_type 1; w NULL means x² */
static vf vmake_qx(int n, int nmax, const vf *x, vi *L, const vf *w)
{
    vf amax, max = vsigned_max(x, n, &amax);
    vi degen = amax < GROUP_MAX_EPS;
    vf iscale = (float)(-nmax) / max, sumlx = {0}, suml2 = {0};
    for (int i = 0; i < n; i++) {
        vi l = vclamp(vrne(iscale * x[i]), -nmax, nmax - 1);
        L[i] = l + nmax;
        vf wi = w ? w[i] : x[i] * x[i], lf = vfl(l);
        sumlx += wi * x[i] * lf;
        suml2 += wi * lf * lf;
    }
    vf scale = vsel(suml2 != 0, sumlx / suml2, (vf){0}), best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        sumlx = suml2 = (vf){0};
        vi ls[32];
        for (int i = 0; i < n; i++) {
            ls[i] = vclamp(vrne(iscale * x[i]), -nmax, nmax - 1);
            vf wi = w ? w[i] : x[i] * x[i], lf = vfl(ls[i]);
            sumlx += wi * x[i] * lf;
            suml2 += wi * lf * lf;
        }
        vi upd = (suml2 > 0) & (sumlx * sumlx > best * suml2);
        if (!any(upd)) continue;
        for (int i = 0; i < n; i++) L[i] = isel(upd, ls[i] + nmax, L[i]);
        scale = vsel(upd, sumlx / suml2, scale);
        best = vsel(upd, scale * sumlx, best);
    }
    for (int i = 0; i < n; i++) L[i] = isel(degen, (vi){0}, L[i]);
    return vsel(degen, (vf){0}, scale);
}

/* make_q3_quants (n 16, weights x²) */
static vf vmake_q3(int n, int nmax, const vf *x, vi *L)
{
    vf amax, max = vsigned_max(x, n, &amax);
    vi degen = amax < GROUP_MAX_EPS;
    vf iscale = (float)(-nmax) / max, sumlx = {0}, suml2 = {0};
    for (int i = 0; i < n; i++) {
        L[i] = vclamp(vrne(iscale * x[i]), -nmax, nmax - 1);
        vf w = x[i] * x[i], lf = vfl(L[i]);
        sumlx += w * x[i] * lf;
        suml2 += w * lf * lf;
    }
    for (int itry = 0; itry < 5; itry++) {
        vi changed = {0};
        for (int i = 0; i < n; i++) {
            vf w = x[i] * x[i], Lf = vfl(L[i]);
            vf slx = sumlx - w * x[i] * Lf;
            vi c = slx > 0;
            vf sl2 = suml2 - w * Lf * Lf;
            vi nl = vclamp(vrne(x[i] * sl2 / slx), -nmax, nmax - 1);
            c &= nl != L[i];
            vf nlf = vfl(nl);
            slx = slx + w * x[i] * nlf;
            sl2 = sl2 + w * nlf * nlf;
            c &= (sl2 > 0) & (slx * slx * suml2 > sumlx * sumlx * sl2);
            L[i] = isel(c, nl, L[i]);
            sumlx = vsel(c, slx, sumlx);
            suml2 = vsel(c, sl2, suml2);
            changed |= c;
        }
        if (!any(changed)) break;
    }
    for (int i = 0; i < n; i++) L[i] = isel(degen, (vi){0}, L[i] + nmax);
    return vsel(degen | ~(suml2 > 0), (vf){0}, sumlx / suml2);
}

/* make_qkx2_quants / make_qkx3_quants */
static vf vmake_qkx(int n, int nmax, const vf *x, const vf *w, vi *L, vf *the_min, float rmin, float rdelta,
                    int nstep, bool use_mad, bool v3)
{
    vf min = x[0], max = x[0], sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        min = vsel(x[i] < min, x[i], min);
        max = vsel(x[i] > max, x[i], max);
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    min = vsel(min > 0, (vf){0}, min);
    vi degen = v3 ? max <= min : max == min;
    vf min0 = min, iscale = (float)nmax / (max - min), scale = 1 / iscale, best_error = {0};
    for (int i = 0; i < n; i++) {
        L[i] = vclamp(vrne(iscale * (x[i] - min)), 0, nmax);
        vf diff = scale * vfl(L[i]) + min - x[i];
        diff = use_mad ? vabs(diff) : diff * diff;
        best_error += w[i] * diff;
    }
    vi Laux[32];
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
        vf sum_l = {0}, sum_l2 = {0}, sum_xl = {0};
        for (int i = 0; i < n; i++) {
            Laux[i] = vclamp(vrne(iscale * (x[i] - min)), 0, nmax);
            vf lf = vfl(Laux[i]);
            sum_l += w[i] * lf;
            sum_l2 += w[i] * lf * lf;
            sum_xl += w[i] * lf * x[i];
        }
        vf D = sum_w * sum_l2 - sum_l * sum_l;
        vi ok = D > 0;
        if (!any(ok)) continue;
        vf this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
        vf this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
        vi pos = this_min > 0;
        this_min = vsel(pos, (vf){0}, this_min);
        this_scale = vsel(pos, sum_xl / sum_l2, this_scale);
        vf cur_error = {0};
        for (int i = 0; i < n; i++) {
            vf diff = this_scale * vfl(Laux[i]) + this_min - x[i];
            diff = use_mad ? vabs(diff) : diff * diff;
            cur_error += w[i] * diff;
        }
        vi upd = ok & (cur_error < best_error);
        if (!any(upd)) continue;
        for (int i = 0; i < n; i++) L[i] = isel(upd, Laux[i], L[i]);
        best_error = vsel(upd, cur_error, best_error);
        scale = vsel(upd, this_scale, scale);
        min = vsel(upd, this_min, min);
    }
    for (int i = 0; i < n; i++) L[i] = isel(degen, (vi){0}, L[i]);
    *the_min = vsel(degen, -min0, -min);
    return vsel(degen, (vf){0}, scale);
}

/* value of best_index_int8(kvalues_iq4nl, x): nearest entry, the upper one on an exact tie */
static vf vbest_value(vf x)
{
    const int8_t *v = qs_kvalues_iq4nl;
    vf lo = {0}, hi = {0};
    lo += (float)v[0];
    hi += (float)v[1];
    for (int k = 1; k < 15; k++) {
        vi ge = x >= (float)v[k];
        lo += vsel(ge, (vf){0} + (float)(v[k] - v[k - 1]), (vf){0});
        hi += vsel(ge, (vf){0} + (float)(v[k + 1] - v[k]), (vf){0});
    }
    vf val = vsel(x - lo < hi - x, lo, hi);
    val = vsel(x >= (float)v[15], (vf){0} + (float)v[15], val);
    return vsel(x <= (float)v[0], (vf){0} + (float)v[0], val);
}

static vf viq4_subblock(const vf *xb, const vf *w)
{
    float v0 = (float)qs_kvalues_iq4nl[0];
    vf amax, max = vsigned_max(xb, 32, &amax);
    vi degen = amax < GROUP_MAX_EPS;
    vf d = -max / v0, id = 1 / d, sumqx = {0}, sumq2 = {0};
    for (int j = 0; j < 32; j++) {
        vf q = vbest_value(id * xb[j]);
        sumqx += w[j] * q * xb[j];
        sumq2 += w[j] * q * q;
    }
    d = vsel(sumq2 > 0, sumqx / sumq2, (vf){0});
    vf best = d * sumqx;
    for (int itry = -7; itry <= 7; itry++) {
        id = (float)(itry + qs_kvalues_iq4nl[0]) / max;
        sumqx = sumq2 = (vf){0};
        for (int j = 0; j < 32; j++) {
            vf q = vbest_value(id * xb[j]);
            sumqx += w[j] * q * xb[j];
            sumq2 += w[j] * q * q;
        }
        vi upd = (sumq2 > 0) & (sumqx * sumqx > best * sumq2);
        d = vsel(upd, sumqx / sumq2, d);
        best = vsel(upd, d * sumqx, best);
    }
    return vsel(degen, (vf){0}, d);
}

/* ---- per-type searches over transposed blocks ---- */

typedef struct lanes {
    vf x[256], qw[256];
    bool has_qw;
    vf scales[16], mins[16], sw[16];
    vi L[256];
} lanes;

static void impl_weights(const vf *x, const vf *qw, vf sigma2, int n, vf *w)
{
    for (int i = 0; i < n; i++) w[i] = qw[i] * vsqrt(sigma2 + x[i] * x[i]);
}

static vf sum_sq(const vf *x, int n)
{
    vf s = {0};
    for (int i = 0; i < n; i++) s += x[i] * x[i];
    return s;
}

static void sum_into(const vf *w, int n, vf *out)
{
    *out = (vf){0};
    for (int l = 0; l < n; l++) *out += w[l];
}

static void search(int type, lanes *z)
{
    vf w[32];
    switch (type) {
    case QS_TYPE_Q2_K: {
        vf sigma2 = z->has_qw ? sum_sq(z->x, 256) / 256 : (vf){0};
        for (int j = 0; j < 16; j++) {
            const vf *xs = z->x + 16 * j;
            if (z->has_qw) {
                impl_weights(xs, z->qw + 16 * j, sigma2, 16, w);
                sum_into(w, 16, &z->sw[j]);
                z->scales[j] = vmake_qkx(16, 3, xs, w, z->L + 16 * j, &z->mins[j], -0.9f, 0.05f, 36, false, true);
            } else {
                for (int l = 0; l < 16; l++) w[l] = vabs(xs[l]);
                z->scales[j] = vmake_qkx(16, 3, xs, w, z->L + 16 * j, &z->mins[j], -0.5f, 0.1f, 15, true, false);
            }
        }
        break;
    }
    case QS_TYPE_Q3_K: {
        vf sigma2 = z->has_qw ? 2 * sum_sq(z->x, 256) / 256 : (vf){0};
        for (int j = 0; j < 16; j++) {
            if (z->has_qw) {
                impl_weights(z->x + 16 * j, z->qw + 16 * j, sigma2, 16, w);
                sum_into(w, 16, &z->sw[j]);
                z->scales[j] = vmake_qx(16, 4, z->x + 16 * j, z->L + 16 * j, w);
            } else {
                z->scales[j] = vmake_q3(16, 4, z->x + 16 * j, z->L + 16 * j);
            }
        }
        break;
    }
    case QS_TYPE_Q4_K: case QS_TYPE_Q5_K: {
        int nmax = type == QS_TYPE_Q4_K ? 15 : 31;
        vf sigma2 = z->has_qw ? 2 * sum_sq(z->x, 256) / 256 : (vf){0};
        for (int j = 0; j < 8; j++) {
            const vf *xs = z->x + 32 * j;
            if (z->has_qw) {
                impl_weights(xs, z->qw + 32 * j, sigma2, 32, w);
                sum_into(w, 32, &z->sw[j]);
                z->scales[j] = vmake_qkx(32, nmax, xs, w, z->L + 32 * j, &z->mins[j], -0.9f, 0.05f, 36, false, true);
            } else {
                vf av_x = vsqrt(sum_sq(xs, 32) / 32);
                for (int l = 0; l < 32; l++) w[l] = av_x + vabs(xs[l]);
                z->scales[j] = nmax == 15
                    ? vmake_qkx(32, 15, xs, w, z->L + 32 * j, &z->mins[j], -1.f, 0.1f, 20, false, false)
                    : vmake_qkx(32, 31, xs, w, z->L + 32 * j, &z->mins[j], -0.5f, 0.1f, 15, false, false);
            }
        }
        break;
    }
    case QS_TYPE_Q6_K:
        for (int j = 0; j < 16; j++)
            z->scales[j] = vmake_qx(16, 32, z->x + 16 * j, z->L + 16 * j, z->has_qw ? z->qw + 16 * j : NULL);
        break;
    case QS_TYPE_IQ4_XS: case QS_TYPE_IQ4_NL: {
        int S = type == QS_TYPE_IQ4_XS ? 256 : 32;
        vf sigma2 = sum_sq(z->x, S) * (2.f / (float)S);
        for (int ib = 0; ib < S / 32; ib++) {
            const vf *xb = z->x + 32 * ib;
            if (z->has_qw) impl_weights(xb, z->qw + 32 * ib, sigma2, 32, w);
            else for (int j = 0; j < 32; j++) w[j] = xb[j] * xb[j];
            z->scales[ib] = viq4_subblock(xb, w);
        }
        break;
    }
    }
}

void qs_ksearch_block8(int type, const float *const x[8], const float *const qw[8], qs_ksearch s[8])
{
    int n = type == QS_TYPE_IQ4_NL ? 32 : 256;
    lanes z;
    z.has_qw = qw[0] != NULL;
    for (int i = 0; i < n; i++)
        for (int l = 0; l < 8; l++) {
            z.x[i][l] = x[l][i];
            z.qw[i][l] = z.has_qw ? qw[l][i] : 0;
        }
    search(type, &z);
    for (int l = 0; l < 8; l++) {
        for (int j = 0; j < 16; j++) {
            s[l].scales[j] = z.scales[j][l];
            s[l].mins[j] = z.mins[j][l];
            s[l].sw[j] = z.sw[j][l];
        }
        for (int i = 0; i < n; i++) s[l].L[i] = (uint8_t)z.L[i][l];
    }
}
