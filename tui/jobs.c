/* tui/jobs.c — the worker's long jobs (calibration, sensitivity scan, Pareto, export,
 * perplexity) and the generation, each behind its job_ops (tui/jobs.h). */
#include "tui/jobs.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/data/calib.h"
#include "core/recipe/export.h"
#include "core/quant/qgrid.h"
#include "core/util/fileio.h"
#include "core/quant/ggml_types.h"
#include "core/quant/ggml_quants.h"
#include "core/formats/gguf.h"
#include "core/model/hf_tokenizer.h"
#include "core/quant/qdot.h"
#include "core/recipe/scan.h"
#include "core/recipe/suggest.h"

/* a GGML config the engine runs on packed rows: quantized in row chunks straight into the bytes
 * (no float copy of the tensor, no dequantized one: the bytes qs_quant_run would give); 1 when
 * the config is not such a one */
static int set_packed_in_chunks(worker *w, const qs_tensor *x, const qs_qconfig *cfg, qs_err *e)
{
    int64_t rows = qs_tensor_nrows(x), cols = x->ne[0];
    int type;
    if (!qs_qconfig_ggml_native(cfg) || rows < 2 || qs_qconfig_check(cfg, rows, cols, &type, e) ||
        qs_qdot_act_type(type, cols) < 0)
        return 1;
    int64_t rb = qs_type_row_bytes(type, cols), chunk = (1 << 20) / cols + 1;
    uint8_t *data = malloc((size_t)(rb * rows));
    float *f = malloc((size_t)((chunk < rows ? chunk : rows) * cols) * sizeof *f);
    int rc = !data || !f ? qs_err_set(e, QS_E_OOM, "out of memory") : 0;
    for (int64_t r0 = 0; !rc && r0 < rows; r0 += chunk) {
        int64_t nr = rows - r0 < chunk ? rows - r0 : chunk;
        if (__atomic_load_n(&w->gen_cancel, __ATOMIC_RELAXED)) rc = qs_err_set(e, QS_E_CANCELLED, "cancelled");
        else rc = qs_tensor_read_rows(x, r0, nr, f, e);
        for (int64_t i = 0; !rc && i < nr * cols; i++)
            if (!isfinite(f[i])) rc = qs_err_set(e, QS_E_INPUT, "not finite");
        if (!rc) rc = qs_ggml_quantize(type, f, data + r0 * rb, nr, cols, NULL, 0, e);
    }
    if (!rc) rc = qs_llm_set_packed(w->quant, x->name, type, data, (size_t)(rb * rows), e);
    free(data), free(f);
    return rc;
}

/* brings the quantized model up to date with cfgs: only tensors whose config changed */
static int update_quantized(worker *w, const qs_qconfig *cfgs, char *err, size_t errn)
{
    const qs_model *m = w->a->model;
    int n = 0;
    for (int64_t t = 0; t < m->n_tensors; t++) {
        if (__atomic_load_n(&w->gen_cancel, __ATOMIC_RELAXED)) return snprintf(err, errn, "cancelled"), -1;
        if (!app_tensor_quantizable(w->a, (int)t)) continue;
        if (w->applied_set[t] && qs_qconfig_equal(&w->applied[t], &cfgs[t])) {
            n++;
            continue;
        }
        const qs_tensor *x = &m->tensors[t];
        int64_t rows = qs_tensor_nrows(x), cols = x->ne[0];
        qs_err e = {0};
        int pk = set_packed_in_chunks(w, x, &cfgs[t], &e);
        if (e.code == QS_E_CANCELLED) return snprintf(err, errn, "cancelled"), -1;
        if (pk == 0) {
            w->applied[t] = cfgs[t];
            w->applied_set[t] = true;
            n++;
            continue;
        }
        float *f = malloc((size_t)(rows * cols) * sizeof *f);
        qs_qresult q;
        if (!f || qs_tensor_read_rows(x, 0, rows, f, &e)) {
            snprintf(err, errn, "%.150s", f ? e.msg : "out of memory");
            free(f);
            return -1;
        }
        qs_calib view = {0};
        char why[8];
        bool have_view = qs_method_needs_calib(cfgs[t].method) && worker_calib_view(w->a, x, &cfgs[t], &view, why, sizeof why) == 0;
        int rc = qs_quant_run(&cfgs[t], f, rows, cols, have_view ? &view : NULL, NULL, 0, &q, &e);
        qs_calib_free(&view);
        if (rc == 0) {
            qs_llm_set_result(w->quant, x->name, &q, 0, &e);
            qs_qresult_free(&q);
            n++;
        } else { /* a config this shape cannot take: the tensor stays as in the file */
            qs_llm_set_weights(w->quant, x->name, f, qs_llama_cpp_act_type(x->type, cols), &e);
        }
        free(f);
        w->applied[t] = cfgs[t];
        w->applied_set[t] = true;
    }
    return n;
}

