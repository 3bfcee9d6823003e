/* core/recipe/suggest.h — mixed-precision suggestion: per tensor, one of K candidate configs, each with
 * its bits per weight and its measured sensitivity (the scan's mean KLD of quantizing that tensor
 * alone), so that the summed sensitivity is smallest within a bit budget. A greedy pass upgrades
 * by the best marginal gain per bit (on each tensor's lower convex hull); an exact multiple-choice
 * knapsack over a fine bit grid then refines it, and the better of the two is kept. Summing
 * per-tensor KLDs assumes they add, which holds to first order for small perturbations. */
#ifndef QS_SUGGEST_H
#define QS_SUGGEST_H

#include <stdbool.h>
#include <stdint.h>

#include "core/util/err.h"

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
/* n solutions from the cheapest to the dearest budget: bits[i], cost[i]; returns how many */
int qs_mp_pareto(const qs_mp_problem *p, int n, double *bits, double *cost);

/* The candidates from per-tensor scans (one scan per config, rows as core/scan.h gives them):
 * every tensor of m that at least one scan measured, in model order; a config a scan left out
 * for a tensor is no choice there (NAN cost). other_bits: the file's bits of the rest. */
#define QS_MP_MAX_CAND 16
typedef struct qs_mp_table {
    int n, k;
    char cfg[QS_MP_MAX_CAND][256];
    const struct qs_tensor **t;
    int64_t *params;
    double *bpw, *cost;    /* [n][k] */
    double other_bits;
} qs_mp_table;
struct qs_model;
struct qs_scan_row;
int qs_mp_table_build(const struct qs_model *m, int k, const char (*cfgs)[256], const struct qs_scan_row *const *rows,
                      const int *nrows, qs_mp_table *out, qs_err *err);
void qs_mp_table_free(qs_mp_table *t);
qs_mp_problem qs_mp_table_problem(const qs_mp_table *t);
double qs_mp_table_params(const qs_mp_table *t);
/* the llama-quantize presets a Pareto plot marks (NULL-terminated) */
extern const char *const qs_mp_presets[];
/* where llama-quantize's preset would sit (bpw of the scanned tensors, summed KLD): false when a
 * type it picks for one of them is not a candidate */
bool qs_mp_preset_point(const struct qs_model *m, const qs_mp_table *t, const char *preset, double *bpw, double *cost);

#endif
