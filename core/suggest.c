/* core/suggest.c — the mixed-precision solver. */
#include "suggest.h"

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
