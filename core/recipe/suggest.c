/* core/recipe/suggest.c — the mixed-precision solver. */
#include "core/recipe/suggest.h"

#include <stdio.h>

#include "core/model/model.h"
#include "core/recipe/recipe.h"
#include "core/recipe/scan.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static double bits_of(const qs_mp_problem *p, int i, int j) { return (double)p->params[i] * p->bpw[i * p->k + j]; }
static bool usable(const qs_mp_problem *p, int i, int j) { return isfinite(p->cost[i * p->k + j]); }

void qs_mp_range(const qs_mp_problem *p, double *min_bits, double *max_bits)
{
    *min_bits = *max_bits = 0;
    for (int i = 0; i < p->n; i++) {
        double lo = INFINITY, hi = 0;
        for (int j = 0; j < p->k; j++)
            if (usable(p, i, j)) lo = fmin(lo, bits_of(p, i, j)), hi = fmax(hi, bits_of(p, i, j));
        *min_bits += lo, *max_bits += hi;
    }
}

/* the cheapest-in-bits usable candidate of tensor i (ties: the lower cost) */
static int cheapest(const qs_mp_problem *p, int i)
{
    int best = -1;
    for (int j = 0; j < p->k; j++)
        if (usable(p, i, j) && (best < 0 || bits_of(p, i, j) < bits_of(p, i, best) ||
                                (bits_of(p, i, j) == bits_of(p, i, best) && p->cost[i * p->k + j] < p->cost[i * p->k + best])))
            best = j;
    return best;
}

/* greedy: from the cheapest assignment, apply the upgrade with the largest cost drop per extra bit
 * that fits, until none does */
static void greedy(const qs_mp_problem *p, double budget, int *ch, double *bits, double *cost)
{
    *bits = *cost = 0;
    for (int i = 0; i < p->n; i++) *bits += bits_of(p, i, ch[i]), *cost += p->cost[i * p->k + ch[i]];
    for (;;) {
        int bi = -1, bj = -1;
        double best = 0;
        for (int i = 0; i < p->n; i++)
            for (int j = 0; j < p->k; j++) {
                if (!usable(p, i, j)) continue;
                double db = bits_of(p, i, j) - bits_of(p, i, ch[i]), dc = p->cost[i * p->k + ch[i]] - p->cost[i * p->k + j];
                if (db <= 0 || dc <= 0 || *bits + db > budget) continue;
                if (dc / db > best) best = dc / db, bi = i, bj = j;
            }
        if (bi < 0) return;
        *bits += bits_of(p, bi, bj) - bits_of(p, bi, ch[bi]);
        *cost += p->cost[bi * p->k + bj] - p->cost[bi * p->k + ch[bi]];
        ch[bi] = bj;
    }
}

enum { GRID = 4096 };

/* exact multiple-choice knapsack on bits rounded up to budget/GRID units (so every solution it
 * returns fits the real budget) */
static int knapsack(const qs_mp_problem *p, double budget, int *ch)
{
    double unit = budget / GRID;
    size_t W = GRID + 1;
    double *dp = malloc(W * sizeof *dp), *nx = malloc(W * sizeof *nx);
    signed char *pick = malloc((size_t)p->n * W);
    if (!dp || !nx || !pick || p->k > 127) {
        free(dp), free(nx), free(pick);
        return -1;
    }
    for (size_t b = 0; b < W; b++) dp[b] = 0;
    for (int i = 0; i < p->n; i++) {
        for (size_t b = 0; b < W; b++) nx[b] = INFINITY, pick[(size_t)i * W + b] = -1;
        for (int j = 0; j < p->k; j++) {
            if (!usable(p, i, j)) continue;
            size_t u = (size_t)ceil(bits_of(p, i, j) / unit - 1e-9);
            for (size_t b = u; b < W; b++) {
                double c = dp[b - u] + p->cost[i * p->k + j];
                if (c < nx[b]) nx[b] = c, pick[(size_t)i * W + b] = (signed char)j;
            }
        }
        double *t = dp;
        dp = nx, nx = t;
    }
    int rc = isfinite(dp[W - 1]) ? 0 : -1;
    size_t b = W - 1;
    for (int i = p->n - 1; !rc && i >= 0; i--) {
        int j = pick[(size_t)i * W + b];
        ch[i] = j;
        b -= (size_t)ceil(bits_of(p, i, j) / unit - 1e-9);
    }
    free(dp), free(nx), free(pick);
    return rc;
}

int qs_mp_solve(const qs_mp_problem *p, double budget, qs_mp_solution *out, qs_err *err)
{
    memset(out, 0, sizeof *out);
    if (p->n <= 0 || p->k <= 0) return qs_err_set(err, QS_E_USAGE, "nothing to choose");
    out->choice = malloc((size_t)p->n * sizeof *out->choice);
    int *kn = malloc((size_t)p->n * sizeof *kn);
    if (!out->choice || !kn) {
        free(kn), qs_mp_solution_free(out);
        return qs_err_set(err, QS_E_OOM, "out of memory");
    }
    double lo, hi;
    qs_mp_range(p, &lo, &hi);
    for (int i = 0; i < p->n; i++) {
        out->choice[i] = cheapest(p, i);
        if (out->choice[i] < 0) {
            free(kn), qs_mp_solution_free(out);
            return qs_err_set(err, QS_E_INPUT, "tensor %d has no usable candidate", i);
        }
    }
    if (lo > budget * (1 + 1e-12)) {
        free(kn), qs_mp_solution_free(out);
        return qs_err_set(err, QS_E_USAGE, "the budget of %.4g bits is below the cheapest choice (%.4g)", budget, lo);
    }
    greedy(p, budget, out->choice, &out->bits, &out->cost);
    out->greedy_cost = out->cost;
    if (knapsack(p, budget, kn) == 0) {
        double b = 0, c = 0;
        for (int i = 0; i < p->n; i++) b += bits_of(p, i, kn[i]), c += p->cost[i * p->k + kn[i]];
        if (c < out->cost && b <= budget) {
            memcpy(out->choice, kn, (size_t)p->n * sizeof *kn);
            out->bits = b, out->cost = c;
        }
    }
    free(kn);
    return 0;
}

