/* cli/cli_qat.c — `quantscope qat MODEL (--recipe R.json | --type CONFIG) --text TRAIN --steps N
 * [--lr F] … -o OUT.gguf`: quantization-aware training (core/qat.h), then the recipe applied to the
 * trained weights and written as `quantscope export` writes it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/recipe/export.h"
#include "core/util/fileio.h"
#include "core/formats/gguf.h"
#include "core/model/hf_tokenizer.h"
#include "core/recipe/qat.h"
#include "core/quant/qgrid.h"
#include "core/recipe/recipe.h"
#include "core/model/tokenizer.h"
#include "cli/cli.h"

typedef struct qat_args {
    const char *model, *recipe, *type, *text, *eval, *out, *masters;
    qs_qat_config c;
    int eval_windows;
    bool force;
} qat_args;

static int usage(void)
{
    return qs_cli_usage_error(
        "usage: quantscope qat MODEL (--recipe R.json | --type CONFIG) --text TRAIN (-o OUT.gguf | --masters M.gguf)\n"
        "       [--steps N] [--lr F] [--min-lr F] [--warmup N] [--batch N] [--seq N] [--weight-decay F] [--clip F]\n"
        "       [--seed N] [--eval TEXT] [--eval-windows N] [--force]");
}

/* a number option's value: true when argv[i] names one (its value parsed, *bad set when it is not a number) */
static bool number_arg(char **argv, int i, qat_args *a, bool *bad)
{
    static const char *const names[] = {"--steps", "--lr", "--min-lr", "--warmup", "--batch", "--seq",
                                        "--weight-decay", "--clip", "--seed", "--eval-windows", NULL};
    int k = 0;
    while (names[k] && strcmp(names[k], argv[i])) k++;
    if (!names[k]) return false;
    char *end;
    double v = strtod(argv[i + 1], &end);
    *bad = end == argv[i + 1] || *end || !isfinite(v);
    switch (k) {
    case 0: a->c.steps = (int64_t)v; break;
    case 1: a->c.lr = (float)v; break;
    case 2: a->c.min_lr = (float)v; break;
    case 3: a->c.warmup = (int64_t)v; break;
    case 4: a->c.batch = (int)v; break;
    case 5: a->c.seq = (int)v; break;
    case 6: a->c.weight_decay = (float)v; break;
    case 7: a->c.clip = (float)v; break;
    case 8: a->c.seed = (uint64_t)v; break;
    default: a->eval_windows = (int)v; break;
    }
    return true;
}

static int parse_args(int argc, char **argv, qat_args *a)
{
    memset(a, 0, sizeof *a);
    qs_qat_config_default(&a->c);
    a->eval_windows = 32;
    for (int i = 1; i < argc; i++) {
        bool next = i + 1 < argc, bad = false;
        const char **dst = !next                        ? NULL
                           : !strcmp(argv[i], "--recipe")  ? &a->recipe
                           : !strcmp(argv[i], "--type")    ? &a->type
                           : !strcmp(argv[i], "--text")    ? &a->text
                           : !strcmp(argv[i], "--eval")    ? &a->eval
                           : !strcmp(argv[i], "--masters") ? &a->masters
                           : !strcmp(argv[i], "-o")        ? &a->out
                                                           : NULL;
        if (dst) *dst = argv[++i];
        else if (next && number_arg(argv, i, a, &bad)) {
            if (bad) return qs_cli_usage_error("qat: %s takes a number, not '%s'", argv[i], argv[i + 1]);
            i++;
        } else if (!strcmp(argv[i], "--force")) a->force = true;
        else if (argv[i][0] == '-') return qs_cli_usage_error("qat: unknown or incomplete option '%s'", argv[i]);
        else if (!a->model) a->model = argv[i];
        else return qs_cli_usage_error("qat: unexpected argument '%s'", argv[i]);
    }
    if (!a->model || !a->text || (!!a->recipe + !!a->type) != 1 || (!a->out && !a->masters)) return usage();
    const qs_qat_config *c = &a->c;
    if (c->steps < 1 || c->batch < 1 || c->seq < 1 || c->warmup < 0 || !(c->lr > 0) || c->min_lr < 0 ||
        c->weight_decay < 0 || c->clip < 0 || a->eval_windows < 1)
        return qs_cli_usage_error("qat: --steps, --batch, --seq, --lr and --eval-windows must be positive; --warmup, "
                                  "--min-lr, --weight-decay and --clip not negative");
    return QS_EXIT_OK;
}

