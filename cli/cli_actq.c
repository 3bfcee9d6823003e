/* cli/cli_actq.c — activation quantization on the command line: `ppl … --act SPEC [--smooth α]`
 * (qs_cli_apply_act) and `quantscope acts MODEL --calib TEXT`, the per-linear activation report. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/recipe/actq.h"
#include "core/data/eval.h"
#include "core/util/fileio.h"
#include "core/model/infer.h"
#include "core/model/model.h"
#include "core/recipe/recipe.h"
#include "core/model/tokenizer.h"
#include "cli/cli.h"

/* the calibration text's chunks (the context capped at the engine's) */
static int calib_tokens(qs_llm *l, const qs_vocab *v, const qs_cli_calib *c, int32_t **toks, int *nc, int *ctx)
{
    qs_err err = {0};
    size_t len;
    char *text = qs_read_file(c->text, (size_t)1 << 30, &len, &err);
    if (!text) return qs_cli_fail(c->text, &err);
    int64_t nt;
    *ctx = c->ctx < qs_llm_n_ctx(l) ? c->ctx : qs_llm_n_ctx(l);
    int rc = qs_eval_prepare(l, v, text, len, *ctx, c->chunks, toks, &nt, nc, &err) ? qs_cli_fail(c->text, &err) : 0;
    free(text);
    return rc;
}

static int collect(qs_llm *l, const qs_vocab *v, const int32_t *toks, int nc, int ctx, const char *what, const char *path,
                   qs_act_stats *st)
{
    qs_err err = {0};
    qs_cli_prog cp = qs_cli_prog_start(what);
    qs_progress prog = {0, 0, 0, qs_cli_progress, &cp};
    return qs_act_calibrate(l, toks, nc, ctx, qs_vocab_add_bos(v) ? qs_vocab_bos(v) : -1, &prog, st, &err)
               ? qs_cli_fail(path, &err)
               : 0;
}

/* smoothing (before the recipe touches the weights), the recipe, then the activation spec */
static int apply_all(const qs_cli_act *a, const qs_model *m, qs_llm *l, const qs_vocab *v, const qs_cli_calib *c,
                     qs_recipe_table *tab, const int32_t *toks, int nc, int ctx)
{
    qs_err err = {0};
    qs_act_stats st = {0};
    int rc = 0;
    if (a->smooth >= 0 && !(rc = collect(l, v, toks, nc, ctx, "activations: chunk", c->text, &st))) {
        qs_cli_prog cp = qs_cli_prog_start("smoothing: input");
        qs_progress prog = {0, 0, 0, qs_cli_progress, &cp};
        if (qs_act_smooth(l, m, &st, a->smooth, tab, &prog, &err)) rc = qs_cli_fail(a->recipe ? a->recipe : c->text, &err);
        qs_act_stats_free(&st);
    }
    if (!rc && tab) rc = qs_cli_apply_table(a->recipe, tab, l, v, c);
    if (!rc && a->spec.mode == QS_ACT_STATIC) rc = collect(l, v, toks, nc, ctx, "activation ranges: chunk", c->text, &st);
    if (!rc && qs_act_apply(l, &a->spec, &st, &err)) rc = qs_cli_fail(c->text ? c->text : "activations", &err);
    if (!rc && a->spec.mode != QS_ACT_NONE) {
        char d[64];
        qs_act_spec_format(&a->spec, d, sizeof d);
        fprintf(stderr, "activations: %s at every linear input%s", d, a->smooth >= 0 ? "" : "\n");
        if (a->smooth >= 0) fprintf(stderr, ", smoothed with α = %g\n", a->smooth);
    }
    qs_act_stats_free(&st);
    return rc;
}

