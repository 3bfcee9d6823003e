/* core/data/eval.c — perplexity. */
#include "core/data/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

int qs_eval_batch_seqs(int n_ctx, int n_vocab, int n_chunks)
{
    /* at most QS_EVAL_BATCH_TOKENS tokens and QS_EVAL_BATCH_LOGITS logits a pass */
    int per = QS_EVAL_BATCH_TOKENS / n_ctx;
    int64_t by_logits = QS_EVAL_BATCH_LOGITS / ((int64_t)n_ctx * n_vocab);
    if (per > by_logits) per = (int)by_logits;
    if (per > n_chunks) per = n_chunks;
    return per < 1 ? 1 : per;
}

int qs_eval_chunks(qs_llm *l, const int32_t *toks, int nc, int n_ctx, int32_t bos, qs_progress *prog,
                   qs_chunk_fn fn, void *ctx, qs_err *err)
{
    int V = qs_llm_n_vocab(l), per = qs_eval_batch_seqs(n_ctx, V, nc), rc = 0;
    float *logits = malloc((size_t)per * (size_t)n_ctx * (size_t)V * sizeof *logits);
    int32_t *chunk = malloc((size_t)per * (size_t)n_ctx * sizeof *chunk);
    if (!logits || !chunk) rc = qs_err_set(err, QS_E_OOM, "out of memory");
    qs_llm_set_cancel(l, prog ? &prog->cancel : NULL);
    for (int k0 = 0; !rc && k0 < nc; k0 += per) {
        int ns = nc - k0 < per ? nc - k0 : per;
        memcpy(chunk, toks + (int64_t)k0 * n_ctx, (size_t)ns * (size_t)n_ctx * sizeof *chunk);
        for (int s = 0; bos >= 0 && s < ns; s++) chunk[(size_t)s * n_ctx] = bos;
        rc = qs_llm_eval_seqs(l, chunk, ns, n_ctx, logits, err);
        for (int s = 0; !rc && s < ns; s++) rc = fn(ctx, k0 + s, logits + (size_t)s * n_ctx * V, err);
        if (!rc && !qs_progress_step(prog, k0 + ns, nc)) rc = qs_err_set(err, QS_E_CANCELLED, "cancelled");
    }
    qs_llm_set_cancel(l, NULL);
    free(logits);
    free(chunk);
    return rc;
}

typedef struct ppl_acc {
    const int32_t *toks;
    int n_ctx, V;
    qs_ppl *out;
} ppl_acc;

static int ppl_chunk(void *ctx, int k, const float *logits, qs_err *err)
{
    (void)err;
    ppl_acc *a = ctx;
    for (int j = a->n_ctx / 2; j < a->n_ctx - 1; j++) {
        double nll = qs_token_nll(logits + (size_t)j * a->V, a->V, a->toks[(int64_t)k * a->n_ctx + j + 1]);
        a->out->nll_sum += nll;
        a->out->nll2_sum += nll * nll;
        a->out->count++;
    }
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
    ppl_acc a = {toks, n_ctx, qs_llm_n_vocab(l), out};
    rc = qs_eval_chunks(l, toks, nc, n_ctx, qs_vocab_add_bos(v) ? qs_vocab_bos(v) : -1, prog, ppl_chunk, &a, err);
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
