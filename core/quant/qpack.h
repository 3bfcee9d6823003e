/* core/quant/qpack.h — the integer layouts of HF GPTQ (v1 "gptq") and AutoAWQ GEMM checkpoints
 * (spec/gptq.md §8, spec/awq.md §7), from quantscope's codes[rows = out][cols = in], the per-row
 * group zeros and scales (zeros[out][n_groups], scales[out][n_groups]) and g_idx.
 *
 * GPTQ: qweight I32 [in·bits/32][out], codes packed LSB-first along the input dimension (3 bits:
 * 32 values in three words, one 96-bit little-endian run); qzeros I32 [n_groups][out·bits/32],
 * zero − 1 packed along the output dimension (v1); scales F16 [n_groups][out]; g_idx I32 [in].
 * AWQ GEMM (4 bits only): qweight I32 [in][out/8] and qzeros I32 [n_groups][out/8], eight codes per
 * word in the interleaved order 0 2 4 6 1 3 5 7, zeros as they are; scales F16 [n_groups][out].
 * Unpacking inverts both, so tests (and loaders) can dequantize what was written. */
#ifndef QS_QPACK_H
#define QS_QPACK_H

#include <stdbool.h>
#include <stdint.h>

#include "core/util/err.h"

/* in, out: the layer's input and output sizes; checks the multiples each layout needs */
int qs_gptq_pack_check(int bits, int64_t in, int64_t out, qs_err *err);
int64_t qs_gptq_qweight_rows(int bits, int64_t in);     /* in·bits/32 */
int64_t qs_gptq_qzeros_cols(int bits, int64_t out);     /* out·bits/32 */
void qs_gptq_pack(int bits, const uint8_t *codes, const float *zeros, const float *scales, int64_t out, int64_t in,
                  int64_t n_groups, uint32_t *qweight, uint32_t *qzeros, uint16_t *scales16);
/* codes[out][in] and zeros[out][n_groups] back (zeros + 1 of the v1 words) */
void qs_gptq_unpack(int bits, const uint32_t *qweight, const uint32_t *qzeros, int64_t out, int64_t in, int64_t n_groups,
                    uint8_t *codes, float *zeros);
/* true when an asymmetric v1 checkpoint would store a zero point 0 as −1 (spec/gptq.md §8.5) */
bool qs_gptq_v1_zero_overflow(const float *zeros, int64_t n);

int qs_awq_pack_check(int bits, int64_t in, int64_t out, int64_t group, qs_err *err);
void qs_awq_pack(const uint8_t *codes, const float *zeros, const float *scales, int64_t out, int64_t in, int64_t n_groups,
                 uint32_t *qweight, uint32_t *qzeros, uint16_t *scales16);
void qs_awq_unpack(const uint32_t *qweight, const uint32_t *qzeros, int64_t out, int64_t in, int64_t n_groups, uint8_t *codes,
                   float *zeros);

#endif
