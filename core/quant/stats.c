/* core/quant/stats.c — statistics in double precision. */
#include "core/quant/stats.h"

#include <cblas.h>

#include "core/util/parallel.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const double qs_pct_levels[QS_NPCT] = {0.1, 1, 5, 25, 50, 75, 95, 99, 99.9};

/* a[k] becomes the k-th smallest of a[lo..hi] with everything before it no larger and everything
 * after it no smaller (Hoare's quickselect, median-of-three pivots): O(n) where a sort is O(n log n) */
static void select_kth(float *a, int64_t lo, int64_t hi, int64_t k)
{
    while (hi > lo) {
        int64_t mid = lo + (hi - lo) / 2;
        float t;
#define SWAP(x, y) (t = a[x], a[x] = a[y], a[y] = t)
        if (a[mid] < a[lo]) SWAP(lo, mid);
        if (a[hi] < a[lo]) SWAP(lo, hi);
        if (a[hi] < a[mid]) SWAP(mid, hi);
        float pivot = a[mid];
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot) i++;
            while (pivot < a[j]) j--;
            if (i <= j) {
                SWAP(i, j);
                i++, j--;
            }
        }
#undef SWAP
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else return;
    }
}

/* the p-th percentile (linear between order statistics, as of a sorted copy) of a[0..n), whose
 * part before *from is already no larger than the rest (ascending p: pass the same *from) */
static double percentile_select(float *a, int64_t n, double p, int64_t *from)
{
    double pos = p / 100.0 * (double)(n - 1);
    int64_t i = (int64_t)floor(pos);
    if (i >= n - 1) i = n - 1;
    select_kth(a, *from, n - 1, i);
    *from = i;
    double f = pos - (double)i, lo = a[i];
    if (i == n - 1 || f == 0) return lo;
    float next = a[i + 1];
    for (int64_t k = i + 2; k < n; k++) next = a[k] < next ? a[k] : next;
    return lo + f * ((double)next - lo);
}

int qs_dist_compute(const float *x, int64_t n, double outlier_k, qs_dist *d)
{
    memset(d, 0, sizeof *d);
    if (n < 1) return -1;
    d->n = n;
    d->outlier_k = outlier_k;
    double sum = 0, mn = x[0], mx = x[0];
    for (int64_t i = 0; i < n; i++) {
        sum += x[i];
        mn = fmin(mn, x[i]);
        mx = fmax(mx, x[i]);
    }
    d->mean = sum / (double)n;
    double m2 = 0, m4 = 0;
    for (int64_t i = 0; i < n; i++) {
        double c = (double)x[i] - d->mean, c2 = c * c;
        m2 += c2;
        m4 += c2 * c2;
    }
    m2 /= (double)n;
    m4 /= (double)n;
    d->min = mn;
    d->max = mx;
    d->absmax = fmax(fabs(mn), fabs(mx));
    d->std = sqrt(m2);
    d->kurtosis = m2 > 0 ? m4 / (m2 * m2) - 3.0 : 0.0;
    for (int64_t i = 0; i < n; i++) d->n_outliers += fabs((double)x[i] - d->mean) > outlier_k * d->std && d->std > 0;
    float *s = malloc((size_t)n * sizeof *s);
    if (!s) return -1;
    memcpy(s, x, (size_t)n * sizeof *s);
    int64_t from = 0;
    for (int k = 0; k < QS_NPCT; k++) d->pct[k] = percentile_select(s, n, qs_pct_levels[k], &from);
    free(s);
    return 0;
}

static double symlog(double x, double c) { return x < 0 ? -log10(1 - x / c) : log10(1 + x / c); }

int qs_hist_bin(const qs_hist_spec *h, double x)
{
    double lo = h->lo, hi = h->hi;
    if (h->symlog) {
        x = symlog(x, h->linthresh);
        lo = symlog(lo, h->linthresh);
        hi = symlog(hi, h->linthresh);
    }
    if (x < lo) return -1;
    if (x > hi) return h->nbins;
    int b = (int)((x - lo) / (hi - lo) * h->nbins);
    return b >= h->nbins ? h->nbins - 1 : b;
}

