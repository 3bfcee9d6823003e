/* core/quant.c — method table, configurations and qs_quant_run. */
#include "quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "awq.h"
#include "calib.h"
#include "ggml_quants.h"
#include "ggml_types.h"
#include "gptq.h"
#include "parallel.h"
#include "rtn.h"
#include "stats.h"

#define K(k) (1u << (k))

static const int group_steps[] = {-1, 0, 32, 64, 128, 256};
static const int ggml_steps[] = {-1, QS_TYPE_Q4_0, QS_TYPE_Q4_1, QS_TYPE_Q5_0, QS_TYPE_Q5_1, QS_TYPE_Q8_0, QS_TYPE_Q2_K,
                                 QS_TYPE_Q3_K, QS_TYPE_Q4_K, QS_TYPE_Q5_K, QS_TYPE_Q6_K, QS_TYPE_IQ4_NL, QS_TYPE_IQ4_XS};
static const int block_steps[] = {32, 64, 128, 256, 512, 1024, 2048, 4096};
static const int damp_steps[] = {1, 5, 10, 25, 50, 100, 200};

static const qs_knob_info knobs[QS_KNOB_COUNT] = {
    [QS_KNOB_BITS] = {"bits", "bits per weight of the integer grid", false, 2, 8, NULL, 0},
    [QS_KNOB_GROUP] = {"group", "weights sharing one scale: tensor, row, or a group size dividing the row",
                       false, -1, 1 << 30, group_steps, 6},
    [QS_KNOB_ASYM] = {"asym", "asymmetric grid with a zero point (min-max) instead of symmetric absmax", true, 0, 1, NULL, 0},
    [QS_KNOB_CLIP] = {"clip", "search a clipping ratio per group (lowest squared error)", true, 0, 1, NULL, 0},
    [QS_KNOB_BLOCK] = {"block", "bitsandbytes block size (absmax per block)", false, 32, 4096, block_steps, 8},
    [QS_KNOB_DOUBLE_QUANT] = {"double_quant", "quantize the absmax values to 8 bits (QLoRA double quantization)", true, 0, 1, NULL, 0},
    [QS_KNOB_DAMP] = {"damp", "GPTQ dampening: this fraction of mean(diag H) is added to the diagonal", false, 1, 999,
                      damp_steps, 7, 0.001},
    [QS_KNOB_ACT_ORDER] = {"act_order", "GPTQ: quantize columns by descending diag(H) (desc_act)", true, 0, 1, NULL, 0},
    [QS_KNOB_STATIC_GROUPS] = {"static_groups", "GPTQ: group parameters from the original weights, natural order", true,
                               0, 1, NULL, 0},
    [QS_KNOB_ALPHA] = {"alpha", "AWQ: scale exponent alpha (search: the 20-point grid, lowest output error)", false, -1,
                       19, NULL, 0, 0.05},
    [QS_KNOB_DUO] = {"duo", "AWQ: duo scaling s = x^a / w^(1-a) (AutoAWQ) instead of s = x^a", true, 0, 1, NULL, 0},
    [QS_KNOB_GGML] = {"ggml", "AWQ: quantize the scaled weights with this GGML type, unclipped (grid: AWQ's own grid)",
                      false, -1, QS_TYPE_COUNT - 1, ggml_steps, 13},
};

