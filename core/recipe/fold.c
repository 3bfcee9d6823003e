/* core/recipe/fold.c — where AWQ's channel scales go when a recipe is exported. */
#include "core/recipe/fold.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static int64_t find_entry(const qs_recipe_table *t, qs_role role, int block)
{
    for (int64_t i = 0; i < t->n; i++)
        if (t->e[i].t->role == role && t->e[i].t->block == block && !t->e[i].t->is_bias) return i;
    return -1;
}

static int fold_vec(float **v, int64_t n, const float *s, bool divide, qs_err *err)
{
    if (!*v) {
        if (!(*v = malloc((size_t)n * sizeof **v))) return qs_err_set(err, QS_E_OOM, "out of memory");
        for (int64_t k = 0; k < n; k++) (*v)[k] = 1;
    }
    for (int64_t k = 0; k < n; k++) (*v)[k] = divide ? (*v)[k] / s[k] : (*v)[k] * s[k];
    return 0;
}

static bool all_ones(const float *s, int64_t n)
{
    for (int64_t k = 0; k < n; k++)
        if (s[k] != 1.0f) return false;
    return true;
}

/* the norm before a reader, and the readers of that norm */
static qs_role norm_of(qs_role r)
{
    return r == QS_ROLE_ATTN_Q || r == QS_ROLE_ATTN_K || r == QS_ROLE_ATTN_V || r == QS_ROLE_ATTN_QKV ? QS_ROLE_ATTN_NORM
           : r == QS_ROLE_FFN_GATE || r == QS_ROLE_FFN_UP                                            ? QS_ROLE_FFN_NORM
           : r == QS_ROLE_OUTPUT                                                                     ? QS_ROLE_OUTPUT_NORM
                                                                                                     : QS_ROLE_OTHER;
}

/* s of AWQ entry i into the norm before it and every other reader of that norm */
static int fold_into_norm(const qs_recipe_table *t, const qs_qgrid *grids, int64_t i, qs_fold *f, bool *norm_done,
                          qs_err *err)
{
    const qs_tensor *x = t->e[i].t;
    int64_t n = find_entry(t, norm_of(x->role), x->block), cols = x->ne[0];
    if (n < 0) return qs_err_set(err, QS_E_UNSUPPORTED, "%s: no norm before it to fold AWQ's scales into", x->name);
    /* the scales have one entry per column: the norm and every reader must have that many */
    if (t->e[n].t->ne[0] != cols || qs_tensor_nelements(t->e[n].t) != cols || grids[i].cols != cols)
        return qs_err_set(err, QS_E_INPUT, "%s: its norm %s has %lld values for %lld columns", x->name, t->e[n].t->name,
                          (long long)qs_tensor_nelements(t->e[n].t), (long long)cols);
    const float *s = grids[i].col_scale;
    for (int64_t j = 0; j < t->n; j++) {
        const qs_tensor *y = t->e[j].t;
        if (y->block != x->block || y->is_bias || norm_of(y->role) != norm_of(x->role) || j == i) continue;
        if (y->ne[0] != cols)
            return qs_err_set(err, QS_E_INPUT, "%s and %s read one norm but have %lld and %lld columns", x->name, y->name,
                              (long long)cols, (long long)y->ne[0]);
        const qs_qgrid *g = grids && qs_qgrid_has(&grids[j]) ? &grids[j] : NULL;
        if (g && g->col_scale && !memcmp(g->col_scale, s, (size_t)cols * sizeof *s)) continue; /* searched jointly */
        if (norm_done[n] || g)
            return qs_err_set(err, QS_E_UNSUPPORTED,
                              "%s and %s read one norm but were quantized with different AWQ scales or a grid that cannot "
                              "take them: give them one AWQ config",
                              x->name, y->name);
        if (fold_vec(&f[j].col_mul, cols, s, false, err)) return -QS_E_OOM;
    }
    norm_done[n] = true;
    return fold_vec(&f[n].col_mul, cols, s, true, err);
}

int qs_fold_plan(const qs_recipe_table *t, const qs_qgrid *grids, qs_fold *f, qs_err *err)
{
    bool *norm_done = calloc((size_t)(t->n ? t->n : 1), sizeof *norm_done);
    if (!norm_done) return qs_err_set(err, QS_E_OOM, "out of memory");
    int rc = 0;
    for (int64_t i = 0; !rc && grids && i < t->n; i++) {
        const qs_qgrid *g = &grids[i];
        const qs_tensor *x = t->e[i].t;
        if (!qs_qgrid_has(g) || !g->col_scale || all_ones(g->col_scale, g->cols)) continue;
        if (x->role == QS_ROLE_ATTN_O || x->role == QS_ROLE_FFN_DOWN) {
            int64_t p = find_entry(t, x->role == QS_ROLE_ATTN_O ? QS_ROLE_ATTN_V : QS_ROLE_FFN_UP, x->block);
            if (p < 0 || qs_tensor_nrows(t->e[p].t) != g->cols || g->cols != x->ne[0])
                rc = qs_err_set(err, QS_E_UNSUPPORTED, "%s: no linear before it to fold AWQ's scales into", x->name);
            else rc = fold_vec(&f[p].row_div, g->cols, g->col_scale, false, err);
        } else {
            bool done = false;
            for (int64_t j = 0; j < i && !done; j++) /* a joint search already folded these scales */
                done = grids[j].col_scale && grids[j].cols == g->cols && t->e[j].t->block == x->block &&
                       norm_of(t->e[j].t->role) == norm_of(x->role) &&
                       !memcmp(grids[j].col_scale, g->col_scale, (size_t)g->cols * sizeof *g->col_scale);
            if (!done) rc = fold_into_norm(t, grids, i, f, norm_done, err);
        }
    }
    free(norm_done);
    return rc;
}

void qs_fold_apply(const qs_fold *f, float *x, int64_t rows, int64_t cols)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            float v = x[r * cols + c];
            if (f->col_mul) v *= f->col_mul[c];
            if (f->row_div) v /= f->row_div[r];
            x[r * cols + c] = v;
        }
}


void qs_fold_free(qs_fold *f, int64_t n)
{
    for (int64_t i = 0; f && i < n; i++) free(f[i].col_mul), free(f[i].row_div);
    free(f);
}