/* greedy continuation of ids[0..n) by GEN_TOKENS tokens into text (stops when *cancel is set) */
static int continue_greedy(qs_llm *l, const qs_vocab *v, const int32_t *ids, int n, int32_t *out, volatile int *cancel,
                           qs_err *err)
{
    int V = qs_llm_n_vocab(l), k = 0;
    float *logits = malloc((size_t)n * (size_t)V * sizeof *logits);
    if (!logits || qs_llm_eval(l, ids, n, 0, logits, err)) {
        free(logits);
        return -1;
    }
    const float *last = logits + (size_t)(n - 1) * V;
    for (; k < GEN_TOKENS && n + k < GEN_CTX; k++) {
        int best = 0;
        for (int i = 1; i < V; i++)
            if (last[i] > last[best]) best = i;
        out[k] = best;
        if (qs_vocab_is_eog(v, best) || __atomic_load_n(cancel, __ATOMIC_RELAXED) ||
            qs_llm_eval(l, &out[k], 1, n + k, logits, err))
            break;
        last = logits;
    }
    free(logits);
    return k;
}

static size_t pieces(const qs_vocab *v, const int32_t *ids, int n, int upto, char *buf, size_t cap)
{
    size_t o = 0;
    for (int i = 0; i < n && i < upto && o + 1 < cap; i++) o += qs_token_piece(v, ids[i], false, 0, buf + o, cap - 1 - o);
    buf[o] = '\0';
    return o;
}

/* the vocabulary and the two models (the original one also serves the calibration) */
static int ensure_models(worker *w, qs_err *err)
{
    if (w->quant) return 0;
    const qs_model *m = w->a->model;
    int64_t n = m->n_tensors;
    if (!w->applied) w->applied = calloc((size_t)(n ? n : 1), sizeof *w->applied);
    if (!w->applied_set) w->applied_set = calloc((size_t)(n ? n : 1), sizeof *w->applied_set);
    if (!w->applied || !w->applied_set) return qs_err_set(err, QS_E_OOM, "out of memory");
    if (!w->vocab && !(w->vocab = qs_model_vocab(m, err))) return -1; /* GGUF, or the checkpoint's tokenizer.json */
    if (!w->base && !(w->base = qs_llm_new(m, GEN_CTX, err))) return -1;
    if (!(w->quant = qs_llm_new(m, GEN_CTX, err))) return -1;
    return 0;
}

/* progress of the running calibration or scan, into the status line */
static void job_report(void *ctx, int64_t done, int64_t total)
{
    worker *w = ctx;
    pthread_mutex_lock(&w->a->lock);
    snprintf(w->a->jobs.calib_status, sizeof w->a->jobs.calib_status, "%s %lld/%lld (Esc cancels)", w->job_label, (long long)done,
             (long long)total);
    pthread_mutex_unlock(&w->a->lock);
    worker_notify(w);
}

/* where the calibration cache lives: $XDG_CACHE_HOME/quantscope or ~/.cache/quantscope (made on
 * demand); false when neither is known */
static bool cache_path(const app *a, const char *text, size_t len, const qs_calib_opts *o, char *out, size_t n, bool make)
{
    const char *x = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char dir[512];
    if (x && x[0]) snprintf(dir, sizeof dir, "%.400s/quantscope", x);
    else if (home && home[0]) snprintf(dir, sizeof dir, "%.400s/.cache/quantscope", home);
    else return false;
    if (make) {
        char parent[512];
        snprintf(parent, sizeof parent, "%s", dir);
        *strrchr(parent, '/') = '\0';
        mkdir(parent, 0755), mkdir(dir, 0755);
    }
    char th[32], key[40];
    qs_model_table_hash(a->model, th);
    qs_calib_key(th, text, len, o, key);
    snprintf(out, n, "%s/%s.gguf", dir, key);
    return true;
}

