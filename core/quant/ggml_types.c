/* core/quant/ggml_types.c — type table and dequantizers (spec/ggml-types.md §2, §5–§8). */
#include "core/quant/ggml_types.h"

#include <strings.h>

#include "core/util/fp16.h"

#define T(nm, bs, ts, dq) { nm, bs, ts, dq }
static const qs_type_info type_table[QS_TYPE_COUNT] = {
    [QS_TYPE_F32] = T("f32", 1, 4, true),
    [QS_TYPE_F16] = T("f16", 1, 2, true),
    [QS_TYPE_Q4_0] = T("q4_0", 32, 18, true),
    [QS_TYPE_Q4_1] = T("q4_1", 32, 20, true),
    [QS_TYPE_Q5_0] = T("q5_0", 32, 22, true),
    [QS_TYPE_Q5_1] = T("q5_1", 32, 24, true),
    [QS_TYPE_Q8_0] = T("q8_0", 32, 34, true),
    [QS_TYPE_Q8_1] = T("q8_1", 32, 36, false),
    [QS_TYPE_Q2_K] = T("q2_K", 256, 84, true),
    [QS_TYPE_Q3_K] = T("q3_K", 256, 110, true),
    [QS_TYPE_Q4_K] = T("q4_K", 256, 144, true),
    [QS_TYPE_Q5_K] = T("q5_K", 256, 176, true),
    [QS_TYPE_Q6_K] = T("q6_K", 256, 210, true),
    [QS_TYPE_Q8_K] = T("q8_K", 256, 292, true),
    [QS_TYPE_IQ2_XXS] = T("iq2_xxs", 256, 66, false),
    [QS_TYPE_IQ2_XS] = T("iq2_xs", 256, 74, false),
    [QS_TYPE_IQ3_XXS] = T("iq3_xxs", 256, 98, false),
    [QS_TYPE_IQ1_S] = T("iq1_s", 256, 50, false),
    [QS_TYPE_IQ4_NL] = T("iq4_nl", 32, 18, true),
    [QS_TYPE_IQ3_S] = T("iq3_s", 256, 110, false),
    [QS_TYPE_IQ2_S] = T("iq2_s", 256, 82, false),
    [QS_TYPE_IQ4_XS] = T("iq4_xs", 256, 136, true),
    [QS_TYPE_I8] = T("i8", 1, 1, true),
    [QS_TYPE_I16] = T("i16", 1, 2, true),
    [QS_TYPE_I32] = T("i32", 1, 4, true),
    [QS_TYPE_I64] = T("i64", 1, 8, true),
    [QS_TYPE_F64] = T("f64", 1, 8, true),
    [QS_TYPE_IQ1_M] = T("iq1_m", 256, 56, false),
    [QS_TYPE_BF16] = T("bf16", 1, 2, true),
    [QS_TYPE_TQ1_0] = T("tq1_0", 256, 54, false),
    [QS_TYPE_TQ2_0] = T("tq2_0", 256, 66, false),
    [QS_TYPE_MXFP4] = T("mxfp4", 32, 17, false),
    [QS_TYPE_NVFP4] = T("nvfp4", 64, 36, false),
    [QS_TYPE_Q1_0] = T("q1_0", 128, 18, false),
    [QS_TYPE_Q2_0] = T("q2_0", 64, 18, false),
};
#undef T

const int8_t qs_kvalues_iq4nl[16] = {
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
};

const qs_type_info *qs_type_get(int id)
{
    if (id < 0 || id >= QS_TYPE_COUNT || !type_table[id].name)
        return NULL;
    return &type_table[id];
}

bool qs_type_valid(int id) { return qs_type_get(id) != NULL; }

const char *qs_type_name(int id)
{
    const qs_type_info *t = qs_type_get(id);
    return t ? t->name : "?";
}

int qs_type_from_name(const char *name)
{
    for (int i = 0; i < QS_TYPE_COUNT; i++)
        if (type_table[i].name && strcasecmp(type_table[i].name, name) == 0)
            return i;
    return -1;
}

double qs_type_bpw(int id)
{
    const qs_type_info *t = qs_type_get(id);
    return t ? 8.0 * t->type_size / t->block_size : 0.0;
}

