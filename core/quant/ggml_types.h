/* core/quant/ggml_types.h — the ggml tensor element types: ids, names, block geometry and
 * dequantization to float (spec/ggml-types.md).
 *
 * Every id of the table (0 … QS_TYPE_COUNT-1) can be named and sized, so any GGUF can be
 * displayed; the removed ids (4, 5, 31-33, 36-38) are not valid. Dequantization exists for
 * F32, F16, BF16, the legacy types, the K-quants, Q8_K and IQ4_NL/IQ4_XS; integer types I8…I32
 * and F64 convert by value. Block structs mirror the byte layouts and are size-checked. */
#ifndef QS_GGML_TYPES_H
#define QS_GGML_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum qs_type {
    QS_TYPE_F32 = 0, QS_TYPE_F16 = 1, QS_TYPE_Q4_0 = 2, QS_TYPE_Q4_1 = 3,
    QS_TYPE_Q5_0 = 6, QS_TYPE_Q5_1 = 7, QS_TYPE_Q8_0 = 8, QS_TYPE_Q8_1 = 9,
    QS_TYPE_Q2_K = 10, QS_TYPE_Q3_K = 11, QS_TYPE_Q4_K = 12, QS_TYPE_Q5_K = 13,
    QS_TYPE_Q6_K = 14, QS_TYPE_Q8_K = 15, QS_TYPE_IQ2_XXS = 16, QS_TYPE_IQ2_XS = 17,
    QS_TYPE_IQ3_XXS = 18, QS_TYPE_IQ1_S = 19, QS_TYPE_IQ4_NL = 20, QS_TYPE_IQ3_S = 21,
    QS_TYPE_IQ2_S = 22, QS_TYPE_IQ4_XS = 23, QS_TYPE_I8 = 24, QS_TYPE_I16 = 25,
    QS_TYPE_I32 = 26, QS_TYPE_I64 = 27, QS_TYPE_F64 = 28, QS_TYPE_IQ1_M = 29,
    QS_TYPE_BF16 = 30, QS_TYPE_TQ1_0 = 34, QS_TYPE_TQ2_0 = 35, QS_TYPE_MXFP4 = 39,
    QS_TYPE_NVFP4 = 40, QS_TYPE_Q1_0 = 41, QS_TYPE_Q2_0 = 42,
    QS_TYPE_COUNT = 43
} qs_type;

#define QS_QK4_0 32
#define QS_QK_K 256
#define QS_K_SCALE_SIZE 12

/* Block structs: packed byte layouts of spec/ggml-types.md (f16 fields as raw uint16_t). */
typedef struct { uint16_t d; uint8_t qs[16]; } qs_block_q4_0;
typedef struct { uint16_t d, m; uint8_t qs[16]; } qs_block_q4_1;
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; } qs_block_q5_0;
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; } qs_block_q5_1;
typedef struct { uint16_t d; int8_t qs[32]; } qs_block_q8_0;
/* Q8_1: the activation type of Q4_1/Q5_1 dot products (spec §9): s = f16(d·Σqs), binary32 d */
typedef struct { uint16_t d, s; int8_t qs[32]; } qs_block_q8_1;
typedef struct { uint8_t scales[16]; uint8_t qs[64]; uint16_t d, dmin; } qs_block_q2_k;
typedef struct { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; uint16_t d; } qs_block_q3_k;
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; } qs_block_q4_k;
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; } qs_block_q5_k;
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; } qs_block_q6_k;
typedef struct { float d; int8_t qs[256]; int16_t bsums[16]; } qs_block_q8_k;
typedef struct { uint16_t d; uint8_t qs[16]; } qs_block_iq4_nl;
typedef struct { uint16_t d, scales_h; uint8_t scales_l[4]; uint8_t qs[128]; } qs_block_iq4_xs;

_Static_assert(sizeof(qs_block_q4_0) == 18, "q4_0 block size");
_Static_assert(sizeof(qs_block_q4_1) == 20, "q4_1 block size");
_Static_assert(sizeof(qs_block_q5_0) == 22, "q5_0 block size");
_Static_assert(sizeof(qs_block_q5_1) == 24, "q5_1 block size");
_Static_assert(sizeof(qs_block_q8_0) == 34, "q8_0 block size");
_Static_assert(sizeof(qs_block_q8_1) == 36, "q8_1 block size");
_Static_assert(sizeof(qs_block_q2_k) == 84, "q2_K block size");
_Static_assert(sizeof(qs_block_q3_k) == 110, "q3_K block size");
_Static_assert(sizeof(qs_block_q4_k) == 144, "q4_K block size");
_Static_assert(sizeof(qs_block_q5_k) == 176, "q5_K block size");
_Static_assert(sizeof(qs_block_q6_k) == 210, "q6_K block size");
_Static_assert(sizeof(qs_block_q8_k) == 292, "q8_K block size");
_Static_assert(sizeof(qs_block_iq4_nl) == 18, "iq4_nl block size");
_Static_assert(sizeof(qs_block_iq4_xs) == 136, "iq4_xs block size");

typedef struct qs_type_info {
    const char *name;      /* as ggml spells it: "q4_K", "f16", … ; NULL for a removed id */
    int block_size;        /* elements per block */
    int type_size;         /* bytes per block */
    bool can_dequantize;   /* qs_dequantize_row supports it */
} qs_type_info;

/* NULL when id is outside the table or names a removed type. */
const qs_type_info *qs_type_get(int id);
bool qs_type_valid(int id);
const char *qs_type_name(int id);            /* "?" for invalid ids */
int qs_type_from_name(const char *name);     /* case-insensitive; -1 when unknown */
double qs_type_bpw(int id);                  /* 8·type_size/block_size */
/* Bytes of one row of n elements; -1 if n is not a multiple of the block size or overflows. */
int64_t qs_type_row_bytes(int id, int64_t n);

/* Dequantize n elements (a multiple of the block size) of type `id` at src into dst.
 * Returns 0, or -1 when the type has no dequantizer. Operation order follows the spec so the
 * results are bit-identical to ggml's dequantize_row_*. */
int qs_dequantize_row(int id, const void *src, float *dst, int64_t n);

/* The representable values of sub-block `sub` of one encoded block (the grid a weight there
 * can take): returns their count (ascending for scales >= 0, up to 256), 0 for F32/F16/BF16 and integer types.
 * qs_ggml_sub_block_len gives the sub-block length (the block for one-scale types). */
int qs_ggml_sub_block_len(int id);
int qs_ggml_block_levels(int id, const void *block, int sub, float *levels);

/* Unpacking helpers shared with the quantizers. */
void qs_q4k_get_scale_min(int j, const uint8_t *scales, uint8_t *sc, uint8_t *m);
int qs_q3k_get_scale(int j, const uint8_t *scales);
extern const int8_t qs_kvalues_iq4nl[16];

/* Divides every row r of rows × cols encoded weights by div[r] through the blocks' f16 scales (d,
 * and dmin / m where the type has one), leaving the codes: what folding AWQ's next scales into a
 * quantized linear does. Returns -1 for types without such scales (F32/F16/BF16, i-quants but
 * IQ4_NL/IQ4_XS). */
int qs_ggml_scale_rows(int type, void *data, int64_t rows, int64_t cols, const float *div);

#endif
