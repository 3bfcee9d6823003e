/* core/data/imatrix.c — GGUF and legacy imatrix readers. */
#include "core/data/imatrix.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util/fileio.h"
#include "core/quant/ggml_types.h"
#include "core/formats/gguf.h"

static int add_entry(qs_imatrix *im, const char *name, size_t name_len, int64_t n, int64_t n_mat, qs_err *err)
{
    qs_imatrix_entry *ne = realloc(im->entries, (size_t)(im->n_entries + 1) * sizeof *ne);
    if (!ne) return qs_err_set(err, QS_E_OOM, "out of memory");
    im->entries = ne;
    qs_imatrix_entry *e = &ne[im->n_entries];
    e->name = strndup(name, name_len);
    e->values = malloc((size_t)(n ? n : 1) * sizeof *e->values);
    e->n = n;
    e->n_mat = n_mat;
    if (!e->name || !e->values) {
        free(e->name);
        free(e->values);
        return qs_err_set(err, QS_E_OOM, "out of memory");
    }
    im->n_entries++;
    return 0;
}

static int load_gguf(qs_imatrix *im, const qs_gguf *g, qs_err *err)
{
    qs_gguf_get_u32(g, "imatrix.chunk_count", &im->chunk_count, NULL);
    qs_gguf_get_u32(g, "imatrix.chunk_size", &im->chunk_size, NULL);
    const qs_gguf_kv *ds = qs_gguf_get_kv(g, "imatrix.datasets");
    if (ds && ds->type == QS_GGUF_ARRAY && ds->arr_type == QS_GGUF_STRING && ds->n) {
        size_t len;
        const char *s = qs_gguf_kv_arr_str(ds, ds->n - 1, &len);
        snprintf(im->dataset, sizeof im->dataset, "%.*s", (int)(len < 255 ? len : 255), s);
    }
    for (int64_t i = 0; i < g->n_tensors; i++) {
        const qs_gguf_tensor *t = &g->tensors[i];
        const char *suffix = strstr(t->name, ".in_sum2");
        if (suffix && suffix[8] == '\0') {
            size_t base = (size_t)(suffix - t->name);
            char cname[80];
            snprintf(cname, sizeof cname, "%.*s.counts", (int)base, t->name);
            const qs_gguf_tensor *c = qs_gguf_find_tensor(g, cname);
            if (!c) return qs_err_set(err, QS_E_INPUT, "%s has no matching %s", t->name, cname);
            if (t->type != QS_TYPE_F32 || c->type != QS_TYPE_F32)
                return qs_err_set(err, QS_E_INPUT, "%s: imatrix tensors must be F32", t->name);
            int64_t n_in = t->ne[0], n_mat = t->ne[1] * t->ne[2] * t->ne[3];
            if (c->ne[0] * c->ne[1] * c->ne[2] * c->ne[3] != n_mat)
                return qs_err_set(err, QS_E_INPUT, "%s: %lld counts for %lld matrices", cname,
                                  (long long)(c->ne[0] * c->ne[1]), (long long)n_mat);
            int rc = add_entry(im, t->name, base, n_in * n_mat, n_mat, err);
            if (rc) return rc;
            float *v = im->entries[im->n_entries - 1].values;
            for (int64_t m = 0; m < n_mat; m++) {
                float cnt;
                memcpy(&cnt, c->data + 4 * m, 4);
                float count = (float)lroundf(cnt);
                for (int64_t j = 0; j < n_in; j++) {
                    float s;
                    memcpy(&s, t->data + 4 * (m * n_in + j), 4);
                    v[m * n_in + j] = count > 0 ? s / count : 1.0f;
                }
            }
        } else if (!strstr(t->name, ".counts")) {
            return qs_err_set(err, QS_E_INPUT, "unexpected tensor '%s' in an imatrix file", t->name);
        }
    }
    return 0;
}

