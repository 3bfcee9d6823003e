/* core/recipe/export.c — recipe → quantized GGUF. */
#include "core/recipe/export.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/quant/ggml_quants.h"
#include "core/quant/ggml_types.h"
#include "core/formats/gguf.h"
#include "core/recipe/presets.h"
#include "core/util/fp16.h"
#include "core/quant/qgrid.h"
#include "core/recipe/fold.h"
#include "core/model/hf_tokenizer.h"
#include "core/formats/safetensors.h"

/* the GGML type an entry is written in (-1: none) */
static int entry_out_type(const qs_recipe_table *t, const qs_export_opts *o, int64_t i)
{
    const qs_recipe_entry *e = &t->e[i];
    if (e->keep) return e->t->type;
    if (o->grids && qs_qgrid_has(&o->grids[i])) return qs_qgrid_ggml_type(&o->grids[i]);
    return e->ggml_type;
}

/* the ftype whose default type most weights of the recipe have */
static int derived_ftype(const qs_recipe_table *t, const qs_export_opts *o)
{
    int64_t weight[QS_TYPE_COUNT] = {0};
    for (int64_t i = 0; i < t->n; i++) {
        int type = t->e[i].keep ? -1 : entry_out_type(t, o, i);
        if (type >= 0) weight[type] += qs_tensor_nelements(t->e[i].t);
    }
    int best = QS_TYPE_F32;
    for (int k = 0; k < QS_TYPE_COUNT; k++)
        if (weight[k] > weight[best]) best = k;
    int ftype = qs_preset_ftype_of_type(best);
    return ftype >= 0 ? ftype : 0;
}

static const char *gguf_name(const qs_tensor *t) { return t->gguf_name[0] ? t->gguf_name : t->name; }

/* llama-quantize's order (spec/llama-quant-presets.md §2.1) */
static int cmp_order(const void *a, const void *b, void *ctx)
{
    const qs_recipe_table *t = ctx;
    return qs_llama_tensor_cmp(gguf_name(t->e[*(const int64_t *)a].t), gguf_name(t->e[*(const int64_t *)b].t));
}

static void quant_metadata(qs_gguf_writer *w, const qs_export_opts *o, int ftype)
{
    qs_gguf_writer_set_u32(w, "general.quantization_version", 2);
    qs_gguf_writer_set_u32(w, "general.file_type", (uint32_t)ftype);
    if (o->imatrix) {
        char name[128];
        snprintf(name, sizeof name, "%.127s", o->imatrix_name ? o->imatrix_name : "");
        qs_gguf_writer_set_str(w, "quantize.imatrix.file", name);
        if (o->imatrix->dataset[0]) {
            snprintf(name, sizeof name, "%.127s", o->imatrix->dataset);
            qs_gguf_writer_set_str(w, "quantize.imatrix.dataset", name);
        }
        qs_gguf_writer_set_u32(w, "quantize.imatrix.entries_count", (uint32_t)o->imatrix->n_entries);
        if (o->imatrix->chunk_count) qs_gguf_writer_set_u32(w, "quantize.imatrix.chunks_count", o->imatrix->chunk_count);
    }
}

static int copy_metadata(const qs_gguf *g, qs_gguf_writer *w)
{
    for (int64_t i = 0; i < g->n_kv; i++) {
        const char *k = g->kv[i].key;
        if (!strcmp(k, "general.quantization_version") || !strcmp(k, "general.file_type") || !strncmp(k, "split.", 6)) continue;
        if (qs_gguf_writer_copy_kv(w, &g->kv[i])) return -1;
    }
    return 0;
}

/* an HF checkpoint's config as the llama keys the converter writes (spec/gguf.md §5), and the
 * tokenizer of o->vocab */
