/* core/recipe/export_hf.c — a llama GGUF as an HF-style checkpoint directory: config.json and
 * model.safetensors (F32), HF tensor names, attn_q/attn_k rows put back in HF order (the
 * inverse of spec/gguf.md §8). */
#include "core/recipe/export.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/util/fileio.h"
#include "core/recipe/fold.h"
#include "core/util/fp16.h"
#include "core/quant/qgrid.h"
#include "core/quant/qpack.h"
#include "core/formats/safetensors.h"

static int err_code(const qs_err *err) { return err && err->code ? err->code : QS_E_INPUT; }

static char *config_json(const qs_model *m, int32_t bos, int32_t eos)
{
    const qs_hparams *hp = &m->hp;
    cJSON *o = cJSON_CreateObject(), *arch = cJSON_AddArrayToObject(o, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString("LlamaForCausalLM"));
    cJSON_AddStringToObject(o, "model_type", "llama");
    cJSON_AddStringToObject(o, "hidden_act", "silu");
    cJSON_AddNumberToObject(o, "hidden_size", hp->n_embd);
    cJSON_AddNumberToObject(o, "intermediate_size", hp->n_ff);
    cJSON_AddNumberToObject(o, "num_hidden_layers", hp->n_layer);
    cJSON_AddNumberToObject(o, "num_attention_heads", hp->n_head);
    cJSON_AddNumberToObject(o, "num_key_value_heads", hp->n_head_kv);
    cJSON_AddNumberToObject(o, "head_dim", hp->head_dim);
    cJSON_AddNumberToObject(o, "max_position_embeddings", hp->n_ctx);
    cJSON_AddNumberToObject(o, "rms_norm_eps", hp->norm_eps);
    cJSON_AddNumberToObject(o, "rope_theta", hp->rope_base);
    cJSON_AddNumberToObject(o, "vocab_size", hp->n_vocab);
    cJSON_AddBoolToObject(o, "tie_word_embeddings", hp->tied_output);
    if (bos >= 0) cJSON_AddNumberToObject(o, "bos_token_id", bos);
    if (eos >= 0) cJSON_AddNumberToObject(o, "eos_token_id", eos);
    cJSON_AddStringToObject(o, "torch_dtype", "float32");
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
}

const char *const qs_ckpt_files[] = {"config.json", "model.safetensors", "quantize_config.json", "quant_config.json", NULL};

static int write_text(const char *path, const char *text, qs_err *err)
{
    qs_afile af = {0};
    if (qs_afile_open(&af, path, err) || qs_afile_write(&af, text, strlen(text), err) || qs_afile_write(&af, "\n", 1, err))
        return qs_afile_abort(&af), -1;
    return qs_afile_commit(&af, err);
}

/* the heads whose q/k rows the converter permutes (0: the tensor keeps its row order) */
static int heads_of(const qs_model *m, const qs_tensor *t)
{
    if (t->is_bias) return 0;
    return t->role == QS_ROLE_ATTN_Q ? (int)m->hp.n_head : t->role == QS_ROLE_ATTN_K ? (int)m->hp.n_head_kv : 0;
}

/* the exports reorder q/k rows by head: the model must have passed qs_model_open's validation,
 * and (rechecked here, as the permutation writes rows by index) the heads must split the rows
 * into even head dimensions */
int qs_export_hf_model_check(const qs_model *m, qs_err *err)
{
    if (!m->hp.supported) return qs_err_set(err, QS_E_UNSUPPORTED, "cannot export this model: %s", m->hp.unsupported_why);
    for (int64_t i = 0; i < m->n_tensors; i++) {
        const qs_tensor *t = &m->tensors[i];
        int heads = heads_of(m, t);
        int64_t rows = qs_tensor_nrows(t);
        if (heads && (heads < 0 || t->n_dims < 2 || rows < heads || rows % heads || (rows / heads) % 2))
            return qs_err_set(err, QS_E_INPUT, "%s: %lld rows do not split into %d heads of an even dimension", t->name,
                              (long long)rows, heads);
    }
    return 0;
}

