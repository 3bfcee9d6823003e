/* core/data/calib.c — calibration statistics of the linear layers' inputs. */
#include "core/data/calib.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/data/eval.h"
#include "core/util/fileio.h"
#include "core/formats/gguf.h"
#include "core/quant/ggml_types.h"
#include "core/util/hash.h"

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
    free(c->owned_H), free(c->owned_mean);
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

/* ---- the cache ---- */

void qs_calib_key(const char table_hash[32], const char *text, size_t len, const qs_calib_opts *o, char out[40])
{
    uint64_t h = qs_fnv1a_bytes(QS_FNV1A_INIT, table_hash, strnlen(table_hash, 32));
    h = qs_fnv1a_bytes(h, text, len);
    int64_t v[5] = {o->n_chunks, o->n_ctx, o->keep_rows, o->hessians, (int64_t)o->seed};
    for (int i = 0; i < 5; i++) h = qs_fnv1a_u64(h, (uint64_t)v[i]);
    snprintf(out, 40, "calib-%016llx", (unsigned long long)h);
}

/* The cache's checksum: 64-bit FNV-1a over every tensor's name, size and bytes in file order,
 * stored as "calib.checksum" = "fnv1a64:<16 hex digits>"; a cache whose bytes were damaged (or
 * replaced by random ones) is refused on load and the caller calibrates anew. */
#define CHECKSUM_KEY "calib.checksum"

static uint64_t checksum_add(uint64_t h, const char *name, const void *data, uint64_t nbytes)
{
    h = qs_fnv1a_bytes(h, name, strlen(name) + 1);
    h = qs_fnv1a_u64(h, nbytes);
    return qs_fnv1a_bytes(h, data, (size_t)nbytes);
}

typedef struct verify_job {
    const qs_gguf *g;
    uint64_t h;
} verify_job;

static int verify_fn(void *ctx)
{
    verify_job *j = ctx;
    j->h = QS_FNV1A_INIT;
    for (int64_t i = 0; i < j->g->n_tensors; i++)
        j->h = checksum_add(j->h, j->g->tensors[i].name, j->g->tensors[i].data, j->g->tensors[i].nbytes);
    return 0;
}

int qs_calib_verify(const qs_gguf *g, qs_err *err)
{
    const char *v = NULL;
    size_t vl = 0;
    qs_err e = {0};
    if (qs_gguf_get_str(g, CHECKSUM_KEY, &v, &vl, &e))
        return qs_err_set(err, QS_E_INPUT, "no checksum (" CHECKSUM_KEY "): not a cache this version wrote");
    verify_job j = {g, 0};
    int rc = qs_mapped_call(verify_fn, &j, err);
    if (rc) return rc;
    char want[32];
    snprintf(want, sizeof want, "fnv1a64:%016llx", (unsigned long long)j.h);
    if (vl != strlen(want) || memcmp(v, want, vl))
        return qs_err_set(err, QS_E_INPUT, "checksum mismatch: the cache is damaged");
    return 0;
}

