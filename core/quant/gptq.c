/* core/quant/gptq.c — GPTQ fasterquant (spec/gptq.md §4). Matrices are row-major [rows][cols];
 * "column" is an input feature. */
#include "core/quant/gptq.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util/parallel.h"

/* LAPACK (OpenBLAS ships it); Fortran calling convention with the hidden string lengths */
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t uplo_len);
void dpotri_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t uplo_len);

void qs_gptq_default(qs_gptq_params *p)
{
    *p = (qs_gptq_params){.bits = 4, .group = 128, .sym = true, .damp = 0.01f, .blocksize = 128};
}

int64_t qs_gptq_n_groups(const qs_gptq_params *p, int64_t cols)
{
    return p->group > 0 ? (cols + p->group - 1) / p->group : 1;
}

void qs_gptq_find_params(int bits, bool sym, const float *x, int64_t n, int64_t stride, float *scale, float *zero)
{
    int maxq = (1 << bits) - 1;
    float xmin = 0, xmax = 0;
    for (int64_t i = 0; i < n; i++) {
        float v = x[i * stride];
        xmin = fminf(xmin, v);
        xmax = fmaxf(xmax, v);
    }
    if (sym) {
        xmax = fmaxf(fabsf(xmin), xmax);
        if (xmin < 0) xmin = -xmax;
    }
    if (xmin == 0 && xmax == 0) xmin = -1, xmax = 1;
    *scale = (xmax - xmin) / (float)maxq;
    *zero = sym ? (float)(maxq + 1) / 2 : rintf(-xmin / *scale);
}

/* the upper Cholesky factor U of H⁻¹ (H⁻¹ = UᵀU), into hinv (float); H is symmetric so its
 * row-major array is also its column-major one, and LAPACK's column-major lower factor L is the
 * row-major upper triangle holding Lᵀ */
static int inverse_factor(const float *H, int64_t n, float *hinv, qs_err *err)
{
    double *a = malloc((size_t)(n * n) * sizeof *a);
    if (!a) return qs_err_set(err, QS_E_OOM, "out of memory for the %lld² Hessian", (long long)n);
    for (int64_t i = 0; i < n * n; i++) a[i] = H[i];
    int N = (int)n, info = 0;
    dpotrf_("L", &N, a, &N, &info, 1);
    if (!info) dpotri_("L", &N, a, &N, &info, 1);
    if (!info) {
        /* the inverse sits in the row-major upper triangle: mirror it, factor again */
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < i; j++) a[i * n + j] = a[j * n + i];
        dpotrf_("L", &N, a, &N, &info, 1);
    }
    if (info) {
        free(a);
        return qs_err_set(err, QS_E_INPUT, "the damped Hessian is not positive definite (LAPACK info %d): raise damp", info);
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) hinv[i * n + j] = j >= i ? (float)a[i * n + j] : 0.0f;
    free(a);
    return 0;
}

/* descending diag(H), stable (qsort_r context: the matrix and its order) */
typedef struct diag_order { const float *H; int64_t n; } diag_order;
static int cmp_desc(const void *x, const void *y, void *ctx)
{
    const diag_order *o = ctx;
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    float da = o->H[a * (o->n + 1)], db = o->H[b * (o->n + 1)];
    return da > db ? -1 : da < db ? 1 : (a > b) - (a < b);
}

typedef struct block_job {
    const qs_gptq_params *p;
    int64_t cols, i1, i2, ng;
    float *W;              /* [rows][cols], permuted, with the lazy updates so far */
    float *W1, *Err1;      /* [rows][i2 − i1] */
    float *Q;              /* [rows][cols], permuted */
    uint8_t *codes;        /* [rows][cols], permuted */
    const float *hinv;
    const float *st_scale, *st_zero; /* static groups: [rows][ng] */
    float *scales, *zeros; /* [rows][ng] */
    const int64_t *perm;
    double *row_loss;      /* [rows] */
} block_job;

