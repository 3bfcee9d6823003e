/* Quantization-aware training (core/qat.h): the straight-through gradients against finite
 * differences of the loss in the fake-quantized weights, the loss going down on kjv-tiny with
 * the Q2_K preset, the exported GGUF carrying the recipe's types and exactly the weights the
 * last forward pass used; the CLI's usage and bad-input errors. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/data/eval.h"
#include "core/recipe/export.h"
#include "core/quant/ggml_types.h"
#include "core/formats/gguf.h"
#include "core/model/hf_tokenizer.h"
#include "core/model/infer.h"
#include "core/model/model.h"
#include "core/recipe/qat.h"
#include "core/recipe/recipe.h"
#include "core/model/tokenizer.h"
#include "core/model/train.h"
#include "tests/testutil.h"

#define KJV_TINY "sample_models/kjv-tiny.gguf"

/* a random untied model whose rows fit q4_0 (32 columns), written as a GGUF under dir */
static qs_model *small_model(const char *dir)
{
    qs_train_config c;
    qs_err err = {0};
    cr_assert_eq(qs_train_preset("gradcheck", &c, &err), 0);
    c.dim = 32, c.ff = 64, c.init_std = 0.2f;
    qs_trainer *t = qs_trainer_new(&c, &err);
    cr_assert_not_null(t, "%s", err.msg);
    char path[4200];
    snprintf(path, sizeof path, "%s/small.gguf", dir);
    qs_gguf_writer *w = qs_gguf_writer_new();
    cr_assert_eq(qs_trainer_write_model(t, w, &err), 0, "%s", err.msg);
    cr_assert_eq(qs_gguf_writer_write(w, path, &err), 0, "%s", err.msg);
    qs_gguf_writer_free(w);
    qs_trainer_free(t);
    qs_model *m = qs_model_open(path, &err);
    cr_assert_not_null(m, "%s", err.msg);
    return m;
}

static void resolve(const qs_model *m, const char *def, const char *pattern, const char *config, qs_recipe *r,
                    qs_recipe_table *t)
{
    qs_err err = {0};
    qs_recipe_init(r, m);
    cr_assert_eq(qs_recipe_set_default(r, def, &err), 0, "%s", err.msg);
    if (pattern) cr_assert_eq(qs_recipe_add_rule(r, pattern, config, &err), 0, "%s", err.msg);
    cr_assert_eq(qs_recipe_resolve(r, m, false, t, &err), 0, "%s", err.msg);
}

/* central differences at h and h/2, Richardson-extrapolated (error O(h⁴)) */
static double finite_difference(qs_trainer *tr, const int32_t *tok, int B, float *x, float h)
{
    double d[2];
    for (int r = 0; r < 2; r++) {
        float x0 = *x, s = r ? h / 2 : h;
        *x = x0 + s;
        double lp = qs_trainer_loss(tr, tok, B, false);
        *x = x0 - s;
        double lm = qs_trainer_loss(tr, tok, B, false);
        *x = x0;
        d[r] = (lp - lm) / (2.0 * s);
    }
    return (4.0 * d[1] - d[0]) / 3.0;
}

/* The straight-through estimator: the gradient a master weight receives is d loss/d w_q, the
 * derivative of the loss in the fake-quantized weight the forward pass read. */