int qs_calib_save(const qs_calib_set *s, const char *path, const char *key, qs_err *err)
{
    uint64_t h = QS_FNV1A_INIT;
    qs_gguf_writer *w = qs_gguf_writer_new();
    if (!w) return qs_err_set(err, QS_E_OOM, "out of memory");
    qs_gguf_writer_set_str(w, "general.type", "quantscope.calib");
    qs_gguf_writer_set_str(w, "calib.key", key);
    qs_gguf_writer_set_u32(w, "calib.n_chunks", (uint32_t)s->n_chunks);
    qs_gguf_writer_set_u32(w, "calib.n_ctx", (uint32_t)s->n_ctx);
    qs_gguf_writer_set_u32(w, "calib.keep_rows", (uint32_t)s->keep_rows);
    qs_gguf_writer_set_bool(w, "calib.hessians", s->hessians);
    qs_gguf_writer_set_u32(w, "calib.n_sites", (uint32_t)s->n_sites);
    int rc = 0;
    for (int i = 0; !rc && i < s->n_sites; i++) {
        const qs_calib_site *t = &s->sites[i];
        char k[64];
        const char *names[3] = {t->names[0], t->names[1], t->names[2]};
        snprintf(k, sizeof k, "calib.site.%d.names", i);
        qs_gguf_writer_set_arr_str(w, k, names, (uint64_t)t->n_names);
        snprintf(k, sizeof k, "calib.site.%d.n_tokens", i);
        qs_gguf_writer_set_u32(w, k, (uint32_t)t->n_tokens);
        struct { const char *what; int type; const void *data; int64_t ne0, ne1; } ts[] = {
            {"abs", QS_TYPE_F64, t->abs_sum, t->cols, 1}, {"sq", QS_TYPE_F64, t->sq_sum, t->cols, 1},
            {"max", QS_TYPE_F32, t->max_abs, t->cols, 1}, {"xtx", QS_TYPE_F64, t->xtx, t->cols, t->cols},
            {"rows", QS_TYPE_F32, t->rows, t->cols, t->n_keep}};
        for (size_t j = 0; !rc && j < sizeof ts / sizeof *ts; j++) {
            if (!ts[j].data || !ts[j].ne1) continue;
            snprintf(k, sizeof k, "s%d.%s", i, ts[j].what);
            rc = qs_gguf_writer_add_tensor(w, k, ts[j].type, 2, (const int64_t[4]){ts[j].ne0, ts[j].ne1, 1, 1}, ts[j].data, err);
            h = checksum_add(h, k, ts[j].data, (uint64_t)(ts[j].ne0 * ts[j].ne1) * (ts[j].type == QS_TYPE_F64 ? 8 : 4));
        }
    }
    char sum[32];
    snprintf(sum, sizeof sum, "fnv1a64:%016llx", (unsigned long long)h);
    if (!rc) rc = qs_gguf_writer_set_str(w, CHECKSUM_KEY, sum) ? qs_err_set(err, QS_E_OOM, "out of memory") : 0;
    if (!rc) rc = qs_gguf_writer_write(w, path, err);
    qs_gguf_writer_free(w);
    return rc;
}

/* tensor s<i>.<what> of exactly ne0 × ne1 values of type, copied into a new buffer (NULL: absent) */
static int load_tensor(const qs_gguf *g, int i, const char *what, int type, int64_t ne0, int64_t ne1, void **out, qs_err *err)
{
    char k[64];
    snprintf(k, sizeof k, "s%d.%s", i, what);
    const qs_gguf_tensor *t = qs_gguf_find_tensor(g, k);
    *out = NULL;
    if (!t) return 0;
    size_t es = type == QS_TYPE_F64 ? 8 : 4;
    if (t->type != type || t->ne[0] != ne0 || t->ne[1] != ne1 || t->nbytes != (uint64_t)(ne0 * ne1) * es)
        return qs_err_set(err, QS_E_INPUT, "%s: wrong type or shape", k);
    if (!(*out = malloc(t->nbytes ? t->nbytes : 1))) return qs_err_set(err, QS_E_OOM, "out of memory");
    return qs_mapped_copy(*out, t->data, t->nbytes, err);
}

