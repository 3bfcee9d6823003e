/* core/recipe/qat.h — quantization-aware training: a float llama model fine-tuned with its recipe in
 * the loop, on the project's own trainer (core/train.h).
 *
 * The model's tensors become the trainer's float master weights. Before every optimizer step
 * each weight the recipe quantizes is fake-quantized once — quantized with its entry's config
 * through qs_quant_run (RTN, NF4/FP4, any GGML type, the type after llama-quantize's fallback)
 * and dequantized — and the forward pass reads those values (qs_trainer_set_forward). The
 * backward pass takes the straight-through estimator: d loss/d w = d loss/d w_q, accumulated
 * into the masters, which the trainer's AdamW (warm-up, cosine decay, gradient clipping)
 * updates. Kept tensors (norms, tensors the recipe keeps) train as plain floats. Methods that
 * need calibration (gptq, awq) are refused: they cannot run on every step.
 * Learnable scales (LSQ) are not implemented: the grids are the quantizer's own, recomputed
 * from the masters on every step.
 *
 * The trained model is a qs_model view over the masters (qs_qat_model): quantized tensors as
 * F32 (what the recipe quantizes on export, exactly as it was fake-quantized), kept tensors in
 * their original float type, the original's metadata — for qs_recipe_resolve + qs_export_gguf
 * or the inference engine. */
#ifndef QS_QAT_H
#define QS_QAT_H

#include <stdint.h>

#include "core/util/err.h"
#include "core/model/model.h"
#include "core/util/progress.h"
#include "core/recipe/recipe.h"

typedef struct qs_qat_config {
    int batch, seq;              /* windows per step, tokens per window (≤ the model's context) */
    int64_t steps, warmup;
    float lr, min_lr, weight_decay, clip;
    uint64_t seed;
    int n_threads;               /* the quantizer's; ≤ 0: all cores */
} qs_qat_config;

/* batch 8, seq 128, 300 steps, warm-up 20, lr 1e-4 → 1e-5, no weight decay, clip 1, seed 1234 */
void qs_qat_config_default(qs_qat_config *c);

typedef struct qs_qat qs_qat;

/* m: a llama model the trainer can run (rotary over whole heads, the normal RoPE style, no
 * biases), every trained tensor F32, F16 or BF16; t: a recipe resolved on m (entries point into
 * m, which must outlive the qs_qat); bos ≥ 0: every window starts with it. */
qs_qat *qs_qat_new(const qs_model *m, const qs_recipe_table *t, const qs_qat_config *c, int bos, qs_err *err);
void qs_qat_free(qs_qat *q);
struct qs_trainer *qs_qat_trainer(qs_qat *q);
int64_t qs_qat_step_no(const qs_qat *q);
int64_t qs_qat_n_quantized(const qs_qat *q);   /* entries fake-quantized per step */
double qs_qat_last_loss(const qs_qat *q);     /* training loss of the last step (NAN before) */

/* The fake-quantized weights of tensor name that the forward pass reads (n: their count), NULL
 * when the recipe keeps the tensor. */
float *qs_qat_forward_weights(qs_qat *q, const char *name, int64_t *n);
/* Fake-quantizes every quantized weight of the masters into the forward weights. */
int qs_qat_fake_quant(qs_qat *q, qs_err *err);
/* One step on windows drawn from stream[0 … n): fake-quantize, loss and gradients, AdamW.
 * *loss: the loss before the update. */
int qs_qat_step(qs_qat *q, const int32_t *stream, int64_t n, double *loss, qs_err *err);
/* Runs the remaining steps; prog (may be NULL) gets done = steps taken, total = steps after every
 * step; a cancel stops after the step in progress with QS_E_CANCELLED (the masters stay usable). */
int qs_qat_run(qs_qat *q, const int32_t *stream, int64_t n, qs_progress *prog, qs_err *err);
/* Mean loss (nats/token) on up to max_windows consecutive windows of seq + 1 tokens of ids
 * (bos first when set), with the current fake-quantized weights (fake-quantizes first). NAN when
 * the text is shorter than a window or memory ran out. */
double qs_qat_eval_loss(qs_qat *q, const int32_t *ids, int64_t n, int max_windows, qs_err *err);

/* The trained model as a view (see above), owned by q and valid until the next step or
 * qs_qat_free; NULL on error. */
const qs_model *qs_qat_model(qs_qat *q, qs_err *err);

#endif
