/* core/recipe/recipe.h — quantization recipes: which config every tensor of a model gets.
 *
 * JSON (cJSON):
 *   {"quantscope_recipe": 1,
 *    "model": {"file": "m.gguf", "architecture": "llama", "tensors": 48, "table_hash": "…"},
 *    "default": {"method": "q4_K"},
 *    "rules": [{"pattern": "blk\\.[0-3]\\.ffn_down", "config": {"method": "q6_K"}}, …],
 *    "overrides": {"output.weight": {"method": "q8_0"}}}
 * A config is {"method": NAME, knob: value …} with the knobs of qs_method_table, or
 * {"method": "keep"} (the tensor stays as it is). Patterns are regular expressions (POSIX
 * ERE syntax as before, run by the bounded engine of core/rx.h, compiled once per rule) searched
 * in the GGUF name; the first matching rule wins; overrides beat rules. A rule the engine's limits
 * stop is an error "rule 'P' is too complex" (QS_E_INPUT).
 * Only matrices (2-D and up, not norms or biases) are quantized; the rest is kept.
 * Resolution applies llama-quantize's block-size fallbacks and reports them as warnings, as it
 * does patterns that match nothing. Unknown keys, bad configs and a recipe made for another
 * model (tensor table hash) are errors. */
#ifndef QS_RECIPE_H
#define QS_RECIPE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/util/err.h"
#include "core/model/model.h"
#include "core/quant/quant.h"

struct qs_rx;
typedef struct qs_recipe_rule {
    char *pattern;
    qs_qconfig cfg;
    bool keep;
    struct qs_rx *rx;            /* rules: the compiled pattern (owned); overrides: NULL */
} qs_recipe_rule;

typedef struct qs_recipe {
    char model_file[256], model_arch[64], table_hash[32];
    int64_t model_tensors;
    qs_qconfig def;
    bool def_keep;
    qs_recipe_rule *rules;
    int n_rules;
    qs_recipe_rule *overrides;   /* pattern = the exact tensor name */
    int n_overrides;
} qs_recipe;

typedef struct qs_recipe_entry {
    const qs_tensor *t;
    bool keep;                   /* left as in the file */
    qs_qconfig cfg;
    int ggml_type;               /* GGML methods: the type after fallback, else -1 */
    double bpw;                  /* of the result (the file's own for kept tensors) */
    int64_t bytes;
} qs_recipe_entry;

typedef struct qs_recipe_table {
    qs_recipe_entry *e;
    int64_t n;
    char warnings[2048];         /* one per line */
} qs_recipe_table;

void qs_recipe_init(qs_recipe *r, const qs_model *m);      /* empty recipe for m: default keep */
void qs_recipe_free(qs_recipe *r);
/* "q4_K", "keep", "rtn:bits=3,group=64,asym=true", "nf4:block=128,double_quant=true" */
int qs_config_parse(const char *s, qs_qconfig *cfg, bool *keep, qs_err *err);
void qs_config_format(const qs_qconfig *cfg, bool keep, char *buf, size_t n);
int qs_recipe_add_rule(qs_recipe *r, const char *pattern, const char *config, qs_err *err);
int qs_recipe_set_default(qs_recipe *r, const char *config, qs_err *err);
/* the config of one tensor (exact name), beating every rule */
int qs_recipe_set_override(qs_recipe *r, const char *tensor, const char *config, qs_err *err);
/* One override per tensor with the type it has in a quantized file (F32 → keep). */
int qs_recipe_from_model(qs_recipe *r, const qs_model *quantized, qs_err *err);
/* One override per tensor with the type llama-quantize's preset ("Q4_K_M" …) gives it, for a
 * run with or without an importance matrix. */
int qs_recipe_from_preset(qs_recipe *r, const qs_model *m, const char *preset, bool has_imatrix, qs_err *err);
int qs_recipe_load(const char *path, qs_recipe *r, qs_err *err);
int qs_recipe_parse(const char *json, size_t len, qs_recipe *r, qs_err *err);
int qs_recipe_save(const char *path, const qs_recipe *r, qs_err *err);
/* hash of the model's tensor table (names and shapes, in any order), as stored in recipes */
void qs_model_table_hash(const qs_model *m, char out[32]);
/* what a recipe may quantize: matrices (2-D and up), not norms or biases */
bool qs_recipe_quantizable(const qs_tensor *t);
int qs_recipe_resolve(const qs_recipe *r, const qs_model *m, bool force, qs_recipe_table *out, qs_err *err);
void qs_recipe_table_free(qs_recipe_table *t);
/* some quantized entry's method needs calibration data (gptq, awq) */
bool qs_recipe_table_needs_calib(const qs_recipe_table *t);
/* some quantized entry's method is not a GGML type (rtn, nf4, gptq, awq …) */
bool qs_recipe_table_has_non_ggml(const qs_recipe_table *t);

struct qs_llm;
struct qs_progress;
/* What an application hands on besides installing weights (exports take the codes): take is
 * called once per quantized entry with the result holding its nrows rows from row0 on (AWQ
 * entries searched jointly share one result); its error stops the application. */
typedef struct qs_recipe_sink {
    int (*take)(void *ctx, int64_t entry, const qs_qresult *r, int64_t row0, int64_t nrows, qs_err *err);
    void *ctx;
} qs_recipe_sink;
struct qs_calib_set;
struct qs_calib_opts;
struct qs_vocab;
/* Quantizes every non-kept tensor with its config and installs the dequantized weights
 * (l may be NULL when only the sink wants the results: GGML entries are then skipped).
 * calib: the statistics gptq/awq entries need (NULL: such an entry is an error). AWQ entries
 * that share an input (attn_q/k/v, ffn_gate/up) with the same config get one joint scale
 * search, as AWQ's mappings do, so the scales could be folded into the norm before them;
 * attn_output gets AWQ's quantizer and clip without scales when attn_v cannot carry them
 * (grouped-query attention: v has fewer rows than o has columns). */
int qs_recipe_apply(const qs_recipe_table *t, struct qs_llm *l, const struct qs_calib_set *calib, int n_threads,
                    const qs_recipe_sink *sink, struct qs_progress *prog, qs_err *err);
/* Calibrates on text and applies. AWQ sees the original model's activations (collected once,
 * spec/awq.md §1); with sequential, GPTQ block b is calibrated on the outputs of the already
 * quantized blocks before it (spec/gptq.md §1), else on the original activations too. */
int qs_recipe_apply_calibrated(const qs_recipe_table *t, struct qs_llm *l, const struct qs_vocab *v, const char *text,
                               size_t len, const struct qs_calib_opts *o, bool sequential, int n_threads,
                               const qs_recipe_sink *sink, struct qs_progress *prog, qs_err *err);

#endif