static int hf_metadata(const qs_model *m, const qs_export_opts *o, qs_gguf_writer *w, qs_err *err)
{
    const qs_hparams *hp = &m->hp;
    if (strcmp(hp->arch, "llama") && strcmp(hp->arch, "mistral"))
        return qs_err_set(err, QS_E_UNSUPPORTED, "HF → GGUF export knows llama-family checkpoints, not %s", hp->arch);
    const char *base = strrchr(m->path, '/');
    qs_gguf_writer_set_str(w, "general.architecture", "llama");
    qs_gguf_writer_set_str(w, "general.name", base ? base + 1 : m->path);
    qs_gguf_writer_set_u32(w, "llama.block_count", hp->n_layer);
    qs_gguf_writer_set_u32(w, "llama.context_length", hp->n_ctx);
    qs_gguf_writer_set_u32(w, "llama.embedding_length", hp->n_embd);
    qs_gguf_writer_set_u32(w, "llama.feed_forward_length", hp->n_ff);
    qs_gguf_writer_set_u32(w, "llama.attention.head_count", hp->n_head);
    qs_gguf_writer_set_u32(w, "llama.attention.head_count_kv", hp->n_head_kv);
    qs_gguf_writer_set_f32(w, "llama.rope.freq_base", hp->rope_base);
    qs_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", hp->norm_eps);
    if (hp->head_dim && hp->n_head && hp->head_dim != hp->n_embd / hp->n_head) {
        qs_gguf_writer_set_u32(w, "llama.attention.key_length", hp->head_dim);
        qs_gguf_writer_set_u32(w, "llama.attention.value_length", hp->head_dim);
    }
    qs_gguf_writer_set_u32(w, "llama.rope.dimension_count", hp->n_rot);
    if (hp->n_vocab) qs_gguf_writer_set_u32(w, "llama.vocab_size", hp->n_vocab);
    for (int64_t i = 0; o->vocab && i < o->vocab->n_kv; i++)
        if (!strncmp(o->vocab->kv[i].key, "tokenizer.", 10) && qs_gguf_writer_copy_kv(w, &o->vocab->kv[i]))
            return qs_err_set(err, QS_E_OOM, "out of memory");
    if (o->vocab || !m->st || qs_hf_tokenizer_dir_keys(m->st->dir, w, err) >= 0) return 0; /* none: no tokenizer keys */
    return qs_err_prefix(err, "%s", m->st->dir);
}

/* ---- the bytes of one tensor ---- */

static void not_ggml_msg(const qs_recipe_entry *e, qs_err *err)
{
    char why[256];
    const char *near = e->cfg.method->ops->gguf_near;
    if (qs_qconfig_ggml_type(&e->cfg, why, sizeof why) < 0 && !near) {
        qs_err_set(err, QS_E_USAGE, "%s: %s", gguf_name(e->t), why);
        return;
    }
    if (!near) near = e->cfg.bits >= 8 ? "q8_0" : e->cfg.bits >= 5 ? "q5_K" : e->cfg.bits == 4 ? "q4_K" : "q3_K";
    qs_err_set(err, QS_E_USAGE, "%s: %s is not a GGML type and cannot go into a GGUF; the nearest is %s", gguf_name(e->t),
               e->cfg.method->name, near);
}

static int not_ggml(const qs_recipe_entry *e, qs_err *err)
{
    not_ggml_msg(e, err);
    return -QS_E_USAGE;
}

/* a grid entry's GGML blocks, its rows divided by f->row_div */
static int grid_bytes(const qs_recipe_entry *e, const qs_qgrid *g0, const qs_fold *f, int *type, void **owned, qs_err *err)
{
    if ((*type = qs_qgrid_ggml_type(g0)) < 0) return not_ggml(e, err);
    if (f->col_mul)
        return qs_err_set(err, QS_E_UNSUPPORTED, "%s: its grid cannot take AWQ scales folded into its columns", gguf_name(e->t));
    qs_qgrid g = *g0;
    size_t ns = (size_t)(g.rows * g.n_groups) * sizeof *g.scales;
    float *scales = f->row_div && !g0->ggml ? malloc(ns) : NULL;
    *owned = malloc(qs_type_row_bytes(*type, g.cols) * (size_t)g.rows + 1);
    if (!*owned || (f->row_div && !g0->ggml && !scales)) return free(scales), qs_err_set(err, QS_E_OOM, "out of memory");
    if (scales) {
        memcpy(scales, g0->scales, ns);
        g.scales = scales;
        qs_qgrid_divide_rows(&g, f->row_div);
    }
    qs_qgrid_encode_ggml(&g, *type, *owned);
    if (g0->ggml && f->row_div && qs_ggml_scale_rows(*type, *owned, g.rows, g.cols, f->row_div))
        return free(scales), qs_err_set(err, QS_E_UNSUPPORTED, "%s: %s blocks cannot take AWQ's scales", gguf_name(e->t),
                                        qs_type_name(*type));
    free(scales);
    return 0;
}