int qs_cli_apply_act(const qs_cli_act *a, const qs_model *m, qs_llm *l, const qs_vocab *v, const qs_cli_calib *c)
{
    bool need_text = a->smooth >= 0 || a->spec.mode == QS_ACT_STATIC;
    if (need_text && !c->text) return qs_cli_usage_error("static activation ranges and --smooth need --calib TEXT");
    qs_recipe_table tab = {0};
    int rc = a->recipe ? qs_cli_recipe_table(a->recipe, m, &tab) : 0;
    int32_t *toks = NULL;
    int nc = 0, ctx = 0;
    if (!rc && need_text) rc = calib_tokens(l, v, c, &toks, &nc, &ctx);
    if (!rc) rc = apply_all(a, m, l, v, c, a->recipe ? &tab : NULL, toks, nc, ctx);
    free(toks);
    if (a->recipe) qs_recipe_table_free(&tab);
    return rc;
}

int qs_cli_act_arg(int argc, char **argv, int *i, qs_cli_act *a)
{
    if (strcmp(argv[*i], "--act") && strcmp(argv[*i], "--smooth")) return 0;
    if (*i + 1 >= argc) return -1;
    const char *opt = argv[*i], *val = argv[++*i];
    if (!strcmp(opt, "--act")) {
        qs_err err = {0};
        if (!qs_act_spec_parse(val, &a->spec, &err)) return 1;
        qs_cli_usage_error("%s", err.msg);
        return -2;
    }
    char *end;
    a->smooth = strtod(val, &end);
    if (end == val || *end || !(a->smooth >= 0 && a->smooth <= 1)) {
        qs_cli_usage_error("--smooth is SmoothQuant's α, between 0 and 1, not '%s'", val);
        return -2;
    }
    return 1;
}

/* ---- quantscope acts ---- */

