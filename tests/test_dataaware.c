/* Data-aware quantization on a real model (stories260K over the TinyStories excerpt): per layer,
 * GPTQ and AWQ lower the output error of RTN with the same grid on the calibration rows (the
 * ordering of the papers, measured); calibrated recipes; and the CLI's imatrix, scan (with
 * --resume) and refusals. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <sys/wait.h>

#include "core/quant/awq.h"
#include "core/data/calib.h"
#include "core/data/eval.h"
#include "core/quant/ggml_types.h"
#include "core/data/imatrix.h"
#include "core/model/infer.h"
#include "core/model/model.h"
#include "core/quant/quant.h"
#include "core/recipe/recipe.h"
#include "core/model/tokenizer.h"
#include "tests/testutil.h"

static char model_p[4096], text_p[8192];

static bool have_inputs(void)
{
    snprintf(model_p, sizeof model_p, "%s/stories260K.gguf", tu_models_dir());
    snprintf(text_p, sizeof text_p, "%s/../data/tinystories-excerpt.txt", tu_models_dir());
    FILE *a = fopen(model_p, "rb"), *b = fopen(text_p, "rb");
    bool ok = a && b;
    if (a) fclose(a);
    if (b) fclose(b);
    return ok;
}

typedef struct env {
    qs_model *m;
    qs_vocab *v;
    qs_llm *l;
    char *text;
    size_t len;
} env;

static void env_open(env *e)
{
    if (!have_inputs()) tu_skip("%s or %s missing", model_p, text_p);
    qs_err err = {0};
    e->m = qs_model_open(model_p, &err);
    cr_assert_not_null(e->m, "%s", err.msg);
    e->v = qs_vocab_load(e->m->gguf, &err);
    e->l = qs_llm_new(e->m, 128, &err);
    cr_assert(e->v && e->l, "%s", err.msg);
    e->text = (char *)tu_read(text_p, &e->len);
}

static void env_close(env *e)
{
    qs_llm_free(e->l), qs_vocab_free(e->v), qs_model_close(e->m), free(e->text);
}

static double out_err(const char *config, const float *w, int64_t rows, int64_t cols, const qs_calib *c)
{
    qs_qconfig q;
    bool keep;
    qs_err err = {0};
    cr_assert_eq(qs_config_parse(config, &q, &keep, &err), 0, "%s", err.msg);
    qs_qresult r;
    cr_assert_eq(qs_quant_run(&q, w, rows, cols, c, NULL, 0, &r, &err), 0, "%s: %s", config, err.msg);
    double e = r.out_err;
    qs_qresult_free(&r);
    return e;
}

Test(dataaware, gptq_and_awq_beat_rtn_on_every_layer, .timeout = 300)
{
    env e;
    env_open(&e);
    qs_calib_opts o;
    qs_calib_opts_default(&o);
    o.n_ctx = 128, o.n_chunks = 16;
    qs_calib_set *s;
    qs_err err = {0};
    cr_assert_eq(qs_calib_collect(e.l, e.v, e.text, e.len, &o, NULL, &s, &err), 0, "%s", err.msg);
    int n = 0;
    double sum[3] = {0};
    for (int64_t i = 0; i < e.m->n_tensors; i++) {
        const qs_tensor *t = &e.m->tensors[i];
        if (t->block < 0 || !qs_recipe_quantizable(t)) continue;
        int64_t rows = qs_tensor_nrows(t), cols = t->ne[0];
        float *w = malloc((size_t)(rows * cols) * sizeof *w);
        cr_assert_eq(qs_tensor_read_rows(t, 0, rows, w, &err), 0);
        qs_calib c;
        cr_assert_eq(qs_calib_for_tensor(s, t->gguf_name, true, &c, &err), 0, "%s", err.msg);
        double rtn = out_err("rtn:bits=3,group=row,asym=true", w, rows, cols, &c);
        double gptq = out_err("gptq:bits=3,group=row,asym=true", w, rows, cols, &c);
        double awq = out_err("awq:bits=3,group=row", w, rows, cols, &c);
        cr_expect_lt(gptq, rtn, "%s: GPTQ %.5f vs RTN %.5f", t->name, gptq, rtn);
        cr_expect_lt(awq, rtn, "%s: AWQ %.5f vs RTN %.5f", t->name, awq, rtn);
        sum[0] += rtn, sum[1] += gptq, sum[2] += awq, n++;
        qs_calib_free(&c);
        free(w);
    }
    cr_assert_eq(n, 35);
    cr_log_info("mean relative output error, 3 bits per row: RTN %.5f, GPTQ %.5f, AWQ %.5f", sum[0] / n, sum[1] / n, sum[2] / n);
    qs_calib_set_free(s);
    env_close(&e);
}

/* a calibrated GPTQ recipe (block by block) changes the model less than RTN on the same grid */
Test(dataaware, calibrated_recipe_perplexity, .timeout = 300)
{
    env e;
    env_open(&e);
    qs_err err = {0};
    qs_calib_opts o;
    qs_calib_opts_default(&o);
    o.n_ctx = 128, o.n_chunks = 16;
    double ppl[3];
    const char *cfg[3] = {"keep", "rtn:bits=3,group=row,asym=true", "gptq:bits=3,group=row,asym=true"};
    for (int k = 0; k < 3; k++) {
        qs_llm *l = qs_llm_new(e.m, 128, &err);
        qs_recipe r;
        qs_recipe_init(&r, e.m);
        cr_assert_eq(qs_recipe_add_rule(&r, "blk\\..*", cfg[k], &err), 0, "%s", err.msg);
        qs_recipe_table t;
        cr_assert_eq(qs_recipe_resolve(&r, e.m, false, &t, &err), 0, "%s", err.msg);
        if (k == 2) cr_expect_lt(qs_recipe_apply(&t, l, NULL, 0, NULL, NULL, &err), 0, "gptq without calibration data");
        cr_assert_eq(qs_recipe_apply_calibrated(&t, l, e.v, e.text, e.len, &o, true, 0, NULL, NULL, &err), 0, "%s", err.msg);
        qs_ppl p;
        cr_assert_eq(qs_perplexity(l, e.v, e.text, e.len, 128, 20, NULL, &p, &err), 0, "%s", err.msg);
        ppl[k] = p.ppl;
        qs_recipe_table_free(&t);
        qs_recipe_free(&r);
        qs_llm_free(l);
    }
    cr_log_info("PPL (20 chunks of 128): F32 %.4f, RTN w3 %.4f, GPTQ w3 %.4f", ppl[0], ppl[1], ppl[2]);
    cr_expect_lt(fabs(ppl[2] - ppl[0]), fabs(ppl[1] - ppl[0]), "GPTQ moves PPL less than RTN");
    env_close(&e);
}

