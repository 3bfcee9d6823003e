/* tui/cli_suggest.c — `quantscope suggest`: a mixed-precision recipe from per-tensor scans (one CSV
 * per candidate config), for a target bits per weight or file size; with --pareto the curve of
 * summed KLD against bpw as a terminal plot, llama-quantize's presets marked on it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/model.h"
#include "core/recipe.h"
#include "core/scan.h"
#include "core/suggest.h"
#include "tui/cli.h"

enum { MAX_CAND = 16 };

typedef struct cand_set {
    int k, n;                       /* candidates, tensors */
    char cfg[MAX_CAND][256];
    const qs_tensor **t;            /* [n] */
    int64_t *params;
    double *bpw, *cost;             /* [n][k] */
    double other_bits;              /* bits of the tensors no scan covers (kept as in the file) */
} cand_set;

static void cand_free(cand_set *c) { free(c->t), free(c->params), free(c->bpw), free(c->cost); }

/* the tensors every scan measured, in model order, with each candidate's bpw and KLD */
static int load_scans(const qs_model *m, char *list, cand_set *c)
{
    memset(c, 0, sizeof *c);
    qs_scan_row *rows[MAX_CAND] = {0};
    int nrows[MAX_CAND] = {0}, rc = 0;
    for (char *f = strtok(list, ","); f && !rc; f = strtok(NULL, ",")) {
        if (c->k == MAX_CAND) return qs_cli_usage_error("suggest: at most %d scans", MAX_CAND);
        rc = qs_cli_read_scan(f, &rows[c->k], &nrows[c->k], c->cfg[c->k], sizeof c->cfg[0]);
        for (int i = 0; !rc && i < nrows[c->k]; i++)
            if (!qs_model_find_tensor(m, rows[c->k][i].unit))
                rc = qs_cli_fail(f, &(qs_err){QS_E_INPUT, "a unit that is no tensor of the model (suggest takes --per tensor scans)"});
        c->k++;
    }
    int64_t nt = m->n_tensors;
    c->t = calloc((size_t)nt, sizeof *c->t), c->params = calloc((size_t)nt, sizeof *c->params);
    c->bpw = calloc((size_t)(nt * c->k), sizeof *c->bpw), c->cost = calloc((size_t)(nt * c->k), sizeof *c->cost);
    if (!rc && (!c->t || !c->params || !c->bpw || !c->cost)) rc = qs_cli_fail("suggest", &(qs_err){QS_E_OOM, "out of memory"});
    for (int64_t i = 0; !rc && i < nt; i++) {
        const qs_tensor *t = &m->tensors[i];
        int found = 0;
        for (int j = 0; j < c->k; j++) {
            c->cost[c->n * c->k + j] = NAN; /* a scan that left the tensor out: not a choice */
            for (int r = 0; r < nrows[j]; r++)
                if (!strcmp(rows[j][r].unit, t->name)) {
                    c->bpw[c->n * c->k + j] = rows[j][r].bpw, c->cost[c->n * c->k + j] = rows[j][r].kld, found++;
                    c->params[c->n] = rows[j][r].params;
                }
        }
        if (found) c->t[c->n++] = t;
        else c->other_bits += (double)t->nbytes * 8;
    }
    for (int j = 0; j < MAX_CAND; j++) free(rows[j]);
    if (!rc && !c->n) rc = qs_cli_fail("suggest", &(qs_err){QS_E_INPUT, "the scans measured no tensor"});
    return rc;
}

static double params_total(const cand_set *c)
{
    double p = 0;
    for (int i = 0; i < c->n; i++) p += (double)c->params[i];
    return p;
}

/* a preset's predicted point: each tensor's preset type must be one of the candidates */
static bool preset_point(const qs_model *m, const cand_set *c, const char *preset, double *bpw, double *cost)
{
    qs_recipe r;
    qs_recipe_init(&r, m);
    qs_err err = {0};
    bool ok = qs_recipe_from_preset(&r, m, preset, false, &err) == 0;
    double bits = 0, sum = 0;
    for (int i = 0; ok && i < c->n; i++) {
        const char *name = c->t[i]->gguf_name[0] ? c->t[i]->gguf_name : c->t[i]->name;
        int j = -1;
        for (int o = 0; o < r.n_overrides && j < 0; o++) {
            if (strcmp(r.overrides[o].pattern, name)) continue;
            for (int q = 0; q < c->k; q++)
                if (!r.overrides[o].keep && !strcmp(c->cfg[q], r.overrides[o].cfg.method->name)) j = q;
        }
        if (j < 0) ok = false;
        else bits += (double)c->params[i] * c->bpw[i * c->k + j], sum += c->cost[i * c->k + j];
    }
    qs_recipe_free(&r);
    *bpw = bits / params_total(c), *cost = sum;
    return ok;
}

typedef struct point {
    double bpw, cost;
    char mark;
} point;

