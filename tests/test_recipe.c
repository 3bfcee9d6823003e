/* Recipes: JSON round trip and errors, resolution order and warnings, and application: the
 * recipe read back from a llama-quantize file, applied to the F32 model, gives the logits of
 * that file bit for bit. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/quant/ggml_types.h"
#include "core/model/infer.h"
#include "core/recipe/recipe.h"
#include "tests/testutil.h"

static qs_model *model_named(const char *name)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", tu_models_dir(), name);
    qs_err err = {0};
    qs_model *m = qs_model_open(p, &err);
    if (!m) tu_skip("%s: %s", p, err.msg);
    return m;
}

Test(recipe, from_quantized_file_reproduces_its_logits)
{
    qs_model *f32 = model_named("stories260K.gguf"), *q = model_named("stories260K-Q4_K_M.gguf");
    qs_recipe r;
    qs_recipe_table t;
    qs_err err = {0};
    qs_recipe_init(&r, f32);
    cr_assert_eq(qs_recipe_from_model(&r, q, &err), 0, "%s", err.msg);
    cr_assert_eq(qs_recipe_resolve(&r, f32, false, &t, &err), 0, "%s", err.msg);
    qs_llm *a = qs_llm_new(f32, 64, &err), *b = qs_llm_new(q, 64, &err);
    cr_assert(a && b, "%s", err.msg);
    cr_assert_eq(qs_recipe_apply(&t, a, NULL, 2, NULL, NULL, &err), 0, "%s", err.msg);
    int32_t toks[32];
    for (int i = 0; i < 32; i++) toks[i] = (i * 7 + 1) % 512;
    float *la = malloc(sizeof(float) * 32 * 512), *lb = malloc(sizeof(float) * 32 * 512);
    cr_assert_eq(qs_llm_eval(a, toks, 32, 0, la, &err), 0);
    cr_assert_eq(qs_llm_eval(b, toks, 32, 0, lb, &err), 0);
    cr_assert_eq(memcmp(la, lb, sizeof(float) * 32 * 512), 0, "logits differ");
    free(la);
    free(lb);
    qs_llm_free(a);
    qs_llm_free(b);
    qs_recipe_table_free(&t);
    qs_recipe_free(&r);
    qs_model_close(q);
    qs_model_close(f32);
}

Test(recipe, resolution_order_and_warnings)
{
    qs_model *m = model_named("stories260K.gguf");
    qs_recipe r;
    qs_err err = {0};
    qs_recipe_init(&r, m);
    cr_assert_eq(qs_recipe_set_default(&r, "q8_0", &err), 0);
    cr_assert_eq(qs_recipe_add_rule(&r, "ffn_down", "rtn:bits=3,group=row,asym=true", &err), 0, "%s", err.msg);
    cr_assert_eq(qs_recipe_add_rule(&r, "blk\\.[0-1]\\.ffn", "keep", &err), 0);
    cr_assert_eq(qs_recipe_add_rule(&r, "blk\\.0\\.attn_q", "q6_K", &err), 0);
    cr_assert_eq(qs_recipe_add_rule(&r, "nothing-matches", "q4_0", &err), 0);
    cr_assert_lt(qs_recipe_add_rule(&r, "blk\\.(", "q4_0", &err), 0, "bad regex");
    cr_assert_lt(qs_recipe_add_rule(&r, "x", "q9_Z", &err), 0, "bad method");
    qs_recipe_table t;
    cr_assert_eq(qs_recipe_resolve(&r, m, false, &t, &err), 0, "%s", err.msg);
    for (int64_t i = 0; i < t.n; i++) {
        const qs_recipe_entry *e = &t.e[i];
        const char *n = e->t->name;
        if (e->t->n_dims < 2) cr_assert(e->keep, "%s: 1-D tensors are kept", n);
        else if (strstr(n, "ffn_down")) cr_assert(!e->keep && e->cfg.method == qs_method_find("rtn") && e->cfg.bits == 3, "%s", n);
        else if (!strncmp(n, "blk.0.ffn", 9) || !strncmp(n, "blk.1.ffn", 9)) cr_assert(e->keep, "%s", n);
        else if (!strcmp(n, "blk.0.attn_q.weight")) cr_assert_eq(e->ggml_type, QS_TYPE_Q8_0, "q6_K falls back to q8_0 on 64 columns");
        else cr_assert_str_eq(e->cfg.method->name, "q8_0", "%s", n);
    }
    cr_assert(strstr(t.warnings, "blk.0.attn_q.weight: q6_K → q8_0"), "%s", t.warnings);
    cr_assert(strstr(t.warnings, "rule 'nothing-matches' matches no tensor"), "%s", t.warnings);
    qs_recipe_table_free(&t);

    /* save, load, resolve again: the same table */
    char *dir = tu_tmpdir(), path[4096];
    snprintf(path, sizeof path, "%s/r.json", dir);
    cr_assert_eq(qs_recipe_save(path, &r, &err), 0, "%s", err.msg);
    qs_recipe back;
    cr_assert_eq(qs_recipe_load(path, &back, &err), 0, "%s", err.msg);
    cr_assert_eq(back.n_rules, r.n_rules);
    for (int i = 0; i < r.n_rules; i++) {
        char a[96], b[96];
        qs_config_format(&r.rules[i].cfg, r.rules[i].keep, a, sizeof a);
        qs_config_format(&back.rules[i].cfg, back.rules[i].keep, b, sizeof b);
        cr_assert_str_eq(a, b);
        cr_assert_str_eq(r.rules[i].pattern, back.rules[i].pattern);
    }
    cr_assert_str_eq(back.table_hash, r.table_hash);
    qs_recipe_free(&back);
    tu_rmtree(dir);
    free(dir);
    qs_recipe_free(&r);
    qs_model_close(m);
}