static bool is_float_type(int type) { return type == QS_TYPE_F32 || type == QS_TYPE_F16 || type == QS_TYPE_BF16; }

/* x[n] in the kept tensor's float type (F32 for anything but F16/BF16); x itself for F32 */
static int float_bytes(const qs_tensor *t, float *x, int64_t n, int *type, const void **data, void **owned, qs_err *err)
{
    *type = t->type == QS_TYPE_F16 || t->type == QS_TYPE_BF16 ? t->type : QS_TYPE_F32;
    if (*type == QS_TYPE_F32) {
        *data = *owned = x;
        return 0;
    }
    uint16_t *h = malloc((size_t)n * sizeof *h);
    if (!h) return free(x), qs_err_set(err, QS_E_OOM, "out of memory");
    for (int64_t k = 0; k < n; k++) h[k] = *type == QS_TYPE_F16 ? qs_f32_to_f16(x[k]) : qs_f32_to_bf16(x[k]);
    free(x);
    *data = *owned = h;
    return 0;
}

/* the importance of each column, divided by col_mul² when the columns were scaled */
static int tensor_imatrix(const qs_recipe_entry *e, const qs_export_opts *o, const qs_fold *f, float **owned,
                          const float **qw, qs_err *err)
{
    const qs_tensor *t = e->t;
    int64_t cols = t->ne[0];
    const qs_imatrix_entry *ie = o->imatrix ? qs_imatrix_find(o->imatrix, gguf_name(t)) : NULL;
    *qw = NULL, *owned = NULL;
    if (ie && ie->n == cols && t->ne[2] * t->ne[3] == 1) *qw = ie->values;
    else if (ie && t->role != QS_ROLE_TOKEN_EMBD)
        return qs_err_set(err, QS_E_INPUT, "%s: the imatrix entry has %lld values, the tensor %lld columns", gguf_name(t),
                          (long long)ie->n, (long long)cols);
    if (*qw && f->col_mul) {
        if (!(*owned = malloc((size_t)cols * sizeof **owned))) return qs_err_set(err, QS_E_OOM, "out of memory");
        for (int64_t c = 0; c < cols; c++) (*owned)[c] = ie->values[c] / (f->col_mul[c] * f->col_mul[c]);
        *qw = *owned;
    }
    return 0;
}

/* the bytes of entry i in its recipe type (quantized into *owned when it changes) */
static int tensor_bytes(const qs_model *m, const qs_recipe_table *tab, const qs_export_opts *o, int64_t i, const qs_fold *f,
                        int *type, const void **data, void **owned, qs_err *err)
{
    const qs_recipe_entry *e = &tab->e[i];
    const qs_tensor *t = e->t;
    *owned = NULL;
    if (o->grids && qs_qgrid_has(&o->grids[i])) {
        int rc = grid_bytes(e, &o->grids[i], f, type, owned, err);
        *data = *owned;
        return rc;
    }
    bool folded = f->col_mul || f->row_div;
    if (e->keep && !folded && m->gguf) {
        *type = t->type;
        *data = t->data;
        return 0;
    }
    if (e->keep && folded && !is_float_type(t->type))
        return qs_err_set(err, QS_E_UNSUPPORTED, "%s is stored as %s: AWQ's scales cannot be folded into it; requantize it",
                          gguf_name(t), t->dtype);
    if (!e->keep && e->ggml_type < 0) return not_ggml(e, err);
    int64_t rows = qs_tensor_nrows(t), cols = t->ne[0];
    float *x = malloc((size_t)(rows * cols) * sizeof *x);
    if (!x) return qs_err_set(err, QS_E_OOM, "out of memory");
    if (qs_tensor_read_rows(t, 0, rows, x, err)) return free(x), qs_err_prefix(err, "%s", gguf_name(t));
    qs_fold_apply(f, x, rows, cols);
    if (e->keep) return float_bytes(t, x, rows * cols, type, data, owned, err);
    float *qw_owned = NULL;
    const float *qw = NULL;
    void *q = malloc((size_t)qs_type_row_bytes(e->ggml_type, cols) * (size_t)rows + 1);
    int rc = !q ? qs_err_set(err, QS_E_OOM, "out of memory") : tensor_imatrix(e, o, f, &qw_owned, &qw, err);
    if (!rc) rc = qs_ggml_quantize(e->ggml_type, x, q, rows, cols, qw, o->n_threads, err);
    free(x);
    free(qw_owned);
    if (rc) return free(q), qs_err_prefix(err, "%s", gguf_name(t));
    *type = e->ggml_type;
    *data = *owned = q;
    return 0;
}

