/* The mixed-precision solver against exhaustive search on small random problems: the suggestion
 * fits the budget and its summed cost is within the knapsack's bit-grid slack of the optimum. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "core/recipe/suggest.h"

static uint32_t next(uint32_t *s) { return *s = *s * 1664525u + 1013904223u; }

/* the best assignment by enumeration, within budget */
static double brute(const qs_mp_problem *p, double budget)
{
    int idx[8] = {0};
    double best = INFINITY;
    for (;;) {
        double b = 0, c = 0;
        for (int i = 0; i < p->n; i++) b += (double)p->params[i] * p->bpw[i * p->k + idx[i]], c += p->cost[i * p->k + idx[i]];
        if (b <= budget && c < best) best = c;
        int i = 0;
        while (i < p->n && ++idx[i] == p->k) idx[i++] = 0;
        if (i == p->n) return best;
    }
}

Test(suggest, optimal_within_budget_on_random_problems)
{
    uint32_t s = 7;
    int exact = 0;
    for (int trial = 0; trial < 200; trial++) {
        enum { N = 7, K = 4 };
        int64_t params[N];
        double bpw[N * K], cost[N * K];
        for (int i = 0; i < N; i++) {
            params[i] = 1000 + next(&s) % 50000;
            double sens = 0.001 + (next(&s) % 1000) / 1000.0;
            for (int j = 0; j < K; j++) {
                bpw[i * K + j] = 2.5 + 1.5 * j + (next(&s) % 100) / 400.0;
                cost[i * K + j] = sens * pow(2.0, -2.0 * bpw[i * K + j]) * (1 + (next(&s) % 100) / 200.0);
            }
        }
        qs_mp_problem p = {N, K, params, bpw, cost};
        double lo, hi;
        qs_mp_range(&p, &lo, &hi);
        double budget = lo + (hi - lo) * (next(&s) % 1000) / 1000.0;
        qs_mp_solution sol;
        qs_err err = {0};
        cr_assert_eq(qs_mp_solve(&p, budget, &sol, &err), 0, "%s", err.msg);
        double best = brute(&p, budget), b = 0, c = 0;
        for (int i = 0; i < N; i++) b += (double)params[i] * bpw[i * K + sol.choice[i]], c += cost[i * K + sol.choice[i]];
        cr_assert_leq(b, budget, "trial %d: %g bits over the budget %g", trial, b, budget);
        cr_assert_float_eq(b, sol.bits, 1e-6 * b);
        cr_assert_float_eq(c, sol.cost, 1e-12 + 1e-9 * c);
        cr_assert_geq(c, best * (1 - 1e-12), "below the optimum: the totals are wrong");
        cr_assert_leq(sol.cost, sol.greedy_cost * (1 + 1e-12), "the refinement never loses to the greedy pass");
        /* the bit grid is budget/4096: a solution that needs the last few bits may be missed */
        if (c <= best * (1 + 1e-9)) exact++;
        qs_mp_solution_free(&sol);
    }
    cr_log_info("%d of 200 random problems solved exactly", exact);
    cr_expect_geq(exact, 190, "optimal in %d of 200", exact);
}

Test(suggest, infeasible_budget_is_an_error)
{
    int64_t params[2] = {100, 100};
    double bpw[4] = {4, 8, 4, 8}, cost[4] = {1, 0.1, 2, NAN};
    qs_mp_problem p = {2, 2, params, bpw, cost};
    qs_mp_solution sol;
    qs_err err = {0};
    cr_expect_lt(qs_mp_solve(&p, 700, &sol, &err), 0);
    cr_assert_eq(qs_mp_solve(&p, 1200, &sol, &err), 0, "%s", err.msg);
    cr_expect_eq(sol.choice[0], 1, "the spare bits go to the tensor that gains");
    cr_expect_eq(sol.choice[1], 0, "a NAN candidate is never chosen");
    qs_mp_solution_free(&sol);
}
