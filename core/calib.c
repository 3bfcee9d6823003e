/* core/calib.c — calibration statistics of the linear layers' inputs. */
#include "calib.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval.h"
#include "gguf.h"
#include "ggml_types.h"

void qs_calib_opts_default(qs_calib_opts *o)
{
    *o = (qs_calib_opts){.n_chunks = 32, .n_ctx = 256, .keep_rows = 1024, .hessians = true, .seed = 0x5eed};
}

static uint64_t next_rand(uint64_t *s)
{
    /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

typedef struct collector {
    qs_calib_set *set;
    const char *prefix;
    double *xd;          /* [T][cols] scratch for the Σ x xᵀ update */
    size_t xd_cap;
    int failed;          /* out of memory inside the observer */
} collector;

static qs_calib_site *site_for(collector *c, const char *const *names, int n, int64_t cols)
{
    qs_calib_set *s = c->set;
    for (int i = 0; i < s->n_sites; i++)
        if (!strcmp(s->sites[i].names[0], names[0])) return &s->sites[i];
    if (s->n_sites == s->cap_sites) {
        int cap = s->cap_sites ? 2 * s->cap_sites : 16;
        qs_calib_site *ns = realloc(s->sites, (size_t)cap * sizeof *ns);
        if (!ns) return NULL;
        s->sites = ns, s->cap_sites = cap;
    }
    qs_calib_site *t = &s->sites[s->n_sites];
    memset(t, 0, sizeof *t);
    for (int i = 0; i < n && i < 3; i++) snprintf(t->names[i], sizeof t->names[i], "%s", names[i]);
    t->n_names = n < 3 ? n : 3;
    t->cols = cols;
    t->abs_sum = calloc((size_t)cols, sizeof *t->abs_sum);
    t->sq_sum = calloc((size_t)cols, sizeof *t->sq_sum);
    t->max_abs = calloc((size_t)cols, sizeof *t->max_abs);
    t->rows = s->keep_rows ? malloc((size_t)s->keep_rows * (size_t)cols * sizeof *t->rows) : NULL;
    t->xtx = s->hessians ? calloc((size_t)(cols * cols), sizeof *t->xtx) : NULL;
    s->n_sites++;
    if (!t->abs_sum || !t->sq_sum || !t->max_abs || (s->keep_rows && !t->rows) || (s->hessians && !t->xtx)) return NULL;
    return t;
}

static void observe(void *ctx, const char *const *names, int n, const float *x, int T, int64_t cols)
{
    collector *c = ctx;
    qs_calib_set *s = c->set;
    if (c->failed) return;
    bool wanted = !c->prefix;
    for (int i = 0; i < n && !wanted; i++) wanted = !strncmp(names[i], c->prefix, strlen(c->prefix));
    if (!wanted) return;
    qs_calib_site *t = site_for(c, names, n, cols);
    if (!t || t->cols != cols) {
        c->failed = 1;
        return;
    }
    for (int r = 0; r < T; r++) {
        const float *row = x + (size_t)r * cols;
        for (int64_t j = 0; j < cols; j++) {
            float a = fabsf(row[j]);
            t->abs_sum[j] += a;
            t->sq_sum[j] += (double)row[j] * row[j];
            if (a > t->max_abs[j]) t->max_abs[j] = a;
        }
        /* reservoir: row number seen = n_tokens + r */
        int64_t seen = t->n_tokens + r;
        if (t->n_keep < s->keep_rows) memcpy(t->rows + t->n_keep++ * cols, row, (size_t)cols * sizeof *row);
        else if (s->keep_rows) {
            uint64_t j = next_rand(&s->rng) % (uint64_t)(seen + 1);
            if (j < (uint64_t)s->keep_rows) memcpy(t->rows + j * cols, row, (size_t)cols * sizeof *row);
        }
    }
    t->n_tokens += T;
    if (t->xtx) {
        size_t need = (size_t)T * (size_t)cols;
        if (need > c->xd_cap) {
            double *nd = realloc(c->xd, need * sizeof *nd);
            if (!nd) {
                c->failed = 1;
                return;
            }
            c->xd = nd, c->xd_cap = need;
        }
        for (size_t i = 0; i < need; i++) c->xd[i] = x[i];
        /* upper triangle of Σ x xᵀ += Xᵀ X */
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)cols, T, 1.0, c->xd, (int)cols, 1.0, t->xtx, (int)cols);
    }
}