#define GGML(nm, t, d) {nm, d, QS_METHOD_GGML, t, 0, t != 1 && t != 30 && t != 8, false}
const qs_method qs_method_table[] = {
    {"rtn", "integer round-to-nearest, 2-8 bits, per tensor/row/group, symmetric or with a zero point",
     QS_METHOD_RTN, -1, K(QS_KNOB_BITS) | K(QS_KNOB_GROUP) | K(QS_KNOB_ASYM) | K(QS_KNOB_CLIP), false, false},
    {"nf4", "bitsandbytes NormalFloat4: 16 normal quantiles x blockwise absmax (QLoRA)", QS_METHOD_NF4, -1,
     K(QS_KNOB_BLOCK) | K(QS_KNOB_DOUBLE_QUANT), false, false},
    {"fp4", "bitsandbytes FP4 (e2m1) x blockwise absmax", QS_METHOD_FP4, -1, K(QS_KNOB_BLOCK) | K(QS_KNOB_DOUBLE_QUANT),
     false, false},
    GGML("f16", 1, "IEEE half precision"),
    GGML("bf16", 30, "bfloat16 (float32 with 16 mantissa bits dropped)"),
    GGML("q8_0", 8, "llama.cpp 8-bit, blocks of 32 with an f16 scale"),
    GGML("q6_K", 14, "llama.cpp 6-bit K-quant: 16x16 sub-blocks, int8 scales"),
    GGML("q5_K", 13, "llama.cpp 5-bit K-quant: 8x32 sub-blocks, 6-bit scales and mins"),
    GGML("q5_1", 7, "llama.cpp 5-bit, blocks of 32, scale and min"),
    GGML("q5_0", 6, "llama.cpp 5-bit, blocks of 32, scale only"),
    GGML("q4_K", 12, "llama.cpp 4-bit K-quant: 8x32 sub-blocks, 6-bit scales and mins"),
    GGML("q4_1", 3, "llama.cpp 4-bit, blocks of 32, scale and min"),
    GGML("q4_0", 2, "llama.cpp 4-bit, blocks of 32, scale only"),
    GGML("iq4_nl", 20, "llama.cpp 4-bit non-linear grid, blocks of 32"),
    GGML("iq4_xs", 23, "llama.cpp 4-bit non-linear grid, 8x32 sub-blocks, 6-bit scales"),
    GGML("q3_K", 11, "llama.cpp 3-bit K-quant: 16x16 sub-blocks, 6-bit scales"),
    GGML("q2_K", 10, "llama.cpp 2-bit K-quant: 16x16 sub-blocks, 4-bit scales and mins"),
    {"gptq", "GPTQ: columns quantized in order, the error fed back through the inverse Hessian (needs calibration)",
     QS_METHOD_GPTQ, -1, K(QS_KNOB_BITS) | K(QS_KNOB_GROUP) | K(QS_KNOB_ASYM) | K(QS_KNOB_DAMP) | K(QS_KNOB_ACT_ORDER) |
     K(QS_KNOB_STATIC_GROUPS), false, true},
    {"awq", "AWQ: per-channel scales from activations, searched on the output error, then clipped (needs calibration)",
     QS_METHOD_AWQ, -1, K(QS_KNOB_BITS) | K(QS_KNOB_GROUP) | K(QS_KNOB_ASYM) | K(QS_KNOB_CLIP) | K(QS_KNOB_ALPHA) |
     K(QS_KNOB_DUO) | K(QS_KNOB_GGML), false, true},
};
#undef GGML
const int qs_method_count = (int)(sizeof qs_method_table / sizeof *qs_method_table);

const qs_method *qs_method_find(const char *name)
{
    for (int i = 0; i < qs_method_count; i++)
        if (strcasecmp(qs_method_table[i].name, name) == 0) return &qs_method_table[i];
    return NULL;
}

const qs_knob_info *qs_knob_get(qs_knob_id k) { return k >= 0 && k < QS_KNOB_COUNT ? &knobs[k] : NULL; }

void qs_qconfig_default(qs_qconfig *c, const qs_method *m)
{
    *c = (qs_qconfig){.method = m, .bits = 4, .group = 128, .asym = false, .clip = false, .block = 64,
                      .double_quant = false, .damp = 10, .alpha = -1, .ggml = -1};
    /* AWQ's defaults (spec/awq.md §6): zero point and the clip search */
    if (m && m->kind == QS_METHOD_AWQ) c->asym = true, c->clip = true;
}

int qs_qconfig_get(const qs_qconfig *c, qs_knob_id k)
{
    switch (k) {
    case QS_KNOB_BITS: return c->bits;
    case QS_KNOB_GROUP: return c->group;
    case QS_KNOB_ASYM: return c->asym;
    case QS_KNOB_CLIP: return c->clip;
    case QS_KNOB_BLOCK: return c->block;
    case QS_KNOB_DOUBLE_QUANT: return c->double_quant;
    case QS_KNOB_DAMP: return c->damp;
    case QS_KNOB_ACT_ORDER: return c->act_order;
    case QS_KNOB_STATIC_GROUPS: return c->static_groups;
    case QS_KNOB_ALPHA: return c->alpha;
    case QS_KNOB_DUO: return c->duo;
    case QS_KNOB_GGML: return c->ggml;
    default: return 0;
    }
}

static void put(qs_qconfig *c, qs_knob_id k, int v)
{
    switch (k) {
    case QS_KNOB_BITS: c->bits = v; break;
    case QS_KNOB_GROUP: c->group = v; break;
    case QS_KNOB_ASYM: c->asym = v != 0; break;
    case QS_KNOB_CLIP: c->clip = v != 0; break;
    case QS_KNOB_BLOCK: c->block = v; break;
    case QS_KNOB_DOUBLE_QUANT: c->double_quant = v != 0; break;
    case QS_KNOB_DAMP: c->damp = v; break;
    case QS_KNOB_ACT_ORDER: c->act_order = v != 0; break;
    case QS_KNOB_STATIC_GROUPS: c->static_groups = v != 0; break;
    case QS_KNOB_ALPHA: c->alpha = v; break;
    case QS_KNOB_DUO: c->duo = v != 0; break;
    case QS_KNOB_GGML: c->ggml = v; break;
    default: break;
    }
}

