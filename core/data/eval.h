/* core/eval.h — perplexity as llama-perplexity computes it (spec/perplexity.md §1): the text
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
/* n_chunks <= 0: all chunks. The context of l must hold n_ctx tokens. */
int qs_perplexity(qs_llm *l, const qs_vocab *v, const char *text, size_t len, int n_ctx, int n_chunks,
                  qs_progress *prog, qs_ppl *out, qs_err *err);
/* nll of target under logits (V values): −(l_t − max − log Σ exp(l − max)) */
double qs_token_nll(const float *logits, int V, int32_t target);

#endif