/* the tensor as F32 in HF row order, AWQ's folds (f, may be NULL) applied in GGUF order first */
static float *hf_rows(const qs_model *m, const qs_tensor *t, const qs_fold *f, qs_err *err)
{
    int64_t rows = qs_tensor_nrows(t), cols = t->ne[0];
    float *g = malloc((size_t)(rows * cols) * sizeof *g), *h = NULL;
    if (!g || qs_tensor_read_rows(t, 0, rows, g, err)) {
        if (g) free(g);
        else qs_err_set(err, QS_E_OOM, "out of memory");
        return NULL;
    }
    if (f) qs_fold_apply(f, g, rows, cols);
    int heads = heads_of(m, t);
    if (!heads) return g;
    if (!(h = malloc((size_t)(rows * cols) * sizeof *h))) {
        free(g);
        qs_err_set(err, QS_E_OOM, "out of memory");
        return NULL;
    }
    for (int64_t r = 0; r < rows; r++)
        memcpy(h + qs_qk_hf_row(r, rows, heads) * cols, g + r * cols, (size_t)cols * sizeof *h);
    free(g);
    return h;
}

int qs_export_hf_dir(const qs_model *m, int32_t bos, int32_t eos, const char *dir, qs_err *err)
{
    if (strcmp(m->hp.arch, "llama") || !m->gguf)
        return qs_err_set(err, QS_E_UNSUPPORTED, "HF export handles llama GGUF models (this is %s)", m->hp.arch);
    if (qs_export_hf_model_check(m, err)) return -err_code(err);
    qs_adir ad;
    int rc = qs_adir_open(&ad, dir, qs_ckpt_files, err);
    if (rc) return rc;
    int n = (int)m->n_tensors;
    qs_st_out *out = calloc((size_t)(n ? n : 1), sizeof *out);
    char (*names)[128] = calloc((size_t)(n ? n : 1), sizeof *names);
    if (!out || !names) rc = qs_err_set(err, QS_E_OOM, "out of memory");
    for (int i = 0; i < n && !rc; i++) {
        const qs_tensor *t = &m->tensors[i];
        if (!qs_gguf_to_hf_name(t->name, names[i], sizeof names[i])) {
            rc = qs_err_set(err, QS_E_UNSUPPORTED, "%s has no HF llama name", t->name);
            break;
        }
        int64_t rows = qs_tensor_nrows(t);
        out[i] = (qs_st_out){names[i], QS_ST_F32, rows > 1 || t->n_dims > 1 ? 2 : 1, {0}, NULL};
        if (out[i].n_dims == 2) out[i].shape[0] = rows, out[i].shape[1] = t->ne[0];
        else out[i].shape[0] = t->ne[0];
        if (!(out[i].data = hf_rows(m, t, NULL, err))) rc = -1;
    }
    char path[4200];
    qs_adir_file(&ad, "model.safetensors", path, sizeof path);
    const char *meta[] = {"format", "pt"};
    if (!rc) rc = qs_st_write(path, out, n, meta, 1, err);
    char *cfg = rc ? NULL : config_json(m, bos, eos);
    qs_adir_file(&ad, "config.json", path, sizeof path);
    if (!rc) rc = cfg ? write_text(path, cfg, err) : qs_err_set(err, QS_E_OOM, "out of memory");
    free(cfg);
    if (!rc) rc = qs_adir_commit(&ad, err);
    else qs_adir_abort(&ad);
    for (int i = 0; out && i < n; i++) free((void *)out[i].data);
    free(out);
    free(names);
    return rc;
}

/* ---- GPTQ (v1 / v2) and AWQ GEMM checkpoints (spec/gptq.md §8, spec/awq.md §7) ---- */

static bool is_linear(qs_role r)
{
    return r == QS_ROLE_ATTN_Q || r == QS_ROLE_ATTN_K || r == QS_ROLE_ATTN_V || r == QS_ROLE_ATTN_O ||
           r == QS_ROLE_FFN_GATE || r == QS_ROLE_FFN_UP || r == QS_ROLE_FFN_DOWN;
}

/* what a checkpoint quantizes: the decoder's 2-D linears */
static bool in_checkpoint(const qs_tensor *t) { return is_linear(t->role) && !t->is_bias && t->ne[2] * t->ne[3] == 1; }

/* the GGUF-row → HF-row order as a source list: HF row h is GGUF row src[h] */
static int64_t *hf_order(int64_t rows, int heads)
{
    int64_t *src = malloc((size_t)rows * sizeof *src);
    for (int64_t r = 0; src && r < rows; r++) src[qs_qk_hf_row(r, rows, heads)] = r;
    return src;
}