Test(qat, straight_through_gradients_match_finite_differences, .timeout = 60)
{
    char *dir = tu_tmpdir();
    qs_model *m = small_model(dir);
    qs_recipe r;
    qs_recipe_table t;
    resolve(m, "q4_0", "ffn_", "rtn:bits=3,group=16", &r, &t);
    qs_qat_config c;
    qs_qat_config_default(&c);
    c.batch = 2, c.seq = 6;
    qs_err err = {0};
    qs_qat *q = qs_qat_new(m, &t, &c, -1, &err);
    cr_assert_not_null(q, "%s", err.msg);
    cr_assert_eq(qs_qat_n_quantized(q), 16, "token_embd, output and 2 × 7 block matrices");
    qs_trainer *tr = qs_qat_trainer(q);
    int32_t tok[14];
    for (int i = 0; i < 14; i++) tok[i] = (i * 7 + 3) % 11;
    cr_assert_eq(qs_qat_fake_quant(q, &err), 0, "%s", err.msg);
    qs_trainer_zero_grad(tr);
    double base = qs_trainer_loss(tr, tok, 2, true);
    cr_assert(isfinite(base) && base > 0);
    int quantized = 0, changed = 0;
    for (int i = 0; i < qs_trainer_n_params(tr); i++) {
        float *w, *g;
        int64_t n, nf = 0;
        const char *name = qs_trainer_param(tr, i, &w, &g, &n);
        float *fq = qs_qat_forward_weights(q, name, &nf), *x = fq ? fq : w;
        if (fq) {
            cr_assert_eq(nf, n);
            quantized++;
            for (int64_t j = 0; j < n; j++) changed += fq[j] != w[j];
        }
        int64_t pick[3] = {0, n / 2, n - 1};
        for (int64_t j = 0; j < n; j++)
            if (fabsf(g[j]) > fabsf(g[pick[0]])) pick[0] = j;
        for (int k = 0; k < 3; k++) {
            int64_t j = pick[k];
            double fd = finite_difference(tr, tok, 2, &x[j], 2e-2f), an = g[j], mag = fmax(fabs(fd), fabs(an));
            if (k == 0) cr_assert_gt(mag, 1e-3, "%s: the largest gradient is %g; the check would be vacuous", name, an);
            if (mag > 1e-3)
                cr_expect_lt(fabs(fd - an) / mag, 1e-2, "%s[%lld]: master gradient %.6g, d loss/d w_q %.6g", name,
                             (long long)j, an, fd);
            else cr_expect_lt(fabs(fd - an), 1e-4, "%s[%lld]: %.3g vs %.3g", name, (long long)j, an, fd);
        }
    }
    cr_assert_eq(quantized, 16);
    cr_assert_gt(changed, 1000, "the fake-quantized weights differ from the masters");
    qs_qat_free(q);
    qs_recipe_table_free(&t);
    qs_recipe_free(&r);
    qs_model_close(m);
    tu_rmtree(dir);
    free(dir);
}

static const char passage[] =
    "In the beginning God created the heaven and the earth.\n"
    "And the earth was without form, and void; and darkness was upon the face of the deep. And the Spirit of God "
    "moved upon the face of the waters.\n"
    "And God said, Let there be light: and there was light.\n"
    "And God saw the light, that it was good: and God divided the light from the darkness.\n"
    "And God called the light Day, and the darkness he called Night. And the evening and the morning were the first "
    "day.\n";

typedef struct tiny_run {
    qs_model *m;
    qs_vocab *v;
    qs_recipe r;
    qs_recipe_table t;
    qs_qat *q;
    int32_t *ids;
    int64_t n;
} tiny_run;

/* QAT of kjv-tiny with llama.cpp's Q2_K preset on the passage */
static void tiny_start(tiny_run *x, int64_t steps)
{
    if (access(KJV_TINY, R_OK)) tu_skip(KJV_TINY " missing");
    qs_err err = {0};
    memset(x, 0, sizeof *x);
    x->m = qs_model_open(KJV_TINY, &err);
    cr_assert_not_null(x->m, "%s", err.msg);
    x->v = qs_model_vocab(x->m, &err);
    cr_assert_not_null(x->v, "%s", err.msg);
    cr_assert_eq(qs_tokenize(x->v, passage, strlen(passage), false, false, &x->ids, &x->n, &err), 0, "%s", err.msg);
    qs_recipe_init(&x->r, x->m);
    cr_assert_eq(qs_recipe_from_preset(&x->r, x->m, "Q2_K", false, &err), 0, "%s", err.msg);
    cr_assert_eq(qs_recipe_resolve(&x->r, x->m, false, &x->t, &err), 0, "%s", err.msg);
    qs_qat_config c;
    qs_qat_config_default(&c);
    c.batch = 2, c.seq = 32, c.steps = steps, c.warmup = 2, c.lr = 1e-3f, c.min_lr = 1e-4f;
    x->q = qs_qat_new(x->m, &x->t, &c, qs_vocab_bos(x->v), &err);
    cr_assert_not_null(x->q, "%s", err.msg);
}

static void tiny_end(tiny_run *x)
{
    qs_qat_free(x->q);
    free(x->ids);
    qs_recipe_table_free(&x->t);
    qs_recipe_free(&x->r);
    qs_vocab_free(x->v);
    qs_model_close(x->m);
}