/* the calibration run (or its cached result); the set goes to the app, and the tensors waiting
 * for it are redone */
static void calib_compute(worker *w, const char *path)
{
    app *a = w->a;
    qs_err err = {0};
    qs_calib_set *s = NULL;
    size_t len = 0;
    char *text = NULL;
    pthread_mutex_lock(&a->lock);
    a->jobs.calib_running = true, a->jobs.calib_done = 0, a->jobs.calib_total = 0;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(a->jobs.calib_status, sizeof a->jobs.calib_status, "calibrating on %.120s… (Esc cancels)", base);
    pthread_mutex_unlock(&a->lock);
    int rc = ensure_models(w, &err);
    if (!rc && !(text = qs_read_file(path, (size_t)1 << 30, &len, &err))) rc = -1;
    qs_calib_opts o;
    qs_calib_opts_default(&o);
    char cp[600], key[40] = "";
    bool cached = false, saved = false;
    qs_err refused = {0}; /* a cache file that was there and was refused (damaged, another version) */
    if (!rc && cache_path(a, text, len, &o, cp, sizeof cp, false)) {
        snprintf(key, sizeof key, "%s", strrchr(cp, '/') + 1);
        *strstr(key, ".gguf") = '\0';
        qs_err ce = {0};
        cached = (s = qs_calib_load(cp, key, &ce)) != NULL;
        if (!cached && access(cp, F_OK) == 0) refused = ce;
    }
    if (!rc && !cached) rc = qs_calib_collect(w->base, w->vocab, text, len, &o, &w->calib_prog, &s, &err);
    if (!rc && !cached && key[0] && cache_path(a, text, len, &o, cp, sizeof cp, true)) {
        qs_err ce = {0};
        saved = qs_calib_save(s, cp, key, &ce) == 0;
    }
    free(text);
    pthread_mutex_lock(&a->lock);
    a->jobs.calib_running = false;
    if (!rc) {
        qs_calib_set_free(a->jobs.calib);
        a->jobs.calib = s;
        if (refused.msg[0])
            snprintf(a->jobs.calib_status, sizeof a->jobs.calib_status, "calibrated anew: the cache was refused (%.100s)", refused.msg);
        else
            snprintf(a->jobs.calib_status, sizeof a->jobs.calib_status, "calibrated%s: %d chunks of %d tokens of %.80s — gptq and awq are live, "
                     "every method shows its output error", cached ? " (from the cache)" : saved ? " (cached)" : "", s->n_chunks,
                     s->n_ctx, base);
    } else {
        snprintf(a->jobs.calib_status, sizeof a->jobs.calib_status, "calibration %.140s", err.code == QS_E_CANCELLED ? "cancelled" : err.msg);
    }
    pthread_mutex_unlock(&a->lock);
    if (rc) return;
    /* the generation model: tensors that waited for calibration are quantized anew */
    for (int64_t t = 0; w->applied_set && t < a->model->n_tensors; t++)
        if (w->applied_set[t] && qs_method_needs_calib(w->applied[t].method)) w->applied_set[t] = false;
    pthread_mutex_lock(&w->mu);
    w->pending |= w->tensor_seen;
    w->gen_pending |= w->gen_cfg != NULL;
    pthread_mutex_unlock(&w->mu);
}

enum { SCAN_CHUNKS = 4 };