int64_t qs_type_row_bytes(int id, int64_t n)
{
    const qs_type_info *t = qs_type_get(id);
    if (!t || n < 0 || n % t->block_size || n / t->block_size > INT64_MAX / t->type_size)
        return -1;
    return n / t->block_size * t->type_size;
}

void qs_q4k_get_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

int qs_q3k_get_scale(int j, const uint8_t *s)
{
    int lo = j < 8 ? (s[j] & 15) : (s[j - 8] >> 4);
    int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    return (lo | (hi << 4)) - 32;
}

/* ---- legacy 32-element blocks ---- */

static int nibble32(const uint8_t *qs, int j)
{
    return j < 16 ? (qs[j] & 15) : (qs[j - 16] >> 4);
}

static uint32_t load_u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void dequant_q4_0(const qs_block_q4_0 *b, int64_t nb, float *y)
{
    for (int64_t i = 0; i < nb; i++, y += 32) {
        float d = qs_f16_to_f32(b[i].d);
        for (int j = 0; j < 32; j++)
            y[j] = (float)(nibble32(b[i].qs, j) - 8) * d;
    }
}

static void dequant_q4_1(const qs_block_q4_1 *b, int64_t nb, float *y)
{
    for (int64_t i = 0; i < nb; i++, y += 32) {
        float d = qs_f16_to_f32(b[i].d), m = qs_f16_to_f32(b[i].m);
        for (int j = 0; j < 32; j++)
            y[j] = (float)nibble32(b[i].qs, j) * d + m;
    }
}

static int q5_value(const uint8_t *qs, const uint8_t *qh, int j)
{
    return nibble32(qs, j) | (int)(((load_u32le(qh) >> j) & 1) << 4);
}

static void dequant_q5_0(const qs_block_q5_0 *b, int64_t nb, float *y)
{
    for (int64_t i = 0; i < nb; i++, y += 32) {
        float d = qs_f16_to_f32(b[i].d);
        for (int j = 0; j < 32; j++)
            y[j] = (float)(q5_value(b[i].qs, b[i].qh, j) - 16) * d;
    }
}

static void dequant_q5_1(const qs_block_q5_1 *b, int64_t nb, float *y)
{
    for (int64_t i = 0; i < nb; i++, y += 32) {
        float d = qs_f16_to_f32(b[i].d), m = qs_f16_to_f32(b[i].m);
        for (int j = 0; j < 32; j++)
            y[j] = (float)q5_value(b[i].qs, b[i].qh, j) * d + m;
    }
}

static void dequant_q8_0(const qs_block_q8_0 *b, int64_t nb, float *y)
{
    for (int64_t i = 0; i < nb; i++, y += 32) {
        float d = qs_f16_to_f32(b[i].d);
        for (int j = 0; j < 32; j++)
            y[j] = (float)b[i].qs[j] * d;
    }
}

static void dequant_iq4_nl(const qs_block_iq4_nl *b, int64_t nb, float *y)
{
    for (int64_t i = 0; i < nb; i++, y += 32) {
        float d = qs_f16_to_f32(b[i].d);
        for (int j = 0; j < 32; j++)
            y[j] = d * (float)qs_kvalues_iq4nl[nibble32(b[i].qs, j)];
    }
}

/* ---- K-quants ---- */