/* the recipe from --recipe or --type, resolved on m */
static int resolve(const qat_args *a, const qs_model *m, qs_recipe *r, qs_recipe_table *t)
{
    qs_err err = {0};
    if (a->recipe && qs_recipe_load(a->recipe, r, &err)) return qs_cli_fail(a->recipe, &err);
    if (!a->recipe) {
        qs_recipe_init(r, m);
        if (qs_recipe_set_default(r, a->type, &err)) return qs_cli_fail("--type", &err);
    }
    if (qs_recipe_resolve(r, m, a->force, t, &err)) return qs_cli_fail(a->recipe ? a->recipe : a->model, &err);
    return QS_EXIT_OK;
}


typedef struct step_line {
    qs_qat *q;
    double t0, avg;
} step_line;

/* "qat: step s/N  loss L (running mean)  elapsed, ETA" */
static void step_report(void *ctx, int64_t done, int64_t total)
{
    step_line *s = ctx;
    double loss = qs_qat_last_loss(s->q), el = qs_cli_now() - s->t0;
    if (isfinite(loss)) s->avg = isnan(s->avg) ? loss : 0.95 * s->avg + 0.05 * loss;
    fprintf(stderr, "\rqat: step %lld/%lld  loss %.3f  %.0f s, ETA %.0f s   ", (long long)done, (long long)total, s->avg, el,
            done ? el / (double)done * (double)(total - done) : 0.0);
}

static int eval_line(qs_qat *q, const qat_args *a, const int32_t *ids, int64_t n, const char *when)
{
    qs_err err = {0};
    double l = qs_qat_eval_loss(q, ids, n, a->eval_windows, &err);
    if (isnan(l)) return qs_cli_fail(a->eval, &err);
    printf("eval loss %s: %.4f nats/token (perplexity %.3f), fake-quantized\n", when, l, exp(l));
    return QS_EXIT_OK;
}

/* the quantized GGUF of the recipe applied to the trained weights (as `quantscope export`) */
static int write_quantized(const qat_args *a, const qs_model *view, const qs_recipe *r)
{
    qs_err err = {0};
    qs_recipe_table t = {0};
    qs_qgrid *grids = NULL;
    int rc = qs_recipe_resolve(r, view, a->force, &t, &err) ? qs_cli_fail(a->model, &err) : QS_EXIT_OK;
    qs_cli_prog cp = qs_cli_prog_start("quantizing: tensor");
    qs_progress prog = {0, 0, 0, qs_cli_progress, &cp};
    if (!rc && qs_recipe_table_has_non_ggml(&t)) {
        qs_recipe_sink sink = qs_export_grid_sink(grids = calloc((size_t)(t.n ? t.n : 1), sizeof *grids));
        if (!grids) rc = qs_cli_fail(a->model, &(qs_err){QS_E_OOM, "out of memory"});
        else if (qs_recipe_apply(&t, NULL, NULL, 0, &sink, &prog, &err)) rc = qs_cli_fail(a->model, &err);
    }
    qs_export_opts o = {-1, NULL, NULL, 0, grids, NULL};
    cp = qs_cli_prog_start("export: tensor");
    if (!rc && qs_export_gguf(view, &t, &o, a->out, &prog, &err)) rc = qs_cli_fail(a->out, &err);
    struct stat st;
    if (!rc && !stat(a->out, &st)) printf("wrote %s: %lld bytes\n", a->out, (long long)st.st_size);
    qs_export_grids_free(grids, t.n);
    qs_recipe_table_free(&t);
    return rc;
}