/* ---- CLI ---- */
typedef tu_run_result run_result;

static run_result run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static run_result run(const char *fmt, ...)
{
    char args[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    return tu_run(args);
}

static void done(run_result *r) { tu_run_free(r); }

Test(dataaware, cli_imatrix, .timeout = 120)
{
    if (!have_inputs()) tu_skip("%s or %s missing", model_p, text_p);
    char *dir = tu_tmpdir(), out[4200];
    snprintf(out, sizeof out, "%s/im.gguf", dir);
    run_result r = run("imatrix %s --text %s --ctx 128 --chunks 10 -o %s", model_p, text_p, out);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "35 weights, 10 chunks of 128") != NULL, "%s", r.out);
    qs_err err = {0};
    qs_imatrix *im = qs_imatrix_load(out, &err);
    cr_assert_not_null(im, "%s", err.msg);
    cr_expect_eq(im->n_entries, 35);
    cr_expect_eq(im->chunk_count, 10);
    cr_expect_str_eq(im->dataset, "tinystories-excerpt.txt");
    qs_imatrix_free(im);
    done(&r);
    r = run("imatrix %s --text /nonexistent -o %s", model_p, out);
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "quantscope: /nonexistent:") != NULL, "%s", r.err);
    done(&r);
    tu_rmtree(dir), free(dir);
}

