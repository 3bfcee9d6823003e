/* core/suggest.h — mixed-precision suggestion: per tensor, one of K candidate configs, each with
 * its bits per weight and its measured sensitivity (the scan's mean KLD of quantizing that tensor
 * alone), so that the summed sensitivity is smallest within a bit budget. A greedy pass upgrades
 * by the best marginal gain per bit (on each tensor's lower convex hull); an exact multiple-choice
 * knapsack over a fine bit grid then refines it, and the better of the two is kept. Summing
 * per-tensor KLDs assumes they add, which holds to first order for small perturbations. */
#ifndef QS_SUGGEST_H
#define QS_SUGGEST_H

#include <stdint.h>

#include "err.h"

typedef struct qs_mp_problem {
    int n, k;              /* tensors, candidates */
    const int64_t *params; /* [n] weights per tensor */
    const double *bpw;     /* [n][k] */
    const double *cost;    /* [n][k] (NAN: the candidate is not possible for that tensor) */
} qs_mp_problem;

typedef struct qs_mp_solution {
    int *choice;           /* [n] candidate index */
    double bits, cost;     /* totals */
    double greedy_cost;    /* what the greedy pass alone reached */
} qs_mp_solution;

/* budget: total bits (Σ params · bpw) allowed. Error when even the cheapest choice exceeds it. */
int qs_mp_solve(const qs_mp_problem *p, double budget_bits, qs_mp_solution *out, qs_err *err);
void qs_mp_solution_free(qs_mp_solution *s);
/* total bits of the cheapest and the dearest assignment */
void qs_mp_range(const qs_mp_problem *p, double *min_bits, double *max_bits);

#endif
