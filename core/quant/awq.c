/* core/quant/awq.c — AWQ scale search, clip search and quantizer for one linear (spec/awq.md).
 * Matrices are row-major: W[rows][cols] (rows = outputs), X[n][cols]. */
#include "core/quant/awq.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util/parallel.h"

void qs_awq_default(qs_awq_params *p)
{
    *p = (qs_awq_params){.bits = 4, .group = 128, .zero_point = true, .duo = false, .alpha = -1, .clip = true};
}

void qs_awq_x_mean(const float *X, int64_t n, int64_t cols, float *out)
{
    double *acc = calloc((size_t)cols, sizeof *acc);
    if (!acc) {
        for (int64_t c = 0; c < cols; c++) out[c] = 1;
        return;
    }
    for (int64_t t = 0; t < n; t++)
        for (int64_t c = 0; c < cols; c++) acc[c] += fabsf(X[t * cols + c]);
    for (int64_t c = 0; c < cols; c++) out[c] = (float)(acc[c] / (double)(n > 0 ? n : 1));
    free(acc);
}

void qs_awq_w_mean(const float *W, int64_t rows, int64_t cols, int64_t G, float *out)
{
    double *acc = calloc((size_t)cols, sizeof *acc);
    if (!acc) {
        for (int64_t c = 0; c < cols; c++) out[c] = 1;
        return;
    }
    for (int64_t r = 0; r < rows; r++)
        for (int64_t g = 0; g < cols; g += G) {
            const float *w = W + r * cols + g;
            float m = 0;
            for (int64_t e = 0; e < G; e++) m = fmaxf(m, fabsf(w[e]));
            for (int64_t e = 0; e < G; e++) acc[g + e] += fabsf(w[e]) / (m + 1e-6f);
        }
    for (int64_t c = 0; c < cols; c++) out[c] = (float)(acc[c] / (double)rows);
    free(acc);
}

void qs_awq_scales(const float *x_mean, const float *w_mean, int64_t cols, int r, float *s)
{
    float ratio = (float)((double)r / QS_AWQ_GRID), inv = (float)(1.0 - (double)r / QS_AWQ_GRID);
    float mx = -INFINITY, mn = INFINITY;
    for (int64_t c = 0; c < cols; c++) {
        float v = powf(x_mean[c], ratio);
        if (w_mean) v = v / (powf(w_mean[c], inv) + 1e-4f);
        s[c] = fmaxf(v, 1e-4f);
        mx = fmaxf(mx, s[c]), mn = fminf(mn, s[c]);
    }
    float norm = sqrtf(mx * mn);
    for (int64_t c = 0; c < cols; c++) {
        s[c] = s[c] / norm;
        if (!isfinite(s[c])) s[c] = 1;
    }
}

static int64_t group_len(const qs_awq_params *p, int64_t cols) { return p->group > 0 ? p->group : cols; }

/* round half to even for |x| < 2^22, as rintf in the default rounding mode (adding and removing
 * 1.5·2^23 leaves no fraction bits): no libm call in the inner loops */
/* min / max / clamp of finite values without libm calls (fminf and fmaxf are calls unless NaN
 * semantics are relaxed; every value here is finite) */
static inline float minf(float a, float b) { return a < b ? a : b; }
static inline float maxf(float a, float b) { return a > b ? a : b; }

static inline float round_even(float x)
{
    const float magic = 12582912.0f;
    return fabsf(x) < 4194304.0f ? (x + magic) - magic : rintf(x);
}

typedef struct pq_job {
    const qs_awq_params *p;
    const float *w;
    int64_t cols, G;
    float *out, *gscales, *gzeros;
    uint8_t *codes;
} pq_job;