int qs_export_gguf_check(const qs_recipe_table *t, qs_err *err)
{
    char why[8];
    for (int64_t i = 0; i < t->n; i++) {
        const qs_recipe_entry *e = &t->e[i];
        if (!e->keep && e->ggml_type < 0 && qs_qconfig_ggml_type(&e->cfg, why, sizeof why) < 0) return not_ggml(e, err);
    }
    return 0;
}

int qs_export_gguf(const qs_model *m, const qs_recipe_table *t, const qs_export_opts *o, const char *path,
                   qs_progress *prog, qs_err *err)
{
    size_t n = (size_t)(t->n ? t->n : 1);
    qs_gguf_writer *w = qs_gguf_writer_new();
    int64_t *order = malloc(n * sizeof *order);
    void **owned = calloc(n, sizeof *owned);
    qs_fold *f = calloc(n, sizeof *f);
    int rc = !w || !order || !owned || !f ? qs_err_set(err, QS_E_OOM, "out of memory") : 0;
    if (!rc) rc = m->gguf ? (copy_metadata(m->gguf, w) ? qs_err_set(err, QS_E_OOM, "out of memory") : 0)
                          : hf_metadata(m, o, w, err);
    if (!rc) quant_metadata(w, o, o->ftype >= 0 ? o->ftype : derived_ftype(t, o));
    if (!rc) rc = qs_fold_plan(t, o->grids, f, err);
    int64_t k = 0;
    for (int64_t i = 0; i < t->n; i++)
        if (m->gguf || t->e[i].t->gguf_name[0]) order[k++] = i; /* HF tensors llama.cpp has no name for stay out */
    int64_t n_out = k;
    qsort_r(order, (size_t)n_out, sizeof *order, cmp_order, (void *)t);
    for (k = 0; !rc && k < n_out; k++) {
        int64_t i = order[k];
        int type = -1;
        const void *data = NULL;
        rc = tensor_bytes(m, t, o, i, &f[i], &type, &data, &owned[k], err);
        if (!rc) rc = qs_gguf_writer_add_tensor(w, gguf_name(t->e[i].t), type, 0, t->e[i].t->ne, data, err);
        if (!rc && !qs_progress_step(prog, k + 1, n_out)) rc = qs_err_set(err, QS_E_CANCELLED, "cancelled");
    }
    if (!rc) rc = qs_gguf_writer_write(w, path, err);
    for (k = 0; owned && k < (int64_t)n; k++) free(owned[k]);
    free(owned);
    free(order);
    qs_fold_free(f, t->n);
    qs_gguf_writer_free(w);
    return rc;
}

/* ---- the recipe as a llama-quantize command line (spec/llama-quant-presets.md §8.3) ---- */