static int csv_lines(const char *path, char first_unit[256])
{
    size_t n;
    char *s = (char *)tu_read(path, &n);
    if (!s) return -1;
    int lines = 0;
    for (size_t i = 0; i < n; i++) lines += s[i] == '\n';
    const char *l2 = strchr(s, '\n');
    first_unit[0] = '\0';
    if (l2) sscanf(l2 + 1, "1,\"%255[^\"]\"", first_unit);
    free(s);
    return lines;
}

Test(dataaware, cli_scan_and_resume, .timeout = 300)
{
    if (!have_inputs()) tu_skip("%s or %s missing", model_p, text_p);
    char *dir = tu_tmpdir(), csv[4200], part[4300], top[256];
    snprintf(csv, sizeof csv, "%s/scan.csv", dir);
    snprintf(part, sizeof part, "%s.partial", csv);
    run_result r = run("scan %s --config q2_K --per block --text %s --ctx 128 --chunks 4 --csv %s", model_p, text_p, csv);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect_eq(csv_lines(csv, top), 6, "header and five blocks");
    cr_expect(strstr(r.out, top) != NULL, "the table's first row is the CSV's rank 1");
    done(&r);
    /* a partial scan of two blocks: the resumed scan measures the other three */
    FILE *f = fopen(part, "w");
    fprintf(f, "rank,unit,block,params,config,bpw,kld,kld_unc,ppl,dppl,same_top\n"
               "0,\"blk.0\",0,1,\"q2_K\",2.6,9.5,0,1,0,50\n0,\"blk.1\",1,1,\"q2_K\",2.6,0.0,0,1,0,50\n");
    fclose(f);
    r = run("scan %s --config q2_K --per block --text %s --ctx 128 --chunks 4 --csv %s --resume", model_p, text_p, csv);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.err, "resuming: 2 units") != NULL, "%s", r.err);
    cr_expect_eq(csv_lines(csv, top), 6);
    cr_expect_str_eq(top, "blk.0", "the resumed row (KLD 9.5) ranks first");
    cr_expect(fopen(part, "r") == NULL, "the partial file is removed after the scan");
    done(&r);
    /* a partial file of another config is refused */
    f = fopen(part, "w");
    fprintf(f, "rank,unit,block,params,config,bpw,kld,kld_unc,ppl,dppl,same_top\n0,\"blk.0\",0,1,\"q4_K\",4.5,1,0,1,0,50\n");
    fclose(f);
    r = run("scan %s --config q2_K --per block --text %s --ctx 128 --chunks 4 --csv %s --resume", model_p, text_p, csv);
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "not a partial scan of this config") != NULL, "%s", r.err);
    done(&r);
    r = run("scan %s --config gptq --text %s --csv %s", model_p, text_p, csv);
    cr_expect_eq(r.status, 1, "data-aware configs are refused: %s", r.err);
    done(&r);
    tu_rmtree(dir), free(dir);
}

Test(dataaware, cli_quant_and_ppl_with_calibration, .timeout = 300)
{
    if (!have_inputs()) tu_skip("%s or %s missing", model_p, text_p);
    run_result r = run("quant %s blk.1.ffn_down.weight --method gptq --group row --bits 3", model_p);
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.err, "needs calibration") != NULL, "%s", r.err);
    done(&r);
    r = run("quant %s blk.1.ffn_down.weight --method awq --group row --alpha 0.5 --clip=false --calib %s --calib-ctx 128 "
            "--calib-chunks 8", model_p, text_p);
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "relative output error") && strstr(r.out, "alpha 0.50 fixed"), "%s", r.out);
    done(&r);
    char *dir = tu_tmpdir(), rec[4200];
    snprintf(rec, sizeof rec, "%s/r.json", dir);
    r = run("recipe %s --set 'blk\\..*=gptq:bits=4,group=row' -o %s", model_p, rec);
    cr_assert_eq(r.status, 0, "%s", r.err);
    done(&r);
    r = run("ppl %s --text %s --ctx 128 --chunks 4 --recipe %s", model_p, text_p, rec);
    cr_expect_eq(r.status, 1, "a gptq recipe without --calib");
    cr_expect(strstr(r.err, "--calib TEXT") != NULL, "%s", r.err);
    done(&r);
    r = run("ppl %s --text %s --ctx 128 --chunks 4 --recipe %s --calib %s --calib-ctx 128 --calib-chunks 8", model_p, text_p,
            rec, text_p);
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "Final estimate: PPL") && strstr(r.err, "calibrated on"), "%s / %s", r.out, r.err);
    done(&r);
    tu_rmtree(dir), free(dir);
}

