/* core/model/ops.h — the row operations of the llama forward pass, shared by inference (infer.c)
 * and training (train.c) so both compute the same numbers. Matrices are row-major
 * [rows][cols] float arrays. */
#ifndef QS_OPS_H
#define QS_OPS_H

#include <stdbool.h>
#include <stddef.h>

/* y[t] = x[t] · g / sqrt(mean(x[t]²) + eps) for T rows of E; the sum of squares is in double.
 * inv_rms (may be NULL) receives 1/sqrt(mean + eps) per row. */
void qs_op_rmsnorm(const float *x, const float *g, float *y, int T, int E, float eps, float *inv_rms);
/* Rotary embedding of n_heads heads of D values at position pos over the n_rot leading
 * dimensions: adjacent pairs (norm) or halves (neox), angles by repeated multiplication.
 * dir = +1 rotates; dir = −1 applies the inverse rotation (the backward pass). */
void qs_op_rope(float *v, int n_heads, int D, int n_rot, int pos, float base, bool neox, float dir);
/* Causal softmax of the rows of sc[T][np] in place: row t sees positions 0 … pos0 + t, the
 * rest become 0; the sum is in double. */
void qs_op_softmax_causal(float *sc, int T, int np, int pos0);
/* h[i] = silu(g[i]) · u[i] (h may alias g) */
void qs_op_swiglu(const float *g, const float *u, float *h, size_t n);

#endif
