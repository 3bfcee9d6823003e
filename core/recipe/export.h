/* core/recipe/export.h — a resolved recipe written as a quantized GGUF, the way llama-quantize
 * writes one (spec/llama-quant-presets.md §9, gguf.md §2.9): input metadata in input order,
 * general.quantization_version and general.file_type moved to the end, the quantize.imatrix.*
 * keys when an importance matrix is used, tensors in llama-quantize's order (layer, then
 * name), alignment 32; written to a temporary file and renamed. For the same per-tensor types
 * (and imatrix) the tensor data — and the whole file — equal llama-quantize's output.
 * RTN/GPTQ/AWQ entries go in as the GGML type their grid is (core/qgrid.h: 4-bit g32 → Q4_0 or
 * Q4_1, 8-bit g32 symmetric → Q8_0; the codes from o->grids), AWQ's channel scales folded into
 * the norm or linear before them (and into the other readers of that norm); other configs are
 * refused with the nearest exportable one. HF checkpoints export too: llama keys from
 * config.json, GGUF names, q/k rows in GGUF order, the tokenizer from o->vocab or else from the
 * checkpoint's tokenizer.json (byte-level BPE, core/hf_tokenizer.h). */
#ifndef QS_EXPORT_H
#define QS_EXPORT_H

#include "core/util/err.h"
#include "core/data/imatrix.h"
#include "core/model/model.h"
#include "core/util/progress.h"
#include "core/recipe/recipe.h"

typedef struct qs_export_opts {
    int ftype;                  /* general.file_type (llama_ftype id, qs_preset_ftype); -1: derived from the recipe */
    const qs_imatrix *imatrix;  /* may be NULL */
    const char *imatrix_name;   /* as recorded in quantize.imatrix.file */
    int n_threads;
    const struct qs_qgrid *grids; /* [t->n]: the grids of RTN/GPTQ/AWQ entries (codes NULL elsewhere) or NULL */
    const struct qs_gguf *vocab;  /* HF input: the tokenizer.* keys are copied from this GGUF (NULL: tokenizer.json) */
} qs_export_opts;

int qs_export_gguf(const qs_model *m, const qs_recipe_table *t, const qs_export_opts *o, const char *path,
                   qs_progress *prog, qs_err *err);
/* every entry of t can go into a GGUF (else the refusal qs_export_gguf would give) */
int qs_export_gguf_check(const qs_recipe_table *t, qs_err *err);
struct qs_qgrid;
/* A recipe application's sink keeping every RTN (per row or group), GPTQ and AWQ result as
 * grids[entry] (grids: t->n zeroed qs_qgrid), for qs_export_opts.grids; freed with
 * qs_export_grids_free. */
qs_recipe_sink qs_export_grid_sink(struct qs_qgrid *grids);
void qs_export_grids_free(struct qs_qgrid *grids, int64_t n);

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
/* The files a checkpoint export writes (NULL-terminated). Checkpoint directories are written into
 * a temporary directory beside DIR and swapped in whole; an existing DIR that holds anything else
 * is refused. */
extern const char *const qs_ckpt_files[];
int qs_export_hf_dir(const qs_model *m, int32_t bos, int32_t eos, const char *dir, qs_err *err);

/* A recipe's quantized linears as an HF checkpoint directory: model.safetensors (the linears
 * packed — GPTQ v1 qweight/qzeros/scales/g_idx, or gptq_v2 when an asymmetric zero point is 0
 * (*warning says so); AWQ GEMM qweight/qzeros/scales — every other tensor F16 with AWQ's scales
 * folded in, q/k rows in HF order) and config.json with quantization_config (GPTQ also
 * quantize_config.json; modules that differ from the commonest config as GPTQModel's
 * `dynamic`, kept ones as "-:" entries; AWQ: modules_to_not_convert). grids as
 * qs_export_opts.grids; entries that are no grid of the format are refused. */
int qs_export_hf_quant(const qs_model *m, const qs_recipe_table *t, const struct qs_qgrid *grids, qs_ckpt_format fmt,
                       int32_t bos, int32_t eos, const char *dir, char *warning, size_t wn, qs_err *err);
/* the recipe's configs can go into such a checkpoint (methods and roles; packing shapes are
 * checked on writing) */
int qs_export_hf_quant_check(const qs_recipe_table *t, qs_ckpt_format fmt, qs_err *err);
/* the model can go into an HF checkpoint (qs_export_hf_dir, qs_export_hf_quant check it again):
 * it passed qs_model_open's validation (hp.supported) and its q/k rows split into heads */
int qs_export_hf_model_check(const qs_model *m, qs_err *err);

#endif
