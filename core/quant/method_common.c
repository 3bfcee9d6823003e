/* core/quant/method_common.c — group grids, clip counting and the layouts the methods share. */
#include "core/quant/method_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/quant/ggml_quants.h"
#include "core/quant/ggml_types.h"
#include "core/util/parallel.h"
#include "core/quant/qgrid.h"

void qs_m_sort_levels(float *v, int n)
{
    for (int i = 1; i < n; i++) {
        float x = v[i];
        int j = i - 1;
        while (j >= 0 && v[j] > x) {
            v[j + 1] = v[j];
            j--;
        }
        v[j + 1] = x;
    }
}

/* clipped: beyond the grid's ends by more than half the end step (an error larger than
 * rounding inside the grid could make) */
typedef struct clip_job {
    qs_qresult *r;
    const float *w;
    qs_m_group_levels_fn levels;
    int64_t count;
} clip_job;

static void clip_groups(void *ctx, int64_t g0, int64_t g1)
{
    clip_job *j = ctx;
    qs_qresult *r = j->r;
    int64_t n = r->rows * r->cols, count = 0;
    float lv[256];
    for (int64_t g = g0; g < g1; g++) {
        int k = j->levels(r, g, lv);
        if (k < 2) {
            if (r->ggml_type >= 0) r->scales[g] = 0;
            continue;
        }
        /* the two lowest and two highest levels, without sorting */
        float a0 = INFINITY, a1 = INFINITY, b0 = -INFINITY, b1 = -INFINITY;
        for (int i = 0; i < k; i++) {
            float x = lv[i];
            if (x < a0) a1 = a0, a0 = x;
            else if (x < a1) a1 = x;
            if (x > b0) b1 = b0, b0 = x;
            else if (x > b1) b1 = x;
        }
        if (r->ggml_type >= 0) r->scales[g] = (b0 - a0) / (float)(k - 1);
        float lo = a0 - (a1 - a0) / 2, hi = b0 + (b0 - b1) / 2;
        int64_t i1 = (g + 1) * r->group_len < n ? (g + 1) * r->group_len : n;
        for (int64_t i = g * r->group_len; i < i1; i++) count += j->w[i] < lo || j->w[i] > hi;
    }
    __atomic_fetch_add(&j->count, count, __ATOMIC_RELAXED);
}

void qs_m_count_clipped(qs_qresult *r, const float *w, int n_threads, qs_m_group_levels_fn levels)
{
    clip_job j = {r, w, levels, 0};
    qs_parallel_for(r->n_groups, 4096, n_threads, clip_groups, &j);
    r->n_clipped = j.count;
}

int qs_m_flat_levels(const qs_qresult *r, int64_t row, int64_t col, float *lv, qs_m_group_levels_fn levels)
{
    int n = levels(r, (row * r->cols + col) / r->group_len, lv);
    qs_m_sort_levels(lv, n);
    return n;
}

float qs_m_flat_scale(const qs_qresult *r, int64_t row, int64_t col)
{
    return r->scales[(row * r->cols + col) / r->group_len] / (r->col_scale ? r->col_scale[col] : 1);
}

int qs_m_check_bits_group(const qs_qconfig *c, int64_t cols, const char *who, qs_err *err)
{
    if (c->bits < 2 || c->bits > 8) return qs_err_set(err, QS_E_USAGE, "bits %d: %s takes 2 to 8", c->bits, who);
    if (c->group > 0 && cols % c->group)
        return qs_err_set(err, QS_E_USAGE, "group size %d does not divide the %lld columns", c->group, (long long)cols);
    return 0;
}

/* ---- GPTQ / AWQ ---- */

/* the group of weight (row, col) — its column's g_idx entry, or runs of group_len */
int64_t qs_m_calib_group(const qs_qresult *r, int64_t row, int64_t col)
{
    return row * (r->n_groups / r->rows) + (r->g_idx ? r->g_idx[col] : col / r->group_len);
}