static void pq_rows(void *ctx, int64_t r0, int64_t r1)
{
    const pq_job *j = ctx;
    const qs_awq_params *p = j->p;
    int64_t G = j->G, cols = j->cols, ng = cols / G;
    int maxq = (1 << p->bits) - 1, half = 1 << (p->bits - 1);
    for (int64_t r = r0; r < r1; r++)
        for (int64_t g = 0; g < ng; g++) {
            const float *x = j->w + r * cols + g * G;
            float mx = -INFINITY, mn = INFINITY, amax = 0, scale, zero = 0;
            for (int64_t e = 0; e < G; e++) mx = maxf(mx, x[e]), mn = minf(mn, x[e]), amax = maxf(amax, fabsf(x[e]));
            if (p->zero_point) {
                scale = maxf(mx - mn, 1e-5f) / (float)maxq;
                zero = minf((float)maxq, maxf(0, -round_even(mn / scale)));
            } else {
                scale = maxf(amax, 1e-5f) / (float)(half - 1);
            }
            float *o = j->out + r * cols + g * G;
            uint8_t *c = j->codes ? j->codes + r * cols + g * G : NULL;
            for (int64_t e = 0; e < G; e++) {
                float q;
                if (p->zero_point) q = minf((float)maxq, maxf(0, round_even(x[e] / scale) + zero));
                else q = minf((float)(half - 1), maxf((float)-half, round_even(x[e] / scale)));
                o[e] = p->zero_point ? (q - zero) * scale : q * scale;
                if (c) c[e] = (uint8_t)(p->zero_point ? q : q + (float)half);
            }
            if (j->gscales) j->gscales[r * ng + g] = scale;
            if (j->gzeros) j->gzeros[r * ng + g] = p->zero_point ? zero : (float)half;
        }
}

void qs_awq_pseudo_quantize(const qs_awq_params *p, const float *w, int64_t rows, int64_t cols, float *out,
                            uint8_t *codes, float *gscales, float *gzeros)
{
    pq_job j = {p, w, cols, group_len(p, cols), out, gscales, gzeros, codes};
    qs_parallel_for(rows, 64, 0, pq_rows, &j);
}

/* Σ (a − b)² over n floats (binary32 differences and squares, double sum) */
static double sq_diff(const float *a, const float *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        float d = a[i] - b[i];
        s += d * d;
    }
    return s;
}

/* y[n][rows] = X[n][cols] · W[rows][cols]ᵀ */
static void xwt(const float *X, int64_t n, const float *W, int64_t rows, int64_t cols, float *y)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)rows, (int)cols, 1.0f, X, (int)cols, W, (int)cols,
                0.0f, y, (int)rows);
}

int qs_awq_clip_search(const qs_awq_params *p, const float *Ws, int64_t rows, int64_t cols, const float *Xs, int64_t n,
                       float *best_max, qs_err *err)
{
    int64_t G = group_len(p, cols), ng = cols / G, step = n / 512 > 1 ? n / 512 : 1, nt = (n + step - 1) / step;
    float *xt = malloc((size_t)(nt * G) * sizeof *xt), *wg = malloc((size_t)(rows * G) * sizeof *wg),
          *wc = malloc((size_t)(rows * G) * sizeof *wc), *wq = malloc((size_t)(rows * G) * sizeof *wq),
          *org = malloc((size_t)(nt * rows) * sizeof *org), *cur = malloc((size_t)(nt * rows) * sizeof *cur),
          *omax = malloc((size_t)rows * sizeof *omax), *minerr = malloc((size_t)rows * sizeof *minerr);
    double *acc = malloc((size_t)rows * sizeof *acc);
    int rc = 0;
    if (!xt || !wg || !wc || !wq || !org || !cur || !omax || !minerr || !acc) {
        rc = qs_err_set(err, QS_E_OOM, "out of memory for the AWQ clip search");
        goto done;
    }
    qs_awq_params gp = *p;
    gp.group = (int)G;
    for (int64_t g = 0; g < ng; g++) {
        for (int64_t t = 0; t < nt; t++) memcpy(xt + t * G, Xs + t * step * cols + g * G, (size_t)G * sizeof *xt);
        for (int64_t r = 0; r < rows; r++) {
            memcpy(wg + r * G, Ws + r * cols + g * G, (size_t)G * sizeof *wg);
            float m = 0;
            for (int64_t e = 0; e < G; e++) m = maxf(m, fabsf(wg[r * G + e]));
            omax[r] = m, minerr[r] = 1e9f, best_max[r * ng + g] = m;
        }
        xwt(xt, nt, wg, rows, G, org);
        for (int is = 0; is < QS_AWQ_GRID / 2; is++) {
            float shrink = (float)(1.0 - (double)is / QS_AWQ_GRID);
            for (int64_t r = 0; r < rows; r++) {
                float mv = omax[r] * shrink;
                for (int64_t e = 0; e < G; e++) wc[r * G + e] = minf(mv, maxf(-mv, wg[r * G + e]));
            }
            qs_awq_pseudo_quantize(&gp, wc, rows, G, wq, NULL, NULL, NULL);
            xwt(xt, nt, wq, rows, G, cur);
            /* err[r] = mean over tokens of (cur − org)², summed token by token (rows contiguous) */
            for (int64_t r = 0; r < rows; r++) acc[r] = 0;
            for (int64_t t = 0; t < nt; t++)
                for (int64_t r = 0; r < rows; r++) {
                    float d = cur[t * rows + r] - org[t * rows + r];
                    acc[r] += d * d;
                }
            for (int64_t r = 0; r < rows; r++) {
                float e = (float)(acc[r] / (double)nt);
                if (e < minerr[r]) minerr[r] = e, best_max[r * ng + g] = omax[r] * shrink;
            }
        }
    }
done:
    free(xt), free(wg), free(wc), free(wq), free(org), free(cur), free(omax), free(minerr), free(acc);
    return rc;
}