double qs_hist_edge(const qs_hist_spec *h, int i)
{
    double f = (double)i / h->nbins;
    if (!h->symlog) return h->lo + f * (h->hi - h->lo);
    double a = symlog(h->lo, h->linthresh), b = symlog(h->hi, h->linthresh), t = a + f * (b - a);
    double m = pow(10.0, fabs(t)) - 1;
    return t < 0 ? -m * h->linthresh : m * h->linthresh;
}

void qs_hist_compute(const qs_hist_spec *h, const float *x, int64_t n, int64_t *counts, int64_t *below, int64_t *above)
{
    memset(counts, 0, (size_t)h->nbins * sizeof *counts);
    int64_t b0 = 0, b1 = 0;
    for (int64_t i = 0; i < n; i++) {
        int b = qs_hist_bin(h, x[i]);
        if (b < 0) b0++;
        else if (b >= h->nbins) b1++;
        else counts[b]++;
    }
    if (below) *below = b0;
    if (above) *above = b1;
}

typedef struct tile_job {
    const float *x;
    int64_t rows, cols;
    int out_rows, out_cols;
    qs_tile_mode mode;
    float *out;
} tile_job;

/* output rows [i0, i1): a max over floats (exact), a mean summed in double */
static void tile_rows(void *ctx, int64_t i0, int64_t i1)
{
    const tile_job *j = ctx;
    for (int64_t i = i0; i < i1; i++) {
        int64_t r0 = i * j->rows / j->out_rows, r1 = (i + 1) * j->rows / j->out_rows;
        for (int jj = 0; jj < j->out_cols; jj++) {
            int64_t c0 = jj * j->cols / j->out_cols, c1 = (jj + 1) * j->cols / j->out_cols;
            double acc = 0;
            float mx = 0;
            for (int64_t r = r0; r < r1; r++) {
                const float *p = j->x + r * j->cols;
                if (j->mode == QS_TILE_MAX_ABS)
                    for (int64_t c = c0; c < c1; c++) mx = fabsf(p[c]) > mx ? fabsf(p[c]) : mx;
                else
                    for (int64_t c = c0; c < c1; c++) acc += fabs((double)p[c]);
            }
            int64_t cnt = (r1 - r0) * (c1 - c0);
            j->out[i * j->out_cols + jj] = j->mode == QS_TILE_MAX_ABS ? mx : (float)(cnt ? acc / (double)cnt : 0);
        }
    }
}

void qs_tilemap(const float *x, int64_t rows, int64_t cols, int out_rows, int out_cols, qs_tile_mode mode, float *out)
{
    tile_job j = {x, rows, cols, out_rows, out_cols, mode, out};
    qs_parallel_for(out_rows, 1, 0, tile_rows, &j);
}

void qs_channel_stats_compute(const float *x, int64_t rows, int64_t cols, int axis, qs_channel_stats *out)
{
    int64_t nch = axis == 0 ? rows : cols, len = axis == 0 ? cols : rows;
    int64_t step = axis == 0 ? 1 : cols, stride = axis == 0 ? cols : 1;
    float *a = malloc((size_t)len * sizeof *a);
    for (int64_t ch = 0; a && ch < nch; ch++) {
        const float *p = x + ch * stride;
        double sum = 0, m2 = 0, m4 = 0, amax = 0;
        for (int64_t i = 0; i < len; i++) sum += p[i * step];
        double mean = sum / (double)len;
        for (int64_t i = 0; i < len; i++) {
            double v = p[i * step], c = v - mean;
            m2 += c * c;
            m4 += c * c * c * c;
            amax = fmax(amax, fabs(v));
            a[i] = fabsf(p[i * step]);
        }
        m2 /= (double)len;
        m4 /= (double)len;
        int64_t from = 0;
        double med = percentile_select(a, len, 50, &from);
        out[ch] = (qs_channel_stats){(float)amax, (float)sqrt(m2), (float)(m2 > 0 ? m4 / (m2 * m2) - 3 : 0),
                                     (float)(med > 0 ? amax / med : 0)};
    }
    free(a);
}

