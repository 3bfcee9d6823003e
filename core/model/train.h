/* core/model/train.h — trains a llama-architecture model from scratch on a token stream.
 *
 * Forward pass with the operations of core/ops.c (the inference engine's) and OpenBLAS sgemm,
 * a hand-derived backward pass for every one of them, AdamW (decoupled weight decay on the
 * matrices), linear warm-up then cosine decay of the learning rate, clipping of the global
 * gradient norm. A step takes `batch` windows of `seq` + 1 tokens drawn at random from the
 * stream (with bos ≥ 0 the first is bos, as when llama.cpp evaluates a text from its start); the windows of step s depend only on (seed, s), so a run resumed from a checkpoint
 * continues exactly as the uninterrupted run would (for the same thread count).
 * Weights (GGUF names and shapes as llama.cpp expects them, F32):
 *   token_embd [V][E], blk.N.{attn_norm [E], attn_q [H·D][E], attn_k [Hkv·D][E],
 *   attn_v [Hkv·D][E], attn_output [E][H·D], ffn_norm [E], ffn_gate [F][E], ffn_up [F][E],
 *   ffn_down [E][F]}, output_norm [E], output [V][E] (absent when tied). */
#ifndef QS_TRAIN_H
#define QS_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util/err.h"
#include "core/util/progress.h"

typedef struct qs_train_config {
    int dim, n_layers, n_heads, n_kv_heads, ff, ctx, vocab;
    bool tied;
    int batch, seq;               /* windows per step, tokens per window (≤ ctx) */
    int64_t steps, warmup;
    float lr, min_lr, weight_decay, clip, beta1, beta2, adam_eps;
    float init_std, rope_base, norm_eps;
    uint64_t seed;
    int bos;                      /* ≥ 0: every window starts with this token, then seq text tokens */
} qs_train_config;

/* "tiny", "small", "gradcheck"; the vocabulary size is left at 0 for the caller */
int qs_train_preset(const char *name, qs_train_config *c, qs_err *err);
/* JSON object of the fields above (dim, n_layers, …, seed); absent fields keep their value */
int qs_train_config_parse(const char *json, size_t len, qs_train_config *c, qs_err *err);
int qs_train_config_check(const qs_train_config *c, qs_err *err);

typedef struct qs_trainer qs_trainer;

qs_trainer *qs_trainer_new(const qs_train_config *c, qs_err *err);
void qs_trainer_free(qs_trainer *t);
const qs_train_config *qs_trainer_config(const qs_trainer *t);
int64_t qs_trainer_step_no(const qs_trainer *t);
/* Mean cross-entropy (nats) of predicting tokens[1…] from tokens[0…] over batch windows of
 * seq + 1 tokens (tokens holds batch·(seq+1)); with grads, the gradients are accumulated. */
double qs_trainer_loss(qs_trainer *t, const int32_t *tokens, int batch, bool grads);
/* One optimizer step on windows drawn from stream[0 … n); returns the loss before the update. */
int qs_trainer_step(qs_trainer *t, const int32_t *stream, int64_t n, double *loss, qs_err *err);
/* Parameter access for tests: the i-th tensor (order of the header), its size and arrays */
int qs_trainer_n_params(const qs_trainer *t);
const char *qs_trainer_param(qs_trainer *t, int i, float **w, float **grad, int64_t *n);
void qs_trainer_zero_grad(qs_trainer *t);
/* Quantization-aware training (core/qat.h): the forward pass — and the backward pass where it
 * multiplies by the weights (input gradients) — reads fw (as many floats as the i-th tensor,
 * owned by the caller) instead of the i-th tensor's weights; the weight gradient is still
 * accumulated into grad and AdamW updates the weights (straight-through). fw NULL: the weights
 * again. Returns -1 for a bad index. */
int qs_trainer_set_forward(qs_trainer *t, int i, const float *fw);

struct qs_gguf_writer;
/* llama.* hyperparameter keys and the weights (F32) of the model into w */
int qs_trainer_write_model(const qs_trainer *t, struct qs_gguf_writer *w, qs_err *err);
/* Checkpoint: the model plus optimizer state (train.* keys, train.adam_m/v.* tensors) */
int qs_trainer_write_checkpoint(const qs_trainer *t, struct qs_gguf_writer *w, qs_err *err);
struct qs_gguf;
/* Resumes from a checkpoint written by qs_trainer_write_checkpoint with the same shapes. */
int qs_trainer_load_checkpoint(qs_trainer *t, const struct qs_gguf *g, qs_err *err);

#endif