Test(dataaware, cli_suggest_within_budget, .timeout = 300)
{
    if (!have_inputs()) tu_skip("%s or %s missing", model_p, text_p);
    char *dir = tu_tmpdir(), a[4200], b[4200], rec[4200];
    snprintf(a, sizeof a, "%s/q4_0.csv", dir);
    snprintf(b, sizeof b, "%s/q8_0.csv", dir);
    snprintf(rec, sizeof rec, "%s/r.json", dir);
    run_result r = run("scan %s --config q4_0 --text %s --ctx 128 --chunks 2 --csv %s", model_p, text_p, a);
    cr_assert_eq(r.status, 0, "%s", r.err);
    done(&r);
    r = run("scan %s --config q8_0 --text %s --ctx 128 --chunks 2 --csv %s", model_p, text_p, b);
    cr_assert_eq(r.status, 0, "%s", r.err);
    done(&r);
    r = run("suggest %s --scans %s,%s --bpw 6 -o %s --pareto", model_p, a, b, rec);
    cr_assert_eq(r.status, 0, "%s", r.err);
    double got = 0;
    const char *p = strstr(r.out, "suggested: ");
    cr_assert_not_null(p, "%s", r.out);
    sscanf(p, "suggested: %lf bpw", &got);
    cr_expect(got <= 6.0 && got > 4.5, "%.4f bpw for a 6 bpw target", got);
    cr_expect(strstr(r.out, "summed KLD (log scale)") != NULL, "the Pareto plot");
    done(&r);
    /* the recipe opens and resolves on the model: the quantized tensors average <= 6 bpw */
    qs_err err = {0};
    qs_model *m = qs_model_open(model_p, &err);
    qs_recipe rc;
    cr_assert_eq(qs_recipe_load(rec, &rc, &err), 0, "%s", err.msg);
    qs_recipe_table t;
    cr_assert_eq(qs_recipe_resolve(&rc, m, false, &t, &err), 0, "%s", err.msg);
    double bits = 0, n = 0;
    for (int64_t i = 0; i < t.n; i++)
        if (!t.e[i].keep) bits += t.e[i].bpw * (double)qs_tensor_nelements(t.e[i].t), n += (double)qs_tensor_nelements(t.e[i].t);
    cr_expect_leq(bits / n, 6.0 + 1e-9);
    cr_expect_float_eq(bits / n, got, 1e-3);
    qs_recipe_table_free(&t);
    qs_recipe_free(&rc);
    qs_model_close(m);
    r = run("suggest %s --scans %s --bpw 1 -o %s", model_p, a, rec);
    cr_expect_eq(r.status, 1, "a budget below every candidate: %s", r.err);
    done(&r);
    tu_rmtree(dir), free(dir);
}

/* AWQ's folding keeps the full-precision model: scales folded into attn_norm → q/k/v,
 * ffn_norm → gate/up and up → down give the same logits (spec/awq.md §3) */
typedef struct wbuf {
    const qs_tensor *t;
    float *w;
} wbuf;

/* the tensor's current (possibly already folded) floats */
static wbuf *weights_of(const qs_model *m, wbuf *tab, int *n, unsigned block, const char *what)
{
    char name[64];
    snprintf(name, sizeof name, "blk.%u.%s.weight", block, what);
    for (int i = 0; i < *n; i++)
        if (!strcmp(tab[i].t->name, name)) return &tab[i];
    const qs_tensor *t = qs_model_find_tensor(m, name);
    cr_assert_not_null(t, "%s", name);
    qs_err err = {0};
    tab[*n] = (wbuf){t, malloc((size_t)qs_tensor_nelements(t) * sizeof(float))};
    cr_assert_eq(qs_tensor_read_rows(t, 0, qs_tensor_nrows(t), tab[*n].w, &err), 0);
    return &tab[(*n)++];
}

