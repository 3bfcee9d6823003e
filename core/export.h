/* core/export.h — a resolved recipe written as a quantized GGUF, the way llama-quantize
 * writes one (spec/llama-quant-presets.md §9, gguf.md §2.9): input metadata in input order,
 * general.quantization_version and general.file_type moved to the end, the quantize.imatrix.*
 * keys when an importance matrix is used, tensors in llama-quantize's order (layer, then
 * name), alignment 32; written to a temporary file and renamed. For the same per-tensor types
 * (and imatrix) the tensor data — and the whole file — equal llama-quantize's output. Only
 * GGML types can be exported; other methods are refused with the nearest GGML type. */
#ifndef QS_EXPORT_H
#define QS_EXPORT_H

#include "err.h"
#include "imatrix.h"
#include "model.h"
#include "progress.h"
#include "recipe.h"

typedef struct qs_export_opts {
    int ftype;                  /* general.file_type (llama_ftype id, qs_preset_ftype); -1: derived from the recipe */
    const qs_imatrix *imatrix;  /* may be NULL */
    const char *imatrix_name;   /* as recorded in quantize.imatrix.file */
    int n_threads;
} qs_export_opts;

int qs_export_gguf(const qs_model *m, const qs_recipe_table *t, const qs_export_opts *o, const char *path,
                   qs_progress *prog, qs_err *err);
/* The recipe as llama-quantize arguments that reproduce it exactly (spec/llama-quant-presets.md
 * §8.3), independent of its mixing rules and counter quirk: *types_text gets one anchored
 * "^name$=type" token per quantizable tensor (tensor order, lower-case types), output and
 * token_embd go to --output-tensor-type / --token-embedding-type, and *cmd is the command line
 * naming types_path, the model and out_path (both malloc'ed). Non-GGML methods and tensors
 * llama-quantize never quantizes are errors. */
int qs_export_llama_quantize(const qs_model *m, const qs_recipe_table *t, const char *imatrix, const char *types_path,
                             const char *out_path, char **types_text, char **cmd, qs_err *err);
/* A llama GGUF as an HF-style checkpoint directory (config.json, model.safetensors in F32,
 * HF names, q/k rows un-permuted); quantscope and transformers read it as the same model. */
int qs_export_hf_dir(const qs_model *m, int32_t bos, int32_t eos, const char *dir, qs_err *err);

#endif
