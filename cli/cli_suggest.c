/* cli/cli_suggest.c — `quantscope suggest`: a mixed-precision recipe from per-tensor scans (one CSV
 * per candidate config), for a target bits per weight or file size; with --pareto the curve of
 * summed KLD against bpw as a terminal plot, llama-quantize's presets marked on it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/model/model.h"
#include "core/recipe/recipe.h"
#include "core/recipe/scan.h"
#include "core/recipe/suggest.h"
#include "cli/cli.h"
#include "views/plot.h"

/* the scans named in list (comma-separated) as candidates */
static int load_scans(const qs_model *m, char *list, qs_mp_table *c)
{
    qs_scan_row *rows[QS_MP_MAX_CAND] = {0};
    int nrows[QS_MP_MAX_CAND] = {0}, k = 0, rc = 0;
    char cfgs[QS_MP_MAX_CAND][256];
    for (char *f = strtok(list, ","); f && !rc; f = strtok(NULL, ",")) {
        if (k == QS_MP_MAX_CAND) {
            rc = qs_cli_usage_error("suggest: at most %d scans", QS_MP_MAX_CAND);
            break;
        }
        rc = qs_cli_read_scan(f, &rows[k], &nrows[k], cfgs[k], sizeof cfgs[0]);
        k++;
    }
    qs_err err = {0};
    if (!rc && qs_mp_table_build(m, k, (const char(*)[256])cfgs, (const qs_scan_row *const *)rows, nrows, c, &err))
        rc = qs_cli_fail("suggest", &err);
    for (int j = 0; j < QS_MP_MAX_CAND; j++) free(rows[j]);
    return rc;
}

static void pareto(const qs_model *m, const qs_mp_table *c)
{
    enum { NP = 25, W = 64, H = 16 };
    double x[NP + 16], y[NP + 16], P = qs_mp_table_params(c);
    char mark[NP + 16], grid[H * (W + 1)];
    qs_mp_problem pb = qs_mp_table_problem(c);
    int n = qs_mp_pareto(&pb, NP, x, y);
    printf("%-10s %8s %12s\n", "point", "bpw", "sum KLD");
    for (int i = 0; i < n; i++) x[i] /= P, mark[i] = '*', printf("%-10s %8.4f %12.6g\n", "suggested", x[i], y[i]);
    for (int i = 0; qs_mp_presets[i]; i++) {
        if (!qs_mp_preset_point(m, c, qs_mp_presets[i], &x[n], &y[n])) continue;
        mark[n] = (char)('A' + i);
        printf("%c %-8s %8.4f %12.6g\n", mark[n], qs_mp_presets[i], x[n], y[n]);
        n++;
    }
    double rg[4];
    plot_scatter(x, y, mark, n, true, W, H, grid, rg);
    printf("summed KLD (log scale) against bits per weight; * suggested recipes, letters: presets\n");
    for (int r = 0; r < H; r++) printf("%9.2g |%s\n", pow(10, rg[3] - (rg[3] - rg[2]) * r / (H - 1)), grid + r * (W + 1));
    printf("%9s +", "");
    for (int i = 0; i < W; i++) putchar('-');
    printf("\n%11.3g%*s%.3g bpw\n", rg[0], W - 8, "", rg[1]);
}

static int write_suggestion(const qs_model *m, const qs_mp_table *c, double budget, const char *out)
{
    qs_err err = {0};
    qs_mp_problem pb = qs_mp_table_problem(c);
    qs_mp_solution sol;
    if (qs_mp_solve(&pb, budget, &sol, &err)) return qs_cli_fail(m->path, &err);
    qs_recipe r;
    qs_recipe_init(&r, m);
    int rc = 0;
    for (int i = 0; !rc && i < c->n; i++)
        if (qs_recipe_set_override(&r, c->t[i]->gguf_name[0] ? c->t[i]->gguf_name : c->t[i]->name, c->cfg[sol.choice[i]], &err))
            rc = qs_cli_fail(c->cfg[sol.choice[i]], &err);
    if (!rc && qs_recipe_save(out, &r, &err)) rc = qs_cli_fail(out, &err);
    if (!rc) {
        int count[QS_MP_MAX_CAND] = {0};
        double P = qs_mp_table_params(c);
        for (int i = 0; i < c->n; i++) count[sol.choice[i]]++;
        printf("suggested: %.4f bpw over %d tensors (%.2f MiB with the others), summed KLD %.6g (greedy alone %.6g)\n",
               sol.bits / P, c->n, (sol.bits + c->other_bits) / 8.0 / 1048576.0, sol.cost, sol.greedy_cost);
        for (int j = 0; j < c->k; j++) printf("  %-24s %d tensors\n", c->cfg[j], count[j]);
        printf("wrote %s\n", out);
    }
    qs_mp_solution_free(&sol);
    qs_recipe_free(&r);
    return rc;
}

int qs_cli_suggest(int argc, char **argv)
{
    const char *path = NULL, *out = NULL;
    char *scans = NULL;
    double bpw = 0, size_mib = 0;
    bool show_pareto = false;
    for (int i = 1; i < argc; i++) {
        bool next = i + 1 < argc;
        if (!strcmp(argv[i], "--bpw") && next) bpw = atof(argv[++i]);
        else if (!strcmp(argv[i], "--size") && next) size_mib = atof(argv[++i]);
        else if (!strcmp(argv[i], "--scans") && next) scans = argv[++i];
        else if (!strcmp(argv[i], "-o") && next) out = argv[++i];
        else if (!strcmp(argv[i], "--pareto")) show_pareto = true;
        else if (argv[i][0] == '-') return qs_cli_usage_error("suggest: unknown or incomplete option '%s'", argv[i]);
        else if (!path) path = argv[i];
        else return qs_cli_usage_error("suggest: unexpected argument '%s'", argv[i]);
    }
    bool target = bpw > 0 || size_mib > 0;
    if (!path || !scans || (bpw > 0 && size_mib > 0) || (!target && !show_pareto) || (target && !out))
        return qs_cli_usage_error("usage: quantscope suggest MODEL --scans A.csv,B.csv,… (--bpw B | --size MiB) -o R.json "
                                  "[--pareto]   (scans: quantscope scan --per tensor, one per candidate config)");
    qs_err err = {0};
    qs_model *m = qs_model_open(path, &err);
    if (!m) return qs_cli_fail(path, &err);
    qs_mp_table c = {0};
    int rc = load_scans(m, scans, &c);
    if (!rc && show_pareto) pareto(m, &c);
    if (!rc && target)
        rc = write_suggestion(m, &c, bpw > 0 ? bpw * qs_mp_table_params(&c) : size_mib * 8.0 * 1048576.0 - c.other_bits, out);
    qs_mp_table_free(&c); /* also after a failed solve (load_scans leaves it empty on failure) */
    qs_model_close(m);
    return rc;
}