/* partial sums over fixed chunks of QS_CMP_CHUNK values, added in chunk order: the result does
 * not depend on the number of threads */
#define CMP_CHUNK QS_CMP_CHUNK

typedef struct cmp_part {
    double se, sx, sy, sxy, mx;
} cmp_part;

typedef struct cmp_job {
    const float *a, *b;
    int64_t n;
    cmp_part *parts;
} cmp_job;

static void compare_range(const cmp_job *j, int64_t i0, int64_t i1, cmp_part *out)
{
    cmp_part p = {0, 0, 0, 0, 0};
    for (int64_t i = i0; i < i1; i++) {
        double x = j->a[i], y = j->b[i], e = y - x;
        p.se += e * e;
        p.sx += x * x;
        p.sy += y * y;
        p.sxy += x * y;
        p.mx = fmax(p.mx, fabs(e));
    }
    *out = p;
}

static void compare_chunks(void *ctx, int64_t c0, int64_t c1)
{
    cmp_job *j = ctx;
    for (int64_t c = c0; c < c1; c++)
        compare_range(j, c * CMP_CHUNK, (c + 1) * CMP_CHUNK < j->n ? (c + 1) * CMP_CHUNK : j->n, &j->parts[c]);
}

void qs_compare_add(qs_compare_acc *a, const float *orig, const float *deq, int64_t n)
{
    int64_t nc = (n + CMP_CHUNK - 1) / CMP_CHUNK;
    cmp_part one = {0, 0, 0, 0, 0}, *parts = nc > 1 ? malloc((size_t)nc * sizeof *parts) : &one;
    cmp_job j = {orig, deq, n, parts ? parts : &one};
    if (!parts || nc <= 1) {
        /* one chunk (or no memory for the partial sums): a single sequential pass */
        j.parts = &one;
        compare_range(&j, 0, n, &one);
        nc = 1;
        parts = &one;
    } else {
        qs_parallel_for(nc, 4, 0, compare_chunks, &j);
    }
    for (int64_t c = 0; c < nc; c++) {
        a->se += parts[c].se;
        a->sx += parts[c].sx;
        a->sy += parts[c].sy;
        a->sxy += parts[c].sxy;
        a->mx = fmax(a->mx, parts[c].mx);
    }
    if (parts != &one) free(parts);
    a->n += n;
}

void qs_compare_finish(const qs_compare_acc *a, qs_metrics *m)
{
    int64_t n = a->n;
    double se = a->se, sx = a->sx, sy = a->sy, sxy = a->sxy;
    m->n = n;
    m->mse = n ? se / (double)n : 0;
    m->rmse = sqrt(m->mse);
    m->max_abs = a->mx;
    m->sqnr_db = se > 0 ? 10.0 * log10(sx / se) : INFINITY;
    m->cosine = sx > 0 && sy > 0 ? sxy / sqrt(sx * sy) : (sx == 0 && sy == 0 ? 1.0 : 0.0);
}

void qs_stats_compare(const float *orig, const float *deq, int64_t n, qs_metrics *m)
{
    qs_compare_acc a = {0};
    qs_compare_add(&a, orig, deq, n);
    qs_compare_finish(&a, m);
}

void qs_row_mse(const float *orig, const float *deq, int64_t rows, int64_t cols, float *out)
{
    for (int64_t r = 0; r < rows; r++) {
        double se = 0;
        for (int64_t c = 0; c < cols; c++) {
            double e = (double)deq[r * cols + c] - orig[r * cols + c];
            se += e * e;
        }
        out[r] = (float)(se / (double)cols);
    }
}