/* what every quantized linear's grid must be for the format */
static int check_entry(const qs_recipe_entry *e, const qs_qgrid *g, qs_ckpt_format fmt, qs_err *err)
{
    const char *name = e->t->gguf_name[0] ? e->t->gguf_name : e->t->name;
    const char *what = fmt == QS_CKPT_AWQ ? "an AWQ GEMM checkpoint" : "a GPTQ checkpoint";
    if (!g->codes)
        return qs_err_set(err, QS_E_USAGE, "%s: %s cannot go into %s (GGML types go into GGUF files)", name,
                          g->ggml ? "awq with a GGML type" : e->cfg.method->name, what);
    qs_ckpt_format home = e->cfg.method->ops->ckpt;
    if (fmt == QS_CKPT_GPTQ) {
        if (home == QS_CKPT_AWQ)
            return qs_err_set(err, QS_E_USAGE, "%s: %s goes into --format awq, not gptq", name, e->cfg.method->name);
        if (qs_gptq_pack_check(g->cfg.bits, g->cols, g->rows, err)) return qs_err_prefix(err, "%s", name);
        return 0;
    }
    if (home != QS_CKPT_AWQ) return qs_err_set(err, QS_E_USAGE, "%s: an AWQ checkpoint holds awq entries, not %s", name, e->cfg.method->name);
    if (!g->cfg.asym)
        return qs_err_set(err, QS_E_USAGE, "%s: AWQ GEMM stores zero points: use awq:asym=true", name);
    if (qs_awq_pack_check(g->cfg.bits, g->cols, g->rows, g->group, err)) return qs_err_prefix(err, "%s", name);
    return 0;
}

int qs_export_hf_quant_check(const qs_recipe_table *t, qs_ckpt_format fmt, qs_err *err)
{
    bool any = false;
    for (int64_t i = 0; i < t->n; i++) {
        const qs_recipe_entry *e = &t->e[i];
        if (e->keep) continue;
        const char *name = e->t->gguf_name[0] ? e->t->gguf_name : e->t->name;
        /* AutoAWQ GEMM: 4-bit codes with zero points (no GGML route); GPTQ: groups or rows */
        bool ok = e->cfg.method->ops->ckpt == fmt && (fmt == QS_CKPT_AWQ ? e->cfg.ggml < 0 && e->cfg.asym && e->cfg.bits == 4
                                                                         : e->cfg.group >= 0);
        if (!in_checkpoint(e->t)) continue; /* kept in F16 (qs_export_hf_quant says so) */
        if (!ok)
            return qs_err_set(err, QS_E_USAGE, "%s: %s cannot go into %s", name, e->cfg.method->name,
                              fmt == QS_CKPT_AWQ ? "an AWQ GEMM checkpoint (awq, 4 bits, zero point)"
                                                 : "a GPTQ checkpoint (gptq or rtn in groups or per row)");
        any = true;
    }
    return any ? 0 : qs_err_set(err, QS_E_USAGE, "the recipe quantizes no linear layer");
}

typedef struct qcfg {
    int bits, group;   /* group −1: one per row */
    bool sym, desc_act;
} qcfg;

static qcfg qcfg_of(const qs_qgrid *g)
{
    bool act = g->cfg.method->ops->desc_act && g->cfg.method->ops->desc_act(&g->cfg);
    return (qcfg){g->cfg.bits, g->group >= g->cols ? -1 : (int)g->group, !g->cfg.asym, act};
}

static bool qcfg_eq(qcfg a, qcfg b) { return a.bits == b.bits && a.group == b.group && a.sym == b.sym && a.desc_act == b.desc_act; }

/* the config of most quantized weights */
static qcfg top_config(const qs_recipe_table *t, const qs_qgrid *grids)
{
    qcfg best = {4, 128, true, false};
    int64_t best_n = -1;
    for (int64_t i = 0; i < t->n; i++) {
        if (!grids[i].codes) continue;
        qcfg c = qcfg_of(&grids[i]);
        int64_t n = 0;
        for (int64_t j = 0; j < t->n; j++)
            if (grids[j].codes && qcfg_eq(qcfg_of(&grids[j]), c)) n += grids[j].rows * grids[j].cols;
        if (n > best_n) best = c, best_n = n;
    }
    return best;
}