/* GPTQ: scale·(q − zero) of the column's group (g_idx); AWQ: the same on W·s, divided by s[col] */
int qs_m_calib_levels(const qs_qresult *r, int64_t row, int64_t col, float *lv)
{
    int64_t g = qs_m_calib_group(r, row, col);
    int n = 1 << r->cfg.bits;
    float div = r->col_scale ? r->col_scale[col] : 1;
    for (int q = 0; q < n; q++) lv[q] = r->scales[g] * ((float)q - r->zeros[g]) / div;
    qs_m_sort_levels(lv, n);
    return n;
}

float qs_m_calib_scale(const qs_qresult *r, int64_t row, int64_t col)
{
    return r->scales[qs_m_calib_group(r, row, col)] / (r->col_scale ? r->col_scale[col] : 1);
}

/* original weights (AWQ: times s[col], the space its grid lives in) beyond their group's grid by
 * more than half a step */
void qs_m_calib_count_clipped(qs_qresult *r, const float *w)
{
    int maxq = (1 << r->cfg.bits) - 1;
    r->n_clipped = 0;
    for (int64_t row = 0; row < r->rows; row++)
        for (int64_t col = 0; col < r->cols; col++) {
            int64_t g = qs_m_calib_group(r, row, col);
            float x = w[row * r->cols + col] * (r->col_scale ? r->col_scale[col] : 1), s = r->scales[g], z = r->zeros[g];
            r->n_clipped += x < s * (-z - 0.5f) || x > s * ((float)maxq - z + 0.5f);
        }
}

void qs_m_calib_dequantize(const qs_qresult *r, float *out)
{
    for (int64_t row = 0; row < r->rows; row++)
        for (int64_t col = 0; col < r->cols; col++) {
            int64_t g = qs_m_calib_group(r, row, col), i = row * r->cols + col;
            out[i] = r->scales[g] * ((float)r->data[i] - r->zeros[g]) / (r->col_scale ? r->col_scale[col] : 1);
        }
}

int qs_m_calib_code(const qs_qresult *r, int64_t i) { return r->data[i]; }

int qs_m_alloc_grouped(qs_qresult *r, int64_t ng_per_row, qs_err *err)
{
    r->nbytes = (size_t)(r->rows * r->cols);
    r->data = malloc(r->nbytes);
    r->n_groups = r->rows * ng_per_row;
    r->scales = malloc((size_t)r->n_groups * sizeof *r->scales);
    r->zeros = malloc((size_t)r->n_groups * sizeof *r->zeros);
    if (!r->data || !r->scales || !r->zeros) return qs_err_set(err, QS_E_OOM, "out of memory");
    return 0;
}

int qs_m_calib_check(const qs_qresult *r, const qs_calib *calib, bool hessian, qs_err *err)
{
    const char *name = r->cfg.method->name;
    if (hessian && (!calib || !calib->H))
        return qs_err_set(err, QS_E_USAGE, "%s needs calibration data: its Hessian (run a calibration first, --calib TEXT)", name);
    if (!hessian && (!calib || !calib->X || calib->n_rows <= 0))
        return qs_err_set(err, QS_E_USAGE, "%s needs calibration data: input rows (run a calibration first, --calib TEXT)", name);
    if (calib->cols != r->cols) return qs_err_set(err, QS_E_USAGE, "the calibration data has %lld columns, the weights %lld",
                                                  (long long)calib->cols, (long long)r->cols);
    return 0;
}