int qs_outerr_begin(qs_outerr_acc *a, const float *x, int64_t n, int64_t rows, int64_t cols)
{
    *a = (qs_outerr_acc){x, n, rows, cols, malloc((size_t)(n * rows) * sizeof(float)), malloc((size_t)(n * rows) * sizeof(float))};
    if (a->y && a->e) return 0;
    free(a->y), free(a->e);
    a->y = a->e = NULL;
    return -1;
}

void qs_outerr_add(qs_outerr_acc *a, const float *w, const float *q, int64_t row0, int64_t nrows)
{
    float *d = a->y ? malloc((size_t)(nrows * a->cols) * sizeof *d) : NULL;
    if (!d) {
        free(a->y), free(a->e);
        a->y = a->e = NULL;
        return;
    }
    for (int64_t i = 0; i < nrows * a->cols; i++) d[i] = q[i] - w[i];
    int n = (int)a->n, k = (int)a->cols, ldc = (int)a->rows;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, (int)nrows, k, 1.0f, a->x, k, w, k, 0.0f, a->y + row0, ldc);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, (int)nrows, k, 1.0f, a->x, k, d, k, 0.0f, a->e + row0, ldc);
    free(d);
}

double qs_outerr_end(qs_outerr_acc *a)
{
    double num = 0, den = 0;
    for (int64_t i = 0; a->y && i < a->n * a->rows; i++) num += (double)a->e[i] * a->e[i], den += (double)a->y[i] * a->y[i];
    bool ok = a->y != NULL;
    free(a->y), free(a->e);
    a->y = a->e = NULL;
    return ok && den > 0 ? num / den : NAN;
}

double qs_stats_output_error(const float *w, const float *q, int64_t rows, int64_t cols, const float *x, int64_t n)
{
    qs_outerr_acc a;
    if (qs_outerr_begin(&a, x, n, rows, cols)) return NAN;
    qs_outerr_add(&a, w, q, 0, rows);
    return qs_outerr_end(&a);
}

void qs_tilemap_max_rows(const float *x, int64_t ld, int64_t r0, int64_t nr, int64_t rows, int64_t cols, int out_rows,
                         int out_cols, float *out)
{
    for (int64_t r = 0; r < nr; r++) {
        int64_t i = ((r0 + r + 1) * out_rows - 1) / rows; /* the tile row holding row r0 + r */
        const float *p = x + r * ld;
        float *o = out + i * out_cols;
        for (int jj = 0; jj < out_cols; jj++) {
            int64_t c0 = jj * cols / out_cols, c1 = (jj + 1) * cols / out_cols;
            float mx = o[jj];
            for (int64_t c = c0; c < c1; c++) mx = fabsf(p[c]) > mx ? fabsf(p[c]) : mx;
            o[jj] = mx;
        }
    }
}

/* ---- the distribution in passes ---- */

/* the float's place in the order as an unsigned key (−0 counts as +0, as < sees them) */
static uint32_t order_key(float f)
{
    uint32_t u;
    if (f == 0) f = 0.0f;
    memcpy(&u, &f, sizeof u);
    return u & 0x80000000u ? ~u : u | 0x80000000u;
}