static int check(const qs_awq_params *p, int64_t rows, int64_t cols, int64_t n, qs_err *err)
{
    if (p->bits < 2 || p->bits > 8) return qs_err_set(err, QS_E_USAGE, "bits %d: AWQ takes 2 to 8", p->bits);
    if (p->group > 0 && cols % p->group)
        return qs_err_set(err, QS_E_USAGE, "group size %d does not divide the %lld columns", p->group, (long long)cols);
    if (p->alpha >= QS_AWQ_GRID) return qs_err_set(err, QS_E_USAGE, "alpha %d/20: AWQ's grid is 0 … 19/20", p->alpha);
    if (rows <= 0 || cols <= 0 || n <= 0) return qs_err_set(err, QS_E_USAGE, "AWQ needs weights and cached inputs");
    return 0;
}

typedef struct scale_job {
    const float *w, *s;
    int64_t cols;
    float *out;
    bool divide;
} scale_job;

static void scale_rows(void *ctx, int64_t r0, int64_t r1)
{
    const scale_job *j = ctx;
    for (int64_t r = r0; r < r1; r++) {
        const float *w = j->w + r * j->cols;
        float *o = j->out + r * j->cols;
        if (j->divide)
            for (int64_t c = 0; c < j->cols; c++) o[c] = w[c] / j->s[c];
        else
            for (int64_t c = 0; c < j->cols; c++) o[c] = w[c] * j->s[c];
    }
}

/* out = w·s or w/s per column (binary32, one operation per value) */
static void scale_columns(const float *w, const float *s, int64_t rows, int64_t cols, bool divide, float *out)
{
    scale_job j = {w, s, cols, out, divide};
    qs_parallel_for(rows, 64, 0, scale_rows, &j);
}

/* W' = Q(W·s)/s into wq (ws: scratch for W·s) */
static void scaled_quantize(const qs_awq_params *p, const float *w, const float *s, int64_t rows, int64_t cols, float *ws,
                            float *wq)
{
    scale_columns(w, s, rows, cols, false, ws);
    qs_awq_pseudo_quantize(p, ws, rows, cols, wq, NULL, NULL, NULL);
    scale_columns(wq, s, rows, cols, true, wq);
}

/* the α grid: loss per point, the first strict minimum's scales into s */
static int search(const qs_awq_params *p, const float *w, int64_t rows, int64_t cols, const float *X, int64_t n,
                  const float *xm, const float *wm, float *s, qs_awq_out *out, qs_progress *prog, qs_err *err)
{
    float *ws = malloc((size_t)(rows * cols) * sizeof *ws), *wq = malloc((size_t)(rows * cols) * sizeof *wq),
          *fp = malloc((size_t)(n * rows) * sizeof *fp), *y = malloc((size_t)(n * rows) * sizeof *y),
          *cand = malloc((size_t)cols * sizeof *cand);
    int rc = 0;
    if (!ws || !wq || !fp || !y || !cand) {
        rc = qs_err_set(err, QS_E_OOM, "out of memory for the AWQ search");
        goto done;
    }
    xwt(X, n, w, rows, cols, fp);
    double best = INFINITY;
    for (int r = 0; r < QS_AWQ_GRID; r++) {
        qs_awq_scales(xm, wm, cols, r, cand);
        scaled_quantize(p, w, cand, rows, cols, ws, wq);
        xwt(X, n, wq, rows, cols, y);
        double loss = sq_diff(fp, y, n * rows) / (double)(n * rows);
        out->loss_history[r] = (float)loss;
        if (loss < best) {
            best = loss;
            out->best_ratio = (float)r / QS_AWQ_GRID;
            memcpy(s, cand, (size_t)cols * sizeof *s);
        }
        if (!qs_progress_step(prog, r + 1, QS_AWQ_GRID + 1)) {
            rc = qs_err_set(err, QS_E_CANCELLED, "cancelled");
            break;
        }
    }
done:
    free(ws), free(wq), free(fp), free(y), free(cand);
    return rc;
}