/* GPTQ and AWQ record [rows][n_groups] scales and zeros and one code per weight */
int qs_m_grouped_to_grid(const qs_qresult *r, int64_t row0, int64_t nrows, qs_qgrid *g, qs_err *err)
{
    int64_t cols = r->cols, ng = r->n_groups / r->rows;
    if (qs_qgrid_alloc(g, nrows, cols, ng, r->col_scale != NULL, err)) return -QS_E_OOM;
    g->group = r->group_len;
    memcpy(g->codes, r->data + row0 * cols, (size_t)(nrows * cols));
    memcpy(g->scales, r->scales + row0 * ng, (size_t)(nrows * ng) * sizeof *g->scales);
    memcpy(g->zeros, r->zeros + row0 * ng, (size_t)(nrows * ng) * sizeof *g->zeros);
    for (int64_t c = 0; c < cols; c++) g->g_idx[c] = r->g_idx ? r->g_idx[c] : (int32_t)(c / g->group);
    if (r->col_scale) memcpy(g->col_scale, r->col_scale, (size_t)cols * sizeof *g->col_scale);
    return 0;
}

/* ---- GGML blocks ---- */

typedef struct deq_job {
    int type;
    const uint8_t *data;
    int64_t cols, rb;
    float *out;
} deq_job;

static void deq_rows(void *ctx, int64_t r0, int64_t r1)
{
    const deq_job *j = ctx;
    for (int64_t r = r0; r < r1; r++) qs_dequantize_row(j->type, j->data + r * j->rb, j->out + r * j->cols, j->cols);
}

int qs_m_ggml_encode(qs_qresult *r, const float *w, int type, int want, const float *imatrix, int n_threads, qs_err *err)
{
    r->ggml_type = type;
    r->fell_back = type != want;
    int64_t rb = qs_type_row_bytes(type, r->cols);
    r->nbytes = (size_t)(rb * r->rows);
    r->data = malloc(r->nbytes ? r->nbytes : 1);
    if (!r->data) return qs_err_set(err, QS_E_OOM, "out of memory");
    int rc = qs_ggml_quantize(type, w, r->data, r->rows, r->cols, imatrix, n_threads, err);
    if (rc) return rc;
    /* the struct-typed dequantizers need 2/4-byte alignment: every row start is even-sized */
    deq_job j = {type, r->data, r->cols, rb, r->deq};
    qs_parallel_for(r->rows, 16, n_threads, deq_rows, &j);
    r->bpw = qs_type_bpw(type);
    bool has_grid = type != QS_TYPE_F32 && type != QS_TYPE_F16 && type != QS_TYPE_BF16;
    r->group_len = has_grid ? qs_ggml_sub_block_len(type) : 0;
    r->n_groups = has_grid ? r->rows * r->cols / r->group_len : 0;
    if (has_grid && !(r->scales = malloc((size_t)r->n_groups * sizeof *r->scales)))
        return qs_err_set(err, QS_E_OOM, "out of memory");
    if (r->fell_back)
        snprintf(r->report, sizeof r->report, "%s → %s: %lld columns are not a multiple of %d (llama-quantize fallback)",
                 qs_type_name(want), qs_type_name(type), (long long)r->cols, qs_type_get(want)->block_size);
    return 0;
}

int qs_m_ggml_group_levels(const qs_qresult *r, int64_t g, float *lv)
{
    const qs_type_info *t = qs_type_get(r->ggml_type);
    int64_t per_row = r->cols / r->group_len, row = g / per_row, first = (g % per_row) * r->group_len;
    int64_t rb = qs_type_row_bytes(r->ggml_type, r->cols);
    const uint8_t *blk = r->data + row * rb + first / t->block_size * t->type_size;
    /* the encoded block may be unaligned for its struct: copy it */
    uint8_t tmp[512] __attribute__((aligned(8)));
    memcpy(tmp, blk, (size_t)t->type_size);
    return qs_ggml_block_levels(r->ggml_type, tmp, (int)(first % t->block_size / r->group_len), lv);
}

void qs_m_ggml_decode(const qs_qresult *r, float *out)
{
    deq_job j = {r->ggml_type, r->data, r->cols, qs_type_row_bytes(r->ggml_type, r->cols), out};
    deq_rows(&j, 0, r->rows);
}