/* 2-bit planes of §6.8: element e of a 256-block. */
static int q2_plane(const uint8_t *qs, int e)
{
    return (qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
}

static void dequant_q2_k(const qs_block_q2_k *b, int64_t nb, float *y)
{
    for (int64_t i = 0; i < nb; i++, y += 256) {
        float d = qs_f16_to_f32(b[i].d), dmin = qs_f16_to_f32(b[i].dmin);
        for (int e = 0; e < 256; e++) {
            uint8_t sc = b[i].scales[e / 16];
            float dl = d * (float)(sc & 15), ml = dmin * (float)(sc >> 4);
            y[e] = dl * (float)q2_plane(b[i].qs, e) - ml;
        }
    }
}

static void dequant_q3_k(const qs_block_q3_k *b, int64_t nb, float *y)
{
    for (int64_t i = 0; i < nb; i++, y += 256) {
        float d = qs_f16_to_f32(b[i].d);
        for (int e = 0; e < 256; e++) {
            float dl = d * (float)qs_q3k_get_scale(e / 16, b[i].scales);
            int h = (b[i].hmask[e % 32] >> (e / 32)) & 1;
            y[e] = dl * (float)(q2_plane(b[i].qs, e) - (h ? 0 : 4));
        }
    }
}

static void dequant_q4_k(const qs_block_q4_k *b, int64_t nb, float *y)
{
    for (int64_t i = 0; i < nb; i++, y += 256) {
        float d = qs_f16_to_f32(b[i].d), dmin = qs_f16_to_f32(b[i].dmin);
        for (int e = 0; e < 256; e++) {
            int c = e / 64, l = e % 64;
            uint8_t sc, m;
            qs_q4k_get_scale_min(e / 32, b[i].scales, &sc, &m);
            int q = l < 32 ? (b[i].qs[32 * c + l] & 15) : (b[i].qs[32 * c + l - 32] >> 4);
            float dl = d * (float)sc, ml = dmin * (float)m;
            y[e] = dl * (float)q - ml;
        }
    }
}

static void dequant_q5_k(const qs_block_q5_k *b, int64_t nb, float *y)
{
    for (int64_t i = 0; i < nb; i++, y += 256) {
        float d = qs_f16_to_f32(b[i].d), dmin = qs_f16_to_f32(b[i].dmin);
        for (int e = 0; e < 256; e++) {
            int c = e / 64, l = e % 64, hi = l >= 32, ll = l % 32;
            uint8_t sc, m;
            qs_q4k_get_scale_min(e / 32, b[i].scales, &sc, &m);
            int q = hi ? (b[i].qs[32 * c + ll] >> 4) : (b[i].qs[32 * c + ll] & 15);
            q += ((b[i].qh[ll] >> (2 * c + hi)) & 1) ? 16 : 0;
            float dl = d * (float)sc, ml = dmin * (float)m;
            y[e] = dl * (float)q - ml;
        }
    }
}

static void dequant_q6_k(const qs_block_q6_k *b, int64_t nb, float *y)
{
    for (int64_t i = 0; i < nb; i++, y += 256) {
        float d = qs_f16_to_f32(b[i].d);
        for (int e = 0; e < 256; e++) {
            int h = e / 128, r = e % 128, l = r % 32, k = r / 32;
            uint8_t lbyte = b[i].ql[64 * h + l + (k & 1) * 32];
            int low = (k & 2) ? (lbyte >> 4) : (lbyte & 15);
            int high = (b[i].qh[32 * h + l] >> (2 * k)) & 3;
            int q = (low | (high << 4)) - 32;
            y[e] = d * (float)b[i].scales[e / 16] * (float)q;
        }
    }
}

static void dequant_q8_k(const qs_block_q8_k *b, int64_t nb, float *y)
{
    for (int64_t i = 0; i < nb; i++, y += 256)
        for (int e = 0; e < 256; e++)
            y[e] = b[i].d * (float)b[i].qs[e];
}

static void dequant_iq4_xs(const qs_block_iq4_xs *b, int64_t nb, float *y)
{
    for (int64_t i = 0; i < nb; i++) {
        float d = qs_f16_to_f32(b[i].d);
        for (int ib = 0; ib < 8; ib++, y += 32) {
            int ls = ((b[i].scales_l[ib / 2] >> (4 * (ib % 2))) & 15) |
                     (((b[i].scales_h >> (2 * ib)) & 3) << 4);
            float dl = d * (float)(ls - 32);
            for (int j = 0; j < 32; j++)
                y[j] = dl * (float)qs_kvalues_iq4nl[nibble32(b[i].qs + 16 * ib, j)];
        }
    }
}

/* ---- plain element types ---- */

static void dequant_plain(int id, const uint8_t *p, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        switch (id) {
        case QS_TYPE_F32: { float v; memcpy(&v, p + 4 * i, 4); y[i] = v; break; }
        case QS_TYPE_F16: { uint16_t h; memcpy(&h, p + 2 * i, 2); y[i] = qs_f16_to_f32(h); break; }
        case QS_TYPE_BF16: { uint16_t h; memcpy(&h, p + 2 * i, 2); y[i] = qs_bf16_to_f32(h); break; }
        case QS_TYPE_I8: y[i] = (float)(int8_t)p[i]; break;
        case QS_TYPE_I16: { int16_t v; memcpy(&v, p + 2 * i, 2); y[i] = (float)v; break; }
        case QS_TYPE_I32: { int32_t v; memcpy(&v, p + 4 * i, 4); y[i] = (float)v; break; }
        case QS_TYPE_I64: { int64_t v; memcpy(&v, p + 8 * i, 8); y[i] = (float)v; break; }
        case QS_TYPE_F64: { double v; memcpy(&v, p + 8 * i, 8); y[i] = (float)v; break; }
        }
    }
}