static void count_steps(void *ctx, int64_t done, int64_t total)
{
    (void)total;
    *(int64_t *)ctx = done;
}

Test(qat, loss_goes_down_on_kjv_tiny_with_q2_k, .timeout = 120)
{
    tiny_run x;
    tiny_start(&x, 30);
    qs_err err = {0};
    double before = qs_qat_eval_loss(x.q, x.ids, x.n, 4, &err);
    cr_assert(isfinite(before), "%s", err.msg);
    int64_t seen = -1;
    qs_progress prog = {0, 0, 0, count_steps, &seen};
    cr_assert_eq(qs_qat_run(x.q, x.ids, x.n, &prog, &err), 0, "%s", err.msg);
    cr_assert_eq(seen, 30);
    double after = qs_qat_eval_loss(x.q, x.ids, x.n, 4, &err);
    cr_assert_lt(after, before - 0.1, "fake-quantized loss %.4f before, %.4f after 30 steps", before, after);
    tiny_end(&x);
}

Test(qat, cancel_stops_between_steps, .timeout = 60)
{
    tiny_run x;
    tiny_start(&x, 50);
    qs_err err = {0};
    qs_progress prog = {0};
    prog.cancel = 1;
    cr_assert_eq(qs_qat_run(x.q, x.ids, x.n, &prog, &err), -QS_E_CANCELLED);
    cr_assert_eq(qs_qat_step_no(x.q), 0);
    tiny_end(&x);
}

/* the exported tensor's values as floats */
static float *read_all(const qs_model *m, const char *name, int64_t *n)
{
    const qs_tensor *t = qs_model_find_tensor(m, name);
    cr_assert_not_null(t, "%s missing", name);
    *n = qs_tensor_nelements(t);
    float *x = malloc((size_t)*n * sizeof *x);
    qs_err err = {0};
    cr_assert_eq(qs_tensor_read_rows(t, 0, qs_tensor_nrows(t), x, &err), 0, "%s", err.msg);
    return x;
}

Test(qat, export_has_the_recipe_types_and_the_trained_weights, .timeout = 120)
{
    tiny_run x;
    tiny_start(&x, 4);
    qs_err err = {0};
    cr_assert_eq(qs_qat_run(x.q, x.ids, x.n, NULL, &err), 0, "%s", err.msg);
    const qs_model *view = qs_qat_model(x.q, &err);
    cr_assert_not_null(view, "%s", err.msg);
    qs_recipe_table vt;
    cr_assert_eq(qs_recipe_resolve(&x.r, view, false, &vt, &err), 0, "%s", err.msg);
    char *dir = tu_tmpdir(), path[4200];
    snprintf(path, sizeof path, "%s/qat.gguf", dir);
    qs_export_opts o = {-1, NULL, NULL, 0, NULL, NULL};
    cr_assert_eq(qs_export_gguf(view, &vt, &o, path, NULL, &err), 0, "%s", err.msg);
    qs_model *out = qs_model_open(path, &err);
    cr_assert_not_null(out, "%s", err.msg);
    cr_assert(out->hp.supported, "%s", out->hp.unsupported_why);
    cr_assert_eq(out->n_tensors, x.m->n_tensors);
    cr_assert_eq(qs_qat_fake_quant(x.q, &err), 0, "%s", err.msg); /* the weights of the next forward pass */
    int quantized = 0;
    for (int64_t i = 0; i < x.t.n; i++) {
        const qs_recipe_entry *e = &x.t.e[i];
        const qs_tensor *ot = qs_model_find_tensor(out, e->t->name);
        cr_assert_not_null(ot, "%s missing", e->t->name);
        cr_assert_eq(ot->type, e->keep ? e->t->type : e->ggml_type, "%s: %s", e->t->name, ot->dtype);
        if (e->keep) continue;
        quantized++;
        int64_t n, nf;
        float *got = read_all(out, e->t->name, &n), *fq = qs_qat_forward_weights(x.q, e->t->name, &nf);
        cr_assert_not_null(fq);
        cr_assert_eq(n, nf);
        cr_assert(!memcmp(got, fq, (size_t)n * sizeof *got), "%s: the export differs from the fake-quantized weights",
                  e->t->name);
        free(got);
    }
    cr_assert_eq(quantized, 15);
    /* the types differ from tensor to tensor in the preset: q6_K output, q3_K attn_v … */
    cr_assert_eq(qs_model_find_tensor(out, "output.weight") ? 1 : 0, 0, "kjv-tiny's output is tied");
    cr_assert_eq(qs_model_find_tensor(out, "blk.0.attn_norm.weight")->type, QS_TYPE_F32);
    qs_llm *l = qs_llm_new(out, 64, &err);
    cr_assert_not_null(l, "%s", err.msg);
    qs_ppl p;
    cr_assert_eq(qs_perplexity(l, x.v, passage, strlen(passage), 32, -1, NULL, &p, &err), 0, "%s", err.msg);
    cr_assert(isfinite(p.ppl) && p.ppl > 1 && p.ppl < 200, "perplexity %g", p.ppl);
    qs_llm_free(l);
    qs_model_close(out);
    qs_recipe_table_free(&vt);
    tu_rmtree(dir);
    free(dir);
    tiny_end(&x);
}

