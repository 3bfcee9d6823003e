/* core/quant/qdot.h — quantized dot products as llama.cpp's x86 CPU backend computes them: the weight
 * row stays in its GGML encoding, the activation row is quantized once to the type llama.cpp's
 * vec_dot pairs with that weight type (Q8_0, Q8_1, Q8_K, F16, BF16 or F32), and each block's
 * integer dot product is scaled by the block scales in float (spec/ggml-types.md §5–§9).
 *
 * Float summation order is fixed (8 partial sums over blocks, or 16 over elements for the
 * plain types, added pairwise at the end), so every ISA variant returns bit-identical results;
 * the kernels are plain C compiled several times (core/qdot_kernels.inc: generic, AVX2+FMA+F16C,
 * AVX-512) and one is selected at the first call from the CPU's features. */
#ifndef QS_QDOT_H
#define QS_QDOT_H

#include <stddef.h>
#include <stdint.h>

#include "core/quant/ggml_types.h"

/* The activation ("vec_dot") type llama.cpp's CPU backend pairs with a weight type: Q8_0 for Q4_0, Q5_0, Q8_0, IQ4_NL;
 * Q8_1 for Q4_1, Q5_1; Q8_K for Q2_K…Q6_K and IQ4_XS; F16 for F16; BF16 for BF16; F32 for F32.
 * Returns -1 for a weight type without a kernel (or when cols is not a multiple of the block size). */
int qs_qdot_act_type(int weight_type, int64_t cols);

/* Quantizes one activation row of n floats into act_type blocks exactly as llama.cpp's x86 backend does
 * (its AVX2 code path, which a CPU with AVX-512 also runs):
 *   Q8_0: per 32-block amax = max|x|; d = amax/127.f stored as f16; id = amax ≠ 0 ? 127.f/amax : 0;
 *         q = rne(x·id) (round half to even, not the roundf of the _ref quantizer);
 *   Q8_1: the same d and qs, s = f16(d·Σq) (binary32 d times the integer sum);
 *   Q8_K: the reference routine (spec §7.6, qs_q8k_quantize_row);
 *   F16: f16 round-to-nearest-even; BF16: ggml's fp32→bf16 (spec §3.2); F32: copies. */
void qs_qdot_quantize_act(int act_type, const float *x, void *y, int64_t n);

/* The same, then back to float in place-equivalent form: x_out[i] = the value the integer dot product uses
 * (Q8_0/Q8_1: f16(d)·q; Q8_K: d·q; F16/BF16: the rounded value). For Q8_1 also writes, per 32-block b,
 * s_err[b] = F(s) − F(d)·Σq computed in float (the error of the stored f16 sum that Q4_1/Q5_1 dots use);
 * s_err may be NULL. */
void qs_qdot_round_act(int act_type, const float *x, float *x_out, float *s_err, int64_t n);

/* Σ over n weights of one weight row (weight_type, packed bytes w) times one activation row a of
 * qs_qdot_act_type(weight_type) blocks. Equals (within float rounding, |rel diff| < 1e-5 of Σ|w·x|)
 * the dot of qs_dequantize_row(weight) with qs_qdot_round_act(...) (+ Σ_b m_b·s_err[b] for Q4_1/Q5_1).
 * Returns 0 for a type without a kernel. */
float qs_qdot_vec(int weight_type, int64_t n, const void *w, const void *a);

/* y[r] = qs_qdot_vec(weight row r, a) for nrows rows of row_bytes each (the GEMV inner loop). */
void qs_qdot_rows(int weight_type, int64_t n, const void *w, size_t row_bytes, int64_t nrows, const void *a, float *y);

/* Fast dequantization of nrows rows (the prefill path dequantizes tiles of weights, then calls sgemm):
 * bit-identical to qs_dequantize_row on every row. Types: F16, BF16, F32 (copy), Q4_0, Q4_1, Q5_0, Q5_1,
 * Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS (others go through qs_dequantize_row).
 * dst holds nrows rows of n floats. */
void qs_qdot_dequantize_rows(int type, const void *src, size_t row_bytes, float *dst, int64_t nrows, int64_t n);

/* ---- ISA selection (tests and benchmarks) ---- */
enum { QS_QDOT_ISA_AUTO = -1, QS_QDOT_ISA_GENERIC = 0, QS_QDOT_ISA_AVX2 = 1, QS_QDOT_ISA_AVX512 = 2,
       QS_QDOT_ISA_COUNT = 3 };
/* Whether this CPU can run the kernel set. GENERIC is always supported. */
int qs_qdot_isa_supported(int isa);
/* Selects the kernel set for later calls (process-wide): AUTO picks the best supported one
 * (the default). Returns 0, or -1 when the CPU lacks the ISA (the selection is unchanged). */
int qs_qdot_set_isa(int isa);
int qs_qdot_get_isa(void);
const char *qs_qdot_isa_name(int isa);

#endif