static int parse_knob_value(const qs_knob_info *ki, const char *v, int *out)
{
    if (ki->is_bool) {
        if (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes") || !strcasecmp(v, "on")) *out = 1;
        else if (!strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no") || !strcasecmp(v, "off")) *out = 0;
        else return -1;
        return 0;
    }
    if (ki == &knobs[QS_KNOB_GGML]) { /* a GGML type by name (or id), "grid" for none */
        int t = strcasecmp(v, "grid") ? qs_type_from_name(v) : -1;
        char *e;
        long id = strtol(v, &e, 10);
        if (t < 0 && *v && !*e && id >= -1 && id < QS_TYPE_COUNT) t = (int)id;
        for (int i = 0; i < ki->n_steps; i++)
            if (ki->steps[i] == t && (t >= 0 || !strcasecmp(v, "grid") || !strcmp(v, "-1"))) return *out = t, 0;
        return -1;
    }
    if (!strcasecmp(v, "tensor")) { *out = -1; return 0; }
    if (!strcasecmp(v, "row")) { *out = 0; return 0; }
    if (!strcasecmp(v, "search") && ki->min < 0) { *out = -1; return 0; }
    char *end;
    if (ki->unit > 0) {
        double x = strtod(v, &end);
        if (*v == '\0' || *end || !isfinite(x)) return -1;
        long q = lround(x / ki->unit);
        if (q < ki->min || q > ki->max || (q < 0 && x >= 0) || fabs((double)q * ki->unit - x) > ki->unit * 1e-6) return -1;
        *out = (int)q;
        return 0;
    }
    long x = strtol(v, &end, 10);
    if (*v == '\0' || *end || x < ki->min || x > ki->max) return -1;
    *out = (int)x;
    return 0;
}

int qs_qconfig_set(qs_qconfig *c, const char *knob, const char *value, qs_err *err)
{
    for (int k = 0; k < QS_KNOB_COUNT; k++) {
        if (strcasecmp(knobs[k].name, knob)) continue;
        if (!(c->method->knobs & K(k)))
            return qs_err_set(err, QS_E_USAGE, "method %s has no knob '%s'", c->method->name, knob);
        int v;
        if (parse_knob_value(&knobs[k], value, &v))
        {
            char lo[32], hi[32];
            qs_knob_format((qs_knob_id)k, knobs[k].min, lo, sizeof lo);
            qs_knob_format((qs_knob_id)k, knobs[k].max, hi, sizeof hi);
            return knobs[k].is_bool ? qs_err_set(err, QS_E_USAGE, "%s takes true or false, not '%s'", knob, value)
                                    : qs_err_set(err, QS_E_USAGE, "%s takes %s…%s%s, not '%s'", knob, lo, hi,
                                                 k == QS_KNOB_GROUP ? " (or tensor, row)" : "", value);
        }
        put(c, (qs_knob_id)k, v);
        return 0;
    }
    return qs_err_set(err, QS_E_USAGE, "unknown knob '%s'", knob);
}

bool qs_qconfig_equal(const qs_qconfig *x, const qs_qconfig *y)
{
    if (x->method != y->method) return false;
    for (int k = 0; k < QS_KNOB_COUNT; k++)
        if (qs_qconfig_get(x, (qs_knob_id)k) != qs_qconfig_get(y, (qs_knob_id)k)) return false;
    return true;
}

void qs_knob_format(qs_knob_id k, int v, char *buf, size_t n)
{
    const qs_knob_info *ki = &knobs[k];
    if (ki->is_bool) snprintf(buf, n, "%s", v ? "true" : "false");
    else if (k == QS_KNOB_GROUP && v < 0) snprintf(buf, n, "tensor");
    else if (k == QS_KNOB_GROUP && v == 0) snprintf(buf, n, "row");
    else if (k == QS_KNOB_ALPHA && v < 0) snprintf(buf, n, "search");
    else if (k == QS_KNOB_GGML) snprintf(buf, n, "%s", v < 0 ? "grid" : qs_type_name(v));
    else if (ki->unit > 0) snprintf(buf, n, "%g", v * ki->unit);
    else snprintf(buf, n, "%d", v);
}

bool qs_qconfig_step(qs_qconfig *c, qs_knob_id k, int dir)
{
    const qs_knob_info *ki = &knobs[k];
    int v = qs_qconfig_get(c, k);
    if (ki->is_bool) {
        put(c, k, !v);
        return true;
    }
    if (!ki->steps) {
        int nv = v + (dir > 0 ? 1 : -1);
        if (nv < ki->min || nv > ki->max) return false;
        put(c, k, nv);
        return true;
    }
    int i = 0;
    while (i < ki->n_steps && ki->steps[i] != v) i++;
    if (i == ki->n_steps) i = dir > 0 ? -1 : ki->n_steps; /* off the list: enter at an end */
    i += dir > 0 ? 1 : -1;
    if (i < 0 || i >= ki->n_steps) return false;
    put(c, k, ki->steps[i]);
    return true;
}

void qs_qconfig_describe(const qs_qconfig *c, char *buf, size_t n)
{
    const qs_method *m = c->method;
    if (m->kind == QS_METHOD_RTN) {
        char g[32];
        if (c->group < 0) snprintf(g, sizeof g, "per-tensor");
        else if (c->group == 0) snprintf(g, sizeof g, "per-row");
        else snprintf(g, sizeof g, "g%d", c->group);
        snprintf(buf, n, "rtn w%d %s %s%s", c->bits, g, c->asym ? "asym" : "sym", c->clip ? " clip" : "");
    } else if (m->kind == QS_METHOD_GGML) {
        snprintf(buf, n, "%s", m->name);
    } else if (m->kind == QS_METHOD_GPTQ || m->kind == QS_METHOD_AWQ) {
        char g[32], a[32];
        if (c->group <= 0) snprintf(g, sizeof g, "per-row");
        else snprintf(g, sizeof g, "g%d", c->group);
        qs_knob_format(QS_KNOB_ALPHA, c->alpha, a, sizeof a);
        if (m->kind == QS_METHOD_GPTQ)
            snprintf(buf, n, "gptq w%d %s %s damp %g%s%s", c->bits, g, c->asym ? "asym" : "sym", c->damp * 0.001,
                     c->act_order ? " act-order" : "", c->static_groups ? " static" : "");
        else
            snprintf(buf, n, "awq w%d %s %s alpha %s%s%s%s%s", c->bits, g, c->asym ? "zero-point" : "sym", a,
                     c->duo ? " duo" : "", c->clip ? " clip" : "", c->ggml >= 0 ? " → " : "",
                     c->ggml >= 0 ? qs_type_name(c->ggml) : "");
    } else {
        snprintf(buf, n, "%s b%d%s", m->name, c->block, c->double_quant ? " dq" : "");
    }
}

int qs_ggml_fallback_type(int type, int64_t ne0)
{
    const qs_type_info *t = qs_type_get(type);
    if (!t) return -1;
    if (ne0 % t->block_size == 0) return type;
    int fb;
    switch (type) {
    case QS_TYPE_IQ1_S: case QS_TYPE_IQ1_M: case QS_TYPE_IQ2_XXS: case QS_TYPE_IQ2_XS: case QS_TYPE_IQ2_S:
    case QS_TYPE_IQ3_XXS: case QS_TYPE_IQ3_S: case QS_TYPE_IQ4_XS: fb = QS_TYPE_IQ4_NL; break;
    case QS_TYPE_Q2_0: case QS_TYPE_Q2_K: case QS_TYPE_Q3_K: case QS_TYPE_TQ1_0: case QS_TYPE_TQ2_0: fb = QS_TYPE_Q4_0; break;
    case QS_TYPE_Q4_K: fb = QS_TYPE_Q5_0; break;
    case QS_TYPE_Q5_K: fb = QS_TYPE_Q5_1; break;
    case QS_TYPE_Q6_K: fb = QS_TYPE_Q8_0; break;
    default: return -1;
    }
    return ne0 % qs_type_get(fb)->block_size == 0 ? fb : QS_TYPE_F16;
}

double qs_qconfig_bpw(const qs_qconfig *c, int64_t rows, int64_t cols, int effective_type)
{
    double G = c->group > 0 ? c->group : (double)cols;
    switch (c->method->kind) {
    case QS_METHOD_RTN: {
        qs_rtn_params p = {c->bits, c->group, c->asym, c->clip};
        return qs_rtn_bpw(&p, rows, cols);
    }
    case QS_METHOD_NF4: case QS_METHOD_FP4: return qs_bnb4_bpw(c->block, c->double_quant);
    case QS_METHOD_GGML: return qs_type_bpw(effective_type >= 0 ? effective_type : c->method->ggml_type);
    case QS_METHOD_GPTQ: return c->bits + (16.0 + c->bits) / G + 32.0 / (double)rows;
    case QS_METHOD_AWQ:
        if (c->ggml >= 0) return qs_type_bpw(effective_type >= 0 ? effective_type : c->ggml);
        return c->bits + (16.0 + (c->asym ? c->bits : 0)) / G;
    }
    return 0;
}

int qs_qconfig_check(const qs_qconfig *c, int64_t rows, int64_t cols, int *effective_type, qs_err *err)
{
    *effective_type = -1;
    if (rows <= 0 || cols <= 0) return qs_err_set(err, QS_E_USAGE, "empty tensor");
    switch (c->method->kind) {
    case QS_METHOD_RTN:
        if (c->bits < 2 || c->bits > 8) return qs_err_set(err, QS_E_USAGE, "bits %d: RTN takes 2 to 8", c->bits);
        if (c->group > 0 && cols % c->group)
            return qs_err_set(err, QS_E_USAGE, "group size %d does not divide the %lld columns", c->group, (long long)cols);
        return 0;
    case QS_METHOD_NF4: case QS_METHOD_FP4:
        if (c->block < 32 || c->block > 4096 || (c->block & (c->block - 1)))
            return qs_err_set(err, QS_E_USAGE, "block size %d: a power of two from 32 to 4096", c->block);
        return 0;
    case QS_METHOD_GPTQ: case QS_METHOD_AWQ:
        if (c->bits < 2 || c->bits > 8) return qs_err_set(err, QS_E_USAGE, "bits %d: %s takes 2 to 8", c->bits, c->method->name);
        if (c->group < 0) return qs_err_set(err, QS_E_USAGE, "%s has no per-tensor grid: use group=row or a group size", c->method->name);
        if (c->group > 0 && cols % c->group)
            return qs_err_set(err, QS_E_USAGE, "group size %d does not divide the %lld columns", c->group, (long long)cols);
        if (c->method->kind == QS_METHOD_AWQ && c->ggml >= 0 && (*effective_type = qs_ggml_fallback_type(c->ggml, cols)) < 0)
            return qs_err_set(err, QS_E_USAGE, "%lld columns are not a multiple of the %s block size and llama-quantize "
                              "defines no fallback", (long long)cols, qs_type_name(c->ggml));
        return 0;
    case QS_METHOD_GGML:
        *effective_type = qs_ggml_fallback_type(c->method->ggml_type, cols);
        if (*effective_type < 0)
            return qs_err_set(err, QS_E_USAGE, "%lld columns are not a multiple of the %s block size %d and "
                              "llama-quantize defines no fallback for %s", (long long)cols, c->method->name,
                              qs_type_get(c->method->ggml_type)->block_size, c->method->name);
        return 0;
    }
    return qs_err_set(err, QS_E_USAGE, "unknown method");
}

/* ---- running a config ---- */

static void sort_levels(float *v, int n)
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

static int group_levels(const qs_qresult *r, int64_t g, float *lv, bool sorted)
{
    int n = 0;
    qs_method_kind kind = r->ggml_type >= 0 ? QS_METHOD_GGML : r->cfg.method->kind; /* AWQ → GGML: its blocks */
    switch (kind) {
    case QS_METHOD_RTN: {
        qs_rtn_params p = {r->cfg.bits, r->cfg.group, r->cfg.asym, r->cfg.clip};
        n = qs_rtn_levels(&p, r->scales[g], r->zeros ? r->zeros[g] : 0, lv);
        break;
    }
    case QS_METHOD_NF4: case QS_METHOD_FP4: {
        const float *t = r->bnb.fp4 ? qs_bnb4_fp4_table : qs_bnb4_nf4_table;
        float am = qs_bnb4_block_absmax(&r->bnb, g);
        for (n = 0; n < 16; n++) lv[n] = t[n] * am;
        break;
    }
    case QS_METHOD_GGML: {
        const qs_type_info *t = qs_type_get(r->ggml_type);
        int64_t per_row = r->cols / r->group_len, row = g / per_row, first = (g % per_row) * r->group_len;
        int64_t rb = qs_type_row_bytes(r->ggml_type, r->cols);
        const uint8_t *blk = r->data + row * rb + first / t->block_size * t->type_size;
        /* the encoded block may be unaligned for its struct: copy it */
        uint8_t tmp[512] __attribute__((aligned(8)));
        memcpy(tmp, blk, (size_t)t->type_size);
        n = qs_ggml_block_levels(r->ggml_type, tmp, (int)(first % t->block_size / r->group_len), lv);
        break;
    }
    case QS_METHOD_GPTQ: case QS_METHOD_AWQ: break; /* per column: calib_levels */
    }
    if (sorted) sort_levels(lv, n);
    return n;
}

/* GPTQ / AWQ: the group of weight (row, col) — its column's g_idx entry, or runs of group_len */
static int64_t calib_group(const qs_qresult *r, int64_t row, int64_t col)
{
    return row * (r->n_groups / r->rows) + (r->g_idx ? r->g_idx[col] : col / r->group_len);
}

/* GPTQ: scale·(q − zero) of the column's group (g_idx); AWQ: the same on W·s, divided by s[col] */
static int calib_levels(const qs_qresult *r, int64_t row, int64_t col, float *lv)
{
    int64_t g = calib_group(r, row, col);
    int n = 1 << r->cfg.bits;
    float div = r->col_scale ? r->col_scale[col] : 1;
    for (int q = 0; q < n; q++) lv[q] = r->scales[g] * ((float)q - r->zeros[g]) / div;
    sort_levels(lv, n);
    return n;
}

void qs_qresult_group_scales(const qs_qresult *r, float *out)
{
    int64_t n = r->rows * r->cols;
    bool calib = r->ggml_type < 0 && (r->cfg.method->kind == QS_METHOD_GPTQ || r->cfg.method->kind == QS_METHOD_AWQ);
    for (int64_t i = 0; i < n; i++) {
        int64_t row = i / r->cols, col = i % r->cols;
        if (!r->scales || !r->group_len) out[i] = 0;
        else if (calib) out[i] = r->scales[calib_group(r, row, col)] / (r->col_scale ? r->col_scale[col] : 1);
        else out[i] = r->scales[i / r->group_len] / (r->col_scale ? r->col_scale[col] : 1);
    }
}

int qs_qresult_levels(const qs_qresult *r, int64_t row, int64_t col, float *levels)
{
    if (!r->group_len || row < 0 || col < 0 || row >= r->rows || col >= r->cols) return 0;
    if (r->cfg.method->kind == QS_METHOD_AWQ && r->ggml_type >= 0) { /* the GGML levels of W·s, divided by s */
        int n = group_levels(r, (row * r->cols + col) / r->group_len, levels, true);
        for (int i = 0; i < n; i++) levels[i] /= r->col_scale[col];
        return n;
    }
    if (r->cfg.method->kind == QS_METHOD_GPTQ || r->cfg.method->kind == QS_METHOD_AWQ)
        return calib_levels(r, row, col, levels);
    return group_levels(r, (row * r->cols + col) / r->group_len, levels, true);
}

/* clipped: beyond the grid's ends by more than half the end step (an error larger than
 * rounding inside the grid could make) */
typedef struct clip_job {
    qs_qresult *r;
    const float *w;
    int64_t count;
} clip_job;

static void clip_groups(void *ctx, int64_t g0, int64_t g1)
{
    clip_job *j = ctx;
    qs_qresult *r = j->r;
    int64_t n = r->rows * r->cols, count = 0;
    float lv[256];
    for (int64_t g = g0; g < g1; g++) {
        int k = group_levels(r, g, lv, false);
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

static void count_clipped(qs_qresult *r, const float *w, int n_threads)
{
    clip_job j = {r, w, 0};
    qs_parallel_for(r->n_groups, 4096, n_threads, clip_groups, &j);
    r->n_clipped = j.count;
}

static int run_rtn(qs_qresult *r, const float *w, int n_threads, qs_err *err)
{
    qs_rtn_params p = {r->cfg.bits, r->cfg.group, r->cfg.asym, r->cfg.clip};
    int64_t n = r->rows * r->cols;
    r->group_len = qs_rtn_group_len(&p, r->rows, r->cols);
    r->n_groups = n / r->group_len;
    r->nbytes = (size_t)n;
    r->data = malloc((size_t)n);
    r->scales = malloc((size_t)r->n_groups * sizeof *r->scales);
    r->zeros = p.asym ? malloc((size_t)r->n_groups * sizeof *r->zeros) : NULL;
    r->clip_ratio = p.clip ? malloc((size_t)r->n_groups * sizeof *r->clip_ratio) : NULL;
    if (!r->data || !r->scales || (p.asym && !r->zeros) || (p.clip && !r->clip_ratio))
        return qs_err_set(err, QS_E_OOM, "out of memory");
    int rc = qs_rtn_quantize(&p, w, r->rows, r->cols, r->data, r->scales, r->zeros, r->clip_ratio, r->deq,
                             n_threads, err);
    if (rc) return rc;
    r->bpw = qs_rtn_bpw(&p, r->rows, r->cols);
    if (p.clip) {
        double s = 0;
        for (int64_t g = 0; g < r->n_groups; g++) s += r->clip_ratio[g];
        snprintf(r->report, sizeof r->report, "mean clip ratio %.3f", s / (double)r->n_groups);
    }
    return 0;
}

static int run_bnb4(qs_qresult *r, const float *w, qs_err *err)
{
    int rc = qs_bnb4_quantize(w, r->rows * r->cols, r->cfg.block, r->cfg.method->kind == QS_METHOD_FP4,
                              r->cfg.double_quant, &r->bnb, err);
    if (rc) return rc;
    qs_bnb4_dequantize(&r->bnb, r->deq);
    r->nbytes = (size_t)((r->rows * r->cols + 1) / 2);
    r->data = malloc(r->nbytes);
    r->scales = malloc((size_t)r->bnb.n_blocks * sizeof *r->scales);
    if (!r->data || !r->scales) return qs_err_set(err, QS_E_OOM, "out of memory");
    memcpy(r->data, r->bnb.packed, r->nbytes);
    for (int64_t b = 0; b < r->bnb.n_blocks; b++) r->scales[b] = qs_bnb4_block_absmax(&r->bnb, b);
    r->group_len = r->cfg.block;
    r->n_groups = r->bnb.n_blocks;
    r->bpw = qs_bnb4_bpw(r->cfg.block, r->cfg.double_quant);
    if (r->cfg.double_quant) snprintf(r->report, sizeof r->report, "absmax offset %.6g", (double)r->bnb.offset);
    return 0;
}

static int alloc_grouped(qs_qresult *r, int64_t ng_per_row, qs_err *err)
{
    r->nbytes = (size_t)(r->rows * r->cols);
    r->data = malloc(r->nbytes);
    r->n_groups = r->rows * ng_per_row;
    r->scales = malloc((size_t)r->n_groups * sizeof *r->scales);
    r->zeros = malloc((size_t)r->n_groups * sizeof *r->zeros);
    if (!r->data || !r->scales || !r->zeros) return qs_err_set(err, QS_E_OOM, "out of memory");
    return 0;
}

/* GPTQ / AWQ: original weights (AWQ: times s[col], the space its grid lives in) beyond their
 * group's grid by more than half a step */
static void count_calib_clipped(qs_qresult *r, const float *w)
{
    int maxq = (1 << r->cfg.bits) - 1;
    r->n_clipped = 0;
    for (int64_t row = 0; row < r->rows; row++)
        for (int64_t col = 0; col < r->cols; col++) {
            int64_t g = calib_group(r, row, col);
            float x = w[row * r->cols + col] * (r->col_scale ? r->col_scale[col] : 1), s = r->scales[g], z = r->zeros[g];
            r->n_clipped += x < s * (-z - 0.5f) || x > s * ((float)maxq - z + 0.5f);
        }
}

static int run_gptq(qs_qresult *r, const float *w, const qs_calib *calib, qs_progress *prog, qs_err *err)
{
    if (!calib || !calib->H)
        return qs_err_set(err, QS_E_USAGE, "gptq needs calibration data: its Hessian (run a calibration first, --calib TEXT)");
    if (calib->cols != r->cols) return qs_err_set(err, QS_E_USAGE, "the calibration data has %lld columns, the weights %lld",
                                                  (long long)calib->cols, (long long)r->cols);
    const qs_qconfig *c = &r->cfg;
    qs_gptq_params p = {c->bits, c->group, !c->asym, c->act_order, c->static_groups, (float)(c->damp * 0.001), 128};
    int rc = alloc_grouped(r, qs_gptq_n_groups(&p, r->cols), err);
    if (rc) return rc;
    if (!(r->g_idx = malloc((size_t)r->cols * sizeof *r->g_idx))) return qs_err_set(err, QS_E_OOM, "out of memory");
    qs_gptq_out o = {r->data, r->deq, r->scales, r->zeros, r->g_idx, 0};
    if ((rc = qs_gptq_quantize(&p, w, r->rows, r->cols, calib->H, &o, prog, err))) return rc;
    r->group_len = p.group > 0 ? p.group : r->cols;
    r->loss = o.loss;
    r->bpw = qs_qconfig_bpw(c, r->rows, r->cols, -1);
    snprintf(r->report, sizeof r->report, "GPTQ loss %.6g (sum of (w-q)^2/2d^2 over the layer)", o.loss);
    return 0;
}

static int run_awq(qs_qresult *r, const float *w, const qs_calib *calib, qs_progress *prog, qs_err *err)
{
    if (!calib || !calib->X || calib->n_rows <= 0)
        return qs_err_set(err, QS_E_USAGE, "awq needs calibration data: input rows (run a calibration first, --calib TEXT)");
    if (calib->cols != r->cols) return qs_err_set(err, QS_E_USAGE, "the calibration data has %lld columns, the weights %lld",
                                                  (long long)calib->cols, (long long)r->cols);
    const qs_qconfig *c = &r->cfg;
    qs_awq_params p = {c->bits, c->group, c->asym, c->duo, c->alpha, c->clip};
    int64_t G = c->group > 0 ? c->group : r->cols;
    int rc = alloc_grouped(r, r->cols / G, err);
    if (rc) return rc;
    if (!(r->col_scale = malloc((size_t)r->cols * sizeof *r->col_scale))) return qs_err_set(err, QS_E_OOM, "out of memory");
    qs_awq_out o = {r->deq, r->data, r->scales, r->zeros, r->col_scale, NULL, {0}, 0};
    if ((rc = qs_awq_quantize(&p, w, r->rows, r->cols, calib->X, calib->n_rows, calib->x_mean, NULL, &o, prog, err)))
        return rc;
    r->group_len = G;
    int best = c->alpha >= 0 ? -1 : (int)lrintf(o.best_ratio * QS_AWQ_GRID);
    r->loss = best >= 0 ? o.loss_history[best] : NAN;
    r->bpw = qs_qconfig_bpw(c, r->rows, r->cols, -1);
    if (best >= 0)
        snprintf(r->report, sizeof r->report, "AWQ alpha %.2f searched (linear-only output MSE %.4g)%s", (double)o.best_ratio,
                 r->loss, c->clip ? ", clipped" : "");
    else snprintf(r->report, sizeof r->report, "AWQ alpha %.2f fixed%s", (double)o.best_ratio, c->clip ? ", clipped" : "");
    return 0;
}

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

static int run_ggml(qs_qresult *r, const float *w, int type, const float *imatrix, int n_threads, qs_err *err)
{
    int want = r->cfg.method->kind == QS_METHOD_GGML ? r->cfg.method->ggml_type : r->cfg.ggml; /* AWQ → GGML */
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

/* AWQ, then a GGML type (llama.cpp's route for AWQ models): the scale search on AWQ's own grid,
 * then W·s quantized with the type (the imatrix, if any, divided by s² as the inputs are divided
 * by s); the dequantized weights divided by s again. No clip: AWQ's clip search fits its own grid
 * and hurts the GGML types (kjv-tiny, w4 g128 → q4_K: PPL 36.60 without, 37.73 with it) */
static int run_awq_ggml(qs_qresult *r, const float *w, const qs_calib *calib, int type, const float *imatrix,
                        int n_threads, qs_progress *prog, qs_err *err)
{
    if (!calib || !calib->X || calib->n_rows <= 0)
        return qs_err_set(err, QS_E_USAGE, "awq needs calibration data: input rows (run a calibration first, --calib TEXT)");
    if (calib->cols != r->cols) return qs_err_set(err, QS_E_USAGE, "the calibration data has %lld columns, the weights %lld",
                                                  (long long)calib->cols, (long long)r->cols);
    const qs_qconfig *c = &r->cfg;
    qs_awq_params p = {c->bits, c->group, c->asym, c->duo, c->alpha, false};
    int64_t R = r->rows, C = r->cols, G = c->group > 0 ? c->group : C, ng = C / G, n = R * C;
    float *deq = malloc((size_t)n * sizeof *deq), *gs = malloc((size_t)(R * ng) * sizeof *gs),
          *gz = malloc((size_t)(R * ng) * sizeof *gz), *ws = malloc((size_t)n * sizeof *ws),
          *iw = imatrix ? malloc((size_t)C * sizeof *iw) : NULL;
    uint8_t *codes = malloc((size_t)n);
    r->col_scale = malloc((size_t)C * sizeof *r->col_scale);
    int rc = !deq || !gs || !gz || !ws || (imatrix && !iw) || !codes || !r->col_scale
                 ? qs_err_set(err, QS_E_OOM, "out of memory")
                 : 0;
    qs_awq_out o = {deq, codes, gs, gz, r->col_scale, NULL, {0}, 0};
    if (!rc) rc = qs_awq_quantize(&p, w, R, C, calib->X, calib->n_rows, calib->x_mean, NULL, &o, prog, err);
    for (int64_t i = 0; !rc && i < n; i++) ws[i] = w[i] * r->col_scale[i % C];
    for (int64_t k = 0; !rc && iw && k < C; k++) iw[k] = imatrix[k] / (r->col_scale[k] * r->col_scale[k]);
    free(deq), free(gs), free(gz), free(codes);
    if (!rc) rc = run_ggml(r, ws, type, iw, n_threads, err);
    if (!rc) {
        count_clipped(r, ws, n_threads);
        for (int64_t i = 0; i < n; i++) r->deq[i] /= r->col_scale[i % C];
        snprintf(r->report, sizeof r->report, "AWQ alpha %.2f %s, then %s (the scales fold into the previous op; no clip)",
                 (double)o.best_ratio, c->alpha >= 0 ? "fixed" : "searched", qs_type_name(type));
    }
    free(ws), free(iw);
    return rc;
}

int qs_quant_run(const qs_qconfig *cfg, const float *w, int64_t rows, int64_t cols, const struct qs_calib *calib,
                 const float *imatrix, int n_threads, qs_qresult *out, qs_err *err)
{
    return qs_quant_run_progress(cfg, w, rows, cols, calib, imatrix, n_threads, NULL, out, err);
}

int qs_quant_run_progress(const qs_qconfig *cfg, const float *w, int64_t rows, int64_t cols, const struct qs_calib *calib,
                          const float *imatrix, int n_threads, qs_progress *prog, qs_qresult *out, qs_err *err)
{
    memset(out, 0, sizeof *out);
    out->rows = rows;
    out->cols = cols;
    out->cfg = *cfg;
    out->ggml_type = -1;
    out->loss = out->out_err = NAN;
    int type, rc = qs_qconfig_check(cfg, rows, cols, &type, err);
    if (rc) return rc;
    int64_t n = rows * cols;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(w[i]))
            return qs_err_set(err, QS_E_INPUT, "row %lld, column %lld is not finite", (long long)(i / cols),
                              (long long)(i % cols));
    out->deq = malloc((size_t)n * sizeof *out->deq);
    if (!out->deq) return qs_err_set(err, QS_E_OOM, "out of memory");
    switch (cfg->method->kind) {
    case QS_METHOD_RTN: rc = run_rtn(out, w, n_threads, err); break;
    case QS_METHOD_NF4: case QS_METHOD_FP4: rc = run_bnb4(out, w, err); break;
    case QS_METHOD_GGML: rc = run_ggml(out, w, type, imatrix, n_threads, err); break;
    case QS_METHOD_GPTQ: rc = run_gptq(out, w, calib, prog, err); break;
    case QS_METHOD_AWQ:
        rc = cfg->ggml >= 0 ? run_awq_ggml(out, w, calib, type, imatrix, n_threads, prog, err) : run_awq(out, w, calib, prog, err);
        break;
    }
    if (rc) {
        qs_qresult_free(out);
        return rc;
    }
    if (cfg->method->kind == QS_METHOD_GPTQ || (cfg->method->kind == QS_METHOD_AWQ && out->ggml_type < 0))
        count_calib_clipped(out, w);
    else if (cfg->method->kind != QS_METHOD_AWQ) count_clipped(out, w, n_threads); /* AWQ → GGML counts its own */
    if (calib && calib->X && calib->n_rows > 0 && calib->cols == cols)
        out->out_err = qs_stats_output_error(w, out->deq, rows, cols, calib->X, calib->n_rows);
    return 0;
}

void qs_qresult_free(qs_qresult *r)
{
    free(r->data);
    free(r->scales);
    free(r->zeros);
    free(r->clip_ratio);
    free(r->g_idx);
    free(r->col_scale);
    free(r->deq);
    qs_bnb4_free(&r->bnb);
    memset(r, 0, sizeof *r);
}