static int rd_i32(const uint8_t *p, size_t size, size_t *pos, int32_t *v)
{
    if (size - *pos < 4) return -1;
    memcpy(v, p + *pos, 4);
    *pos += 4;
    return 0;
}

static int load_legacy(qs_imatrix *im, const uint8_t *p, size_t size, qs_err *err)
{
    size_t pos = 0;
    int32_t n_entries;
    if (rd_i32(p, size, &pos, &n_entries) || n_entries < 1 || (size_t)n_entries > size / 12)
        return qs_err_set(err, QS_E_INPUT, "not a GGUF or legacy imatrix file");
    for (int32_t i = 0; i < n_entries; i++) {
        int32_t len, ncall, nval;
        if (rd_i32(p, size, &pos, &len) || len <= 0 || (size_t)len > size - pos)
            return qs_err_set(err, QS_E_INPUT, "legacy imatrix: entry %d has a bad name length", i);
        const char *name = (const char *)p + pos;
        pos += (size_t)len;
        if (rd_i32(p, size, &pos, &ncall) || rd_i32(p, size, &pos, &nval) || nval < 1 ||
            (size_t)nval > (size - pos) / 4)
            return qs_err_set(err, QS_E_INPUT, "legacy imatrix: entry %d is truncated", i);
        int rc = add_entry(im, name, (size_t)len, nval, 1, err);
        if (rc) return rc;
        float *v = im->entries[im->n_entries - 1].values;
        for (int32_t j = 0; j < nval; j++) {
            memcpy(&v[j], p + pos + 4 * (size_t)j, 4);
            if (ncall > 0) v[j] = v[j] / (float)ncall;
        }
        pos += 4 * (size_t)nval;
    }
    int32_t last_chunk, len;
    if (!rd_i32(p, size, &pos, &last_chunk)) {
        im->chunk_count = (uint32_t)(last_chunk > 0 ? last_chunk : 0);
        if (!rd_i32(p, size, &pos, &len) && len > 0 && (size_t)len <= size - pos)
            snprintf(im->dataset, sizeof im->dataset, "%.*s", len < 255 ? len : 255, (const char *)p + pos);
    }
    return 0;
}

qs_imatrix *qs_imatrix_load(const char *path, qs_err *err)
{
    qs_imatrix *im = calloc(1, sizeof *im);
    qs_mapping m;
    if (!im) {
        qs_err_set(err, QS_E_OOM, "out of memory");
        return NULL;
    }
    int rc = qs_map_file(path, &m, err);
    if (rc) {
        free(im);
        return NULL;
    }
    if (m.size >= 4 && memcmp(m.data, "GGUF", 4) == 0) {
        qs_gguf *g = qs_gguf_open_mem(m.data, m.size, err);
        rc = g ? load_gguf(im, g, err) : -QS_E_INPUT;
        qs_gguf_close(g);
    } else {
        rc = load_legacy(im, m.data, m.size, err);
    }
    qs_unmap_file(&m);
    for (int i = 0; !rc && i < im->n_entries; i++)
        for (int64_t j = 0; j < im->entries[i].n; j++)
            if (!isfinite(im->entries[i].values[j])) {
                rc = qs_err_set(err, QS_E_INPUT, "imatrix contains a non-finite value (%s)", im->entries[i].name);
                break;
            }
    if (!rc && im->n_entries == 0) rc = qs_err_set(err, QS_E_INPUT, "imatrix has no entries");
    if (rc) {
        qs_imatrix_free(im);
        return NULL;
    }
    return im;
}

void qs_imatrix_free(qs_imatrix *im)
{
    if (!im) return;
    for (int i = 0; i < im->n_entries; i++) {
        free(im->entries[i].name);
        free(im->entries[i].values);
    }
    free(im->entries);
    free(im);
}

const qs_imatrix_entry *qs_imatrix_find(const qs_imatrix *im, const char *name)
{
    for (int i = 0; im && i < im->n_entries; i++)
        if (strcmp(im->entries[i].name, name) == 0) return &im->entries[i];
    return NULL;
}