int qs_dequantize_row(int id, const void *src, float *dst, int64_t n)
{
    const qs_type_info *t = qs_type_get(id);
    if (!t || !t->can_dequantize || n % t->block_size)
        return -1;
    int64_t nb = n / t->block_size;
    switch (id) {
    case QS_TYPE_Q4_0: dequant_q4_0(src, nb, dst); break;
    case QS_TYPE_Q4_1: dequant_q4_1(src, nb, dst); break;
    case QS_TYPE_Q5_0: dequant_q5_0(src, nb, dst); break;
    case QS_TYPE_Q5_1: dequant_q5_1(src, nb, dst); break;
    case QS_TYPE_Q8_0: dequant_q8_0(src, nb, dst); break;
    case QS_TYPE_Q2_K: dequant_q2_k(src, nb, dst); break;
    case QS_TYPE_Q3_K: dequant_q3_k(src, nb, dst); break;
    case QS_TYPE_Q4_K: dequant_q4_k(src, nb, dst); break;
    case QS_TYPE_Q5_K: dequant_q5_k(src, nb, dst); break;
    case QS_TYPE_Q6_K: dequant_q6_k(src, nb, dst); break;
    case QS_TYPE_Q8_K: dequant_q8_k(src, nb, dst); break;
    case QS_TYPE_IQ4_NL: dequant_iq4_nl(src, nb, dst); break;
    case QS_TYPE_IQ4_XS: dequant_iq4_xs(src, nb, dst); break;
    default: dequant_plain(id, src, dst, n); break;
    }
    return 0;
}

/* ---- grids ---- */

int qs_ggml_sub_block_len(int id)
{
    switch (id) {
    case QS_TYPE_Q2_K: case QS_TYPE_Q3_K: case QS_TYPE_Q6_K: return 16;
    case QS_TYPE_Q4_K: case QS_TYPE_Q5_K: case QS_TYPE_IQ4_XS: return 32;
    case QS_TYPE_Q8_K: return 256;
    default: {
        const qs_type_info *t = qs_type_get(id);
        return t ? t->block_size : 0;
    }
    }
}

static int affine_levels(float *lv, int nq, float d, int bias, float m)
{
    for (int q = 0; q < nq; q++) lv[q] = (float)(q - bias) * d + m;
    return nq;
}

