/* core/quant/bnb4.h — bitsandbytes 4-bit quantization, NF4 and FP4 (spec/bnb4.md).
 *
 * The weight is flattened row-major and cut into blocks of `blocksize` (32…4096, a power of
 * two; the last block may be partial and blocks may span rows). Per block: absmax, scaled
 * values coded to the nearest table entry (exact midpoint ties to the lower value; FP4 with
 * the CPU-backend table and the stable-sort midpoint rule), two codes per byte with the
 * first element in the high nibble. Optional double quantization of the absmax vector
 * (offset = mean in double, 8-bit signed dynamic map, blocks of 256). Bit-exact with the
 * bitsandbytes CPU backend. */
#ifndef QS_BNB4_H
#define QS_BNB4_H

#include <stdbool.h>
#include <stdint.h>

#include "core/util/err.h"

typedef struct qs_bnb4 {
    bool fp4, double_quant;
    int blocksize;
    int64_t n;                 /* elements */
    uint8_t *packed;           /* ceil(n/2) bytes */
    int64_t n_blocks;
    float *absmax;             /* n_blocks: the exact absmax (before double quantization) */
    /* double quantization */
    float offset;
    uint8_t *qabsmax;          /* n_blocks codes into qs_bnb4_dynamic_map */
    int64_t n_blocks2;
    float *absmax2;            /* n_blocks2 */
} qs_bnb4;

extern const float qs_bnb4_nf4_table[16];
extern const float qs_bnb4_fp4_table[16];      /* the CPU backend's 4-decimal table */
extern const float qs_bnb4_dynamic_map[256];

int qs_bnb4_quantize(const float *w, int64_t n, int blocksize, bool fp4, bool double_quant, qs_bnb4 *out,
                     qs_err *err);
/* Dequantizes (with the double-quantized absmax when double_quant). */
void qs_bnb4_dequantize(const qs_bnb4 *q, float *out);
/* The absmax value dequantization uses for block b. */
float qs_bnb4_block_absmax(const qs_bnb4 *q, int64_t b);
/* Bits per weight including absmax storage (and the nested statistics). */
double qs_bnb4_bpw(int blocksize, bool double_quant);
void qs_bnb4_free(qs_bnb4 *q);

#endif
