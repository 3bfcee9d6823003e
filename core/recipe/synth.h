/* core/recipe/synth.h — random-weight llama GGUFs of real shapes (issue 13), so benchmarks and scale
 * tests can use real sizes without downloads.
 *
 * A shape is a row of a small table (tinyllama, llama-8b, …). The file has the llama.* keys
 * the model reader and llama.cpp expect, GGUF llama tensor names in llama-quantize's order
 * (core/presets.h qs_llama_tensor_cmp), and weights drawn from the seed alone: every row of
 * every tensor has its own generator state (seed, tensor name, row), so the bytes do not
 * depend on the thread count. Statistics are roughly those of trained checkpoints: normal
 * weights (σ 0.02 for the embeddings, 1/√fan_in for the linears, the residual-stream writers
 * attn_output/ffn_down further divided by √(2·layers)), norms near 1.0, a few outlier input
 * channels (columns ×10…20, the same channels in every linear reading the residual stream)
 * and a few isolated large weights (15…40σ) per matrix.
 * Types: the tensors are quantized with the project's own quantizers (qs_ggml_quantize) and
 * llama-quantize's per-tensor choice for presets (qs_preset_types). The file is streamed:
 * one row chunk of one tensor is in memory at a time (qs_gguf_writer_add_tensor_src), written
 * to a temporary file beside the target, fsync'ed and renamed. */
#ifndef QS_SYNTH_H
#define QS_SYNTH_H

#include <stdbool.h>
#include <stdint.h>

#include "core/util/err.h"
#include "core/util/progress.h"

typedef struct qs_synth_shape {
    const char *name;
    uint32_t n_embd, n_layer, n_ff, n_head, n_head_kv, n_vocab, n_ctx;
    float rope_base, norm_eps;
    bool tied_output;        /* no output.weight: the embeddings are the output projection */
    const char *about;       /* one line: what it imitates */
} qs_synth_shape;

/* the table (n shapes); qs_synth_shape_find: by name (case-insensitive), NULL when unknown */
const qs_synth_shape *qs_synth_shapes(int *n);
const qs_synth_shape *qs_synth_shape_find(const char *name);
/* number of weights of a shape */
int64_t qs_synth_shape_params(const qs_synth_shape *s);

/* The type argument: a GGML type as ggml spells it ("f16", "q4_K", "q8_0": every matrix in
 * that type, norms F32, like llama-quantize --pure, with its block-size fallback), else a
 * llama-quantize preset, case-insensitive ("Q4_K_M", "Q8_0", "q2_k": its per-tensor mix),
 * else a GGML type name in any case. *ftype is the preset (-1 for a pure type), *type the
 * pure type (-1 for a preset). */
int qs_synth_parse_type(const char *name, int *ftype, int *type, qs_err *err);

struct qs_gguf;
typedef struct qs_synth_opts {
    const qs_synth_shape *shape;
    const char *type;            /* as qs_synth_parse_type; NULL: "f16" */
    uint64_t seed;
    const struct qs_gguf *vocab; /* tokenizer.* keys copied from it (same token count as the shape);
                                    NULL: a synthetic SentencePiece ("llama") vocabulary */
    int n_threads;               /* <= 0: all cores */
} qs_synth_opts;

/* the vocabulary GGUF can serve the shape: it has tokenizer.ggml.tokens, as many as n_vocab */
int qs_synth_check_vocab(const qs_synth_shape *s, const struct qs_gguf *v, qs_err *err);
/* Writes the model to path. Progress counts tensors. */
int qs_synth_write(const qs_synth_opts *o, const char *path, qs_progress *prog, qs_err *err);

#endif