/* the trained float weights: quantized tensors F32, kept ones in their type */
static int write_masters(const qat_args *a, const qs_model *view)
{
    qs_err err = {0};
    qs_recipe r;
    qs_recipe_table t = {0};
    qs_recipe_init(&r, view);
    qs_export_opts o = {-1, NULL, NULL, 0, NULL, NULL};
    int rc = qs_recipe_resolve(&r, view, true, &t, &err) || qs_export_gguf(view, &t, &o, a->masters, NULL, &err)
                 ? qs_cli_fail(a->masters, &err)
                 : QS_EXIT_OK;
    if (!rc) printf("wrote %s (the trained float weights)\n", a->masters);
    qs_recipe_table_free(&t);
    qs_recipe_free(&r);
    return rc;
}

static int train(const qat_args *a, const qs_model *m, const qs_vocab *v, const qs_recipe *r, const qs_recipe_table *t)
{
    int32_t *ids = NULL, *eval = NULL;
    int64_t n = 0, ne = 0;
    qs_qat *q = NULL;
    qs_err err = {0};
    int bos = qs_vocab_add_bos(v) ? qs_vocab_bos(v) : -1;
    int rc = qs_cli_tokenize_file(v, a->text, &ids, &n);
    if (!rc && a->eval) rc = qs_cli_tokenize_file(v, a->eval, &eval, &ne);
    if (!rc && !(q = qs_qat_new(m, t, &a->c, bos, &err))) rc = qs_cli_fail(a->model, &err);
    if (!rc) fprintf(stderr, "qat: %lld tokens of text, %lld tensors fake-quantized, %lld steps of %d × %d tokens, lr %g\n",
                     (long long)n, (long long)qs_qat_n_quantized(q), (long long)a->c.steps, a->c.batch, a->c.seq,
                     (double)a->c.lr);
    if (!rc && eval) rc = eval_line(q, a, eval, ne, "before");
    step_line sl = {q, qs_cli_now(), NAN};
    qs_progress prog = {0, 0, 0, step_report, &sl};
    if (!rc && qs_qat_run(q, ids, n, &prog, &err)) rc = qs_cli_fail(a->text, &err);
    if (q) fputc('\n', stderr);
    if (!rc && eval) rc = eval_line(q, a, eval, ne, "after");
    const qs_model *view = rc ? NULL : qs_qat_model(q, &err);
    if (!rc && !view) rc = qs_cli_fail(a->model, &err);
    if (!rc && a->masters) rc = write_masters(a, view);
    if (!rc && a->out) rc = write_quantized(a, view, r);
    qs_qat_free(q);
    free(ids);
    free(eval);
    return rc;
}

int qs_cli_qat(int argc, char **argv)
{
    qat_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;
    qs_err err = {0};
    if (a.out && qs_output_check(a.out, 0, &err)) return qs_cli_fail(a.out, &err);
    if (a.masters && qs_output_check(a.masters, 0, &err)) return qs_cli_fail(a.masters, &err);
    qs_model *m = qs_model_open(a.model, &err);
    if (!m) return qs_cli_fail(a.model, &err);
    qs_vocab *v = qs_model_vocab(m, &err);
    qs_recipe r = {0};
    qs_recipe_table t = {0};
    rc = v ? QS_EXIT_OK : qs_cli_fail(a.model, &err);
    if (!rc) rc = resolve(&a, m, &r, &t);
    if (!rc && t.warnings[0]) fprintf(stderr, "%s", t.warnings);
    /* a recipe that cannot go into a GGUF is refused before the training */
    if (!rc && a.out && qs_export_gguf_check(&t, &err)) {
        fprintf(stderr, "quantscope: %s: %s (--masters M.gguf writes the trained float weights instead; "
                        "`quantscope ppl M.gguf --recipe R.json` measures them)\n", QS_ESC(a.out), QS_ESC(err.msg));
        rc = QS_EXIT_INPUT;
    }
    if (!rc) rc = train(&a, m, v, &r, &t);
    qs_recipe_table_free(&t);
    qs_recipe_free(&r);
    qs_vocab_free(v);
    qs_model_close(m);
    return rc;
}