static float key_value(uint32_t k)
{
    uint32_t u = k & 0x80000000u ? k & 0x7fffffffu : ~k;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

int qs_dist_stream_init(qs_dist_stream *s, double outlier_k)
{
    memset(s, 0, sizeof *s);
    s->outlier_k = outlier_k;
    s->hi = calloc(65536, sizeof *s->hi);
    s->slot = malloc(65536 * sizeof *s->slot);
    if (!s->hi || !s->slot) {
        qs_dist_stream_free(s);
        return -1;
    }
    return 0;
}

void qs_dist_stream_free(qs_dist_stream *s)
{
    free(s->hi), free(s->slot);
    for (int k = 0; k < QS_DIST_RANKS; k++) free(s->lo[k]);
    memset(s, 0, sizeof *s);
}

void qs_dist_stream_add(qs_dist_stream *s, const float *x, int64_t n)
{
    if (s->pass == 0) {
        if (n > 0 && s->n == 0) s->mn = s->mx = x[0];
        for (int64_t i = 0; i < n; i++) {
            s->sum += x[i];
            s->mn = fmin(s->mn, x[i]);
            s->mx = fmax(s->mx, x[i]);
            s->hi[order_key(x[i]) >> 16]++;
        }
        s->n += n;
    } else if (s->pass == 1) {
        for (int64_t i = 0; i < n; i++) {
            double c = (double)x[i] - s->mean, c2 = c * c;
            s->m2 += c2;
            s->m4 += c2 * c2;
            uint32_t k = order_key(x[i]);
            int sl = s->slot[k >> 16];
            if (sl >= 0) s->lo[sl][k & 0xffff]++;
        }
    } else if (s->pass == 2) {
        for (int64_t i = 0; i < n; i++) s->n_outliers += fabs((double)x[i] - s->mean) > s->outlier_k * s->std && s->std > 0;
    }
}

/* the order statistics each percentile needs (as percentile_select reads them) */
static void dist_ranks(qs_dist_stream *s)
{
    for (int k = 0; k < QS_NPCT; k++) {
        double pos = qs_pct_levels[k] / 100.0 * (double)(s->n - 1);
        int64_t i = (int64_t)floor(pos);
        if (i >= s->n - 1) i = s->n - 1;
        s->rank[2 * k] = i;
        s->rank[2 * k + 1] = i + 1 < s->n ? i + 1 : i;
    }
    memset(s->slot, 0xff, 65536 * sizeof *s->slot);
    int64_t below = 0;
    uint32_t b = 0;
    for (int r = 0; r < QS_DIST_RANKS; r++) { /* ranks ascend: one walk over the bins */
        while (below + s->hi[b] <= s->rank[r]) below += s->hi[b++];
        s->bin[r] = b, s->below[r] = below;
        if (s->slot[b] < 0) {
            s->slot[b] = (int16_t)r;
            s->lo[r] = calloc(65536, sizeof *s->lo[r]);
        }
    }
}

static bool dist_lo_ok(const qs_dist_stream *s)
{
    for (int r = 0; r < QS_DIST_RANKS; r++)
        if (!s->lo[s->slot[s->bin[r]]]) return false;
    return true;
}

/* the values at the ranks from the low counts of their bins */
static void dist_values(qs_dist_stream *s)
{
    for (int r = 0; r < QS_DIST_RANKS; r++) {
        const int64_t *lo = s->lo[s->slot[s->bin[r]]];
        int64_t below = s->below[r];
        uint32_t l = 0;
        while (lo && below + lo[l] <= s->rank[r]) below += lo[l++];
        s->value[r] = key_value(s->bin[r] << 16 | l);
    }
    for (int k = 0; k < QS_NPCT; k++) {
        double pos = qs_pct_levels[k] / 100.0 * (double)(s->n - 1);
        int64_t i = s->rank[2 * k];
        double f = pos - (double)i, lo = s->value[2 * k];
        s->d.pct[k] = i == s->n - 1 || f == 0 ? lo : lo + f * ((double)s->value[2 * k + 1] - lo);
    }
}

int qs_dist_stream_end_pass(qs_dist_stream *s, qs_dist *d)
{
    if (s->n < 1) return -1;
    if (s->pass == 0) {
        s->mean = s->sum / (double)s->n;
        dist_ranks(s);
        if (!dist_lo_ok(s)) return -1;
    } else if (s->pass == 1) {
        double m2 = s->m2 / (double)s->n, m4 = s->m4 / (double)s->n;
        s->std = sqrt(m2);
        s->d = (qs_dist){s->n, s->mn, s->mx, fmax(fabs(s->mn), fabs(s->mx)), s->mean, s->std,
                         m2 > 0 ? m4 / (m2 * m2) - 3.0 : 0.0, {0}, s->outlier_k, 0};
        dist_values(s);
    } else if (s->pass == 2) {
        s->d.n_outliers = s->n_outliers;
    }
    s->pass++;
    if (d) *d = s->d;
    return 3 - s->pass;
}