typedef struct sbuf {
    char *s;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_add(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (b->oom || k < 0) return;
    if (b->n + (size_t)k + 1 > b->cap) {
        size_t cap = (b->n + (size_t)k + 1) * 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->oom = true;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

static void sb_type(sbuf *b, int type)
{
    const char *n = qs_type_name(type);
    for (size_t i = 0; n[i]; i++) sb_add(b, "%c", tolower((unsigned char)n[i]));
}

/* the name as an anchored regex: ECMAScript and POSIX ERE metacharacters escaped */
static void sb_anchored(sbuf *b, const char *name)
{
    sb_add(b, "^");
    for (const char *c = name; *c; c++) sb_add(b, strchr("\\^$.|?*+()[]{}", *c) ? "\\%c" : "%c", *c);
    sb_add(b, "$");
}

/* a shell word: single-quoted unless it is plain */
static void sb_word(sbuf *b, const char *w)
{
    bool plain = *w != '\0';
    for (const char *c = w; *c; c++)
        if (!isalnum((unsigned char)*c) && !strchr("_./-+=:,", *c)) plain = false;
    if (plain) {
        sb_add(b, " %s", w);
        return;
    }
    sb_add(b, " '");
    for (const char *c = w; *c; c++) sb_add(b, *c == '\'' ? "'\\''" : "%c", *c);
    sb_add(b, "'");
}

static int entry_type(const qs_recipe_entry *e) { return e->keep ? e->t->type : e->ggml_type; }

/* one --tensor-type per type: the tensors of that type as one anchored alternation, the blocks of a
 * tensor kind folded together ("^(blk\.(0|1|5)\.ffn_down\.weight|blk\.2\.attn_v\.weight)$=q6_k");
 * the patterns are disjoint, so their order does not matter */
static void type_patterns(const qs_recipe_table *t, const int64_t *idx, int64_t n, sbuf *line)
{
    bool *done = calloc((size_t)(n ? n : 1), sizeof *done);
    for (int64_t a = 0; done && a < n; a++) {
        if (done[a]) continue;
        int type = entry_type(&t->e[idx[a]]);
        sbuf pat = {0};
        int alts = 0;
        for (int64_t b = a; b < n; b++) { /* the kinds (suffix after blk.N.) of this type, in order */
            const char *nb = t->e[idx[b]].t->name, *sb = NULL;
            if (done[b] || entry_type(&t->e[idx[b]]) != type) continue;
            int blk, len = 0;
            if (sscanf(nb, "blk.%d.%n", &blk, &len) == 1 && len) sb = nb + len;
            sbuf blocks = {0};
            int nblk = 0;
            for (int64_t c = b; c < n; c++) {
                const char *nc = t->e[idx[c]].t->name;
                int bc, lc = 0;
                if (done[c] || entry_type(&t->e[idx[c]]) != type) continue;
                bool same = sb ? sscanf(nc, "blk.%d.%n", &bc, &lc) == 1 && lc && !strcmp(nc + lc, sb) : c == b;
                if (!same) continue;
                if (sb) sb_add(&blocks, "%s%d", nblk ? "|" : "", bc);
                nblk++;
                done[c] = true;
            }
            sb_add(&pat, alts++ ? "|" : "");
            if (!sb) {
                sbuf one = {0};
                sb_anchored(&one, nb); /* "^name$": keep the inside */
                if (one.s) sb_add(&pat, "%.*s", (int)one.n - 2, one.s + 1);
                free(one.s);
            } else {
                sbuf suf = {0};
                sb_anchored(&suf, sb);
                sb_add(&pat, nblk > 1 ? "blk\\.(%s)\\.%.*s" : "blk\\.%s\\.%.*s", blocks.s ? blocks.s : "",
                       suf.s ? (int)suf.n - 2 : 0, suf.s ? suf.s + 1 : "");
                free(suf.s);
            }
            free(blocks.s);
        }
        sbuf arg = {0};
        sb_add(&arg, alts > 1 ? "^(%s)$=" : "^%s$=", pat.s ? pat.s : "");
        sb_type(&arg, type);
        sb_add(line, " --tensor-type");
        if (arg.s) sb_word(line, arg.s);
        line->oom |= pat.oom || arg.oom;
        free(pat.s), free(arg.s);
    }
    free(done);
}

int qs_export_llama_quantize(const qs_model *m, const qs_recipe_table *t, const char *imatrix, const char *types_path,
                             const char *out_path, char **types_text, char **cmd, qs_err *err)
{
    *types_text = *cmd = NULL;
    int64_t *order = malloc((size_t)(t->n ? t->n : 1) * sizeof *order);
    if (!order) return qs_err_set(err, QS_E_OOM, "out of memory");
    for (int64_t i = 0; i < t->n; i++) order[i] = i;
    qsort_r(order, (size_t)t->n, sizeof *order, cmp_order, (void *)t);
    sbuf file = {0}, line = {0};
    int out_type = -1, embd_type = -1, rc = 0;
    int64_t n_listed = 0;
    for (int64_t k = 0; k < t->n && !rc; k++) {
        const qs_recipe_entry *e = &t->e[order[k]];
        const char *name = e->t->name;
        if (!e->keep && e->ggml_type < 0) rc = not_ggml(e, err);
        else if (!qs_preset_quantizable(name, e->t->ne)) {
            if (!e->keep)
                rc = qs_err_set(err, QS_E_USAGE, "%s: llama-quantize never quantizes this tensor; keep it in the recipe",
                                name);
        } else if (!strcmp(name, "output.weight")) out_type = entry_type(e);
        else if (strchr(name, '=') || strpbrk(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
            rc = qs_err_set(err, QS_E_UNSUPPORTED,
                            "%s: llama-quantize lower-cases --tensor-type patterns and splits them at '='; "
                            "this name cannot be matched", name);
        else if (!strcmp(name, "token_embd.weight")) embd_type = entry_type(e);
        else if (types_path) {
            sb_anchored(&file, name);
            sb_add(&file, "=");
            sb_type(&file, entry_type(e));
            sb_add(&file, "\n");
        } else order[n_listed++] = order[k]; /* for the --tensor-type patterns */
    }
    int ftype = derived_ftype(t, &(qs_export_opts){-1, NULL, NULL, 0, NULL, NULL});
    if (ftype == 0 || ftype == 1 || ftype == 32) ftype = 7; /* overrides need a quantized default type: Q8_0 */
    sb_add(&line, "llama-quantize");
    if (imatrix) {
        sb_add(&line, " --imatrix");
        sb_word(&line, imatrix);
    }
    if (out_type >= 0) {
        sb_add(&line, " --output-tensor-type ");
        sb_type(&line, out_type);
    }
    if (embd_type >= 0) {
        sb_add(&line, " --token-embedding-type ");
        sb_type(&line, embd_type);
    }
    if (types_path) {
        sb_add(&line, " --tensor-type-file");
        sb_word(&line, types_path);
    } else if (!rc) type_patterns(t, order, n_listed, &line);
    free(order);
    sb_word(&line, m->path);
    sb_word(&line, out_path);
    sb_add(&line, " %s", qs_preset_name(ftype));
    if (!rc && (file.oom || line.oom)) rc = qs_err_set(err, QS_E_OOM, "out of memory");
    if (rc || !file.s) {
        if (!rc) file.s = strdup("");
        if (!file.s) rc = qs_err_set(err, QS_E_OOM, "out of memory");
    }
    if (rc) {
        free(file.s);
        free(line.s);
        return rc;
    }
    *types_text = file.s;
    *cmd = line.s;
    return 0;
}

/* ---- the grids of a recipe application ---- */

static int take_grid(void *ctx, int64_t entry, const qs_qresult *r, int64_t row0, int64_t nrows, qs_err *err)
{
    qs_qgrid *grids = ctx;
    if (!r->cfg.method->ops->to_grid) return 0; /* no integer grid: export quantizes it itself */
    qs_qgrid_free(&grids[entry]);
    return qs_qgrid_from_result(r, row0, nrows, &grids[entry], err);
}

qs_recipe_sink qs_export_grid_sink(qs_qgrid *grids) { return (qs_recipe_sink){take_grid, grids}; }

void qs_export_grids_free(qs_qgrid *grids, int64_t n)
{
    for (int64_t i = 0; grids && i < n; i++) qs_qgrid_free(&grids[i]);
    free(grids);
}
