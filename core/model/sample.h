/* core/model/sample.h — token sampling: greedy (temperature 0), temperature, top-k, top-p and an
 * optional repetition penalty, from a seeded generator (same seed, same tokens). */
#ifndef QS_SAMPLE_H
#define QS_SAMPLE_H

#include <stdint.h>

typedef struct qs_sampler {
    float temp;          /* <= 0: greedy */
    int top_k;           /* <= 0: off */
    float top_p;         /* >= 1: off */
    float repeat_penalty;/* 1: off */
    int repeat_last_n;
    uint64_t state;      /* generator state (seeded) */
} qs_sampler;

void qs_sampler_init(qs_sampler *s, float temp, int top_k, float top_p, uint64_t seed);
/* history: the tokens so far (for the repetition penalty), may be NULL */
int32_t qs_sample(qs_sampler *s, const float *logits, int V, const int32_t *history, int n_history);

#endif
