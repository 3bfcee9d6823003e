/* core/data/calib.h — calibration: the statistics of every linear layer's input.
 *
 * qs_calib_collect runs N chunks of L tokens of a text through the model (consecutive,
 * non-overlapping windows, the first token of each replaced by BOS when the vocabulary adds one,
 * as llama-imatrix does) and, per distinct linear input ("site": attn_q/k/v share one, ffn_gate/up
 * share one), accumulates in double: Σ x xᵀ (for GPTQ's H = 2/N_seq · Σ x xᵀ), Σ |x| and max |x|
 * per channel (AWQ), Σ x² and the row count (the imatrix), and keeps a uniform random subset of at
 * most keep_rows input rows (reservoir sampling, fixed seed) for output-error metrics and AWQ's
 * search. Memory is set by the layer sizes and keep_rows, never by N.
 * qs_calib_for_tensor gives one weight's view (qs_calib), which qs_quant_run takes. */
#ifndef QS_CALIB_H
#define QS_CALIB_H

#include <stdbool.h>
#include <stdint.h>

#include "core/util/err.h"
#include "core/model/infer.h"
#include "core/util/progress.h"
#include "core/quant/quant.h"
#include "core/model/tokenizer.h"

typedef struct qs_calib_site {
    char names[3][64];   /* the weights reading this input */
    int n_names;
    int64_t cols;
    double *xtx;         /* [cols][cols] Σ x xᵀ (NULL unless hessians were asked for) */
    double *abs_sum, *sq_sum; /* [cols] Σ|x|, Σx² */
    float *max_abs;      /* [cols] */
    float *rows;         /* [n_keep][cols] */
    int64_t n_keep, n_tokens;
} qs_calib_site;

typedef struct qs_calib_opts {
    int n_chunks;        /* <= 0: every chunk of the text */
    int n_ctx;           /* tokens per chunk */
    int keep_rows;       /* rows kept per site (0: none) */
    bool hessians;       /* accumulate Σ x xᵀ */
    uint64_t seed;
    const char *prefix;  /* observe only inputs of weights whose names start with it (NULL: all) */
} qs_calib_opts;

typedef struct qs_calib_set {
    qs_calib_site *sites;
    int n_sites, cap_sites;
    int n_chunks, n_ctx;  /* as run */
    uint64_t rng;         /* reservoir sampling state */
    int keep_rows;
    bool hessians;
} qs_calib_set;

void qs_calib_opts_default(qs_calib_opts *o);
int qs_calib_collect(qs_llm *l, const qs_vocab *v, const char *text, size_t len, const qs_calib_opts *o,
                     qs_progress *prog, qs_calib_set **out, qs_err *err);
void qs_calib_set_free(qs_calib_set *s);
const qs_calib_site *qs_calib_find(const qs_calib_set *s, const char *weight);
/* with_h: build H (needs a set collected with hessians) */
int qs_calib_for_tensor(const qs_calib_set *s, const char *weight, bool with_h, qs_calib *out, qs_err *err);
void qs_calib_free(qs_calib *c);
/* The cache (so the workbench calibrates a model on a text once): the key names the model's
 * tensor table, the text's bytes and the options; save writes the set as GGUF (F64 sums, F32 rows;
 * temp file, fsync, rename); load validates every record and the key (a mismatch, a missing file
 * or a corrupt one is an error, and the caller calibrates anew). */
void qs_calib_key(const char table_hash[32], const char *text, size_t len, const qs_calib_opts *o, char out[40]);
int qs_calib_save(const qs_calib_set *s, const char *path, const char *key, qs_err *err);
/* qs_calib_load also checks the cache's checksum (qs_calib_verify: 64-bit FNV-1a over the tensors'
 * names, sizes and bytes, key calib.checksum) and refuses a mismatch; qs_calib_load_gguf parses
 * without it. */
qs_calib_set *qs_calib_load(const char *path, const char *key, qs_err *err);
struct qs_gguf;
int qs_calib_verify(const struct qs_gguf *g, qs_err *err);
qs_calib_set *qs_calib_load_gguf(const struct qs_gguf *g, const char *key, qs_err *err);

/* The imatrix of the set (spec/imatrix.md §2): one entry per blk.* weight, names sorted
 * byte-wise, written as GGUF (temp file, fsync, rename). */
int qs_calib_write_imatrix(const qs_calib_set *s, const char *path, const char *dataset, qs_err *err);

#endif