/* x: bpw, y: log10 of the summed KLD */
static void plot(const point *p, int n)
{
    enum { W = 64, H = 16 };
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int i = 0; i < n; i++)
        if (p[i].cost > 0) x0 = fmin(x0, p[i].bpw), x1 = fmax(x1, p[i].bpw), y0 = fmin(y0, log10(p[i].cost)), y1 = fmax(y1, log10(p[i].cost));
    if (!(x1 > x0)) x1 = x0 + 1;
    if (!(y1 > y0)) y1 = y0 + 1;
    char g[H][W + 1];
    for (int r = 0; r < H; r++) memset(g[r], ' ', W), g[r][W] = '\0';
    for (int i = 0; i < n; i++) {
        if (!(p[i].cost > 0)) continue;
        int x = (int)lround((p[i].bpw - x0) / (x1 - x0) * (W - 1)), y = (int)lround((y1 - log10(p[i].cost)) / (y1 - y0) * (H - 1));
        if (g[y][x] == ' ' || p[i].mark != '*') g[y][x] = p[i].mark;
    }
    printf("summed KLD (log scale) against bits per weight; * suggested recipes, letters: presets\n");
    for (int r = 0; r < H; r++)
        printf("%9.2g |%s\n", pow(10, y1 - (y1 - y0) * r / (H - 1)), g[r]);
    printf("%9s +", "");
    for (int i = 0; i < W; i++) putchar('-');
    printf("\n%11.3g%*s%.3g bpw\n", x0, W - 8, "", x1);
}

static void pareto(const qs_model *m, const cand_set *c, const qs_mp_problem *pb)
{
    static const char *const presets[] = {"Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "Q8_0"};
    point pts[64];
    int n = 0;
    double lo, hi, P = params_total(c);
    qs_mp_range(pb, &lo, &hi);
    printf("%-10s %8s %12s\n", "point", "bpw", "sum KLD");
    for (int s = 0; s <= 24; s++) {
        qs_mp_solution sol;
        qs_err err = {0};
        if (qs_mp_solve(pb, lo + (hi - lo) * s / 24.0, &sol, &err)) continue;
        pts[n++] = (point){sol.bits / P, sol.cost, '*'};
        printf("%-10s %8.4f %12.6g\n", "suggested", sol.bits / P, sol.cost);
        qs_mp_solution_free(&sol);
    }
    for (size_t i = 0; i < sizeof presets / sizeof *presets; i++) {
        double b, k;
        if (!preset_point(m, c, presets[i], &b, &k)) continue;
        char mark = (char)('A' + (int)i);
        pts[n++] = (point){b, k, mark};
        printf("%c %-8s %8.4f %12.6g\n", mark, presets[i], b, k);
    }
    plot(pts, n);
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
    if (!path || !scans || (!(bpw > 0) == !(size_mib > 0) && !show_pareto) || ((bpw > 0 || size_mib > 0) && !out))
        return qs_cli_usage_error("usage: quantscope suggest MODEL --scans A.csv,B.csv,… (--bpw B | --size MiB) -o R.json "
                                  "[--pareto]   (scans: quantscope scan --per tensor, one per candidate config)");
    qs_err err = {0};
    qs_model *m = qs_model_open(path, &err);
    if (!m) return qs_cli_fail(path, &err);
    cand_set c;
    int rc = load_scans(m, scans, &c);
    qs_mp_problem pb = {c.n, c.k, c.params, c.bpw, c.cost};
    double P = rc ? 0 : params_total(&c);
    if (!rc && show_pareto) pareto(m, &c, &pb);
    if (!rc && (bpw > 0 || size_mib > 0)) {
        double budget = bpw > 0 ? bpw * P : size_mib * 8.0 * 1048576.0 - c.other_bits;
        qs_mp_solution sol;
        qs_recipe r;
        qs_recipe_init(&r, m);
        if (qs_mp_solve(&pb, budget, &sol, &err)) rc = qs_cli_fail(path, &err);
        for (int i = 0; !rc && i < c.n; i++)
            if (qs_recipe_set_override(&r, c.t[i]->gguf_name[0] ? c.t[i]->gguf_name : c.t[i]->name, c.cfg[sol.choice[i]], &err))
                rc = qs_cli_fail(c.cfg[sol.choice[i]], &err);
        if (!rc && qs_recipe_save(out, &r, &err)) rc = qs_cli_fail(out, &err);
        if (!rc) {
            int count[MAX_CAND] = {0};
            for (int i = 0; i < c.n; i++) count[sol.choice[i]]++;
            printf("suggested: %.4f bpw over %d tensors (%.2f MiB with the others), summed KLD %.6g (greedy alone %.6g)\n",
                   sol.bits / P, c.n, (sol.bits + c.other_bits) / 8.0 / 1048576.0, sol.cost, sol.greedy_cost);
            for (int j = 0; j < c.k; j++) printf("  %-24s %d tensors\n", c.cfg[j], count[j]);
            printf("wrote %s\n", out);
        }
        qs_mp_solution_free(&sol);
        qs_recipe_free(&r);
    }
    cand_free(&c);
    qs_model_close(m);
    return rc;
}