void qs_mp_solution_free(qs_mp_solution *s)
{
    free(s->choice);
    memset(s, 0, sizeof *s);
}

int qs_mp_pareto(const qs_mp_problem *p, int n, double *bits, double *cost)
{
    double lo, hi;
    qs_mp_range(p, &lo, &hi);
    int k = 0;
    for (int s = 0; s < n; s++) {
        qs_mp_solution sol;
        if (qs_mp_solve(p, lo + (hi - lo) * s / (n > 1 ? n - 1 : 1), &sol, NULL)) continue;
        bits[k] = sol.bits, cost[k] = sol.cost, k++;
        qs_mp_solution_free(&sol);
    }
    return k;
}

int qs_mp_table_build(const qs_model *m, int k, const char (*cfgs)[256], const qs_scan_row *const *rows, const int *nrows,
                      qs_mp_table *c, qs_err *err)
{
    memset(c, 0, sizeof *c);
    if (k < 1 || k > QS_MP_MAX_CAND) return qs_err_set(err, QS_E_USAGE, "1 to %d candidate scans", QS_MP_MAX_CAND);
    c->k = k;
    for (int j = 0; j < k; j++) snprintf(c->cfg[j], sizeof c->cfg[j], "%s", cfgs[j]);
    for (int j = 0; j < k; j++)
        for (int r = 0; r < nrows[j]; r++)
            if (!qs_model_find_tensor(m, rows[j][r].unit))
                return qs_err_set(err, QS_E_INPUT, "%s is no tensor of the model (a --per block scan?)", rows[j][r].unit);
    int64_t nt = m->n_tensors;
    c->t = calloc((size_t)(nt ? nt : 1), sizeof *c->t), c->params = calloc((size_t)(nt ? nt : 1), sizeof *c->params);
    c->bpw = calloc((size_t)(nt * k + 1), sizeof *c->bpw), c->cost = calloc((size_t)(nt * k + 1), sizeof *c->cost);
    if (!c->t || !c->params || !c->bpw || !c->cost) {
        qs_mp_table_free(c);
        return qs_err_set(err, QS_E_OOM, "out of memory");
    }
    for (int64_t i = 0; i < nt; i++) {
        const qs_tensor *t = &m->tensors[i];
        int found = 0;
        for (int j = 0; j < k; j++) {
            c->cost[c->n * k + j] = NAN;
            for (int r = 0; r < nrows[j]; r++)
                if (!strcmp(rows[j][r].unit, t->name)) {
                    c->bpw[c->n * k + j] = rows[j][r].bpw, c->cost[c->n * k + j] = rows[j][r].kld, found++;
                    c->params[c->n] = rows[j][r].params;
                }
        }
        if (found) c->t[c->n++] = t;
        else c->other_bits += (double)t->nbytes * 8;
    }
    if (!c->n) {
        qs_mp_table_free(c);
        return qs_err_set(err, QS_E_INPUT, "the scans measured no tensor");
    }
    return 0;
}

void qs_mp_table_free(qs_mp_table *t)
{
    free(t->t), free(t->params), free(t->bpw), free(t->cost);
    memset(t, 0, sizeof *t);
}

qs_mp_problem qs_mp_table_problem(const qs_mp_table *t) { return (qs_mp_problem){t->n, t->k, t->params, t->bpw, t->cost}; }

double qs_mp_table_params(const qs_mp_table *t)
{
    double p = 0;
    for (int i = 0; i < t->n; i++) p += (double)t->params[i];
    return p;
}

const char *const qs_mp_presets[] = {"Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M",
                                     "Q5_K_S", "Q5_K_M", "Q6_K",   "Q8_0",   NULL};

bool qs_mp_preset_point(const qs_model *m, const qs_mp_table *c, const char *preset, double *bpw, double *cost)
{
    qs_recipe r;
    qs_recipe_init(&r, m);
    bool ok = qs_recipe_from_preset(&r, m, preset, false, NULL) == 0;
    double bits = 0, sum = 0;
    for (int i = 0; ok && i < c->n; i++) {
        const char *name = c->t[i]->gguf_name[0] ? c->t[i]->gguf_name : c->t[i]->name;
        int j = -1;
        for (int o = 0; o < r.n_overrides && j < 0; o++) {
            if (strcmp(r.overrides[o].pattern, name)) continue;
            for (int q = 0; q < c->k; q++)
                if (!r.overrides[o].keep && !strcmp(c->cfg[q], r.overrides[o].cfg.method->name)) j = q;
        }
        if (j < 0 || !isfinite(c->cost[i * c->k + j])) ok = false;
        else bits += (double)c->params[i] * c->bpw[i * c->k + j], sum += c->cost[i * c->k + j];
    }
    qs_recipe_free(&r);
    *bpw = bits / qs_mp_table_params(c), *cost = sum;
    return ok;
}