int qs_calib_collect(qs_llm *l, const qs_vocab *v, const char *text, size_t len, const qs_calib_opts *o,
                     qs_progress *prog, qs_calib_set **out, qs_err *err)
{
    *out = NULL;
    if (o->keep_rows < 0 || o->keep_rows > 1 << 20) return qs_err_set(err, QS_E_USAGE, "keep_rows %d", o->keep_rows);
    int32_t *toks;
    int64_t nt;
    int nc, rc = qs_eval_prepare(l, v, text, len, o->n_ctx, o->n_chunks, &toks, &nt, &nc, err);
    if (rc) return rc;
    qs_calib_set *s = calloc(1, sizeof *s);
    int32_t *chunk = malloc((size_t)o->n_ctx * sizeof *chunk);
    /* the logits are not used, but computing them shows the output projection's input */
    bool want_output = !o->prefix || strncmp(o->prefix, "blk.", 4);
    float *logits = want_output ? malloc((size_t)o->n_ctx * (size_t)qs_llm_n_vocab(l) * sizeof *logits) : NULL;
    collector c = {s, o->prefix, NULL, 0, 0};
    if (!s || !chunk || (want_output && !logits)) rc = qs_err_set(err, QS_E_OOM, "out of memory");
    if (s) s->n_ctx = o->n_ctx, s->keep_rows = o->keep_rows, s->hessians = o->hessians, s->rng = o->seed;
    if (!rc) qs_llm_set_observer(l, observe, &c);
    for (int k = 0; !rc && k < nc; k++) {
        memcpy(chunk, toks + (int64_t)k * o->n_ctx, (size_t)o->n_ctx * sizeof *chunk);
        if (qs_vocab_add_bos(v)) chunk[0] = qs_vocab_bos(v);
        qs_llm_reset(l);
        rc = qs_llm_eval(l, chunk, o->n_ctx, 0, logits, err);
        if (!rc && c.failed) rc = qs_err_set(err, QS_E_OOM, "out of memory for the calibration statistics");
        if (!rc) s->n_chunks = k + 1;
        if (!rc && !qs_progress_step(prog, k + 1, nc)) rc = qs_err_set(err, QS_E_CANCELLED, "cancelled");
    }
    qs_llm_set_observer(l, NULL, NULL);
    free(c.xd);
    free(logits);
    free(chunk);
    free(toks);
    if (rc) {
        qs_calib_set_free(s);
        return rc;
    }
    /* mirror the upper triangles */
    for (int i = 0; i < s->n_sites; i++) {
        qs_calib_site *t = &s->sites[i];
        if (t->xtx)
            for (int64_t a = 0; a < t->cols; a++)
                for (int64_t b = 0; b < a; b++) t->xtx[a * t->cols + b] = t->xtx[b * t->cols + a];
    }
    *out = s;
    return 0;
}

void qs_calib_set_free(qs_calib_set *s)
{
    if (!s) return;
    for (int i = 0; i < s->n_sites; i++) {
        qs_calib_site *t = &s->sites[i];
        free(t->xtx), free(t->abs_sum), free(t->sq_sum), free(t->max_abs), free(t->rows);
    }
    free(s->sites);
    free(s);
}

const qs_calib_site *qs_calib_find(const qs_calib_set *s, const char *weight)
{
    for (int i = 0; s && i < s->n_sites; i++)
        for (int k = 0; k < s->sites[i].n_names; k++)
            if (!strcmp(s->sites[i].names[k], weight)) return &s->sites[i];
    return NULL;
}

