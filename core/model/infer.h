/* core/model/infer.h — the llama-family forward pass (CPU, OpenBLAS sgemm + fused quantized dot
 * products + pthreads).
 *
 * qs_llm keeps every weight packed: the file's bytes in the mapping, or the bytes a caller set
 * (qs_llm_set_packed: a GGML type; qs_llm_set_weights: floats), touching only that tensor;
 * memory is the mapped file plus the replaced tensors plus an F16 KV cache of n_ctx positions
 * and bounded scratch. qs_llm_eval runs a batch of tokens at positions
 * pos0 … pos0+n−1 and returns the logits of each. Numerics follow llama.cpp: float32
 * activations, RMSNorm sum of squares in double, rotary angles by repeated multiplication,
 * adjacent-pair (norm) or half-split (neox) rotation, causal grouped-query attention, SwiGLU. */
#ifndef QS_INFER_H
#define QS_INFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util/err.h"
#include "core/model/model.h"

typedef struct qs_llm qs_llm;

/* The activation type llama.cpp's CPU backend pairs with a weight type (its vec_dot_type, as
 * qs_qdot_act_type gives it: Q8_0 for Q4_0/Q5_0/Q8_0/IQ4_NL, Q8_1 for Q4_1/Q5_1, Q8_K for the
 * K-quants and IQ4_XS, F16/BF16 for those), QS_TYPE_F32 where there is none;
 * qs_llm rounds the activations the same way before each product with such a weight, so
 * perplexity and KL divergence of quantized files match llama.cpp's. */
int qs_llama_cpp_act_type(int weight_type, int64_t cols);

qs_llm *qs_llm_new(const qs_model *m, int n_ctx, qs_err *err);
void qs_llm_free(qs_llm *l);
int qs_llm_n_ctx(const qs_llm *l);
int qs_llm_n_vocab(const qs_llm *l);
/* Replaces one weight (by file or GGUF name) with rows × cols floats of the same shape;
 * act_type: how llama.cpp would round the activations for the new weight's type
 * (qs_llama_cpp_act_type; QS_TYPE_F32 for none). */
int qs_llm_set_weights(qs_llm *l, const char *name, const float *w, int act_type, qs_err *err);
/* Replaces one weight with nbytes of encoded rows of a GGML type (exactly the GGUF tensor data of
 * that type and shape); the products then run on those bytes with the type's llama.cpp rounding. */
int qs_llm_set_packed(qs_llm *l, const char *name, int type, const void *data, size_t nbytes, qs_err *err);
/* Replaces one weight with rows [row0, row0 + its rows) of a quantizer's result: the encoded bytes
 * when they are a GGML type's tensor data (packed, llama.cpp's products), else the dequantized
 * floats with the activation rounding of the result's GGML type, if any. */
struct qs_qresult;
int qs_llm_set_result(qs_llm *l, const char *name, const struct qs_qresult *r, int64_t row0, qs_err *err);
/* Bytes the engine holds for weights beyond the mapped file (replaced tensors, float copies of
 * vectors and permuted rows), for memory accounting and tests. */
int64_t qs_llm_owned_bytes(const qs_llm *l);
/* An observer sees the input of the linear layers before each product (x[T][cols], as the
 * model computed it, before any activation rounding): one call per distinct input, with the GGUF
 * names of every weight that reads it (attn_q/k/v share one, ffn_gate/up share one; attn_output
 * and ffn_down have their own; the output projection last). NULL stops observing. */
typedef void (*qs_llm_observer)(void *ctx, const char *const *weights, int n_weights, const float *x, int T, int64_t cols);
void qs_llm_set_observer(qs_llm *l, qs_llm_observer fn, void *ctx);
/* Rounds K, V (and Q and the attention probabilities at their products) to f16 as llama.cpp's
 * default F16 KV cache does; off by default (F32 cache, as the golden figures were made). */
void qs_llm_set_kv_f16(qs_llm *l, bool on);
/* Simulated activation quantization (core/actq.h) of the input of the product with one weight
 * (name NULL: every matrix): bits 0 turns it off; n_scale 0 = a scale per token at run time,
 * 1 = one static scale, cols = a static scale per input channel (copied). It survives later
 * qs_llm_set_* of the weight's values. */
int qs_llm_set_act_quant(qs_llm *l, const char *name, int bits, const float *scale, int64_t n_scale, qs_err *err);
/* The product with the weight divides its input by s[cols] first (SmoothQuant's or AWQ's scales
 * folded as the norm before would carry them); NULL: no division. Set after the weight's values
 * (setting values forgets it). */
int qs_llm_set_in_div(qs_llm *l, const char *name, const float *s, qs_err *err);
const float *qs_llm_in_div(const qs_llm *l, const char *name);
/* rows and columns of a weight the products use (-1: none of that name) */
int qs_llm_weight_shape(const qs_llm *l, const char *name, int64_t *rows, int64_t *cols);
/* The weight's current values as floats (rows × cols, as the products use them). */
int qs_llm_read_weight(const qs_llm *l, const char *name, float *out, qs_err *err);
/* Forgets the KV cache. */
void qs_llm_reset(qs_llm *l);
/* logits: n × n_vocab floats (all positions), or NULL to skip the output projection. */
int qs_llm_eval(qs_llm *l, const int32_t *tokens, int n, int pos0, float *logits, qs_err *err);
/* n_seq independent sequences of n tokens each (tokens[n_seq·n], sequence after sequence), every
 * one from position 0, in one pass: the products read each weight once for all n_seq·n tokens (as
 * llama-perplexity packs several chunks into a batch). logits: [n_seq·n][n_vocab] or NULL. The
 * cache grows to n_seq·n positions a layer if needed; what it held before is forgotten. */
int qs_llm_eval_seqs(qs_llm *l, const int32_t *tokens, int n_seq, int n, float *logits, qs_err *err);
/* flag (or NULL): checked between blocks; a set flag stops qs_llm_eval/_seqs with QS_E_CANCELLED. */
void qs_llm_set_cancel(qs_llm *l, const volatile int *flag);

#endif
