/* core/data/eval.h — perplexity as llama-perplexity computes it (spec/perplexity.md §1): the text
 * tokenized once with BOS, cut into non-overlapping chunks of n_ctx tokens, the first token of
 * each chunk replaced by BOS for the evaluation, the second half of each chunk scored, nll
 * accumulated in double; PPL = exp(mean), ± sqrt(var/(count−1))·PPL. */
#ifndef QS_EVAL_H
#define QS_EVAL_H

#include <stdint.h>

#include "core/util/err.h"
#include "core/model/infer.h"
#include "core/util/progress.h"
#include "core/model/tokenizer.h"

typedef struct qs_ppl {
    double ppl, ppl_err;
    double nll_sum, nll2_sum;
    int64_t count;
    int n_chunks, n_ctx;
    int64_t n_tokens;
} qs_ppl;

/* The text's tokens (BOS first when the vocabulary adds one) and how many chunks of n_ctx to
 * evaluate (n_chunks <= 0: all); at least two chunks' worth of tokens are required. */
int qs_eval_prepare(const qs_llm *l, const qs_vocab *v, const char *text, size_t len, int n_ctx, int n_chunks,
                    int32_t **toks, int64_t *nt, int *nc, qs_err *err);
/* Chunks evaluated together in one qs_llm_eval_seqs pass (each weight read once for all of
 * them): at most QS_EVAL_BATCH_TOKENS tokens and QS_EVAL_BATCH_LOGITS logits a pass, at least 1. */
#define QS_EVAL_BATCH_TOKENS 1024
#define QS_EVAL_BATCH_LOGITS ((int64_t)64 << 20)
int qs_eval_batch_seqs(int n_ctx, int n_vocab, int n_chunks);
/* Evaluates nc chunks of n_ctx tokens (toks[nc·n_ctx]; the first token of each replaced by bos
 * when bos ≥ 0) in passes of qs_eval_batch_seqs chunks, and hands each chunk's logits
 * ([n_ctx][n_vocab]) to fn in chunk order; a non-zero return of fn stops with that code. */
typedef int (*qs_chunk_fn)(void *ctx, int chunk, const float *logits, qs_err *err);
int qs_eval_chunks(qs_llm *l, const int32_t *toks, int nc, int n_ctx, int32_t bos, qs_progress *prog,
                   qs_chunk_fn fn, void *ctx, qs_err *err);
/* n_chunks <= 0: all chunks. The context of l must hold n_ctx tokens; chunks run
 * qs_eval_batch_seqs at a time (the engine's cache grows to hold them); prog's cancel flag stops
 * the pass between blocks. */
int qs_perplexity(qs_llm *l, const qs_vocab *v, const char *text, size_t len, int n_ctx, int n_chunks,
                  qs_progress *prog, qs_ppl *out, qs_err *err);
/* nll of target under logits (V values): −(l_t − max − log Σ exp(l − max)) */
double qs_token_nll(const float *logits, int V, int32_t target);

#endif