/* the columns i1…i2 of rows r0…r1: rows are independent within a block */
static void block_rows(void *ctx, int64_t r0, int64_t r1)
{
    const block_job *j = ctx;
    const qs_gptq_params *p = j->p;
    int64_t bs = j->i2 - j->i1, G = p->group > 0 ? p->group : j->cols;
    int maxq = (1 << p->bits) - 1;
    for (int64_t r = r0; r < r1; r++) {
        float *w1 = j->W1 + r * bs, *e1 = j->Err1 + r * bs, *sc = j->scales + r * j->ng, *zr = j->zeros + r * j->ng;
        const float *wrow = j->W + r * j->cols;
        float scale = sc[0], zero = zr[0];
        double loss = 0;
        for (int64_t i = 0; i < bs; i++) {
            int64_t c = j->i1 + i;
            if (p->group > 0 && !p->static_groups && c % G == 0) {
                int64_t n = c + G <= j->cols ? G : j->cols - c;
                qs_gptq_find_params(p->bits, p->sym, wrow + c, n, 1, &scale, &zero);
                sc[c / G] = scale, zr[c / G] = zero;
            } else if (p->group > 0 && p->static_groups) {
                int64_t g = (p->act_order ? j->perm[c] : c) / G;
                scale = j->st_scale[r * j->ng + g], zero = j->st_zero[r * j->ng + g];
            }
            const float *h = j->hinv + c * j->cols + j->i1;
            float d = h[i], w = w1[i];
            int code;
            float q = qs_gptq_quantize_value(w, scale, zero, maxq, &code);
            j->Q[r * j->cols + c] = q;
            j->codes[r * j->cols + c] = (uint8_t)code;
            float l = (w - q) * (w - q) / (d * d);
            loss += l / 2;
            float e = (w - q) / d;
            for (int64_t k = i; k < bs; k++) w1[k] -= e * h[k];
            e1[i] = e;
        }
        j->row_loss[r] += loss;
    }
}

typedef struct gptq_work {
    float *W, *Hp, *hinv, *Q, *W1, *Err1, *P, *st_scale, *st_zero;
    uint8_t *codes;
    int64_t *perm;
    double *row_loss;
} gptq_work;

static void work_free(gptq_work *k)
{
    free(k->W), free(k->Hp), free(k->hinv), free(k->Q), free(k->W1), free(k->Err1), free(k->P);
    free(k->st_scale), free(k->st_zero), free(k->codes), free(k->perm), free(k->row_loss);
}

static int check_params(const qs_gptq_params *p, int64_t rows, int64_t cols, qs_err *err)
{
    if (p->bits < 2 || p->bits > 8) return qs_err_set(err, QS_E_USAGE, "bits %d: GPTQ takes 2 to 8", p->bits);
    if (!(p->damp > 0 && p->damp < 1)) return qs_err_set(err, QS_E_USAGE, "damp %g: GPTQ takes 0 < damp < 1", (double)p->damp);
    if (p->blocksize < 1) return qs_err_set(err, QS_E_USAGE, "block size %d", p->blocksize);
    if (rows <= 0 || cols <= 0 || cols > 65536) return qs_err_set(err, QS_E_USAGE, "GPTQ on %lld × %lld weights", (long long)rows, (long long)cols);
    return 0;
}

/* permute columns of W and rows/columns of H by perm (act-order) */
static void apply_perm(gptq_work *k, int64_t rows, int64_t cols, bool act_order)
{
    for (int64_t c = 0; c < cols; c++) k->perm[c] = c;
    diag_order o = {k->Hp, cols};
    if (act_order) qsort_r(k->perm, (size_t)cols, sizeof *k->perm, cmp_desc, &o);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) k->W[r * cols + c] = k->Q[r * cols + k->perm[c]];
    for (int64_t i = 0; i < cols; i++)
        for (int64_t c = 0; c < cols; c++) k->hinv[i * cols + c] = k->Hp[k->perm[i] * cols + k->perm[c]];
}

