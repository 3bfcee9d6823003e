/* core/recipe/scan.c — per-tensor / per-block sensitivity scan. */
#include "core/recipe/scan.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/quant/ggml_types.h"
#include "core/recipe/recipe.h"

/* the llm's weights: the quantizable tensors inference uses */
static bool in_scan(const qs_tensor *t) { return qs_recipe_quantizable(t) && t->role != QS_ROLE_OTHER; }

int qs_scan_units(const qs_model *m, bool per_block, char (**names)[256], int *n, qs_err *err)
{
    *names = calloc((size_t)(m->n_tensors + m->hp.n_layer + 1), sizeof **names);
    *n = 0;
    if (!*names) return qs_err_set(err, QS_E_OOM, "out of memory");
    if (per_block) {
        for (uint32_t b = 0; b < m->hp.n_layer; b++) snprintf((*names)[(*n)++], 256, "blk.%u", b);
        return 0;
    }
    for (int64_t i = 0; i < m->n_tensors; i++)
        if (in_scan(&m->tensors[i])) snprintf((*names)[(*n)++], 256, "%s", m->tensors[i].name);
    return 0;
}

static bool in_unit(const qs_tensor *t, const char *unit, bool per_block)
{
    if (!in_scan(t)) return false;
    if (!per_block) return !strcmp(t->name, unit);
    int b = -1;
    return sscanf(unit, "blk.%d", &b) == 1 && t->block == b;
}

/* quantizes (or restores, cfg NULL) every tensor of the unit in l; bpw and params of the unit */
static int set_unit(qs_llm *l, const qs_model *m, const char *unit, bool per_block, const qs_qconfig *cfg,
                    double *bpw, int64_t *params, qs_err *err)
{
    double bits = 0;
    int64_t np = 0;
    for (int64_t i = 0; i < m->n_tensors; i++) {
        const qs_tensor *t = &m->tensors[i];
        if (!in_unit(t, unit, per_block)) continue;
        int64_t rows = qs_tensor_nrows(t), cols = t->ne[0];
        float *w = malloc((size_t)(rows * cols) * sizeof *w);
        if (!w) return qs_err_set(err, QS_E_OOM, "out of memory");
        int rc = qs_tensor_read_rows(t, 0, rows, w, err);
        if (!rc && cfg) {
            qs_qresult r;
            rc = qs_quant_run(cfg, w, rows, cols, NULL, NULL, 0, &r, err);
            if (!rc) {
                rc = qs_llm_set_result(l, t->name, &r, 0, err);
                bits += r.bpw * (double)(rows * cols);
                qs_qresult_free(&r);
            }
        } else if (!rc) {
            rc = qs_llm_set_weights(l, t->name, w, qs_llama_cpp_act_type(t->type, cols), err);
        }
        free(w);
        if (rc) return qs_err_prefix(err, "%s", t->name);
        np += rows * cols;
    }
    if (bpw) *bpw = np ? bits / (double)np : 0;
    if (params) *params = np;
    return 0;
}

/* every tensor of the unit can take the config (llama-quantize's fallbacks count) */
static bool unit_fits(const qs_model *m, const char *unit, bool per_block, const qs_qconfig *cfg)
{
    for (int64_t i = 0; i < m->n_tensors; i++) {
        const qs_tensor *t = &m->tensors[i];
        int type;
        if (in_unit(t, unit, per_block) && qs_qconfig_check(cfg, qs_tensor_nrows(t), t->ne[0], &type, NULL)) return false;
    }
    return true;
}

static int cmp_kld(const void *a, const void *b)
{
    const qs_scan_row *x = a, *y = b;
    return x->kld > y->kld ? -1 : x->kld < y->kld ? 1 : strcmp(x->unit, y->unit);
}

int qs_scan_run(qs_llm *l, const qs_model *m, const qs_vocab *v, const char *text, size_t len, const qs_scan_opts *o,
                const qs_scan_row *done, int n_done, qs_scan_row_fn on_row, void *ctx, qs_progress *prog,
                qs_scan_row **out, int *n_out, double *ppl_base, qs_err *err)
{
    *out = NULL, *n_out = 0;
    if (qs_method_needs_calib(o->cfg.method))
        return qs_err_set(err, QS_E_USAGE, "the scan takes configs without calibration (%s needs it)", o->cfg.method->name);
    char(*units)[256];
    int nu, rc = qs_scan_units(m, o->per_block, &units, &nu, err);
    if (rc) return rc;
    qs_scan_row *rows = calloc((size_t)(nu + n_done + 1), sizeof *rows);
    qs_kld_base b = {0};
    qs_ppl base;
    if (!rows) rc = qs_err_set(err, QS_E_OOM, "out of memory");
    if (!rc) rc = qs_kld_base_compute(l, v, text, len, o->n_ctx, o->n_chunks, NULL, &b, &base, err);
    int n = 0;
    for (int i = 0; i < n_done; i++) rows[n++] = done[i];
    for (int u = 0; !rc && u < nu; u++) {
        bool seen = false;
        for (int i = 0; i < n_done && !seen; i++) seen = !strcmp(done[i].unit, units[u]);
        if (seen) continue;
        qs_scan_row *r = &rows[n];
        memset(r, 0, sizeof *r);
        snprintf(r->unit, sizeof r->unit, "%s", units[u]);
        const qs_tensor *t = qs_model_find_tensor(m, units[u]);
        r->block = t ? t->block : atoi(units[u] + 4);
        if (!unit_fits(m, units[u], o->per_block, &o->cfg)) continue; /* e.g. 172 columns for q4_0 */
        qs_kld_stats s;
        rc = set_unit(l, m, units[u], o->per_block, &o->cfg, &r->bpw, &r->params, err);
        if (!rc) rc = qs_kld_compare(l, &b, qs_vocab_add_bos(v) ? qs_vocab_bos(v) : -1, NULL, &s, err);
        int rc2 = set_unit(l, m, units[u], o->per_block, NULL, NULL, NULL, err);
        if (!rc) rc = rc2;
        if (rc) break;
        r->kld = s.kld_mean, r->kld_unc = s.kld_unc, r->ppl = s.ppl_q, r->dppl = s.ppl_q - s.ppl_base, r->same_top = s.same_top;
        n++;
        if (on_row) on_row(ctx, r);
        if (!qs_progress_step(prog, u + 1, nu)) rc = qs_err_set(err, QS_E_CANCELLED, "cancelled");
    }
    qs_kld_base_free(&b);
    free(units);
    if (rc) {
        free(rows);
        return rc;
    }
    qsort(rows, (size_t)n, sizeof *rows, cmp_kld);
    *out = rows, *n_out = n;
    if (ppl_base) *ppl_base = base.ppl;
    return 0;
}