/* the sensitivity scan of every tensor with cfg, on SCAN_CHUNKS chunks of the calibration text */
static void scan_compute(worker *w, const qs_qconfig *cfg, const char *path)
{
    app *a = w->a;
    qs_err err = {0};
    char cs[64];
    qs_config_format(cfg, false, cs, sizeof cs);
    pthread_mutex_lock(&a->lock);
    a->jobs.scan_running = true;
    snprintf(a->jobs.calib_status, sizeof a->jobs.calib_status, "scan of %s… (Esc cancels)", cs);
    pthread_mutex_unlock(&a->lock);
    size_t len = 0;
    char *text = NULL;
    int rc = !path[0] ? qs_err_set(&err, QS_E_USAGE, "needs a text: start the workbench with --calib FILE") : ensure_models(w, &err);
    if (!rc && !(text = qs_read_file(path, (size_t)1 << 30, &len, &err))) rc = -1;
    qs_scan_opts o = {*cfg, false, GEN_CTX, SCAN_CHUNKS};
    qs_scan_row *rows = NULL;
    int n = 0;
    double ppl = 0;
    if (!rc) rc = qs_scan_run(w->base, a->model, w->vocab, text, len, &o, NULL, 0, NULL, NULL, &w->calib_prog, &rows, &n, &ppl, &err);
    free(text);
    int *rank = rc ? NULL : malloc((size_t)(a->model->n_tensors ? a->model->n_tensors : 1) * sizeof *rank);
    if (rank) {
        for (int64_t t = 0; t < a->model->n_tensors; t++) rank[t] = -1;
        for (int i = 0; i < n; i++) {
            const qs_tensor *t = qs_model_find_tensor(a->model, rows[i].unit);
            if (t) rank[t - a->model->tensors] = i;
        }
    }
    pthread_mutex_lock(&a->lock);
    a->jobs.scan_running = false;
    if (!rc && rank) {
        free(a->jobs.scan), free(a->jobs.scan_rank);
        a->jobs.scan = rows, a->jobs.n_scan = n, a->jobs.scan_rank = rank, a->jobs.scan_sel = 0, a->jobs.scan_top = 0;
        snprintf(a->jobs.scan_cfg, sizeof a->jobs.scan_cfg, "%s", cs);
        snprintf(a->jobs.calib_status, sizeof a->jobs.calib_status, "scan of %s: %d tensors ranked by KLD (base PPL %.3f on %d chunks of the "
                 "calibration text); the layer list is coloured by rank", cs, n, ppl, SCAN_CHUNKS);
    } else {
        free(rows), free(rank);
        snprintf(a->jobs.calib_status, sizeof a->jobs.calib_status, "scan %.200s", err.code == QS_E_CANCELLED ? "cancelled" : err.msg);
    }
    pthread_mutex_unlock(&a->lock);
}

/* the Pareto view: per-tensor scans of the K-quant candidates, the suggested mixes from the
 * cheapest to the dearest, and where llama-quantize's presets would sit */