Test(qat, cli_usage_and_bad_input, .timeout = 120)
{
    tu_run_result r = tu_run("qat");
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "usage: quantscope qat"), "%s", r.err);
    tu_run_free(&r);
    r = tu_run("qat m.gguf --type q4_0 --text t.txt");
    cr_assert_eq(r.status, 1, "no output");
    tu_run_free(&r);
    r = tu_run("qat m.gguf --type q4_0 --recipe r.json --text t.txt -o x.gguf");
    cr_assert_eq(r.status, 1, "--type and --recipe");
    tu_run_free(&r);
    r = tu_run("qat m.gguf --type q4_0 --text t.txt -o x.gguf --lr fast");
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "--lr takes a number"), "%s", r.err);
    tu_run_free(&r);
    r = tu_run("qat m.gguf --type q4_0 --text t.txt -o x.gguf --steps 0");
    cr_assert_eq(r.status, 1);
    tu_run_free(&r);
    r = tu_run("qat m.gguf --type q4_0 --text t.txt -o x.gguf --bogus");
    cr_assert_eq(r.status, 1);
    tu_run_free(&r);
    char *dir = tu_tmpdir(), args[8400];
    r = tu_run("qat /nonexistent/m.gguf --type q4_0 --text t.txt -o /nonexistent/x.gguf");
    cr_assert_eq(r.status, 2);
    tu_run_free(&r);
    snprintf(args, sizeof args, "qat /nonexistent/m.gguf --type q4_0 --text t.txt -o %s/x.gguf", dir);
    r = tu_run(args);
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "quantscope: /nonexistent/m.gguf: "), "%s", r.err);
    tu_run_free(&r);
    if (access(KJV_TINY, R_OK)) tu_skip(KJV_TINY " missing");
    char text[4200];
    snprintf(text, sizeof text, "%s/t.txt", dir);
    FILE *f = fopen(text, "w");
    fputs(passage, f);
    fclose(f);
    snprintf(args, sizeof args, "qat " KJV_TINY " --type rtn:bits=3,group=128 --text %s -o %s/x.gguf", text, dir);
    r = tu_run(args);
    cr_assert_eq(r.status, 2, "rtn w3 g128 has no GGUF type");
    cr_assert(strstr(r.err, "--masters"), "%s", r.err);
    tu_run_free(&r);
    snprintf(args, sizeof args, "qat " KJV_TINY " --type gptq --text %s --masters %s/m.gguf", text, dir);
    r = tu_run(args);
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "needs calibration"), "%s", r.err);
    tu_run_free(&r);
    snprintf(args, sizeof args, "qat " KJV_TINY " --type q4_0 --text %s --steps 2 --batch 1 --seq 16 -o %s/x.gguf", text, dir);
    r = tu_run(args);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.err, "qat: step 2/2"), "%s", r.err);
    tu_run_free(&r);
    snprintf(args, sizeof args, "info %s/x.gguf", dir);
    r = tu_run(args);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "blk.1.ffn_down.weight") && strstr(r.out, "q4_0"), "%s", r.out);
    tu_run_free(&r);
    tu_rmtree(dir);
    free(dir);
}
