/* core/model/model.h — a model whatever its file format (GGUF, or HF safetensors + config.json).
 *
 * qs_model_open reads only headers: architecture and hyperparameters, tokenizer metadata,
 * and every tensor with its role and block, named both as the file names it and as GGUF
 * names it. Tensor data stay in the mapped files until read. Rows come back as float in GGUF
 * layout: HF q_proj/k_proj rows are permuted as llama.cpp's converter does (spec/gguf.md §8)
 * for llama-family architectures. Any architecture opens; hp.supported says whether the
 * inference engine handles it, and hp.unsupported_why why not. */
#ifndef QS_MODEL_H
#define QS_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util/err.h"

typedef enum qs_role {
    QS_ROLE_OTHER = 0,
    QS_ROLE_TOKEN_EMBD, QS_ROLE_ATTN_NORM, QS_ROLE_ATTN_Q, QS_ROLE_ATTN_K, QS_ROLE_ATTN_V,
    QS_ROLE_ATTN_QKV, QS_ROLE_ATTN_O, QS_ROLE_FFN_NORM, QS_ROLE_FFN_GATE, QS_ROLE_FFN_UP,
    QS_ROLE_FFN_DOWN, QS_ROLE_OUTPUT_NORM, QS_ROLE_OUTPUT, QS_ROLE_ROPE_FREQS,
    QS_ROLE_COUNT
} qs_role;

typedef enum qs_format { QS_FORMAT_GGUF, QS_FORMAT_SAFETENSORS } qs_format;
typedef enum qs_rope_style { QS_ROPE_NORM = 0, QS_ROPE_NEOX = 2 } qs_rope_style;

typedef struct qs_tensor {
    char name[256];          /* as the file names it */
    char gguf_name[64];      /* GGUF name ("blk.3.attn_q.weight"); = name for GGUF files */
    qs_role role;
    int block;               /* layer index, -1 for tensors outside the blocks */
    bool is_bias;
    int type;                /* qs_type; -1 when the dtype has no float reading (U8, BOOL …) */
    const char *dtype;       /* the file's own type name ("q4_K", "BF16" …) */
    int n_dims;
    int64_t ne[4];           /* GGUF order: ne[0] = row length (input features) */
    uint64_t nbytes;
    const uint8_t *data;     /* view into the mapped file */
    int permute_heads;       /* >0: HF q/k rows are permuted into GGUF order with this head count */
} qs_tensor;

typedef struct qs_hparams {
    char arch[64];
    uint32_t n_layer, n_embd, n_ff, n_head, n_head_kv, head_dim, n_rot, n_ctx, n_vocab;
    float rope_base, norm_eps;
    qs_rope_style rope_style;
    bool tied_output;
    bool supported;                /* the inference engine handles this model */
    char unsupported_why[128];
} qs_hparams;

typedef struct qs_tokinfo {
    char kind[32];                 /* "llama" (SPM), "gpt2" (BPE), "bert", … or "none" */
    char pre[64];
    uint32_t n_tokens, n_merges;
    int32_t bos, eos, unk;         /* -1 when unknown */
    bool has_scores;
} qs_tokinfo;

struct qs_gguf;
struct qs_st_set;

typedef struct qs_model {
    char path[4096];
    qs_format format;
    qs_hparams hp;
    qs_tokinfo tok;
    qs_tensor *tensors;
    int64_t n_tensors;
    struct qs_gguf *gguf;          /* GGUF files */
    struct qs_st_set *st;          /* safetensors checkpoints */
    char warning[256];
} qs_model;

/* Sane bounds of hyperparameters (issue 16). A value beyond them is a corrupt header: the model
 * does not open (QS_E_INPUT, naming the key). Values within them that disagree with each other
 * or with the tensors' shapes (head counts not dividing the q/k rows, head_dim·n_head ≠ q rows,
 * token_embd rows ≠ vocabulary, a 1-D weight where a matrix is expected …) leave the model
 * browsable with hp.supported = false and unsupported_why saying what. Every consumer of the
 * hyperparameters (inference, exports) relies on this. */
#define QS_MAX_LAYERS   (1u << 16)
#define QS_MAX_EMBD     (1u << 20)
#define QS_MAX_FF       (1u << 22)
#define QS_MAX_HEADS    (1u << 16)
#define QS_MAX_HEAD_DIM (1u << 16)
#define QS_MAX_VOCAB    (1u << 24)
#define QS_MAX_CTX      (1u << 24)

qs_model *qs_model_open(const char *path, qs_err *err);
/* A model over an opened GGUF (ownership of g passes to the model, also on failure). */
qs_model *qs_model_from_gguf(struct qs_gguf *g, const char *path, qs_err *err);
void qs_model_close(qs_model *m);

/* By file name or GGUF name. */
const qs_tensor *qs_model_find_tensor(const qs_model *m, const char *name);
int64_t qs_tensor_nrows(const qs_tensor *t);      /* ne[1]·ne[2]·ne[3] */
int64_t qs_tensor_nelements(const qs_tensor *t);
double qs_tensor_bpw(const qs_tensor *t);
/* Rows [row0, row0+nrows) as float, GGUF layout; out holds nrows·ne[0] floats. */
int qs_tensor_read_rows(const qs_tensor *t, int64_t row0, int64_t nrows, float *out, qs_err *err);

const char *qs_role_name(qs_role r);
bool qs_arch_supported(const char *arch);
/* Role and block of a GGUF tensor name; false when it is none of the known roles. */
bool qs_role_from_gguf_name(const char *name, qs_role *role, int *block, bool *is_bias);
/* GGUF name of an HF tensor name; false when the name is not a known llama-family tensor. */
bool qs_hf_to_gguf_name(const char *hf, char *out, size_t n);

/* HF name of a GGUF llama tensor (the inverse of qs_hf_to_gguf_name, "model." prefixed). */
bool qs_gguf_to_hf_name(const char *gguf, char *out, size_t n);
/* The HF row of GGUF row r of an attn_q/attn_k matrix of `rows` rows in `heads` heads: the
 * converter's Q/K permutation (spec/gguf.md §8). */
int64_t qs_qk_hf_row(int64_t r, int64_t rows, int heads);
/* config.json → hyperparameters (fields of spec/gguf.md §5); tied_output from
 * tie_word_embeddings. Returns 0 or a negative error for malformed JSON or wrong types. */
int qs_hf_config_parse(const char *text, size_t len, qs_hparams *hp, qs_err *err);

#endif
