/* core/eval.c — perplexity. */
#include "core/data/eval.h"

#include <math.h>
#include <stdlib.h>

double qs_token_nll(const float *logits, int V, int32_t target)
{
    float m = logits[0];
    for (int i = 1; i < V; i++) m = logits[i] > m ? logits[i] : m;
    double S = 0;
    for (int i = 0; i < V; i++) S += (double)expf(logits[i] - m);
    return -((double)logits[target] - (double)m - log(S));
}

int qs_eval_prepare(const qs_llm *l, const qs_vocab *v, const char *text, size_t len, int n_ctx, int n_chunks,
                    int32_t **toks, int64_t *nt, int *nc, qs_err *err)
{
    *toks = NULL;
    if (n_ctx < 4 || n_ctx > qs_llm_n_ctx(l))
        return qs_err_set(err, QS_E_USAGE, "context %d: between 4 and the model's %d", n_ctx, qs_llm_n_ctx(l));
    int rc = qs_tokenize(v, text, len, true, false, toks, nt, err);
    if (rc) return rc;
    if (*nt < 2 * (int64_t)n_ctx) {
        free(*toks);
        *toks = NULL;
        return qs_err_set(err, QS_E_INPUT, "%lld tokens: at least 2 × %d are needed", (long long)*nt, n_ctx);
    }
    int64_t avail = *nt / n_ctx;
    *nc = n_chunks > 0 && n_chunks < avail ? n_chunks : (int)avail;
    return 0;
}

int qs_perplexity(qs_llm *l, const qs_vocab *v, const char *text, size_t len, int n_ctx, int n_chunks,
                  qs_progress *prog, qs_ppl *out, qs_err *err)
{
    *out = (qs_ppl){0};
    int32_t *toks;
    int64_t nt;
    int nc, rc = qs_eval_prepare(l, v, text, len, n_ctx, n_chunks, &toks, &nt, &nc, err);
    if (rc) return rc;
    int V = qs_llm_n_vocab(l), first = n_ctx / 2;
    float *logits = malloc((size_t)n_ctx * (size_t)V * sizeof *logits);
    int32_t *chunk = malloc((size_t)n_ctx * sizeof *chunk);
    if (!logits || !chunk) rc = qs_err_set(err, QS_E_OOM, "out of memory");
    for (int k = 0; !rc && k < nc; k++) {
        for (int i = 0; i < n_ctx; i++) chunk[i] = toks[(int64_t)k * n_ctx + i];
        if (qs_vocab_add_bos(v)) chunk[0] = qs_vocab_bos(v);
        qs_llm_reset(l);
        rc = qs_llm_eval(l, chunk, n_ctx, 0, logits, err);
        for (int j = first; !rc && j < n_ctx - 1; j++) {
            double nll = qs_token_nll(logits + (size_t)j * V, V, toks[(int64_t)k * n_ctx + j + 1]);
            out->nll_sum += nll;
            out->nll2_sum += nll * nll;
            out->count++;
        }
        if (!rc && !qs_progress_step(prog, k + 1, nc)) rc = qs_err_set(err, QS_E_CANCELLED, "cancelled");
    }
    free(logits);
    free(chunk);
    free(toks);
    if (rc) return rc;
    double mean = out->nll_sum / (double)out->count, var = out->nll2_sum / (double)out->count - mean * mean;
    out->ppl = exp(mean);
    out->ppl_err = var > 0 && out->count > 1 ? sqrt(var / (double)(out->count - 1)) * out->ppl : 0;
    out->n_chunks = nc;
    out->n_ctx = n_ctx;
    out->n_tokens = nt;
    return 0;
}
