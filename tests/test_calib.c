/* Calibration: the imatrix of golden/ggml's source model over its calibration text against
 * llama-imatrix's file (same entries, counts, chunk metadata; values within the binary32 and
 * F16-KV-cache differences), and the
 * accumulated Σ x xᵀ / Σ|x| against naive double sums over the kept rows (all rows kept). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/data/calib.h"
#include "core/formats/gguf.h"
#include "core/data/imatrix.h"
#include "core/model/infer.h"
#include "core/model/model.h"
#include "core/recipe/recipe.h"
#include "core/model/tokenizer.h"
#include "tests/testutil.h"

typedef struct golden_src {
    char model[4096], imatrix[4096], text[8192];
} golden_src;

/* golden/ggml: the one *.f32.gguf, the one imatrix-*.gguf and its dataset text beside them */
static int find_src(golden_src *g, qs_imatrix **im)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/ggml", tu_golden_dir());
    int nm = 0, ni = 0;
    char **m = tu_list(dir, ".f32.gguf", 0, &nm), **all = tu_list(dir, ".gguf", 0, &ni);
    int ok = 0;
    for (int i = 0; all && all[i]; i++)
        if (strstr(strrchr(all[i], '/'), "/imatrix-")) snprintf(g->imatrix, sizeof g->imatrix, "%s", all[i]), ok = 1;
    qs_err err = {0};
    if (nm == 1 && ok && (*im = qs_imatrix_load(g->imatrix, &err))) {
        snprintf(g->model, sizeof g->model, "%s", m[0]);
        snprintf(g->text, sizeof g->text, "%s/%s", dir, (*im)->dataset);
    } else ok = 0;
    tu_free_list(m), tu_free_list(all);
    return ok;
}

static qs_calib_set *collect(const char *model, const char *textp, int ctx, int chunks, int keep, qs_model **mo,
                             qs_llm **lo, qs_vocab **vo)
{
    qs_err err = {0};
    qs_model *m = qs_model_open(model, &err);
    cr_assert_not_null(m, "%s", err.msg);
    qs_vocab *v = qs_vocab_load(m->gguf, &err);
    cr_assert_not_null(v, "%s", err.msg);
    qs_llm *l = qs_llm_new(m, ctx, &err);
    cr_assert_not_null(l, "%s", err.msg);
    size_t len;
    uint8_t *text = tu_read(textp, &len);
    cr_assert_not_null(text, "%s", textp);
    qs_calib_opts o;
    qs_calib_opts_default(&o);
    o.n_ctx = ctx, o.n_chunks = chunks, o.keep_rows = keep;
    qs_calib_set *s;
    cr_assert_eq(qs_calib_collect(l, v, (const char *)text, len, &o, NULL, &s, &err), 0, "%s", err.msg);
    free(text);
    *mo = m, *lo = l, *vo = v;
    return s;
}

Test(calib, imatrix_matches_llama_imatrix, .timeout = 300)
{
    golden_src g;
    qs_imatrix *want = NULL;
    if (!find_src(&g, &want)) tu_skip("no golden/ggml source model with its imatrix and text in %s", tu_golden_dir());
    qs_model *m;
    qs_llm *l;
    qs_vocab *v;
    qs_calib_set *s = collect(g.model, g.text, (int)want->chunk_size, (int)want->chunk_count, 0, &m, &l, &v);
    char *dir = tu_tmpdir(), out[4200];
    snprintf(out, sizeof out, "%s/imatrix.gguf", dir);
    qs_err err = {0};
    cr_assert_eq(qs_calib_write_imatrix(s, out, want->dataset, &err), 0, "%s", err.msg);
    qs_imatrix *got = qs_imatrix_load(out, &err);
    cr_assert_not_null(got, "%s", err.msg);
    cr_expect_eq(got->chunk_count, want->chunk_count);
    cr_expect_eq(got->chunk_size, want->chunk_size);
    cr_expect_str_eq(got->dataset, want->dataset);
    cr_expect_eq(got->n_entries, want->n_entries);
    double worst = 0;
    for (int i = 0; i < want->n_entries && i < got->n_entries; i++) {
        const qs_imatrix_entry *w = &want->entries[i], *e = &got->entries[i];
        cr_expect_str_eq(e->name, w->name, "entry %d", i);
        cr_assert_eq(e->n, w->n, "%s: %lld values", w->name, (long long)e->n);
        double ew = 0, mean = 0;
        for (int64_t j = 0; j < w->n; j++) {
            double d = fabs((double)e->values[j] / w->values[j] - 1);
            ew = fmax(ew, d), mean += d / (double)w->n;
        }
        /* llama-imatrix sums x² in binary32 (≈1e-5 here); it also runs with its default F16 KV
         * cache while our engine keeps F32, which moves every input after the first attention by
         * f16 rounding (mean ≈1e-4, worst ≈7e-4 measured) */
        bool before_attention = !strncmp(w->name, "blk.0.attn_", 11) && !strstr(w->name, "output");
        cr_expect_lt(ew, before_attention ? 1e-4 : 2e-3, "%s: worst relative difference %.3g", w->name, ew);
        cr_expect_lt(mean, before_attention ? 1e-5 : 3e-4, "%s: mean relative difference %.3g", w->name, mean);
        worst = fmax(worst, ew);
    }
    cr_log_info("imatrix of %s: %d entries, worst relative difference %.3g", g.model, got->n_entries, worst);
    /* the file itself: same keys as llama-imatrix writes, counts as stored */
    qs_gguf *a = qs_gguf_open(out, &err), *b = qs_gguf_open(g.imatrix, &err);
    cr_assert(a && b);
    cr_expect_eq(a->n_kv, b->n_kv);
    cr_expect_eq(a->n_tensors, b->n_tensors);
    for (int64_t t = 0; t < a->n_tensors && t < b->n_tensors; t++) {
        cr_expect_str_eq(a->tensors[t].name, b->tensors[t].name);
        cr_expect_eq(a->tensors[t].n_dims, b->tensors[t].n_dims, "%s", b->tensors[t].name);
        if (strstr(b->tensors[t].name, ".counts")) cr_expect_eq(memcmp(a->tensors[t].data, b->tensors[t].data, 4), 0);
    }
    qs_gguf_close(a), qs_gguf_close(b);
    qs_imatrix_free(got), qs_imatrix_free(want);
    tu_rmtree(dir), free(dir);
    qs_calib_set_free(s), qs_llm_free(l), qs_vocab_free(v), qs_model_close(m);
}