int qs_calib_for_tensor(const qs_calib_set *s, const char *weight, bool with_h, qs_calib *out, qs_err *err)
{
    memset(out, 0, sizeof *out);
    const qs_calib_site *t = qs_calib_find(s, weight);
    if (!t) return qs_err_set(err, QS_E_USAGE, "the calibration run saw no input of %s", weight);
    if (with_h && !t->xtx) return qs_err_set(err, QS_E_USAGE, "the calibration run kept no Hessians");
    int64_t n = t->cols;
    out->cols = n;
    out->X = t->rows, out->n_rows = t->n_keep;
    out->owned_mean = malloc((size_t)n * sizeof *out->owned_mean);
    if (with_h) out->owned_H = malloc((size_t)(n * n) * sizeof *out->owned_H);
    if (!out->owned_mean || (with_h && !out->owned_H)) {
        qs_calib_free(out);
        return qs_err_set(err, QS_E_OOM, "out of memory for the calibration view of %s", weight);
    }
    for (int64_t j = 0; j < n; j++) out->owned_mean[j] = (float)(t->abs_sum[j] / (double)t->n_tokens);
    /* IST normalisation: 2/N_seq · Σ x xᵀ */
    double f = 2.0 / (double)(s->n_chunks > 0 ? s->n_chunks : 1);
    if (with_h)
        for (int64_t i = 0; i < n * n; i++) out->owned_H[i] = (float)(f * t->xtx[i]);
    out->x_mean = out->owned_mean, out->H = out->owned_H;
    return 0;
}

void qs_calib_free(qs_calib *c)
{
    free(c->owned_H), free(c->owned_mean), free(c->owned_X);
    memset(c, 0, sizeof *c);
}

typedef struct im_entry {
    const char *name;
    const qs_calib_site *site;
} im_entry;

static int cmp_entry(const void *a, const void *b) { return strcmp(((const im_entry *)a)->name, ((const im_entry *)b)->name); }

int qs_calib_write_imatrix(const qs_calib_set *s, const char *path, const char *dataset, qs_err *err)
{
    int n = 0;
    for (int i = 0; i < s->n_sites; i++) n += s->sites[i].n_names;
    im_entry *e = calloc((size_t)(n ? n : 1), sizeof *e);
    float *data = NULL;
    qs_gguf_writer *w = qs_gguf_writer_new();
    int64_t total = 0;
    int m = 0, rc = 0;
    for (int i = 0; e && i < s->n_sites; i++)
        for (int k = 0; k < s->sites[i].n_names; k++)
            if (!strncmp(s->sites[i].names[k], "blk.", 4)) {
                e[m++] = (im_entry){s->sites[i].names[k], &s->sites[i]};
                total += s->sites[i].cols + 1;
            }
    if (e && !m) rc = qs_err_set(err, QS_E_USAGE, "no blk.* weight was observed");
    if (!rc && (!e || !w || !(data = malloc((size_t)total * sizeof *data)))) rc = qs_err_set(err, QS_E_OOM, "out of memory");
    if (!rc) {
        qsort(e, (size_t)m, sizeof *e, cmp_entry);
        const char *ds[1] = {dataset};
        qs_gguf_writer_set_str(w, "general.type", "imatrix");
        qs_gguf_writer_set_arr_str(w, "imatrix.datasets", ds, 1);
        qs_gguf_writer_set_u32(w, "imatrix.chunk_count", (uint32_t)s->n_chunks);
        qs_gguf_writer_set_u32(w, "imatrix.chunk_size", (uint32_t)s->n_ctx);
        float *p = data;
        for (int i = 0; !rc && i < m; i++) {
            const qs_calib_site *t = e[i].site;
            char name[128];
            for (int64_t j = 0; j < t->cols; j++) p[j] = (float)t->sq_sum[j];
            p[t->cols] = (float)t->n_tokens;
            snprintf(name, sizeof name, "%s.in_sum2", e[i].name);
            rc = qs_gguf_writer_add_tensor(w, name, QS_TYPE_F32, 1, (const int64_t[4]){t->cols, 1, 1, 1}, p, err);
            snprintf(name, sizeof name, "%s.counts", e[i].name);
            if (!rc) rc = qs_gguf_writer_add_tensor(w, name, QS_TYPE_F32, 1, (const int64_t[4]){1, 1, 1, 1}, p + t->cols, err);
            p += t->cols + 1;
        }
    }
    if (!rc) rc = qs_gguf_writer_write(w, path, err);
    qs_gguf_writer_free(w);
    free(data);
    free(e);
    return rc;
}
