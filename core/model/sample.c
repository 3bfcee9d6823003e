#include "core/model/sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void qs_sampler_init(qs_sampler *s, float temp, int top_k, float top_p, uint64_t seed)
{
    *s = (qs_sampler){temp, top_k, top_p, 1.0f, 64, seed * 0x9E3779B97F4A7C15ull + 1};
}

static double next_uniform(qs_sampler *s)
{
    s->state ^= s->state << 13;
    s->state ^= s->state >> 7;
    s->state ^= s->state << 17;
    return (double)(s->state >> 11) / 9007199254740992.0;
}

typedef struct cand {
    int32_t id;
    float logit;
} cand;

static int by_logit_desc(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return x->id - y->id;
}

int32_t qs_sample(qs_sampler *s, const float *logits, int V, const int32_t *history, int n_history)
{
    cand *c = malloc((size_t)V * sizeof *c);
    if (!c) return 0;
    for (int i = 0; i < V; i++) c[i] = (cand){i, logits[i]};
    if (s->repeat_penalty != 1.0f && history)
        for (int h = n_history - s->repeat_last_n < 0 ? 0 : n_history - s->repeat_last_n; h < n_history; h++) {
            int32_t t = history[h];
            if (t >= 0 && t < V) c[t].logit = c[t].logit > 0 ? c[t].logit / s->repeat_penalty : c[t].logit * s->repeat_penalty;
        }
    int32_t out;
    if (s->temp <= 0) {
        int best = 0;
        for (int i = 1; i < V; i++)
            if (c[i].logit > c[best].logit) best = i;
        out = c[best].id;
    } else {
        qsort(c, (size_t)V, sizeof *c, by_logit_desc);
        int n = s->top_k > 0 && s->top_k < V ? s->top_k : V;
        double *p = malloc((size_t)n * sizeof *p), sum = 0;
        for (int i = 0; i < n; i++) sum += p[i] = exp(((double)c[i].logit - c[0].logit) / s->temp);
        if (s->top_p < 1.0f) {
            double acc = 0;
            int keep = n;
            for (int i = 0; i < n; i++) {
                acc += p[i] / sum;
                if (acc >= s->top_p) {
                    keep = i + 1;
                    break;
                }
            }
            n = keep;
            sum = 0;
            for (int i = 0; i < n; i++) sum += p[i];
        }
        double r = next_uniform(s) * sum;
        out = c[n - 1].id;
        for (int i = 0; i < n; i++) {
            r -= p[i];
            if (r < 0) {
                out = c[i].id;
                break;
            }
        }
        free(p);
    }
    free(c);
    return out;
}