Test(recipe, parse_errors)
{
    const char *bad[][2] = {
        {"[]", "not a JSON object"},
        {"{\"default\":{\"method\":\"q4_0\"}}", "not a quantscope recipe"},
        {"{\"quantscope_recipe\":1,\"colour\":1}", "unknown key 'colour'"},
        {"{\"quantscope_recipe\":1,\"default\":{\"method\":\"rtn\",\"bitz\":3}}", "unknown key 'bitz'"},
        {"{\"quantscope_recipe\":1,\"default\":{\"method\":\"rtn\",\"bits\":12}}", "bits takes"},
        {"{\"quantscope_recipe\":1,\"rules\":[{\"pattern\":\"(\",\"config\":{\"method\":\"q4_0\"}}]}", "not a valid regular"},
        {"{\"quantscope_recipe\":1,\"rules\":[{\"config\":{\"method\":\"q4_0\"}}]}", "needs \"pattern\""},
        {"{\"quantscope_recipe\":1,\"overrides\":{\"x\":{\"method\":\"nope\"}}}", "unknown method 'nope'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        qs_recipe r;
        qs_err err = {0};
        cr_assert_lt(qs_recipe_parse(bad[i][0], strlen(bad[i][0]), &r, &err), 0, "%s", bad[i][0]);
        cr_assert(strstr(err.msg, bad[i][1]), "%s: %s", bad[i][0], err.msg);
    }
    qs_model *m = model_named("stories260K.gguf");
    qs_recipe r;
    qs_err err = {0};
    const char *other = "{\"quantscope_recipe\":1,\"model\":{\"file\":\"x.gguf\",\"tensors\":3,\"table_hash\":\"tensors:0000000000000001\"}}";
    cr_assert_eq(qs_recipe_parse(other, strlen(other), &r, &err), 0);
    qs_recipe_table t;
    cr_assert_lt(qs_recipe_resolve(&r, m, false, &t, &err), 0);
    cr_assert(strstr(err.msg, "made for another model (x.gguf"), "%s", err.msg);
    cr_assert_eq(qs_recipe_resolve(&r, m, true, &t, &err), 0, "--force resolves anyway");
    qs_recipe_table_free(&t);
    qs_recipe_free(&r);
    qs_model_close(m);
}

/* Issue 16: patterns run under the bounded engine (core/rx.c): the POSIX ERE syntax recipes used
 * keeps working; a pattern that would backtrack for minutes (nested counted repetition,
 * back-references) is refused fast as "rule 'P' is too complex" instead of taking 100 s and GBs. */
Test(recipe, patterns_are_bounded, .timeout = 20)
{
    qs_model *m = model_named("stories260K.gguf");
    struct { const char *pattern; int hits; } ok[] = {
        {"blk\\.[0-3]\\.ffn_down", 4}, {"attn_[kv]", 10}, {"blk\\.[[:digit:]]+\\.attn_q", 5}, {"^output", 1},
        {"(ffn_up|ffn_gate)", 10}, {"blk\\.(1|2)\\.ffn_(up|down)\\.weight$", 4}, {"a{1,3}t{2}n", 20},
        {"blk\\.([0-9])\\.attn_q.*\\1", 0}};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        qs_recipe r;
        qs_recipe_table t;
        qs_err err = {0};
        qs_recipe_init(&r, m);
        cr_assert_eq(qs_recipe_add_rule(&r, ok[i].pattern, "f16", &err), 0, "%s: %s", ok[i].pattern, err.msg);
        cr_assert_eq(qs_recipe_resolve(&r, m, false, &t, &err), 0, "%s: %s", ok[i].pattern, err.msg);
        int hits = 0;
        for (int64_t k = 0; k < t.n; k++) hits += !t.e[k].keep;
        cr_expect_eq(hits, ok[i].hits, "%s: %d tensors", ok[i].pattern, hits);
        qs_recipe_table_free(&t);
        qs_recipe_free(&r);
    }
    const char *slow[] = {"((((.{1,100}){1,100}){1,100}){1,100}){1,100}x",
                          "(.*.*)*[^a-z._0-9]",
                          "((a|b|c|d|.)*)*(\\2)+[^a-z._0-9]"};
    for (size_t i = 0; i < sizeof slow / sizeof *slow; i++) {
        qs_recipe r;
        qs_recipe_table t;
        qs_err err = {0};
        qs_recipe_init(&r, m);
        char json[512];
        snprintf(json, sizeof json, "{\"quantscope_recipe\":1,\"rules\":[{\"pattern\":\"%s\",\"config\":{\"method\":\"f16\"}}]}",
                 slow[i]);
        /* JSON escapes: the backslashes of the C strings are doubled */
        char esc[1024], *o = esc;
        for (const char *p = json; *p; p++) {
            if (*p == '\\') *o++ = '\\';
            *o++ = *p;
        }
        *o = '\0';
        int rc = qs_recipe_parse(esc, strlen(esc), &r, &err);
        if (rc == 0) {
            rc = qs_recipe_resolve(&r, m, false, &t, &err);
            if (rc == 0) qs_recipe_table_free(&t);
            qs_recipe_free(&r);
        }
        cr_expect_lt(rc, 0, "%s is refused", slow[i]);
        cr_expect_eq(err.code, QS_E_INPUT, "%s: %s", slow[i], err.msg);
        cr_expect(strstr(err.msg, "is too complex"), "%s: %s", slow[i], err.msg);
    }
    qs_recipe_free(&(qs_recipe){0});
    qs_model_close(m);
}
