/* core/data/kld.h — KL divergence against a base model, as llama-perplexity computes it
 * (spec/perplexity.md §2): the base run stores, for every scored position, 16-bit
 * log-probability records (scale, min_log_prob, q[V]; logits more than 16 below the top
 * clip), in memory or in the `_logits_` file llama-perplexity reads and writes; a candidate
 * is evaluated on the same chunks and compared position by position. */
#ifndef QS_KLD_H
#define QS_KLD_H

#include <stdint.h>

#include "core/util/err.h"
#include "core/data/eval.h"
#include "core/model/infer.h"
#include "core/util/progress.h"
#include "core/model/tokenizer.h"

typedef struct qs_kld_base {
    int n_ctx, n_vocab, n_chunk;
    int32_t *tokens;       /* n_chunk · n_ctx, before BOS substitution */
    uint16_t *records;     /* n_records · qs_kld_record_slots(n_vocab) */
    int64_t n_records;
} qs_kld_base;

typedef struct qs_kld_stats {
    int64_t count;
    double ppl_q, ppl_q_unc, ppl_base, ppl_base_unc, cor, ln_ratio, ln_ratio_unc, ratio, ratio_unc, diff, diff_unc;
    double kld_mean, kld_unc, kld_max, kld_min, kld_median, kld_pct[8]; /* 99.9 99 95 90 10 5 1 0.1 */
    double dp_mean, dp_unc, dp_max, dp_min, dp_median, dp_pct[10];      /* 99.9 99 95 90 75 25 10 5 1 0.1 (%) */
    double rms_dp, rms_dp_unc, same_top, same_top_unc;                  /* % */
} qs_kld_stats;

int64_t qs_kld_record_slots(int n_vocab);
/* The base run: tokenizes text (with BOS), evaluates n_chunks chunks (<= 0: all), keeps the
 * records; also fills the plain perplexity of the base model when ppl is not NULL. */
int qs_kld_base_compute(qs_llm *l, const qs_vocab *v, const char *text, size_t len, int n_ctx, int n_chunks,
                        qs_progress *prog, qs_kld_base *out, qs_ppl *ppl, qs_err *err);
int qs_kld_base_write(const char *path, const qs_kld_base *b, qs_err *err);
int qs_kld_base_read(const char *path, qs_kld_base *b, qs_err *err);
void qs_kld_base_free(qs_kld_base *b);
/* The candidate run against b (bos: the vocabulary's BOS when it adds one, else -1). */
int qs_kld_compare(qs_llm *l, const qs_kld_base *b, int32_t bos, qs_progress *prog, qs_kld_stats *out, qs_err *err);

#endif
