/* core/export.c — recipe → quantized GGUF. */
#include "export.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ggml_quants.h"
#include "ggml_types.h"
#include "gguf.h"
#include "presets.h"

/* the ftype whose default type most weights of the recipe have */
static int derived_ftype(const qs_recipe_table *t)
{
    int64_t weight[QS_TYPE_COUNT] = {0};
    for (int64_t i = 0; i < t->n; i++)
        if (!t->e[i].keep && t->e[i].ggml_type >= 0) weight[t->e[i].ggml_type] += qs_tensor_nelements(t->e[i].t);
    int best = QS_TYPE_F32;
    for (int k = 0; k < QS_TYPE_COUNT; k++)
        if (weight[k] > weight[best]) best = k;
    int ftype = qs_preset_ftype_of_type(best);
    return ftype >= 0 ? ftype : 0;
}

/* llama-quantize's order (spec/llama-quant-presets.md §2.1) */
static int cmp_order(const void *a, const void *b, void *ctx)
{
    const qs_recipe_table *t = ctx;
    return qs_llama_tensor_cmp(t->e[*(const int64_t *)a].t->name, t->e[*(const int64_t *)b].t->name);
}

static int copy_metadata(const qs_gguf *g, qs_gguf_writer *w, const qs_export_opts *o, int ftype)
{
    for (int64_t i = 0; i < g->n_kv; i++) {
        const char *k = g->kv[i].key;
        if (!strcmp(k, "general.quantization_version") || !strcmp(k, "general.file_type") || !strncmp(k, "split.", 6)) continue;
        if (qs_gguf_writer_copy_kv(w, &g->kv[i])) return -1;
    }
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
    return 0;
}

/* the bytes of one tensor in its recipe type (quantized into *owned when it changes) */
static int not_ggml(const qs_recipe_entry *e, qs_err *err)
{
    const char *near = e->cfg.method->kind == QS_METHOD_NF4 || e->cfg.method->kind == QS_METHOD_FP4 ? "iq4_nl"
                       : e->cfg.bits >= 8 ? "q8_0" : e->cfg.bits >= 5 ? "q5_K" : e->cfg.bits == 4 ? "q4_K" : "q3_K";
    return qs_err_set(err, QS_E_USAGE, "%s: %s is not a GGML type and cannot go into a GGUF; the nearest is %s", e->t->name,
                      e->cfg.method->name, near);
}

static int tensor_bytes(const qs_recipe_entry *e, const qs_export_opts *o, int *type, const void **data, void **owned,
                        qs_err *err)
{
    const qs_tensor *t = e->t;
    *owned = NULL;
    if (e->keep) {
        *type = t->type;
        *data = t->data;
        return 0;
    }
    if (e->ggml_type < 0) return not_ggml(e, err);
    int64_t rows = qs_tensor_nrows(t), cols = t->ne[0];
    const float *qw = NULL;
    const qs_imatrix_entry *ie = o->imatrix ? qs_imatrix_find(o->imatrix, t->name) : NULL;
    if (ie && ie->n == cols && t->ne[2] * t->ne[3] == 1) qw = ie->values;
    else if (ie && t->role != QS_ROLE_TOKEN_EMBD)
        return qs_err_set(err, QS_E_INPUT, "%s: the imatrix entry has %lld values, the tensor %lld columns", t->name,
                          (long long)ie->n, (long long)cols);
    float *f = malloc((size_t)(rows * cols) * sizeof *f);
    void *q = malloc((size_t)qs_type_row_bytes(e->ggml_type, cols) * (size_t)rows + 1);
    int rc = !f || !q ? qs_err_set(err, QS_E_OOM, "out of memory") : qs_tensor_read_rows(t, 0, rows, f, err);
    if (!rc) rc = qs_ggml_quantize(e->ggml_type, f, q, rows, cols, qw, o->n_threads, err);
    free(f);
    if (rc) {
        free(q);
        return qs_err_prefix(err, "%s", t->name);
    }
    *type = e->ggml_type;
    *data = *owned = q;
    return 0;
}

int qs_export_gguf(const qs_model *m, const qs_recipe_table *t, const qs_export_opts *o, const char *path,
                   qs_progress *prog, qs_err *err)
{
    if (!m->gguf) return qs_err_set(err, QS_E_UNSUPPORTED, "exporting HF checkpoints to GGUF is not implemented yet");
    qs_gguf_writer *w = qs_gguf_writer_new();
    int64_t *order = malloc((size_t)(t->n ? t->n : 1) * sizeof *order);
    void **owned = calloc((size_t)(t->n ? t->n : 1), sizeof *owned);
    int rc = !w || !order || !owned ? qs_err_set(err, QS_E_OOM, "out of memory") : 0;
    if (!rc && copy_metadata(m->gguf, w, o, o->ftype >= 0 ? o->ftype : derived_ftype(t)))
        rc = qs_err_set(err, QS_E_OOM, "out of memory");
    for (int64_t i = 0; i < t->n; i++) order[i] = i;
    qsort_r(order, (size_t)t->n, sizeof *order, cmp_order, (void *)t);
    for (int64_t k = 0; !rc && k < t->n; k++) {
        const qs_recipe_entry *e = &t->e[order[k]];
        int type = -1;
        const void *data = NULL;
        rc = tensor_bytes(e, o, &type, &data, &owned[k], err);
        if (!rc) rc = qs_gguf_writer_add_tensor(w, e->t->name, type, 0, e->t->ne, data, err);
        if (!rc && !qs_progress_step(prog, k + 1, t->n)) rc = qs_err_set(err, QS_E_CANCELLED, "cancelled");
    }
    if (!rc) rc = qs_gguf_writer_write(w, path, err);
    for (int64_t k = 0; k < t->n; k++) free(owned[k]);
    free(owned);
    free(order);
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
        else {
            sb_anchored(&file, name);
            sb_add(&file, "=");
            sb_type(&file, entry_type(e));
            sb_add(&file, "\n");
        }
    }
    free(order);
    int ftype = derived_ftype(t);
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
    sb_add(&line, " --tensor-type-file");
    sb_word(&line, types_path);
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