/* the module name as an anchored regex (spec/gptq.md §8.7) */
static void module_pattern(const char *prefix, const char *module, char *out, size_t n)
{
    size_t k = (size_t)snprintf(out, n, "%s^", prefix);
    for (const char *c = module; *c && k + 3 < n; c++) {
        if (strchr("\\^$.|?*+()[]{}", *c)) out[k++] = '\\';
        out[k++] = *c;
    }
    if (k + 2 < n) out[k++] = '$';
    out[k < n ? k : n - 1] = '\0';
}

static void add_qcfg(cJSON *o, qcfg c)
{
    cJSON_AddNumberToObject(o, "bits", c.bits);
    cJSON_AddNumberToObject(o, "group_size", c.group);
    cJSON_AddBoolToObject(o, "sym", c.sym);
    cJSON_AddBoolToObject(o, "desc_act", c.desc_act);
}

/* quantization_config (and quantize_config.json) for GPTQ; modules: the HF module names */
static cJSON *gptq_config(const qs_recipe_table *t, const qs_qgrid *grids, char (*modules)[160], bool v2)
{
    qcfg top = top_config(t, grids);
    cJSON *q = cJSON_CreateObject(), *dyn = cJSON_CreateObject();
    add_qcfg(q, top);
    double damp = 0.01;
    bool static_groups = false;
    for (int64_t i = 0; i < t->n; i++)
        if (grids[i].codes && (grids[i].cfg.method->ops->knobs & (1u << QS_KNOB_DAMP))) {
            damp = grids[i].cfg.damp * 0.001, static_groups = grids[i].cfg.static_groups;
            break;
        }
    cJSON_AddNumberToObject(q, "damp_percent", damp);
    cJSON_AddBoolToObject(q, "static_groups", static_groups);
    cJSON_AddBoolToObject(q, "true_sequential", true);
    cJSON_AddNullToObject(q, "model_name_or_path");
    cJSON_AddNullToObject(q, "model_file_base_name");
    cJSON_AddStringToObject(q, "quant_method", "gptq");
    cJSON_AddStringToObject(q, "checkpoint_format", v2 ? "gptq_v2" : "gptq");
    cJSON_AddStringToObject(q, "pack_dtype", "int32");
    cJSON_AddBoolToObject(q, "lm_head", false);
    char pat[400];
    for (int64_t i = 0; i < t->n; i++) {
        if (!modules[i][0]) continue;
        if (!grids[i].codes) {
            module_pattern("-:", modules[i], pat, sizeof pat);
            cJSON_AddItemToObject(dyn, pat, cJSON_CreateObject());
        } else if (!qcfg_eq(qcfg_of(&grids[i]), top)) {
            cJSON *o = cJSON_CreateObject();
            add_qcfg(o, qcfg_of(&grids[i]));
            module_pattern("+:", modules[i], pat, sizeof pat);
            cJSON_AddItemToObject(dyn, pat, o);
        }
    }
    if (cJSON_GetArraySize(dyn)) cJSON_AddItemToObject(q, "dynamic", dyn);
    else cJSON_Delete(dyn);
    cJSON *meta = cJSON_AddObjectToObject(q, "meta"), *who = cJSON_AddArrayToObject(meta, "quantizer");
    cJSON_AddItemToArray(who, cJSON_CreateString("quantscope:0.1"));
    return q;
}

static cJSON *awq_config(const qs_recipe_table *t, const qs_qgrid *grids, char (*modules)[160])
{
    cJSON *q = cJSON_CreateObject(), *skip = cJSON_CreateArray();
    cJSON_AddStringToObject(q, "quant_method", "awq");
    cJSON_AddBoolToObject(q, "zero_point", true);
    int group = 128;
    for (int64_t i = 0; i < t->n; i++)
        if (grids[i].codes) group = (int)grids[i].group;
    cJSON_AddNumberToObject(q, "group_size", group);
    cJSON_AddNumberToObject(q, "bits", 4);
    cJSON_AddStringToObject(q, "version", "gemm");
    for (int64_t i = 0; i < t->n; i++)
        if (modules[i][0] && !grids[i].codes) cJSON_AddItemToArray(skip, cJSON_CreateString(modules[i]));
    if (cJSON_GetArraySize(skip)) cJSON_AddItemToObject(q, "modules_to_not_convert", skip);
    else cJSON_Delete(skip), cJSON_AddNullToObject(q, "modules_to_not_convert");
    return q;
}

/* one output tensor; data owned */
typedef struct ck_out {
    qs_st_out *v;
    char (*names)[192];
    int n, cap;
} ck_out;

