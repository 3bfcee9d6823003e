/* The forward pass against llama.cpp's logits and greedy ids for stories260K
 * (golden/ppl/stories260K.ref-*.txt). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/infer.h"
#include "core/model.h"
#include "tests/testutil.h"

static qs_model *stories(void)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/stories260K.gguf", tu_models_dir());
    qs_err err = {0};
    qs_model *m = qs_model_open(p, &err);
    if (!m) cr_skip_test("%s: %s", p, err.msg);
    return m;
}

static char *golden_text(const char *name)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/ppl/%s", tu_golden_dir(), name);
    size_t n;
    uint8_t *d = tu_read(p, &n);
    if (!d) cr_skip_test("%s missing", p);
    char *s = realloc(d, n + 1);
    s[n] = '\0';
    return s;
}

Test(infer, logits_match_llama_cpp)
{
    qs_model *m = stories();
    char *ref = golden_text("stories260K.ref-logits-pos0-3.txt");
    qs_err err = {0};
    qs_llm *l = qs_llm_new(m, 64, &err);
    cr_assert_not_null(l, "%s", err.msg);
    int V = qs_llm_n_vocab(l);
    /* lines "pos=P input=T l0 l1 …": feed the inputs in order, compare every logit */
    int32_t toks[4];
    float *want = malloc(sizeof(float) * 4 * (size_t)V);
    char *line = ref;
    for (int p = 0; p < 4; p++) {
        int pos, input, used;
        cr_assert_eq(sscanf(line, "pos=%d input=%d%n", &pos, &input, &used), 2, "bad golden line %d", p);
        cr_assert_eq(pos, p);
        toks[p] = input;
        char *s = line + used;
        for (int i = 0; i < V; i++) want[p * V + i] = strtof(s, &s);
        line = strchr(s, '\n');
        cr_assert(line || p == 3);
        if (line) line++;
    }
    float *got = malloc(sizeof(float) * 4 * (size_t)V);
    cr_assert_eq(qs_llm_eval(l, toks, 4, 0, got, &err), 0, "%s", err.msg);
    double worst = 0;
    for (int i = 0; i < 4 * V; i++) worst = fmax(worst, fabs((double)got[i] - want[i]));
    cr_assert_lt(worst, 1e-4, "largest logit difference %.3g", worst);
    /* the same, one token at a time through the KV cache */
    for (int p = 0; p < 4; p++) cr_assert_eq(qs_llm_eval(l, toks + p, 1, p, got + p * V, &err), 0);
    worst = 0;
    for (int i = 0; i < 4 * V; i++) worst = fmax(worst, fabs((double)got[i] - want[i]));
    cr_assert_lt(worst, 1e-4, "decode path: largest logit difference %.3g", worst);
    free(got);
    free(want);
    free(ref);
    qs_llm_free(l);
    qs_model_close(m);
}

Test(infer, greedy_ids_from_bos)
{
    qs_model *m = stories();
    char *ref = golden_text("stories260K.ref-greedy64.txt");
    char *s = strchr(ref, ':');
    cr_assert_not_null(s);
    s++;
    qs_err err = {0};
    qs_llm *l = qs_llm_new(m, 128, &err);
    cr_assert_not_null(l, "%s", err.msg);
    int V = qs_llm_n_vocab(l);
    float *logits = malloc(sizeof(float) * (size_t)V);
    int32_t tok = 1;
    for (int p = 0; p < 64; p++) {
        cr_assert_eq(qs_llm_eval(l, &tok, 1, p, logits, &err), 0, "%s", err.msg);
        int best = 0;
        for (int i = 1; i < V; i++)
            if (logits[i] > logits[best]) best = i;
        long want = strtol(s, &s, 10);
        cr_assert_eq(best, want, "greedy id %d: %d, llama.cpp %ld", p, best, want);
        tok = best;
    }
    free(logits);
    free(ref);
    qs_llm_free(l);
    qs_model_close(m);
}