int qs_ggml_block_levels(int id, const void *blk, int sub, float *lv)
{
    uint8_t sc, m;
    switch (id) {
    case QS_TYPE_Q4_0: return affine_levels(lv, 16, qs_f16_to_f32(((const qs_block_q4_0 *)blk)->d), 8, 0);
    case QS_TYPE_Q5_0: return affine_levels(lv, 32, qs_f16_to_f32(((const qs_block_q5_0 *)blk)->d), 16, 0);
    case QS_TYPE_Q8_0: return affine_levels(lv, 256, qs_f16_to_f32(((const qs_block_q8_0 *)blk)->d), 128, 0);
    case QS_TYPE_Q4_1: {
        const qs_block_q4_1 *b = blk;
        return affine_levels(lv, 16, qs_f16_to_f32(b->d), 0, qs_f16_to_f32(b->m));
    }
    case QS_TYPE_Q5_1: {
        const qs_block_q5_1 *b = blk;
        return affine_levels(lv, 32, qs_f16_to_f32(b->d), 0, qs_f16_to_f32(b->m));
    }
    case QS_TYPE_IQ4_NL:
        for (int q = 0; q < 16; q++) lv[q] = qs_f16_to_f32(((const qs_block_iq4_nl *)blk)->d) * (float)qs_kvalues_iq4nl[q];
        return 16;
    case QS_TYPE_Q2_K: {
        const qs_block_q2_k *b = blk;
        float dl = qs_f16_to_f32(b->d) * (float)(b->scales[sub] & 15), ml = qs_f16_to_f32(b->dmin) * (float)(b->scales[sub] >> 4);
        for (int q = 0; q < 4; q++) lv[q] = dl * (float)q - ml;
        return 4;
    }
    case QS_TYPE_Q3_K: {
        const qs_block_q3_k *b = blk;
        return affine_levels(lv, 8, qs_f16_to_f32(b->d) * (float)qs_q3k_get_scale(sub, b->scales), 4, 0);
    }
    case QS_TYPE_Q4_K: case QS_TYPE_Q5_K: {
        const qs_block_q4_k *b = blk; /* d, dmin, scales lead both structs */
        qs_q4k_get_scale_min(sub, b->scales, &sc, &m);
        float dl = qs_f16_to_f32(b->d) * (float)sc, ml = qs_f16_to_f32(b->dmin) * (float)m;
        int nq = id == QS_TYPE_Q4_K ? 16 : 32;
        for (int q = 0; q < nq; q++) lv[q] = dl * (float)q - ml;
        return nq;
    }
    case QS_TYPE_Q6_K: {
        const qs_block_q6_k *b = blk;
        return affine_levels(lv, 64, qs_f16_to_f32(b->d) * (float)b->scales[sub], 32, 0);
    }
    case QS_TYPE_IQ4_XS: {
        const qs_block_iq4_xs *b = blk;
        int ls = ((b->scales_l[sub / 2] >> (4 * (sub % 2))) & 15) | (((b->scales_h >> (2 * sub)) & 3) << 4);
        float dl = qs_f16_to_f32(b->d) * (float)(ls - 32);
        for (int q = 0; q < 16; q++) lv[q] = dl * (float)qs_kvalues_iq4nl[q];
        return 16;
    }
    }
    return 0;
}

/* the byte offsets of a block's f16 scales (−1 ends the list) */
static const int *block_scale_offsets(int type)
{
    static const int d0[] = {0, -1}, dm0[] = {0, 2, -1};
    static const int q2k[] = {offsetof(qs_block_q2_k, d), offsetof(qs_block_q2_k, dmin), -1};
    static const int q3k[] = {offsetof(qs_block_q3_k, d), -1}, q6k[] = {offsetof(qs_block_q6_k, d), -1};
    switch (type) {
    case QS_TYPE_Q4_0: case QS_TYPE_Q5_0: case QS_TYPE_Q8_0: case QS_TYPE_IQ4_NL: case QS_TYPE_IQ4_XS: return d0;
    case QS_TYPE_Q4_1: case QS_TYPE_Q5_1: case QS_TYPE_Q4_K: case QS_TYPE_Q5_K: return dm0;
    case QS_TYPE_Q2_K: return q2k;
    case QS_TYPE_Q3_K: return q3k;
    case QS_TYPE_Q6_K: return q6k;
    default: return NULL;
    }
}

int qs_ggml_scale_rows(int type, void *data, int64_t rows, int64_t cols, const float *div)
{
    const int *off = block_scale_offsets(type);
    const qs_type_info *t = qs_type_get(type);
    if (!off || !t) return -1;
    size_t rb = qs_type_row_bytes(type, cols);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t b = 0; b < cols / t->block_size; b++) {
            uint8_t *blk = (uint8_t *)data + (size_t)r * rb + (size_t)b * (size_t)t->type_size;
            for (const int *o = off; *o >= 0; o++) {
                uint16_t h;
                memcpy(&h, blk + *o, sizeof h);
                h = qs_f32_to_f16(qs_f16_to_f32(h) / div[r]);
                memcpy(blk + *o, &h, sizeof h);
            }
        }
    return 0;
}