static int ck_add(ck_out *o, const char *name, const char *suffix, int dtype, int64_t d0, int64_t d1, void *data, qs_err *err)
{
    if (!data) return qs_err_set(err, QS_E_OOM, "out of memory");
    if (o->n == o->cap) {
        int cap = o->cap ? o->cap * 2 : 64;
        qs_st_out *v = realloc(o->v, (size_t)cap * sizeof *v);
        char(*names)[192] = v ? realloc(o->names, (size_t)cap * sizeof *names) : NULL;
        if (v) o->v = v;
        if (!v || !names) return free(data), qs_err_set(err, QS_E_OOM, "out of memory");
        o->names = names, o->cap = cap;
    }
    snprintf(o->names[o->n], sizeof o->names[o->n], "%s%s", name, suffix);
    o->v[o->n] = (qs_st_out){NULL, dtype, d1 ? 2 : 1, {d0, d1}, data};
    o->n++;
    return 0;
}

/* prefix: the HF module name ("model.layers.0.self_attn.q_proj") */
static int add_grid(ck_out *o, const char *prefix, qs_qgrid *g, qs_ckpt_format fmt, bool v2, qs_err *err)
{
    int64_t out = g->rows, in = g->cols, ng = g->n_groups, bits = g->cfg.bits;
    uint32_t *qw, *qz;
    uint16_t *sc = malloc((size_t)(ng * out) * sizeof *sc);
    if (fmt == QS_CKPT_AWQ) {
        qw = malloc((size_t)(in * out / 8) * sizeof *qw), qz = malloc((size_t)(ng * out / 8) * sizeof *qz);
        if (qw && qz && sc) qs_awq_pack(g->codes, g->zeros, g->scales, out, in, ng, qw, qz, sc);
    } else {
        int64_t qr = qs_gptq_qweight_rows((int)bits, in), zc = qs_gptq_qzeros_cols((int)bits, out);
        qw = malloc((size_t)(qr * out) * sizeof *qw), qz = malloc((size_t)(ng * zc) * sizeof *qz);
        if (v2) /* v2 stores the zero point itself: pack writes zero − 1, so give it zero + 1 */
            for (int64_t k = 0; k < out * ng; k++) g->zeros[k] += 1;
        if (qw && qz && sc) qs_gptq_pack((int)bits, g->codes, g->zeros, g->scales, out, in, ng, qw, qz, sc);
    }
    int rc = 0;
    if (!qw || !qz || !sc) {
        free(qw), free(qz), free(sc);
        return qs_err_set(err, QS_E_OOM, "out of memory");
    }
    if (fmt == QS_CKPT_AWQ) {
        rc = ck_add(o, prefix, ".qweight", QS_ST_I32, in, out / 8, qw, err);
        if (!rc) rc = ck_add(o, prefix, ".qzeros", QS_ST_I32, ng, out / 8, qz, err);
        else free(qz);
    } else {
        rc = ck_add(o, prefix, ".qweight", QS_ST_I32, qs_gptq_qweight_rows((int)bits, in), out, qw, err);
        if (!rc) rc = ck_add(o, prefix, ".qzeros", QS_ST_I32, ng, qs_gptq_qzeros_cols((int)bits, out), qz, err);
        else free(qz);
        int32_t *gi = rc ? NULL : malloc((size_t)in * sizeof *gi);
        if (gi) memcpy(gi, g->g_idx, (size_t)in * sizeof *gi);
        if (!rc) rc = ck_add(o, prefix, ".g_idx", QS_ST_I32, in, 0, gi, err);
    }
    if (!rc) rc = ck_add(o, prefix, ".scales", QS_ST_F16, ng, out, sc, err);
    else free(sc);
    return rc;
}

/* a kept tensor in F16, folded, rows in HF order */
static int add_kept(ck_out *o, const qs_model *m, const qs_tensor *t, const char *hf, const qs_fold *f, qs_err *err)
{
    int64_t rows = qs_tensor_nrows(t), cols = t->ne[0];
    float *x = hf_rows(m, t, f, err);
    uint16_t *h = x ? malloc((size_t)(rows * cols) * sizeof *h) : NULL;
    if (!h) return free(x), x ? qs_err_set(err, QS_E_OOM, "out of memory") : -1;
    for (int64_t k = 0; k < rows * cols; k++) h[k] = qs_f32_to_f16(x[k]);
    free(x);
    bool matrix = rows > 1 || t->n_dims > 1;
    return ck_add(o, hf, "", QS_ST_F16, matrix ? rows : cols, matrix ? cols : 0, h, err);
}