/* the largest channels of one input: index and absmax, descending */
static int top_channels(const qs_act_input *in, int n, int64_t *idx)
{
    int k = 0;
    for (int64_t j = 0; j < in->cols; j++) {
        int p = k < n ? k++ : n;
        if (p == n && in->chan_absmax[j] <= in->chan_absmax[idx[n - 1]]) continue;
        if (p == n) p = n - 1;
        while (p > 0 && in->chan_absmax[idx[p - 1]] < in->chan_absmax[j]) idx[p] = idx[p - 1], p--;
        idx[p] = j;
    }
    return k;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static void print_input(const qs_act_input *in)
{
    float *sorted = malloc((size_t)in->cols * sizeof *sorted);
    double median = 0;
    if (sorted) {
        memcpy(sorted, in->chan_absmax, (size_t)in->cols * sizeof *sorted);
        qsort(sorted, (size_t)in->cols, sizeof *sorted, cmp_float);
        median = sorted[in->cols / 2];
        free(sorted);
    }
    int outliers = 0;
    for (int64_t j = 0; j < in->cols; j++) outliers += median > 0 && in->chan_absmax[j] > 6 * median;
    int64_t idx[3];
    int n = top_channels(in, 3, idx);
    /* "blk.0.attn_q,attn_k,attn_v": the first name without ".weight", the others without the block too */
    char names[200] = "";
    for (int k = 0; k < in->n_names; k++) {
        const char *s = in->names[k], *dot = strrchr(s, '.');
        if (k && !strncmp(s, "blk.", 4) && strchr(s + 4, '.')) s = strchr(s + 4, '.') + 1;
        int len = dot && !strcmp(dot, ".weight") ? (int)(dot - s) : (int)strlen(s);
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%.*s", k ? "," : "", len, s);
    }
    printf("%-30s %6lld %9.4f %9.4f %9.4f %9.4f %5.1f %4d ", names, (long long)in->cols, in->absmax,
           qs_act_percentile(in, 99.99), sqrt(in->sumsq / (double)(in->count ? in->count : 1)), median,
           median > 0 ? in->absmax / median : 0, outliers);
    for (int k = 0; k < n; k++) printf(" %lld:%.2f", (long long)idx[k], in->chan_absmax[idx[k]]);
    putchar('\n');
}

static void print_errors(const qs_act_spec *spec, const qs_act_error *e, int n)
{
    char d[64];
    qs_act_spec_format(spec, d, sizeof d);
    printf("\noutput error of each linear product with %s activations: ‖Q(x)·Wᵀ − x·Wᵀ‖ / ‖x·Wᵀ‖\n", d);
    for (int i = 0; i < n; i++)
        printf("%-30s %9.4f %%\n", e[i].name, e[i].ref2 > 0 ? 100 * sqrt(e[i].err2 / e[i].ref2) : 0.0);
}

static int acts_report(const qs_cli_act *a, const qs_model *m, qs_llm *l, const qs_vocab *v, const qs_cli_calib *c)
{
    int32_t *toks = NULL;
    int nc = 0, ctx = 0, rc = 0;
    qs_act_stats st = {0};
    qs_err err = {0};
    if (a->recipe || a->smooth >= 0) {
        qs_cli_act weights_only = *a;
        weights_only.spec.mode = QS_ACT_NONE;
        rc = qs_cli_apply_act(&weights_only, m, l, v, c);
    }
    if (!rc) rc = calib_tokens(l, v, c, &toks, &nc, &ctx);
    if (!rc) rc = collect(l, v, toks, nc, ctx, "activations: chunk", c->text, &st);
    if (!rc) {
        printf("activations of every linear input over %lld tokens of %s (|x|: absmax, 99.99th percentile, RMS; "
               "channels: median absmax, absmax/median, outliers > 6× median, the largest)\n",
               (long long)st.tokens, QS_ESC(c->text));
        printf("%-30s %6s %9s %9s %9s %9s %5s %4s  %s\n", "weights", "cols", "absmax", "p99.99", "rms", "median", "ratio",
               "out", "top channels");
        for (int i = 0; i < st.n; i++) print_input(&st.in[i]);
    }
    if (!rc && a->spec.mode != QS_ACT_NONE) {
        qs_act_error *e = NULL;
        int ne = 0;
        qs_cli_prog cp = qs_cli_prog_start("output errors: chunk");
        qs_progress prog = {0, 0, 0, qs_cli_progress, &cp};
        if (qs_act_output_errors(l, toks, nc, ctx, qs_vocab_add_bos(v) ? qs_vocab_bos(v) : -1, &a->spec, &st, &prog, &e, &ne,
                                 &err))
            rc = qs_cli_fail(c->text, &err);
        else print_errors(&a->spec, e, ne);
        free(e);
    }
    qs_act_stats_free(&st);
    free(toks);
    return rc;
}

int qs_cli_acts(int argc, char **argv)
{
    const char *path = NULL;
    qs_cli_calib c;
    qs_cli_calib_init(&c);
    qs_cli_act a = {{QS_ACT_NONE, 8, false, 0}, -1, NULL};
    for (int i = 1; i < argc; i++) {
        int ca = qs_cli_calib_arg(argc, argv, &i, &c);
        if (!ca) ca = qs_cli_act_arg(argc, argv, &i, &a);
        if (ca == -2) return QS_EXIT_USAGE;
        if (ca < 0) return qs_cli_usage_error("acts: '%s' needs a value", argv[i]);
        if (ca) continue;
        if (!strcmp(argv[i], "--recipe") && i + 1 < argc) a.recipe = argv[++i];
        else if (argv[i][0] == '-') return qs_cli_usage_error("acts: unknown or incomplete option '%s'", argv[i]);
        else if (path) return qs_cli_usage_error("acts: unexpected argument '%s'", argv[i]);
        else path = argv[i];
    }
    if (!path || !c.text)
        return qs_cli_usage_error("usage: quantscope acts MODEL --calib TEXT [--calib-chunks N] [--calib-ctx N] "
                                  "[--recipe R.json] [--smooth α] [--act SPEC]");
    qs_err err = {0};
    qs_model *m = qs_model_open(path, &err);
    if (!m) return qs_cli_fail(path, &err);
    qs_vocab *v = NULL;
    qs_llm *l = NULL;
    int rc = qs_cli_vocab_llm(path, m, c.ctx, &v, &l);
    if (!rc) rc = acts_report(&a, m, l, v, &c);
    qs_llm_free(l);
    qs_vocab_free(v);
    qs_model_close(m);
    return rc;
}