Test(calib, statistics_against_naive_sums, .timeout = 300)
{
    char mp[4096], tp[4096];
    snprintf(mp, sizeof mp, "%s/stories260K.gguf", tu_models_dir());
    snprintf(tp, sizeof tp, "%s/../data/tinystories-excerpt.txt", tu_models_dir());
    FILE *f = fopen(mp, "rb"), *t = fopen(tp, "rb");
    if (!f || !t) {
        if (f) fclose(f);
        if (t) fclose(t);
        tu_skip("%s or %s missing", mp, tp);
    }
    fclose(f), fclose(t);
    qs_model *m;
    qs_llm *l;
    qs_vocab *v;
    qs_calib_set *s = collect(mp, tp, 64, 4, 1024, &m, &l, &v); /* 256 rows: all kept, in order */
    cr_expect_eq(s->n_chunks, 4);
    cr_expect_eq(s->n_sites, 4 * (int)m->hp.n_layer + 1, "sites: q/k/v, o, gate/up, down per block, the output");
    for (int i = 0; i < s->n_sites; i++) {
        const qs_calib_site *c = &s->sites[i];
        cr_assert_eq(c->n_tokens, 256);
        cr_assert_eq(c->n_keep, 256);
        int64_t n = c->cols;
        double worst = 0;
        for (int64_t a = 0; a < n; a++) {
            double abs = 0;
            for (int64_t r = 0; r < c->n_keep; r++) abs += fabs(c->rows[r * n + a]);
            cr_expect_lt(fabs(abs - c->abs_sum[a]), 1e-9 * (1 + abs));
            for (int64_t b = 0; b < n; b++) {
                double x = 0;
                for (int64_t r = 0; r < c->n_keep; r++) x += (double)c->rows[r * n + a] * c->rows[r * n + b];
                worst = fmax(worst, fabs(x - c->xtx[a * n + b]) / (1e-12 + fabs(x)));
            }
        }
        cr_expect_lt(worst, 1e-9, "%s: Σ x xᵀ %.3g relative off", c->names[0], worst);
    }
    /* the per-tensor view: H = 2/N_seq · Σ x xᵀ and mean |x| */
    qs_calib c;
    qs_err err = {0};
    cr_assert_eq(qs_calib_for_tensor(s, "blk.0.attn_k.weight", true, &c, &err), 0, "%s", err.msg);
    const qs_calib_site *q = qs_calib_find(s, "blk.0.attn_q.weight");
    cr_assert_eq(q, qs_calib_find(s, "blk.0.attn_v.weight"), "q, k and v share their input");
    cr_expect_float_eq(c.H[5], (float)(2.0 / 4 * q->xtx[5]), 1e-6 * fabs(q->xtx[5]));
    cr_expect_float_eq(c.x_mean[3], (float)(q->abs_sum[3] / 256), 1e-6);
    qs_calib_free(&c);
    cr_expect_lt(qs_calib_for_tensor(s, "blk.0.nothing", true, &c, &err), 0);
    qs_calib_set_free(s), qs_llm_free(l), qs_vocab_free(v), qs_model_close(m);
}