/* a quantized linear: its grid with ffn_up/attn_v rows divided, q/k rows in HF order */
static int add_quantized(ck_out *o, const qs_model *m, const qs_tensor *t, const char *module, const qs_qgrid *g0,
                         const qs_fold *f, qs_ckpt_format fmt, bool v2, qs_err *err)
{
    qs_qgrid g = {g0->cfg, g0->rows, g0->cols, g0->group, g0->n_groups, NULL, NULL, NULL, NULL, NULL, -1, NULL};
    size_t ns = (size_t)(g.rows * g.n_groups) * sizeof(float);
    g.codes = malloc((size_t)(g.rows * g.cols)), g.scales = malloc(ns), g.zeros = malloc(ns);
    g.g_idx = malloc((size_t)g.cols * sizeof *g.g_idx);
    int rc = !g.codes || !g.scales || !g.zeros || !g.g_idx ? qs_err_set(err, QS_E_OOM, "out of memory") : 0;
    if (!rc) {
        memcpy(g.codes, g0->codes, (size_t)(g.rows * g.cols));
        memcpy(g.scales, g0->scales, ns), memcpy(g.zeros, g0->zeros, ns);
        memcpy(g.g_idx, g0->g_idx, (size_t)g.cols * sizeof *g.g_idx);
        if (f->row_div) qs_qgrid_divide_rows(&g, f->row_div);
        if (f->col_mul) rc = qs_err_set(err, QS_E_UNSUPPORTED, "%s: its grid cannot take AWQ scales in its columns", t->name);
    }
    int heads = heads_of(m, t);
    int64_t *src = !rc && heads ? hf_order(g.rows, heads) : NULL;
    if (!rc && heads) rc = src ? qs_qgrid_reorder_rows(&g, src, err) : qs_err_set(err, QS_E_OOM, "out of memory");
    free(src);
    if (!rc) rc = add_grid(o, module, &g, fmt, v2, err);
    qs_qgrid_free(&g);
    return rc;
}

/* AutoAWQ's own quant_config.json (its key names, spec/awq.md §7) */
static cJSON *awq_side_config(const cJSON *qc)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "zero_point", true);
    cJSON_AddNumberToObject(o, "q_group_size", cJSON_GetObjectItemCaseSensitive(qc, "group_size")->valuedouble);
    cJSON_AddNumberToObject(o, "w_bit", 4);
    cJSON_AddStringToObject(o, "version", "GEMM");
    return o;
}

/* config.json with quantization_config, and the quantizer's own file beside it (GPTQ:
 * quantize_config.json, the same object; AWQ: quant_config.json) */
static int write_ckpt_config(const qs_adir *dir, const qs_model *m, int32_t bos, int32_t eos, cJSON *qc, bool gptq, qs_err *err)
{
    char *base = config_json(m, bos, eos), path[4200];
    cJSON *o = base ? cJSON_Parse(base) : NULL, *side_obj = gptq ? NULL : awq_side_config(qc);
    free(base);
    if (!o) return cJSON_Delete(qc), cJSON_Delete(side_obj), qs_err_set(err, QS_E_OOM, "out of memory");
    cJSON_ReplaceItemInObject(o, "torch_dtype", cJSON_CreateString("float16"));
    char *side = cJSON_Print(gptq ? qc : side_obj);
    cJSON_Delete(side_obj);
    cJSON_AddItemToObject(o, "quantization_config", qc);
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    qs_adir_file(dir, "config.json", path, sizeof path);
    int rc = text ? write_text(path, text, err) : qs_err_set(err, QS_E_OOM, "out of memory");
    qs_adir_file(dir, gptq ? "quantize_config.json" : "quant_config.json", path, sizeof path);
    if (!rc) rc = side ? write_text(path, side, err) : qs_err_set(err, QS_E_OOM, "out of memory");
    free(text), free(side);
    return rc;
}

