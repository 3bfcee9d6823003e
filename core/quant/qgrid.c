/* core/quant/qgrid.c — integer grids in one form, and their GGML encodings. */
#include "core/quant/qgrid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util/fp16.h"
#include "core/quant/ggml_types.h"

int qs_qgrid_alloc(qs_qgrid *g, int64_t rows, int64_t cols, int64_t ng, bool col_scale, qs_err *err)
{
    g->rows = rows, g->cols = cols, g->n_groups = ng;
    g->codes = malloc((size_t)(rows * cols));
    g->scales = malloc((size_t)(rows * ng) * sizeof *g->scales);
    g->zeros = malloc((size_t)(rows * ng) * sizeof *g->zeros);
    g->g_idx = malloc((size_t)cols * sizeof *g->g_idx);
    g->col_scale = col_scale ? malloc((size_t)cols * sizeof *g->col_scale) : NULL;
    if (!g->codes || !g->scales || !g->zeros || !g->g_idx || (col_scale && !g->col_scale)) {
        qs_qgrid_free(g);
        return qs_err_set(err, QS_E_OOM, "out of memory");
    }
    return 0;
}

int qs_qgrid_from_result(const qs_qresult *r, int64_t row0, int64_t nrows, qs_qgrid *g, qs_err *err)
{
    memset(g, 0, sizeof *g);
    g->cfg = r->cfg;
    g->ggml_type = -1;
    if (row0 < 0 || nrows < 0 || row0 + nrows > r->rows) return qs_err_set(err, QS_E_USAGE, "rows out of range");
    if (!r->cfg.method->ops->to_grid) return qs_err_set(err, QS_E_UNSUPPORTED, "%s has no integer grid", r->cfg.method->name);
    return r->cfg.method->ops->to_grid(r, row0, nrows, g, err);
}

void qs_qgrid_free(qs_qgrid *g)
{
    free(g->codes), free(g->scales), free(g->zeros), free(g->g_idx), free(g->col_scale), free(g->ggml);
    memset(g, 0, sizeof *g);
}

int qs_qconfig_ggml_type(const qs_qconfig *c, char *why, size_t n)
{
    const qs_method_ops *ops = c->method->ops;
    if (!ops->to_grid) {
        snprintf(why, n, "%s has no integer grid", c->method->name);
        return -1;
    }
    bool act = ops->desc_act && ops->desc_act(c) && !c->static_groups;
    if (c->group == 32 && !act && c->bits == 4) return c->asym ? QS_TYPE_Q4_1 : QS_TYPE_Q4_0;
    if (c->group == 32 && !act && c->bits == 8 && !c->asym) return QS_TYPE_Q8_0;
    int bits = c->bits <= 4 ? 4 : 8;
    bool asym = bits == 4 && c->asym;
    snprintf(why, n, "%s w%d g%d%s%s is no GGML type; nearest: %s:bits=%d,group=32,asym=%s%s (→ %s)",
             c->method->name, c->bits, c->group, c->asym ? " asym" : " sym", act ? " act-order" : "", c->method->name, bits,
             asym ? "true" : "false", act ? ",static_groups=true" : "", bits == 8 ? "q8_0" : asym ? "q4_1" : "q4_0");
    return -1;
}

int qs_qgrid_ggml_type(const qs_qgrid *g)
{
    if (g->ggml) return g->ggml_type;
    char why[8];
    int type = qs_qconfig_ggml_type(&g->cfg, why, sizeof why);
    if (type < 0 || g->cols % 32) return -1;
    for (int64_t c = 0; c < g->cols; c++)
        if (g->g_idx[c] != c / 32) return -1;
    float want = type == QS_TYPE_Q4_0 ? 8.f : 128.f;
    for (int64_t i = 0; type != QS_TYPE_Q4_1 && i < g->rows * g->n_groups; i++)
        if (g->zeros[i] != want) return -1;
    return type;
}

static void encode_row(const qs_qgrid *g, int type, int64_t r, uint8_t *out)
{
    const uint8_t *u = g->codes + r * g->cols;
    for (int64_t b = 0; b < g->cols / 32; b++, u += 32) {
        float s = g->scales[r * g->n_groups + b], z = g->zeros[r * g->n_groups + b];
        if (type == QS_TYPE_Q8_0) {
            qs_block_q8_0 *q = (qs_block_q8_0 *)out + b;
            q->d = qs_f32_to_f16(s);
            for (int j = 0; j < 32; j++) q->qs[j] = (int8_t)(u[j] - 128);
        } else if (type == QS_TYPE_Q4_0) {
            qs_block_q4_0 *q = (qs_block_q4_0 *)out + b;
            q->d = qs_f32_to_f16(s);
            for (int j = 0; j < 16; j++) q->qs[j] = (uint8_t)(u[j] | u[j + 16] << 4);
        } else {
            qs_block_q4_1 *q = (qs_block_q4_1 *)out + b;
            q->d = qs_f32_to_f16(s);
            q->m = qs_f32_to_f16(-s * z);
            for (int j = 0; j < 16; j++) q->qs[j] = (uint8_t)(u[j] | u[j + 16] << 4);
        }
    }
}

void qs_qgrid_encode_ggml(const qs_qgrid *g, int type, void *out)
{
    size_t rb = qs_type_row_bytes(type, g->cols);
    if (g->ggml) {
        memcpy(out, g->ggml, rb * (size_t)g->rows);
        return;
    }
    for (int64_t r = 0; r < g->rows; r++) encode_row(g, type, r, (uint8_t *)out + (size_t)r * rb);
}

void qs_qgrid_divide_rows(qs_qgrid *g, const float *div)
{
    for (int64_t r = 0; r < g->rows; r++)
        for (int64_t k = 0; k < g->n_groups; k++) g->scales[r * g->n_groups + k] /= div[r];
}

int qs_qgrid_reorder_rows(qs_qgrid *g, const int64_t *src, qs_err *err)
{
    int64_t R = g->rows, C = g->cols, ng = g->n_groups;
    uint8_t *codes = malloc((size_t)(R * C));
    float *s = malloc((size_t)(R * ng) * sizeof *s), *z = malloc((size_t)(R * ng) * sizeof *z);
    if (!codes || !s || !z) {
        free(codes), free(s), free(z);
        return qs_err_set(err, QS_E_OOM, "out of memory");
    }
    for (int64_t r = 0; r < R; r++) {
        memcpy(codes + r * C, g->codes + src[r] * C, (size_t)C);
        memcpy(s + r * ng, g->scales + src[r] * ng, (size_t)ng * sizeof *s);
        memcpy(z + r * ng, g->zeros + src[r] * ng, (size_t)ng * sizeof *z);
    }
    free(g->codes), free(g->scales), free(g->zeros);
    g->codes = codes, g->scales = s, g->zeros = z;
    return 0;
}