int qs_gptq_quantize(const qs_gptq_params *p, const float *w, int64_t rows, int64_t cols, const float *H,
                     qs_gptq_out *out, qs_progress *prog, qs_err *err)
{
    int rc = check_params(p, rows, cols, err);
    if (rc) return rc;
    int64_t n = rows * cols, G = p->group > 0 ? p->group : cols, ng = qs_gptq_n_groups(p, cols);
    gptq_work k = {0};
    k.W = malloc((size_t)n * sizeof *k.W), k.Q = malloc((size_t)n * sizeof *k.Q);
    k.Hp = malloc((size_t)(cols * cols) * sizeof *k.Hp), k.hinv = malloc((size_t)(cols * cols) * sizeof *k.hinv);
    k.codes = malloc((size_t)n), k.perm = malloc((size_t)cols * sizeof *k.perm);
    k.row_loss = calloc((size_t)rows, sizeof *k.row_loss);
    k.st_scale = malloc((size_t)(rows * ng) * sizeof *k.st_scale), k.st_zero = malloc((size_t)(rows * ng) * sizeof *k.st_zero);
    int64_t bsz = p->blocksize < cols ? p->blocksize : cols;
    k.W1 = malloc((size_t)(rows * bsz) * sizeof *k.W1), k.Err1 = malloc((size_t)(rows * bsz) * sizeof *k.Err1);
    k.P = malloc((size_t)(rows * cols) * sizeof *k.P);
    if (!k.W || !k.Q || !k.Hp || !k.hinv || !k.codes || !k.perm || !k.row_loss || !k.st_scale || !k.st_zero || !k.W1 ||
        !k.Err1 || !k.P) {
        work_free(&k);
        return qs_err_set(err, QS_E_OOM, "out of memory for GPTQ on %lld × %lld", (long long)rows, (long long)cols);
    }
    /* dead inputs; the original (dead-zeroed) W is kept in Q until the permutation */
    memcpy(k.Hp, H, (size_t)(cols * cols) * sizeof *H);
    memcpy(k.Q, w, (size_t)n * sizeof *w);
    for (int64_t c = 0; c < cols; c++) {
        if (!isfinite(k.Hp[c * cols + c])) {
            work_free(&k);
            return qs_err_set(err, QS_E_INPUT, "the Hessian's diagonal is not finite at column %lld", (long long)c);
        }
        if (k.Hp[c * cols + c] == 0) {
            k.Hp[c * cols + c] = 1;
            for (int64_t r = 0; r < rows; r++) k.Q[r * cols + c] = 0;
        }
    }
    /* per-row parameters (no groups) and static groups come from the original W */
    for (int64_t r = 0; r < rows; r++)
        for (int64_t g = 0; g < ng; g++) {
            int64_t c0 = g * G, len = c0 + G <= cols ? G : cols - c0;
            qs_gptq_find_params(p->bits, p->sym, k.Q + r * cols + c0, len, 1, &k.st_scale[r * ng + g], &k.st_zero[r * ng + g]);
        }
    memcpy(out->scales, k.st_scale, (size_t)(rows * ng) * sizeof *k.st_scale);
    memcpy(out->zeros, k.st_zero, (size_t)(rows * ng) * sizeof *k.st_zero);
    apply_perm(&k, rows, cols, p->act_order);
    /* damping on the permuted H (held in hinv for the moment), then the factor */
    double dsum = 0;
    for (int64_t c = 0; c < cols; c++) dsum += k.hinv[c * cols + c];
    float damp = p->damp * (float)(dsum / (double)cols);
    for (int64_t c = 0; c < cols; c++) k.hinv[c * cols + c] += damp;
    memcpy(k.Hp, k.hinv, (size_t)(cols * cols) * sizeof *k.Hp);
    if ((rc = inverse_factor(k.Hp, cols, k.hinv, err))) {
        work_free(&k);
        return rc;
    }
    for (int64_t i1 = 0; i1 < cols; i1 += p->blocksize) {
        int64_t i2 = i1 + p->blocksize < cols ? i1 + p->blocksize : cols, bs = i2 - i1;
        for (int64_t r = 0; r < rows; r++) memcpy(k.W1 + r * bs, k.W + r * cols + i1, (size_t)bs * sizeof *k.W1);
        block_job j = {p, cols, i1, i2, ng, k.W, k.W1, k.Err1, k.Q, k.codes, k.hinv, k.st_scale, k.st_zero,
                       out->scales, out->zeros, k.perm, k.row_loss};
        qs_parallel_for(rows, 16, 0, block_rows, &j);
        if (i2 < cols) {
            /* W[:, i2:] −= Err1 · Hinv[i1:i2, i2:] (product first, then the subtraction) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)(cols - i2), (int)bs, 1.0f, k.Err1,
                        (int)bs, k.hinv + i1 * cols + i2, (int)cols, 0.0f, k.P, (int)(cols - i2));
            for (int64_t r = 0; r < rows; r++)
                for (int64_t c = i2; c < cols; c++) k.W[r * cols + c] -= k.P[r * (cols - i2) + c - i2];
        }
        if (!qs_progress_step(prog, i2, cols)) {
            work_free(&k);
            return qs_err_set(err, QS_E_CANCELLED, "cancelled");
        }
    }
    /* un-permute; g_idx (§6) */
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            out->deq[r * cols + k.perm[c]] = k.Q[r * cols + c];
            out->codes[r * cols + k.perm[c]] = k.codes[r * cols + c];
        }
    for (int64_t c = 0; c < cols; c++)
        out->g_idx[k.perm[c]] = (int32_t)((p->static_groups && p->act_order ? k.perm[c] : c) / G);
    if (p->group <= 0)
        for (int64_t c = 0; c < cols; c++) out->g_idx[c] = 0;
    out->loss = 0;
    for (int64_t r = 0; r < rows; r++) out->loss += k.row_loss[r];
    work_free(&k);
    return 0;
}