int qs_export_hf_quant(const qs_model *m, const qs_recipe_table *t, const qs_qgrid *grids, qs_ckpt_format fmt, int32_t bos,
                       int32_t eos, const char *dir, char *warning, size_t wn, qs_err *err)
{
    if (strcmp(m->hp.arch, "llama") && strcmp(m->hp.arch, "mistral"))
        return qs_err_set(err, QS_E_UNSUPPORTED, "HF checkpoints are written for llama-family models (this is %s)", m->hp.arch);
    if (warning && wn) warning[0] = '\0';
    if (qs_export_hf_model_check(m, err)) return -err_code(err);
    bool v2 = false, any = false;
    size_t n = (size_t)(t->n ? t->n : 1);
    /* the grids of the decoder's linears; embeddings and the output stay F16 (as AutoGPTQ/AutoAWQ
     * leave them), whatever the recipe says */
    qs_qgrid *lin = calloc(n, sizeof *lin);
    if (!lin) return qs_err_set(err, QS_E_OOM, "out of memory");
    int outside = 0;
    const char *first_out = NULL;
    for (int64_t i = 0; i < t->n; i++) {
        if (!t->e[i].keep && !in_checkpoint(t->e[i].t)) outside++, first_out = first_out ? first_out : t->e[i].t->gguf_name;
        else lin[i] = grids[i];
    }
    grids = lin;
    for (int64_t i = 0; i < t->n; i++) {
        if (t->e[i].keep || !in_checkpoint(t->e[i].t)) continue;
        if (check_entry(&t->e[i], &grids[i], fmt, err)) return free(lin), -QS_E_USAGE;
        any = true;
        v2 |= fmt == QS_CKPT_GPTQ && grids[i].cfg.asym && qs_gptq_v1_zero_overflow(grids[i].zeros, grids[i].rows * grids[i].n_groups);
        if (fmt == QS_CKPT_AWQ && grids[i].group != top_config(t, grids).group)
            return free(lin), qs_err_set(err, QS_E_USAGE, "%s: an AWQ checkpoint has one group size for every layer",
                                         t->e[i].t->gguf_name);
    }
    if (!any) return free(lin), qs_err_set(err, QS_E_USAGE, "the recipe quantizes no linear layer");
    if (warning && outside)
        snprintf(warning, wn, "%d tensor(s) outside the decoder's linears (%s …) kept in F16", outside, first_out);
    if (v2 && warning)
        snprintf(warning + strlen(warning), wn - strlen(warning),
                 "%ssome asymmetric zero points are 0: written as gptq_v2 (HF transformers/optimum need a v2-capable kernel)",
                 outside ? "; " : "");
    qs_adir ad;
    int bad = qs_adir_open(&ad, dir, qs_ckpt_files, err);
    if (bad) return free(lin), bad;
    qs_fold *f = calloc(n, sizeof *f);
    char(*modules)[160] = calloc(n, sizeof *modules);
    ck_out o = {0};
    int rc = !f || !modules ? qs_err_set(err, QS_E_OOM, "out of memory") : qs_fold_plan(t, grids, f, err);
    for (int64_t i = 0; !rc && i < t->n; i++) {
        const qs_tensor *x = t->e[i].t;
        char hf[160];
        if (!x->gguf_name[0] || !qs_gguf_to_hf_name(x->gguf_name, hf, sizeof hf)) continue; /* no HF llama name */
        if (is_linear(x->role) && !x->is_bias) snprintf(modules[i], sizeof modules[i], "%.*s", (int)(strlen(hf) - 7), hf);
        rc = grids[i].codes ? add_quantized(&o, m, x, modules[i], &grids[i], &f[i], fmt, v2, err)
                            : add_kept(&o, m, x, hf, &f[i], err);
    }
    for (int k = 0; k < o.n; k++) o.v[k].name = o.names[k];
    char path[4200];
    qs_adir_file(&ad, "model.safetensors", path, sizeof path);
    const char *meta[] = {"format", "pt"};
    if (!rc) rc = qs_st_write(path, o.v, o.n, meta, 1, err);
    if (!rc) rc = write_ckpt_config(&ad, m, bos, eos, fmt == QS_CKPT_AWQ ? awq_config(t, grids, modules) : gptq_config(t, grids, modules, v2),
                                    fmt == QS_CKPT_GPTQ, err);
    if (!rc) rc = qs_adir_commit(&ad, err);
    else qs_adir_abort(&ad);
    for (int k = 0; k < o.n; k++) free((void *)o.v[k].data);
    free(o.v), free(o.names);
    qs_fold_free(f, t->n);
    free(modules);
    free(lin);
    return rc;
}