int qs_awq_quantize(const qs_awq_params *p, const float *w, int64_t rows, int64_t cols, const float *X, int64_t n,
                    const float *x_mean, const float *fixed_s, qs_awq_out *out, qs_progress *prog, qs_err *err)
{
    int rc = check(p, rows, cols, n, err);
    if (rc) return rc;
    int64_t G = group_len(p, cols), ng = cols / G;
    float *xm = malloc((size_t)cols * sizeof *xm), *wm = p->duo ? malloc((size_t)cols * sizeof *wm) : NULL,
          *ws = malloc((size_t)(rows * cols) * sizeof *ws), *xs = p->clip ? malloc((size_t)(n * cols) * sizeof *xs) : NULL,
          *bm = p->clip ? malloc((size_t)(rows * ng) * sizeof *bm) : NULL;
    if (!xm || (p->duo && !wm) || !ws || (p->clip && (!xs || !bm))) {
        rc = qs_err_set(err, QS_E_OOM, "out of memory for AWQ");
        goto done;
    }
    if (x_mean) memcpy(xm, x_mean, (size_t)cols * sizeof *xm);
    else qs_awq_x_mean(X, n, cols, xm);
    if (wm) qs_awq_w_mean(w, rows, cols, G, wm);
    for (int r = 0; r < QS_AWQ_GRID; r++) out->loss_history[r] = NAN;
    out->best_ratio = NAN;
    if (fixed_s) memcpy(out->s, fixed_s, (size_t)cols * sizeof *out->s);
    else if (p->alpha >= 0) qs_awq_scales(xm, wm, cols, p->alpha, out->s), out->best_ratio = (float)p->alpha / QS_AWQ_GRID;
    else if ((rc = search(p, w, rows, cols, X, n, xm, wm, out->s, out, prog, err))) goto done;
    scale_columns(w, out->s, rows, cols, false, ws);
    if (p->clip) {
        scale_columns(X, out->s, n, cols, true, xs);
        if ((rc = qs_awq_clip_search(p, ws, rows, cols, xs, n, bm, err))) goto done;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++) {
                float mv = bm[r * ng + c / G];
                ws[r * cols + c] = fminf(mv, fmaxf(-mv, ws[r * cols + c]));
            }
        if (out->clip_max) memcpy(out->clip_max, bm, (size_t)(rows * ng) * sizeof *bm);
    }
    qs_awq_pseudo_quantize(p, ws, rows, cols, out->deq, out->codes, out->gscales, out->gzeros);
    scale_columns(out->deq, out->s, rows, cols, true, out->deq);
    qs_progress_step(prog, QS_AWQ_GRID + 1, QS_AWQ_GRID + 1);
done:
    free(xm), free(wm), free(ws), free(xs), free(bm);
    return rc;
}

void qs_awq_fold(float *prev, int64_t prev_rows, int64_t prev_cols, float *const *linears, const int64_t *rows, int n,
                 int64_t cols, const float *s)
{
    if (prev_rows == 1)
        for (int64_t c = 0; c < cols; c++) prev[c] = prev[c] / s[c];
    else
        for (int64_t c = 0; c < cols; c++)
            for (int64_t k = 0; k < prev_cols; k++) {
                float *x = prev + (prev_rows - cols + c) * prev_cols + k;
                *x = *x / s[c];
            }
    for (int i = 0; i < n; i++) scale_columns(linears[i], s, rows[i], cols, false, linears[i]);
}