/* the cache: save and load give the same statistics; another key, a cut file or a changed
 * shape is a clear error */
Test(calib, cache_round_trip_and_refusals, .timeout = 300)
{
    char mp[4096], tp[4096];
    snprintf(mp, sizeof mp, "%s/stories260K.gguf", tu_models_dir());
    snprintf(tp, sizeof tp, "%s/../data/tinystories-excerpt.txt", tu_models_dir());
    FILE *f = fopen(mp, "rb");
    if (!f) tu_skip("%s missing", mp);
    fclose(f);
    qs_model *m;
    qs_llm *l;
    qs_vocab *v;
    qs_calib_set *s = collect(mp, tp, 64, 6, 200, &m, &l, &v); /* 384 rows seen, 200 kept */
    char *dir = tu_tmpdir(), path[4200], key[40];
    snprintf(path, sizeof path, "%s/c.gguf", dir);
    qs_calib_opts o;
    qs_calib_opts_default(&o);
    char th[32];
    qs_model_table_hash(m, th);
    qs_calib_key(th, "text", 4, &o, key);
    qs_err err = {0};
    cr_assert_eq(qs_calib_save(s, path, key, &err), 0, "%s", err.msg);
    qs_calib_set *t = qs_calib_load(path, key, &err);
    cr_assert_not_null(t, "%s", err.msg);
    cr_assert_eq(t->n_sites, s->n_sites);
    cr_expect_eq(t->n_chunks, 6);
    for (int i = 0; i < s->n_sites; i++) {
        const qs_calib_site *a = &s->sites[i], *b = &t->sites[i];
        cr_assert_eq(a->cols, b->cols);
        cr_expect_eq(a->n_names, b->n_names);
        cr_expect_str_eq(a->names[0], b->names[0]);
        cr_expect_eq(a->n_tokens, b->n_tokens);
        cr_expect_eq(a->n_keep, b->n_keep);
        int64_t n = a->cols;
        cr_expect_eq(memcmp(a->xtx, b->xtx, (size_t)(n * n) * 8), 0, "%s: Σ x xᵀ", a->names[0]);
        cr_expect_eq(memcmp(a->abs_sum, b->abs_sum, (size_t)n * 8), 0);
        cr_expect_eq(memcmp(a->sq_sum, b->sq_sum, (size_t)n * 8), 0);
        cr_expect_eq(memcmp(a->max_abs, b->max_abs, (size_t)n * 4), 0);
        cr_expect_eq(memcmp(a->rows, b->rows, (size_t)(n * a->n_keep) * 4), 0);
    }
    qs_calib_set_free(t);
    /* another key */
    char other[40];
    o.n_chunks++;
    qs_calib_key(th, "text", 4, &o, other);
    cr_expect_neq(strcmp(other, key), 0);
    cr_expect_null(qs_calib_load(path, other, &err));
    cr_expect(strstr(err.msg, "another model") != NULL, "%s", err.msg);
    /* every cut of the file is refused, none crashes */
    size_t len;
    uint8_t *bytes = tu_read(path, &len);
    char cut[4300];
    snprintf(cut, sizeof cut, "%s/cut.gguf", dir);
    /* damaged data (one flipped bit in the last tensor, or the data section overwritten with random
     * bytes) fails the checksum: refused with a clear message */
    {
        qs_gguf *g = qs_gguf_open(path, &err);
        cr_assert_not_null(g, "%s", err.msg);
        size_t data_start = (size_t)g->data_start;
        qs_gguf_close(g);
        uint8_t *bad = malloc(len);
        for (int variant = 0; variant < 2; variant++) {
            memcpy(bad, bytes, len);
            if (variant == 0) bad[len - 5] ^= 0x10;
            else {
                srand(7);
                for (size_t b = data_start; b < len; b++) bad[b] = (uint8_t)rand();
            }
            FILE *c = fopen(cut, "wb");
            fwrite(bad, 1, len, c);
            fclose(c);
            cr_expect_null(qs_calib_load(cut, key, &err), "damaged data (variant %d) must be refused", variant);
            cr_expect(strstr(err.msg, "checksum mismatch") != NULL, "%s", err.msg);
        }
        free(bad);
    }
    for (size_t n = 0; n < len; n += len / 97 + 1) {
        FILE *c = fopen(cut, "wb");
        fwrite(bytes, 1, n, c);
        fclose(c);
        cr_expect_null(qs_calib_load(cut, key, &err), "a file cut at %zu bytes", n);
    }
    free(bytes);
    tu_rmtree(dir), free(dir);
    qs_calib_set_free(s), qs_llm_free(l), qs_vocab_free(v), qs_model_close(m);
}