static int load_site(const qs_gguf *g, int i, qs_calib_set *s, qs_err *err)
{
    qs_calib_site *t = &s->sites[i];
    char k[64];
    snprintf(k, sizeof k, "calib.site.%d.names", i);
    const qs_gguf_kv *kv = qs_gguf_get_kv(g, k);
    if (!kv || kv->type != QS_GGUF_ARRAY || kv->arr_type != QS_GGUF_STRING || kv->n < 1 || kv->n > 3)
        return qs_err_set(err, QS_E_INPUT, "%s: 1 to 3 weight names expected", k);
    t->n_names = (int)kv->n;
    for (int j = 0; j < t->n_names; j++) {
        size_t len;
        const char *nm = qs_gguf_kv_arr_str(kv, (uint64_t)j, &len);
        if (!nm || len >= sizeof t->names[j]) return qs_err_set(err, QS_E_INPUT, "%s: a name too long", k);
        memcpy(t->names[j], nm, len), t->names[j][len] = '\0';
    }
    uint32_t nt;
    snprintf(k, sizeof k, "calib.site.%d.n_tokens", i);
    if (qs_gguf_get_u32(g, k, &nt, err)) return -QS_E_INPUT;
    t->n_tokens = nt;
    snprintf(k, sizeof k, "s%d.abs", i);
    const qs_gguf_tensor *a = qs_gguf_find_tensor(g, k);
    if (!a || a->ne[0] < 1 || a->ne[0] > 1 << 20) return qs_err_set(err, QS_E_INPUT, "%s missing or too large", k);
    t->cols = a->ne[0];
    const qs_gguf_tensor *r = (snprintf(k, sizeof k, "s%d.rows", i), qs_gguf_find_tensor(g, k));
    t->n_keep = r ? r->ne[1] : 0;
    if (t->n_keep > s->keep_rows || t->n_keep > t->n_tokens) return qs_err_set(err, QS_E_INPUT, "%s: too many rows", k);
    int rc = load_tensor(g, i, "abs", QS_TYPE_F64, t->cols, 1, (void **)&t->abs_sum, err);
    if (!rc) rc = load_tensor(g, i, "sq", QS_TYPE_F64, t->cols, 1, (void **)&t->sq_sum, err);
    if (!rc) rc = load_tensor(g, i, "max", QS_TYPE_F32, t->cols, 1, (void **)&t->max_abs, err);
    if (!rc && s->hessians) rc = load_tensor(g, i, "xtx", QS_TYPE_F64, t->cols, t->cols, (void **)&t->xtx, err);
    if (!rc && t->n_keep) rc = load_tensor(g, i, "rows", QS_TYPE_F32, t->cols, t->n_keep, (void **)&t->rows, err);
    if (!rc && (!t->abs_sum || !t->sq_sum || !t->max_abs || (s->hessians && !t->xtx)))
        rc = qs_err_set(err, QS_E_INPUT, "site %d: statistics missing", i);
    if (!rc && t->n_keep < s->keep_rows) {
        /* the reservoir may still grow after a load: room for keep_rows */
        float *nr = realloc(t->rows, (size_t)s->keep_rows * (size_t)t->cols * sizeof *nr);
        if (!nr) return qs_err_set(err, QS_E_OOM, "out of memory");
        t->rows = nr;
    }
    return rc;
}

qs_calib_set *qs_calib_load(const char *path, const char *key, qs_err *err)
{
    qs_gguf *g = qs_gguf_open(path, err);
    if (!g) return NULL;
    qs_calib_set *s = qs_calib_verify(g, err) ? NULL : qs_calib_load_gguf(g, key, err);
    qs_gguf_close(g);
    return s;
}

qs_calib_set *qs_calib_load_gguf(const qs_gguf *g, const char *key, qs_err *err)
{
    const char *k = NULL, *type = NULL;
    size_t kl = 0, tl = 0;
    uint32_t nc = 0, ctx = 0, keep = 0, ns = 0;
    bool hess = false;
    int rc = qs_gguf_get_str(g, "general.type", &type, &tl, err) || qs_gguf_get_str(g, "calib.key", &k, &kl, err) ||
                     qs_gguf_get_u32(g, "calib.n_chunks", &nc, err) || qs_gguf_get_u32(g, "calib.n_ctx", &ctx, err) ||
                     qs_gguf_get_u32(g, "calib.keep_rows", &keep, err) || qs_gguf_get_bool(g, "calib.hessians", &hess, err) ||
                     qs_gguf_get_u32(g, "calib.n_sites", &ns, err)
                 ? -QS_E_INPUT
                 : 0;
    if (!rc && (tl != 16 || memcmp(type, "quantscope.calib", 16))) rc = qs_err_set(err, QS_E_INPUT, "not a calibration cache");
    if (!rc && (kl != strlen(key) || memcmp(k, key, kl))) rc = qs_err_set(err, QS_E_INPUT, "made for another model, text or options");
    if (!rc && (ns > 4096 || keep > 1 << 20)) rc = qs_err_set(err, QS_E_INPUT, "implausible sizes");
    qs_calib_set *s = rc ? NULL : calloc(1, sizeof *s);
    if (!rc && !s) rc = qs_err_set(err, QS_E_OOM, "out of memory");
    if (!rc) {
        s->n_chunks = (int)nc, s->n_ctx = (int)ctx, s->keep_rows = (int)keep, s->hessians = hess;
        s->sites = calloc(ns ? ns : 1, sizeof *s->sites);
        s->cap_sites = (int)ns;
        if (!s->sites) rc = qs_err_set(err, QS_E_OOM, "out of memory");
    }
    for (uint32_t i = 0; !rc && i < ns; i++) {
        s->n_sites = (int)i + 1;
        rc = load_site(g, (int)i, s, err);
    }
    if (rc) {
        qs_calib_set_free(s);
        return NULL;
    }
    return s;
}