Test(dataaware, awq_folding_keeps_the_logits, .timeout = 120)
{
    env e;
    env_open(&e);
    qs_err err = {0};
    static const char *const maps[3][4] = {{"attn_norm", "attn_q", "attn_k", "attn_v"},
                                           {"ffn_norm", "ffn_gate", "ffn_up", NULL},
                                           {"ffn_up", "ffn_down", NULL, NULL}};
    wbuf tab[64];
    int nt = 0;
    uint32_t st = 99;
    for (uint32_t b = 0; b < e.m->hp.n_layer; b++)
        for (int mp = 0; mp < 3; mp++) {
            wbuf *prev = weights_of(e.m, tab, &nt, b, maps[mp][0]);
            float *lw[3];
            int64_t rows[3];
            int n = 0;
            for (int k = 1; k < 4 && maps[mp][k]; k++, n++) {
                wbuf *x = weights_of(e.m, tab, &nt, b, maps[mp][k]);
                lw[n] = x->w, rows[n] = qs_tensor_nrows(x->t);
            }
            int64_t cols = tab[nt - 1].t->ne[0];
            float *s = malloc((size_t)cols * sizeof *s);
            for (int64_t c = 0; c < cols; c++) st = st * 1664525u + 1013904223u, s[c] = 0.25f + (float)(st >> 8) / 16777216.0f * 3.5f;
            qs_awq_fold(prev->w, qs_tensor_nrows(prev->t), prev->t->ne[0], lw, rows, n, cols, s);
            free(s);
        }
    qs_llm *f = qs_llm_new(e.m, 128, &err);
    cr_assert_not_null(f, "%s", err.msg);
    for (int i = 0; i < nt; i++) {
        cr_assert_eq(qs_llm_set_weights(f, tab[i].t->name, tab[i].w, QS_TYPE_F32, &err), 0,
                     "%s", err.msg);
        free(tab[i].w);
    }
    int32_t ids[32];
    for (int i = 0; i < 32; i++) ids[i] = i == 0 ? 1 : 3 + (i * 37) % 400;
    int V = qs_llm_n_vocab(e.l);
    float *a = malloc((size_t)32 * V * sizeof *a), *b = malloc((size_t)32 * V * sizeof *b);
    cr_assert_eq(qs_llm_eval(e.l, ids, 32, 0, a, &err), 0, "%s", err.msg);
    cr_assert_eq(qs_llm_eval(f, ids, 32, 0, b, &err), 0, "%s", err.msg);
    double worst = 0, mx = 0;
    for (int64_t i = 0; i < (int64_t)32 * V; i++) worst = fmax(worst, fabs((double)a[i] - b[i])), mx = fmax(mx, fabs(a[i]));
    cr_log_info("scales 0.25…3.75 folded into every norm → q/k/v, gate/up and up → down: max logit difference %.3g "
                "(max |logit| %.3g)", worst, mx);
    cr_expect_lt(worst, 1e-4 * mx, "the folded model differs: %g", worst);
    /* and an unfolded change is seen: the test can fail */
    tab[0].t = qs_model_find_tensor(e.m, "blk.0.attn_norm.weight");
    float *nw = malloc((size_t)qs_tensor_nelements(tab[0].t) * sizeof *nw);
    qs_tensor_read_rows(tab[0].t, 0, 1, nw, &err);
    nw[3] *= 2;
    qs_llm_set_weights(f, tab[0].t->name, nw, QS_TYPE_F32, &err);
    qs_llm_eval(f, ids, 32, 0, b, &err);
    double d2 = 0;
    for (int64_t i = 0; i < (int64_t)32 * V; i++) d2 = fmax(d2, fabs((double)a[i] - b[i]));
    cr_expect_gt(d2, 1e-3 * mx, "one channel changed without its fold must show (%g)", d2);
    free(nw), free(a), free(b);
    qs_llm_free(f);
    env_close(&e);
}
