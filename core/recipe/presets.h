/* core/recipe/presets.h — llama-quantize's per-tensor type choice for its presets (ftypes), exactly
 * as spec/llama-quant-presets.md describes: quantizable tensors (§2.2), categories (§2.3),
 * counters in llama-quantize's tensor order (§2.1, §2.5), the mixing rules (§5) and the
 * block-size fallback (§4). In scope: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K,
 * Q2_K_S, Q3_K_S/M/L, Q4_K_S/M, Q5_K_S/M, Q6_K, IQ4_NL, IQ4_XS. */
#ifndef QS_PRESETS_H
#define QS_PRESETS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/util/err.h"

typedef struct qs_preset_tensor {
    const char *name;
    int64_t ne[4];
    int type;          /* current type */
} qs_preset_tensor;

typedef struct qs_preset_model {
    const char *arch;
    int n_layer, n_head, n_head_kv, n_expert;
    bool has_imatrix;
    const qs_preset_tensor *t;
    int n;
} qs_preset_model;

/* llama-quantize's tensor order (§2.1): layer number of "blk.N." (−1 without), then strcmp */
int qs_llama_tensor_cmp(const char *a, const char *b);
/* §2.2: whether llama-quantize may quantize a tensor of this name and shape */
bool qs_preset_quantizable(const char *name, const int64_t ne[4]);
/* ftype names accepted (case-insensitive): "Q4_K_M", "q4_k", … ; -1 if unknown */
int qs_preset_ftype(const char *name);
/* the ftype named after a type ("Q4_K_M" for q4_K, "Q8_0" for q8_0), -1 if none */
int qs_preset_ftype_of_type(int type);
/* the name of an ftype id ("Q4_K_M"), NULL if unknown */
const char *qs_preset_name(int ftype);
/* out[i] = the type llama-quantize gives tensor i (its current type when not quantized) */
int qs_preset_types(int ftype, const qs_preset_model *pm, int *out, qs_err *err);

#endif