static void pareto_compute(worker *w, const char *path)
{
    static const char *const cands[] = {"q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "q8_0"};
    enum { K = sizeof cands / sizeof *cands, NP = 25 };
    app *a = w->a;
    qs_err err = {0};
    pthread_mutex_lock(&a->lock);
    a->jobs.pareto_running = true;
    snprintf(a->jobs.calib_status, sizeof a->jobs.calib_status, "Pareto: scanning %d candidates… (Esc cancels)", K);
    pthread_mutex_unlock(&a->lock);
    size_t len = 0;
    char *text = NULL, cfgs[K][256];
    qs_scan_row *rows[K] = {0};
    int nrows[K] = {0};
    int rc = !path[0] ? qs_err_set(&err, QS_E_USAGE, "needs a text: start the workbench with --calib FILE") : ensure_models(w, &err);
    if (!rc && !(text = qs_read_file(path, (size_t)1 << 30, &len, &err))) rc = -1;
    for (int j = 0; !rc && j < K; j++) {
        qs_scan_opts o = {.per_block = false, .n_ctx = GEN_CTX, .n_chunks = SCAN_CHUNKS};
        bool keep;
        qs_config_parse(cands[j], &o.cfg, &keep, NULL);
        snprintf(cfgs[j], sizeof cfgs[j], "%s", cands[j]);
        snprintf(w->label, sizeof w->label, "Pareto: %s (%d/%d), tensor", cands[j], j + 1, K);
        rc = qs_scan_run(w->base, a->model, w->vocab, text, len, &o, NULL, 0, NULL, NULL, &w->calib_prog, &rows[j], &nrows[j],
                         NULL, &err);
    }
    free(text);
    qs_mp_table t = {0};
    double x[48], y[48];
    char mark[48], names[48][8] = {{0}};
    int n = 0, n_tensors = 0;
    if (!rc) rc = qs_mp_table_build(a->model, K, (const char(*)[256])cfgs, (const qs_scan_row *const *)rows, nrows, &t, &err);
    if (!rc) {
        qs_mp_problem pb = qs_mp_table_problem(&t);
        n_tensors = t.n;
        n = qs_mp_pareto(&pb, NP, x, y);
        for (int i = 0; i < n; i++) x[i] /= qs_mp_table_params(&t), mark[i] = '*';
        for (int i = 0; qs_mp_presets[i] && n < 48; i++)
            if (qs_mp_preset_point(a->model, &t, qs_mp_presets[i], &x[n], &y[n]))
                snprintf(names[n], sizeof names[n], "%s", qs_mp_presets[i]), mark[n++] = (char)('A' + i);
        qs_mp_table_free(&t);
    }
    for (int j = 0; j < K; j++) free(rows[j]);
    pthread_mutex_lock(&a->lock);
    a->jobs.pareto_running = false;
    if (!rc) {
        memcpy(a->jobs.pareto_x, x, sizeof x), memcpy(a->jobs.pareto_y, y, sizeof y), memcpy(a->jobs.pareto_mark, mark, sizeof mark);
        memcpy(a->jobs.pareto_name, names, sizeof names);
        a->jobs.n_pareto = n;
        snprintf(a->jobs.calib_status, sizeof a->jobs.calib_status, "Pareto: %d tensors scanned with %d K-quants on %d chunks of the "
                 "calibration text", n_tensors, K, SCAN_CHUNKS);
    } else {
        snprintf(a->jobs.calib_status, sizeof a->jobs.calib_status, "Pareto %.200s", err.code == QS_E_CANCELLED ? "cancelled" : err.msg);
    }
    pthread_mutex_unlock(&a->lock);
}

/* the recipe as a quantized GGUF: RTN/GPTQ/AWQ entries quantized first (on the calibration set
 * the workbench has), then every tensor written (progress over both, Esc cancels) */
static void export_compute(worker *w, qs_recipe_table *t, const char *path, int format)
{
    app *a = w->a;
    qs_err err = {0};
    pthread_mutex_lock(&a->lock);
    const qs_calib_set *calib = a->jobs.calib;
    snprintf(a->jobs.calib_status, sizeof a->jobs.calib_status, "exporting %.200s… (Esc cancels)", path);
    pthread_mutex_unlock(&a->lock);
    bool grid = qs_recipe_table_has_non_ggml(t);
    qs_qgrid *grids = grid ? calloc((size_t)t->n, sizeof *grids) : NULL;
    qs_recipe_sink sink = qs_export_grid_sink(grids);
    int rc = grid && !grids ? qs_err_set(&err, QS_E_OOM, "out of memory") : 0;
    if (!rc && grids) {
        snprintf(w->label, sizeof w->label, "export: quantizing tensor");
        rc = qs_recipe_apply(t, NULL, calib, 0, &sink, &w->calib_prog, &err);
    }
    snprintf(w->label, sizeof w->label, "export: writing tensor");
    qs_export_opts o = {-1, NULL, NULL, 0, grids, NULL};
    char warn[256] = "", file[600];
    if (!rc && format == EXPORT_GGUF) rc = qs_export_gguf(a->model, t, &o, path, &w->calib_prog, &err);
    else if (!rc)
        rc = qs_export_hf_quant(a->model, t, grids, format == EXPORT_AWQ ? QS_CKPT_AWQ : QS_CKPT_GPTQ, a->model->tok.bos,
                                a->model->tok.eos, path, warn, sizeof warn, &err);
    qs_export_grids_free(grids, t->n);
    snprintf(file, sizeof file, format == EXPORT_GGUF ? "%s" : "%s/model.safetensors", path);
    struct stat st;
    pthread_mutex_lock(&a->lock);
    if (!rc && stat(file, &st) == 0)
    {
        char note[96];
        snprintf(note, sizeof note, "%s%.70s", format == EXPORT_GGUF ? " (llama.cpp reads it)" : warn[0] ? "; " : " (with config.json)",
                 warn);
        snprintf(a->jobs.calib_status, sizeof a->jobs.calib_status, "exported %.120s: %.2f MiB%s", path, (double)st.st_size / 1048576.0,
                 note);
    }
    else snprintf(a->jobs.calib_status, sizeof a->jobs.calib_status, "export %.200s", err.code == QS_E_CANCELLED ? "cancelled" : err.msg);
    pthread_mutex_unlock(&a->lock);
}

enum { PPL_CHUNKS = 8, PPL_CTX = 128 };

/* `p`: the recipe so far applied to the quantized model, then its KLD records against the
 * original's (kept for the next run on the same text) */
static void ppl_compute(worker *w, const qs_qconfig *cfgs, const char *path)
{
    app *a = w->a;
    app_ppl p = {0};
    qs_err err = {0};
    pthread_mutex_lock(&a->lock);
    a->jobs.ppl.running = true;
    pthread_mutex_unlock(&a->lock);
    qs_ppl base = {0};
    qs_kld_stats st;
    size_t len = 0;
    char *text = NULL;
    int rc = ensure_models(w, &err);
    if (!rc && update_quantized(w, cfgs, err.msg, sizeof err.msg) < 0) rc = -1;
    if (!rc && strcmp(w->kbase_path, path)) {
        qs_kld_base_free(&w->kbase);
        w->kbase_path[0] = '\0';
        snprintf(w->label, sizeof w->label, "perplexity: original, chunk");
        if (!(text = qs_read_file(path, (size_t)1 << 30, &len, &err))) rc = -1;
        else if (!(rc = qs_kld_base_compute(w->base, w->vocab, text, len, PPL_CTX, PPL_CHUNKS, &w->calib_prog, &w->kbase,
                                             &base, &err)))
            snprintf(w->kbase_path, sizeof w->kbase_path, "%s", path);
        free(text);
    }
    snprintf(w->label, sizeof w->label, "perplexity: quantized, chunk");
    int32_t bos = qs_vocab_add_bos(w->vocab) ? qs_vocab_bos(w->vocab) : -1;
    if (!rc) rc = qs_kld_compare(w->quant, &w->kbase, bos, &w->calib_prog, &st, &err);
    if (!rc) {
        p = (app_ppl){false, true, st.ppl_base, st.ppl_q, st.kld_mean, st.same_top, w->kbase.n_chunk, PPL_CTX, ""};
    } else snprintf(p.error, sizeof p.error, "%.150s", err.code == QS_E_CANCELLED ? "cancelled" : err.msg);
    pthread_mutex_lock(&a->lock);
    a->jobs.ppl = p;
    pthread_mutex_unlock(&a->lock);
}

static void gen_compute(worker *w, const qs_qconfig *cfgs, const char *prompt)
{
    app *a = w->a;
    app_gen g = {0};
    qs_err err = {0};
    if (ensure_models(w, &err)) {
        snprintf(g.error, sizeof g.error, "generation unavailable: %.120s", err.msg);
        goto publish;
    }
    g.n_quantized = update_quantized(w, cfgs, g.error, sizeof g.error);
    int32_t *ids, ob[GEN_TOKENS], oq[GEN_TOKENS];
    int64_t n;
    if (g.n_quantized < 0 || qs_tokenize(w->vocab, prompt, strlen(prompt), true, false, &ids, &n, &err)) {
        if (!g.error[0]) snprintf(g.error, sizeof g.error, "%.150s", err.msg);
        goto publish;
    }
    int nb = n < GEN_CTX ? continue_greedy(w->base, w->vocab, ids, (int)n, ob, &w->gen_cancel, &err) : -1;
    int nq = nb >= 0 ? continue_greedy(w->quant, w->vocab, ids, (int)n, oq, &w->gen_cancel, &err) : -1;
    free(ids);
    if (nb < 0 || nq < 0) {
        snprintf(g.error, sizeof g.error, "%.150s", err.msg);
        goto publish;
    }
    int d = 0;
    while (d < nb && d < nq && ob[d] == oq[d]) d++;
    pieces(w->vocab, ob, nb, nb, g.base, sizeof g.base);
    pieces(w->vocab, oq, nq, nq, g.quant, sizeof g.quant);
    char tmp[1024];
    g.diverge_base = d < nb ? (int)pieces(w->vocab, ob, nb, d, tmp, sizeof tmp) : -1;
    g.diverge_quant = d < nq ? (int)pieces(w->vocab, oq, nq, d, tmp, sizeof tmp) : -1;
    g.ready = true;
publish:
    if (__atomic_load_n(&w->gen_cancel, __ATOMIC_RELAXED)) return; /* a tensor request went first: done again after it */
    g.enabled = true;
    snprintf(g.prompt, sizeof g.prompt, "%s", prompt);
    pthread_mutex_lock(&a->lock);
    a->jobs.gen = g;
    pthread_mutex_unlock(&a->lock);
}

/* the long jobs' common start (mu held): the text, the progress line's label, a fresh progress
 * (Esc cancels it) */
static void long_start(worker *w, job_args *j, job_kind k, const char *label)
{
    snprintf(j->path, sizeof j->path, "%s", w->calib_path);
    w->long_pending &= ~(1u << k);
    w->job_label = label;
    w->calib_prog = (qs_progress){0, 0, 0, job_report, w};
}

static void nothing_to_finish(worker *w, job_args *j) { (void)w, (void)j; }

static void calib_start(worker *w, job_args *j) { long_start(w, j, JOB_CALIB, "calibrating: chunk"); }
static void calib_run(worker *w, job_args *j) { calib_compute(w, j->path); }
const job_ops calib_job_ops = {"calibration", calib_start, calib_run, nothing_to_finish};

static void scan_start(worker *w, job_args *j)
{
    j->cfg = w->scan_cfg;
    long_start(w, j, JOB_SCAN, "scan: tensor");
}
static void scan_run(worker *w, job_args *j) { scan_compute(w, &j->cfg, j->path); }
const job_ops scan_job_ops = {"scan", scan_start, scan_run, nothing_to_finish};

static void pareto_start(worker *w, job_args *j) { long_start(w, j, JOB_PARETO, w->label); }
static void pareto_run(worker *w, job_args *j) { pareto_compute(w, j->path); }
const job_ops pareto_job_ops = {"pareto", pareto_start, pareto_run, nothing_to_finish};

/* the export takes the recipe table over */
static void export_start(worker *w, job_args *j)
{
    long_start(w, j, JOB_EXPORT, w->label);
    j->table = w->export_table;
    memset(&w->export_table, 0, sizeof w->export_table);
    snprintf(j->path, sizeof j->path, "%s", w->export_path);
    j->format = w->export_format;
}
static void export_run(worker *w, job_args *j) { export_compute(w, &j->table, j->path, j->format); }
static void export_finish(worker *w, job_args *j)
{
    (void)w;
    qs_recipe_table_free(&j->table);
}
const job_ops export_job_ops = {"export", export_start, export_run, export_finish};

/* the perplexity job takes the per-tensor configs over */
static void ppl_start(worker *w, job_args *j)
{
    long_start(w, j, JOB_PPL, w->label);
    j->cfgs = w->ppl_cfg;
    w->ppl_cfg = NULL;
    snprintf(j->path, sizeof j->path, "%s", w->ppl_path);
}
static void ppl_run(worker *w, job_args *j)
{
    if (j->cfgs) ppl_compute(w, j->cfgs, j->path);
}
static void free_cfgs(worker *w, job_args *j)
{
    (void)w;
    free(j->cfgs);
}
const job_ops ppl_job_ops = {"perplexity", ppl_start, ppl_run, free_cfgs};

/* a generation request: tensor requests go first, and cancel it */
static void gen_start(worker *w, job_args *j)
{
    int64_t nt = w->a->model->n_tensors;
    j->cfgs = malloc((size_t)(nt ? nt : 1) * sizeof *j->cfgs);
    if (j->cfgs) memcpy(j->cfgs, w->gen_cfg, (size_t)nt * sizeof *j->cfgs);
    snprintf(j->prompt, sizeof j->prompt, "%s", w->gen_prompt);
    w->gen_pending = false;
    w->gen_running = true;
    w->gen_cancel = 0;
}
static void gen_run(worker *w, job_args *j)
{
    if (j->cfgs) gen_compute(w, j->cfgs, j->prompt);
}
static void gen_finish(worker *w, job_args *j)
{
    free_cfgs(w, j);
    if (w->gen_cancel) w->gen_pending = true; /* (with the newest configs) */
    w->gen_running = false;
    w->gen_cancel = 0;
}
const job_ops gen_job_ops = {"generation", gen_start, gen_run, gen_finish};
