/* core/formats/gguf.c — GGUF reader and writer; validation rules of spec/gguf.md §3. */
#include "core/formats/gguf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util/fileio.h"
#include "core/quant/ggml_types.h"

#define GGUF_MAX_STRING ((uint64_t)1 << 30)
#define GGUF_MAX_ARRAY ((uint64_t)1 << 30)

static const size_t vtype_sizes[QS_GGUF_NTYPES] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
static const char *const vtype_names[QS_GGUF_NTYPES] = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool", "string",
    "array", "uint64", "int64", "float64"};

size_t qs_gguf_vtype_size(int t) { return t >= 0 && t < QS_GGUF_NTYPES ? vtype_sizes[t] : 0; }
const char *qs_gguf_vtype_name(int t) { return t >= 0 && t < QS_GGUF_NTYPES ? vtype_names[t] : "?"; }

/* ---- bounded cursor ---- */

typedef struct cursor {
    const uint8_t *p;
    size_t size, pos;
} cursor;

static bool cur_need(const cursor *c, uint64_t n) { return n <= c->size - c->pos; }

static bool rd_u32(cursor *c, uint32_t *v)
{
    if (!cur_need(c, 4)) return false;
    memcpy(v, c->p + c->pos, 4);
    c->pos += 4;
    return true;
}

static bool rd_u64(cursor *c, uint64_t *v)
{
    if (!cur_need(c, 8)) return false;
    memcpy(v, c->p + c->pos, 8);
    c->pos += 8;
    return true;
}

/* A string: returns 0, or a negative error with a message about `what`. */
static int rd_str(cursor *c, const uint8_t **s, uint64_t *len, const char *what, qs_err *err)
{
    size_t at = c->pos;
    if (!rd_u64(c, len))
        return qs_err_set(err, QS_E_INPUT, "truncated: %s length at offset %zu", what, at);
    if (*len > GGUF_MAX_STRING)
        return qs_err_set(err, QS_E_INPUT, "%s at offset %zu: length %" PRIu64 " exceeds 1 GiB",
                          what, at, *len);
    if (!cur_need(c, *len))
        return qs_err_set(err, QS_E_INPUT,
                          "truncated: %s at offset %zu needs %" PRIu64 " bytes, %zu remain",
                          what, at, *len, c->size - c->pos);
    *s = c->p + c->pos;
    c->pos += *len;
    return 0;
}

/* ---- sorting helpers for uniqueness checks ---- */

static int cmp_cstr_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const char *find_duplicate(const char **names, int64_t n)
{
    qsort(names, (size_t)n, sizeof *names, cmp_cstr_ptr);
    for (int64_t i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            return names[i];
    return NULL;
}

/* ---- KV parsing ---- */

static int parse_kv_value(cursor *c, qs_gguf_kv *kv, qs_err *err)
{
    size_t start = c->pos;
    kv->arr_type = -1;
    kv->n = 1;
    if (kv->type == QS_GGUF_STRING) {
        const uint8_t *s;
        uint64_t len;
        int rc = rd_str(c, &s, &len, "string value", err);
        if (rc) return rc;
    } else if (kv->type == QS_GGUF_ARRAY) {
        uint32_t et;
        uint64_t n;
        if (!rd_u32(c, &et) || !rd_u64(c, &n))
            return qs_err_set(err, QS_E_INPUT, "truncated array header");
        if ((int32_t)et < 0 || et >= QS_GGUF_NTYPES || et == QS_GGUF_ARRAY)
            return qs_err_set(err, QS_E_INPUT, "invalid array element type %" PRId32, (int32_t)et);
        if (n > GGUF_MAX_ARRAY)
            return qs_err_set(err, QS_E_INPUT, "array of %" PRIu64 " elements exceeds 2^30", n);
        kv->arr_type = (int)et;
        kv->n = n;
        if (et == QS_GGUF_STRING) {
            /* each element is at least 8 bytes: bound the table before allocating */
            if (!cur_need(c, n * 8))
                return qs_err_set(err, QS_E_INPUT, "truncated: string array of %" PRIu64
                                  " elements does not fit in the file", n);
            kv->strs = malloc((n ? n : 1) * sizeof *kv->strs);
            if (!kv->strs)
                return qs_err_set(err, QS_E_OOM, "out of memory for string array");
            for (uint64_t i = 0; i < n; i++) {
                const uint8_t *s;
                uint64_t len;
                kv->strs[i] = c->p + c->pos;
                int rc = rd_str(c, &s, &len, "string array element", err);
                if (rc) return rc;
            }
        } else {
            uint64_t es = vtype_sizes[et];
            if (!cur_need(c, n * es))
                return qs_err_set(err, QS_E_INPUT, "truncated: array of %" PRIu64 " %s needs %"
                                  PRIu64 " bytes, %zu remain", n, vtype_names[et], n * es,
                                  c->size - c->pos);
            c->pos += n * es;
        }
    } else {
        if (!cur_need(c, vtype_sizes[kv->type]))
            return qs_err_set(err, QS_E_INPUT, "truncated %s value", vtype_names[kv->type]);
        c->pos += vtype_sizes[kv->type];
    }
    kv->raw = c->p + start;
    kv->raw_size = c->pos - start;
    return 0;
}

static int parse_kvs(qs_gguf *g, cursor *c, qs_err *err)
{
    /* grown as records parse, so memory follows the bytes actually present */
    int64_t cap = 0;
    for (int64_t i = 0; i < g->n_kv; i++) {
        if (i == cap) {
            cap = cap ? cap * 2 : 64;
            if (cap > g->n_kv) cap = g->n_kv;
            qs_gguf_kv *nk = realloc(g->kv, (size_t)cap * sizeof *nk);
            if (!nk) return qs_err_set(err, QS_E_OOM, "out of memory for metadata");
            g->kv = nk;
        }
        qs_gguf_kv *kv = &g->kv[i];
        memset(kv, 0, sizeof *kv);
        g->n_kv_parsed = i + 1;
        const uint8_t *key;
        uint64_t klen;
        char what[48];
        snprintf(what, sizeof what, "key of metadata record %" PRId64, i);
        int rc = rd_str(c, &key, &klen, what, err);
        if (rc) return rc;
        if (klen == 0)
            return qs_err_set(err, QS_E_INPUT, "metadata record %" PRId64 " has an empty key", i);
        if (memchr(key, 0, klen))
            return qs_err_set(err, QS_E_INPUT, "metadata record %" PRId64 " key contains a NUL byte", i);
        kv->key = malloc(klen + 1);
        if (!kv->key) return qs_err_set(err, QS_E_OOM, "out of memory for key");
        memcpy(kv->key, key, klen);
        kv->key[klen] = '\0';
        uint32_t t;
        if (!rd_u32(c, &t))
            return qs_err_set(err, QS_E_INPUT, "truncated: type of key '%.100s'", kv->key);
        if ((int32_t)t < 0 || t >= QS_GGUF_NTYPES)
            return qs_err_set(err, QS_E_INPUT, "key '%.100s': invalid value type %" PRId32,
                              kv->key, (int32_t)t);
        kv->type = (int)t;
        rc = parse_kv_value(c, kv, err);
        if (rc) return qs_err_prefix(err, "key '%.100s'", kv->key);
    }
    return 0;
}

static int check_keys(qs_gguf *g, qs_err *err)
{
    g->alignment = QS_GGUF_DEFAULT_ALIGNMENT;
    if (g->n_kv == 0) return 0;
    const char **names = malloc((size_t)g->n_kv * sizeof *names);
    if (!names) return qs_err_set(err, QS_E_OOM, "out of memory");
    for (int64_t i = 0; i < g->n_kv; i++) names[i] = g->kv[i].key;
    const char *dup = find_duplicate(names, g->n_kv);
    int rc = dup ? qs_err_set(err, QS_E_INPUT, "duplicate key '%.100s'", dup) : 0;
    free(names);
    if (rc) return rc;
    const qs_gguf_kv *al = qs_gguf_get_kv(g, "general.alignment");
    if (al) {
        if (al->type != QS_GGUF_U32)
            return qs_err_set(err, QS_E_INPUT, "general.alignment has type %s, expected uint32",
                              vtype_names[al->type]);
        uint32_t a;
        memcpy(&a, al->raw, 4);
        if (a == 0 || (a & (a - 1)))
            return qs_err_set(err, QS_E_INPUT, "general.alignment %" PRIu32 " is not a power of two", a);
        g->alignment = a;
    }
    return 0;
}

/* ---- tensor infos ---- */

int64_t qs_gguf_tensor_nbytes(int type, const int64_t ne[4])
{
    const qs_type_info *ti = qs_type_get(type);
    if (!ti) return -1;
    /* the product of the non-zero dimensions must fit, so that every partial product
     * (rows = ne1·ne2·ne3 …) does too, even when another dimension is 0 */
    int64_t nz = 1;
    for (int d = 0; d < 4; d++) {
        if (ne[d] < 0) return -1;
        if (ne[d] && nz > INT64_MAX / ne[d]) return -1;
        if (ne[d]) nz *= ne[d];
    }
    int64_t row = qs_type_row_bytes(type, ne[0]);
    if (row < 0) return -1;
    int64_t total = row;
    for (int d = 1; d < 4; d++) {
        if (ne[d] && total > INT64_MAX / ne[d]) return -1;
        total *= ne[d];
    }
    return total;
}

uint32_t qs_gguf_trimmed_ndims(const int64_t ne[4])
{
    uint32_t n = 1;
    for (uint32_t d = 1; d < 4; d++)
        if (ne[d] > 1) n = d + 1;
    return n;
}

static int parse_tensor_info(cursor *c, qs_gguf_tensor *t, int64_t idx, qs_err *err)
{
    const uint8_t *name;
    uint64_t nlen;
    char what[48];
    snprintf(what, sizeof what, "name of tensor %" PRId64, idx);
    int rc = rd_str(c, &name, &nlen, what, err);
    if (rc) return rc;
    if (nlen > QS_GGUF_MAX_NAME)
        return qs_err_set(err, QS_E_INPUT, "tensor %" PRId64 ": name of %" PRIu64
                          " bytes exceeds %d", idx, nlen, QS_GGUF_MAX_NAME);
    if (memchr(name, 0, nlen))
        return qs_err_set(err, QS_E_INPUT, "tensor %" PRId64 ": name contains a NUL byte", idx);
    memcpy(t->name, name, nlen);
    t->name[nlen] = '\0';
    if (!rd_u32(c, &t->n_dims))
        return qs_err_set(err, QS_E_INPUT, "truncated: tensor '%s' n_dims", t->name);
    if (t->n_dims > 4)
        return qs_err_set(err, QS_E_INPUT, "tensor '%s': n_dims %" PRIu32 " exceeds 4", t->name, t->n_dims);
    for (int d = 0; d < 4; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t v;
        if (!rd_u64(c, &v))
            return qs_err_set(err, QS_E_INPUT, "truncated: tensor '%s' shape", t->name);
        if ((int64_t)v < 0)
            return qs_err_set(err, QS_E_INPUT, "tensor '%s': negative dimension ne[%" PRIu32 "]", t->name, d);
        t->ne[d] = (int64_t)v;
    }
    uint32_t type;
    uint64_t off;
    if (!rd_u32(c, &type) || !rd_u64(c, &off))
        return qs_err_set(err, QS_E_INPUT, "truncated: tensor '%s' type/offset", t->name);
    if (!qs_type_valid((int32_t)type))
        return qs_err_set(err, QS_E_INPUT, "tensor '%s': unknown or removed type id %" PRId32,
                          t->name, (int32_t)type);
    t->type = (int)type;
    t->offset = off;
    int bs = qs_type_get(t->type)->block_size;
    if (t->ne[0] % bs)
        return qs_err_set(err, QS_E_INPUT, "tensor '%s': ne[0] = %" PRId64
                          " is not a multiple of the %s block size %d",
                          t->name, t->ne[0], qs_type_name(t->type), bs);
    int64_t nb = qs_gguf_tensor_nbytes(t->type, t->ne);
    if (nb < 0)
        return qs_err_set(err, QS_E_INPUT, "tensor '%s': shape overflows", t->name);
    t->nbytes = (uint64_t)nb;
    return 0;
}

static int parse_tensors(qs_gguf *g, cursor *c, qs_err *err)
{
    int64_t cap = 0;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        if (i == cap) {
            cap = cap ? cap * 2 : 64;
            if (cap > g->n_tensors) cap = g->n_tensors;
            qs_gguf_tensor *nt = realloc(g->tensors, (size_t)cap * sizeof *nt);
            if (!nt) return qs_err_set(err, QS_E_OOM, "out of memory for tensor infos");
            g->tensors = nt;
        }
        memset(&g->tensors[i], 0, sizeof g->tensors[i]);
        int rc = parse_tensor_info(c, &g->tensors[i], i, err);
        if (rc) return rc;
    }
    return 0;
}

static int cmp_tensor_offset(const void *a, const void *b)
{
    const qs_gguf_tensor *x = *(const qs_gguf_tensor *const *)a, *y = *(const qs_gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int check_layout(qs_gguf *g, qs_err *err)
{
    if (g->n_tensors == 0) return 0;
    const char **names = malloc((size_t)g->n_tensors * sizeof *names);
    const qs_gguf_tensor **byoff = malloc((size_t)g->n_tensors * sizeof *byoff);
    int rc = 0;
    if (!names || !byoff) {
        rc = qs_err_set(err, QS_E_OOM, "out of memory");
        goto out;
    }
    for (int64_t i = 0; i < g->n_tensors; i++) {
        names[i] = g->tensors[i].name;
        byoff[i] = &g->tensors[i];
    }
    const char *dup = find_duplicate(names, g->n_tensors);
    if (dup) {
        rc = qs_err_set(err, QS_E_INPUT, "duplicate tensor name '%s'", dup);
        goto out;
    }
    uint64_t avail = g->size - g->data_start, expect = 0, al = g->alignment;
    g->canonical = true;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        qs_gguf_tensor *t = &g->tensors[i];
        if (t->offset != expect) g->canonical = false;
        if (t->offset % al) {
            rc = qs_err_set(err, QS_E_INPUT, "tensor '%s': offset %" PRIu64
                            " is not a multiple of the alignment %" PRIu64, t->name, t->offset, al);
            goto out;
        }
        if (t->offset > avail || t->nbytes > avail - t->offset) {
            rc = qs_err_set(err, QS_E_INPUT, "truncated: tensor '%s' data [%" PRIu64 ", +%" PRIu64
                            ") extends past the end of the file (%" PRIu64 " data bytes)",
                            t->name, t->offset, t->nbytes, avail);
            goto out;
        }
        t->data = g->base + g->data_start + t->offset;
        expect += (t->nbytes + al - 1) / al * al;
    }
    if (!g->canonical) {
        qsort(byoff, (size_t)g->n_tensors, sizeof *byoff, cmp_tensor_offset);
        for (int64_t i = 1; i < g->n_tensors; i++)
            if (byoff[i - 1]->offset + byoff[i - 1]->nbytes > byoff[i]->offset) {
                rc = qs_err_set(err, QS_E_INPUT, "tensors '%s' and '%s' overlap",
                                byoff[i - 1]->name, byoff[i]->name);
                goto out;
            }
        snprintf(g->warning, sizeof g->warning,
                 "non-canonical layout: llama.cpp will refuse this file");
    }
out:
    free(names);
    free(byoff);
    return rc;
}

/* ---- open / close ---- */

static int parse_header(qs_gguf *g, cursor *c, qs_err *err)
{
    if (g->size < 4 || memcmp(g->base, "GGUF", 4) != 0)
        return qs_err_set(err, QS_E_INPUT, "not a GGUF file (bad magic)");
    if (g->size < 24)
        return qs_err_set(err, QS_E_INPUT, "truncated: %zu bytes is too small for a GGUF header", g->size);
    c->pos = 4;
    uint64_t nt, nkv;
    rd_u32(c, &g->version);
    rd_u64(c, &nt);
    rd_u64(c, &nkv);
    if (g->version == 0)
        return qs_err_set(err, QS_E_INPUT, "invalid GGUF version 0");
    if ((g->version & 0xFFFF) == 0)
        return qs_err_set(err, QS_E_UNSUPPORTED, "big-endian GGUF is not supported");
    if (g->version == 1)
        return qs_err_set(err, QS_E_UNSUPPORTED,
                          "GGUF v1 is a legacy format and is not supported (convert it with a current llama.cpp)");
    if (g->version > 3)
        return qs_err_set(err, QS_E_UNSUPPORTED, "unsupported GGUF version %" PRIu32, g->version);
    if ((int64_t)nt < 0 || (int64_t)nkv < 0)
        return qs_err_set(err, QS_E_INPUT, "negative tensor or metadata count");
    /* smallest records: 14 bytes per KV, 24 per tensor info */
    if (nkv > g->size / 14 || nt > g->size / 24 || 24 + nkv * 14 + nt * 24 > g->size)
        return qs_err_set(err, QS_E_INPUT, "truncated: %" PRIu64 " metadata records and %" PRIu64
                          " tensors cannot fit in %zu bytes", nkv, nt, g->size);
    g->n_tensors = (int64_t)nt;
    g->n_kv = (int64_t)nkv;
    return 0;
}

static qs_gguf *parse(qs_gguf *g, qs_err *err)
{
    cursor c = {g->base, g->size, 0};
    int rc = parse_header(g, &c, err);
    if (!rc) rc = parse_kvs(g, &c, err);
    if (!rc) rc = check_keys(g, err);
    if (!rc) rc = parse_tensors(g, &c, err);
    if (!rc && g->n_tensors > 0) {
        uint64_t ds = (c.pos + g->alignment - 1) / g->alignment * g->alignment;
        if (ds > g->size)
            rc = qs_err_set(err, QS_E_INPUT, "truncated before the tensor data section");
        g->data_start = ds;
    } else {
        g->data_start = c.pos;
    }
    if (!rc) rc = check_layout(g, err);
    if (rc) {
        qs_gguf_close(g);
        return NULL;
    }
    return g;
}

qs_gguf *qs_gguf_open_mem(const void *data, size_t size, qs_err *err)
{
    qs_gguf *g = calloc(1, sizeof *g);
    if (!g) {
        qs_err_set(err, QS_E_OOM, "out of memory");
        return NULL;
    }
    g->base = data;
    g->size = size;
    return parse(g, err);
}

qs_gguf *qs_gguf_open(const char *path, qs_err *err)
{
    qs_mapping m;
    if (qs_map_file(path, &m, err) != 0)
        return NULL;
    qs_gguf *g = calloc(1, sizeof *g);
    if (!g) {
        qs_unmap_file(&m);
        qs_err_set(err, QS_E_OOM, "out of memory");
        return NULL;
    }
    g->base = m.data;
    g->size = m.size;
    g->mapped = true;
    return parse(g, err);
}

void qs_gguf_close(qs_gguf *g)
{
    if (!g) return;
    for (int64_t i = 0; i < g->n_kv_parsed; i++) {
        free(g->kv[i].key);
        free(g->kv[i].strs);
    }
    free(g->kv);
    free(g->tensors);
    if (g->mapped) {
        qs_mapping m = {g->base, g->size};
        qs_unmap_file(&m);
    }
    free(g);
}

/* ---- lookups and getters ---- */

int64_t qs_gguf_find_key(const qs_gguf *g, const char *key)
{
    for (int64_t i = 0; i < g->n_kv; i++)
        if (strcmp(g->kv[i].key, key) == 0) return i;
    return -1;
}

const qs_gguf_kv *qs_gguf_get_kv(const qs_gguf *g, const char *key)
{
    int64_t i = qs_gguf_find_key(g, key);
    return i < 0 ? NULL : &g->kv[i];
}

const qs_gguf_tensor *qs_gguf_find_tensor(const qs_gguf *g, const char *name)
{
    for (int64_t i = 0; i < g->n_tensors; i++)
        if (strcmp(g->tensors[i].name, name) == 0) return &g->tensors[i];
    return NULL;
}

static int typed(const qs_gguf *g, const char *key, int type, const qs_gguf_kv **kv, qs_err *err)
{
    *kv = qs_gguf_get_kv(g, key);
    if (!*kv) return 1;
    if ((*kv)->type != type)
        return qs_err_set(err, QS_E_INPUT, "key %s has type %s, expected %s", key,
                          vtype_names[(*kv)->type], vtype_names[type]);
    return 0;
}

int qs_gguf_get_u32(const qs_gguf *g, const char *key, uint32_t *out, qs_err *err)
{
    const qs_gguf_kv *kv;
    int rc = typed(g, key, QS_GGUF_U32, &kv, err);
    if (rc == 0) memcpy(out, kv->raw, 4);
    return rc;
}

int qs_gguf_get_f32(const qs_gguf *g, const char *key, float *out, qs_err *err)
{
    const qs_gguf_kv *kv;
    int rc = typed(g, key, QS_GGUF_F32, &kv, err);
    if (rc == 0) memcpy(out, kv->raw, 4);
    return rc;
}

int qs_gguf_get_bool(const qs_gguf *g, const char *key, bool *out, qs_err *err)
{
    const qs_gguf_kv *kv;
    int rc = typed(g, key, QS_GGUF_BOOL, &kv, err);
    if (rc == 0) *out = kv->raw[0] != 0;
    return rc;
}

int qs_gguf_get_str(const qs_gguf *g, const char *key, const char **s, size_t *len, qs_err *err)
{
    const qs_gguf_kv *kv;
    int rc = typed(g, key, QS_GGUF_STRING, &kv, err);
    if (rc == 0) {
        uint64_t l;
        memcpy(&l, kv->raw, 8);
        *s = (const char *)kv->raw + 8;
        *len = (size_t)l;
    }
    return rc;
}

const char *qs_gguf_kv_arr_str(const qs_gguf_kv *kv, uint64_t i, size_t *len)
{
    if (kv->type != QS_GGUF_ARRAY || kv->arr_type != QS_GGUF_STRING || i >= kv->n) {
        *len = 0;
        return "";
    }
    uint64_t l;
    memcpy(&l, kv->strs[i], 8);
    *len = (size_t)l;
    return (const char *)kv->strs[i] + 8;
}

static double num_at(int t, const uint8_t *p)
{
    union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
            float f32; uint64_t u64; int64_t i64; double f64; } v;
    memcpy(&v, p, vtype_sizes[t]);
    switch (t) {
    case QS_GGUF_U8: return v.u8;
    case QS_GGUF_I8: return v.i8;
    case QS_GGUF_U16: return v.u16;
    case QS_GGUF_I16: return v.i16;
    case QS_GGUF_U32: return v.u32;
    case QS_GGUF_I32: return v.i32;
    case QS_GGUF_F32: return v.f32;
    case QS_GGUF_BOOL: return v.u8 != 0;
    case QS_GGUF_U64: return (double)v.u64;
    case QS_GGUF_I64: return (double)v.i64;
    case QS_GGUF_F64: return v.f64;
    }
    return 0;
}

double qs_gguf_kv_num(const qs_gguf_kv *kv, uint64_t i)
{
    if (kv->type == QS_GGUF_ARRAY) {
        if (i >= kv->n || kv->arr_type == QS_GGUF_STRING) return 0;
        return num_at(kv->arr_type, kv->raw + 12 + i * vtype_sizes[kv->arr_type]);
    }
    if (kv->type == QS_GGUF_STRING) return 0;
    return num_at(kv->type, kv->raw);
}

/* "text" with control bytes escaped; "…" appended (inside the quotes) when it does not fit.
 * Room kept at every step: one escape (4) + "..." (3) + closing quote (1) + NUL (1). */
static void format_str(char *buf, size_t n, const char *s, size_t len)
{
    if (n < 10) {
        if (n) buf[0] = '\0';
        return;
    }
    size_t o = 0, i = 0;
    buf[o++] = '"';
    for (; i < len && o + 9 <= n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '\n') {
            buf[o++] = '\\';
            buf[o++] = 'n';
        } else if (ch < 32 || ch == 127) {
            o += (size_t)snprintf(buf + o, n - o, "\\x%02x", ch);
        } else {
            buf[o++] = (char)ch;
        }
    }
    if (i < len) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '"';
    buf[o] = '\0';
}

static void format_num(char *buf, size_t n, int t, double v)
{
    if (t == QS_GGUF_F32 || t == QS_GGUF_F64) snprintf(buf, n, "%g", v);
    else if (t == QS_GGUF_BOOL) snprintf(buf, n, "%s", v != 0 ? "true" : "false");
    else snprintf(buf, n, "%.0f", v);
}

void qs_gguf_kv_format(const qs_gguf_kv *kv, char *buf, size_t n)
{
    if (n == 0) return;
    if (kv->type == QS_GGUF_STRING) {
        uint64_t l;
        memcpy(&l, kv->raw, 8);
        format_str(buf, n, (const char *)kv->raw + 8, (size_t)l);
    } else if (kv->type != QS_GGUF_ARRAY) {
        format_num(buf, n, kv->type, qs_gguf_kv_num(kv, 0));
    } else {
        size_t o = (size_t)snprintf(buf, n, "[%s × %" PRIu64 "]", vtype_names[kv->arr_type], kv->n);
        for (uint64_t i = 0; i < kv->n && i < 4 && o + 24 < n; i++) {
            char item[64];
            if (kv->arr_type == QS_GGUF_STRING) {
                size_t l;
                const char *s = qs_gguf_kv_arr_str(kv, i, &l);
                format_str(item, sizeof item > n - o - 4 ? n - o - 4 : sizeof item, s, l);
            } else {
                format_num(item, sizeof item, kv->arr_type, qs_gguf_kv_num(kv, i));
            }
            o += (size_t)snprintf(buf + o, n - o, " %s", item);
        }
        if (kv->n > 4 && o + 5 < n) snprintf(buf + o, n - o, " …");
    }
}

/* ---- writer ---- */

typedef struct wkv {
    char *key;
    int type;
    uint8_t *raw;
    size_t raw_size;
} wkv;

typedef struct wtensor {
    char name[QS_GGUF_MAX_NAME + 1];
    uint32_t n_dims;
    int64_t ne[4];
    int type;
    uint64_t nbytes;
    const void *data;
    qs_gguf_src_fn src;     /* or the bytes come from src(src_ctx, …) during the write */
    void *src_ctx;
} wtensor;

struct qs_gguf_writer {
    wkv *kv;
    size_t n_kv, cap_kv;
    wtensor *t;
    size_t n_t, cap_t;
};

qs_gguf_writer *qs_gguf_writer_new(void) { return calloc(1, sizeof(qs_gguf_writer)); }

void qs_gguf_writer_free(qs_gguf_writer *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].raw);
    }
    free(w->kv);
    free(w->t);
    free(w);
}

int qs_gguf_writer_set_raw(qs_gguf_writer *w, const char *key, int type, const void *raw,
                           size_t raw_size)
{
    uint8_t *copy = malloc(raw_size ? raw_size : 1);
    if (!copy) return -QS_E_OOM;
    memcpy(copy, raw, raw_size);
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, key) == 0) {
            free(w->kv[i].raw);
            w->kv[i].raw = copy;
            w->kv[i].raw_size = raw_size;
            w->kv[i].type = type;
            return 0;
        }
    if (w->n_kv == w->cap_kv) {
        size_t nc = w->cap_kv ? w->cap_kv * 2 : 32;
        wkv *nk = realloc(w->kv, nc * sizeof *nk);
        if (!nk) { free(copy); return -QS_E_OOM; }
        w->kv = nk;
        w->cap_kv = nc;
    }
    char *k = strdup(key);
    if (!k) { free(copy); return -QS_E_OOM; }
    w->kv[w->n_kv++] = (wkv){k, type, copy, raw_size};
    return 0;
}

int qs_gguf_writer_copy_kv(qs_gguf_writer *w, const qs_gguf_kv *kv)
{
    return qs_gguf_writer_set_raw(w, kv->key, kv->type, kv->raw, kv->raw_size);
}

int qs_gguf_writer_set_u32(qs_gguf_writer *w, const char *key, uint32_t v)
{
    return qs_gguf_writer_set_raw(w, key, QS_GGUF_U32, &v, 4);
}

int qs_gguf_writer_set_f32(qs_gguf_writer *w, const char *key, float v)
{
    return qs_gguf_writer_set_raw(w, key, QS_GGUF_F32, &v, 4);
}

int qs_gguf_writer_set_bool(qs_gguf_writer *w, const char *key, bool v)
{
    uint8_t b = v ? 1 : 0;
    return qs_gguf_writer_set_raw(w, key, QS_GGUF_BOOL, &b, 1);
}

int qs_gguf_writer_set_str(qs_gguf_writer *w, const char *key, const char *s)
{
    uint64_t l = strlen(s);
    uint8_t *buf = malloc(8 + l);
    if (!buf) return -QS_E_OOM;
    memcpy(buf, &l, 8);
    memcpy(buf + 8, s, l);
    int rc = qs_gguf_writer_set_raw(w, key, QS_GGUF_STRING, buf, 8 + l);
    free(buf);
    return rc;
}

int qs_gguf_writer_set_arr(qs_gguf_writer *w, const char *key, int elem_type, const void *data,
                           uint64_t n)
{
    size_t es = qs_gguf_vtype_size(elem_type);
    if (es == 0) return -QS_E_USAGE;
    uint8_t *buf = malloc(12 + n * es);
    if (!buf) return -QS_E_OOM;
    uint32_t et = (uint32_t)elem_type;
    memcpy(buf, &et, 4);
    memcpy(buf + 4, &n, 8);
    if (n) memcpy(buf + 12, data, n * es);
    int rc = qs_gguf_writer_set_raw(w, key, QS_GGUF_ARRAY, buf, 12 + n * es);
    free(buf);
    return rc;
}

int qs_gguf_writer_set_arr_str(qs_gguf_writer *w, const char *key, const char *const *strs,
                               uint64_t n)
{
    size_t total = 12;
    for (uint64_t i = 0; i < n; i++) total += 8 + strlen(strs[i]);
    uint8_t *buf = malloc(total), *p = buf;
    if (!buf) return -QS_E_OOM;
    uint32_t et = QS_GGUF_STRING;
    memcpy(p, &et, 4);
    memcpy(p + 4, &n, 8);
    p += 12;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t l = strlen(strs[i]);
        memcpy(p, &l, 8);
        memcpy(p + 8, strs[i], l);
        p += 8 + l;
    }
    int rc = qs_gguf_writer_set_raw(w, key, QS_GGUF_ARRAY, buf, total);
    free(buf);
    return rc;
}

void qs_gguf_writer_remove(qs_gguf_writer *w, const char *key)
{
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, key) == 0) {
            free(w->kv[i].key);
            free(w->kv[i].raw);
            memmove(&w->kv[i], &w->kv[i + 1], (w->n_kv - i - 1) * sizeof *w->kv);
            w->n_kv--;
            return;
        }
}

int qs_gguf_writer_add_tensor(qs_gguf_writer *w, const char *name, int type, uint32_t n_dims,
                              const int64_t ne[4], const void *data, qs_err *err)
{
    if (strlen(name) > QS_GGUF_MAX_NAME)
        return qs_err_set(err, QS_E_USAGE, "tensor name '%s' longer than %d bytes", name, QS_GGUF_MAX_NAME);
    int64_t nb = qs_gguf_tensor_nbytes(type, ne);
    if (nb < 0)
        return qs_err_set(err, QS_E_USAGE, "tensor '%s': shape impossible for type %s", name,
                          qs_type_name(type));
    for (size_t i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return qs_err_set(err, QS_E_USAGE, "duplicate tensor name '%s'", name);
    if (w->n_t == w->cap_t) {
        size_t nc = w->cap_t ? w->cap_t * 2 : 64;
        wtensor *nt = realloc(w->t, nc * sizeof *nt);
        if (!nt) return qs_err_set(err, QS_E_OOM, "out of memory");
        w->t = nt;
        w->cap_t = nc;
    }
    wtensor *t = &w->t[w->n_t++];
    memset(t, 0, sizeof *t);
    strcpy(t->name, name);
    t->n_dims = n_dims ? n_dims : qs_gguf_trimmed_ndims(ne);
    memcpy(t->ne, ne, sizeof t->ne);
    t->type = type;
    t->nbytes = (uint64_t)nb;
    t->data = data;
    return 0;
}

int qs_gguf_writer_add_tensor_src(qs_gguf_writer *w, const char *name, int type, uint32_t n_dims,
                                  const int64_t ne[4], qs_gguf_src_fn src, void *ctx, qs_err *err)
{
    static const uint8_t none;
    int rc = qs_gguf_writer_add_tensor(w, name, type, n_dims, ne, &none, err);
    if (rc) return rc;
    w->t[w->n_t - 1].data = NULL;
    w->t[w->n_t - 1].src = src;
    w->t[w->n_t - 1].src_ctx = ctx;
    return 0;
}

static uint32_t writer_alignment(const qs_gguf_writer *w)
{
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, "general.alignment") == 0 && w->kv[i].type == QS_GGUF_U32) {
            uint32_t a;
            memcpy(&a, w->kv[i].raw, 4);
            if (a && !(a & (a - 1))) return a;
        }
    return QS_GGUF_DEFAULT_ALIGNMENT;
}

static int put(qs_afile *af, const void *p, size_t n, qs_err *err) { return qs_afile_write(af, p, n, err); }

/* tensor data, often straight from a mapped model: copied out under the SIGBUS guard (a model
 * truncated on disk meanwhile is an error, not a crash) */
static int put_data(qs_afile *af, const uint8_t *p, size_t n, qs_err *err)
{
    enum { CHUNK = 1 << 20 };
    uint8_t *buf = malloc(n < CHUNK ? (n ? n : 1) : CHUNK);
    if (!buf) return qs_err_set(err, QS_E_OOM, "out of memory");
    int rc = 0;
    for (size_t o = 0; !rc && o < n; o += CHUNK) {
        size_t k = n - o < CHUNK ? n - o : CHUNK;
        rc = qs_mapped_copy(buf, p + o, k, err);
        if (!rc) rc = put(af, buf, k, err);
    }
    free(buf);
    return rc;
}

static int put_zeros(qs_afile *af, uint64_t n, qs_err *err)
{
    static const uint8_t zeros[64];
    while (n) {
        size_t k = n > sizeof zeros ? sizeof zeros : (size_t)n;
        int rc = put(af, zeros, k, err);
        if (rc) return rc;
        n -= k;
    }
    return 0;
}

/* a streamed tensor: its source's pieces, which must add up to exactly its size */
typedef struct src_sink {
    qs_afile *af;
    uint64_t left;
    const char *name;
} src_sink;

static int src_put(void *ctx, const void *data, size_t n, qs_err *err)
{
    src_sink *s = ctx;
    if (n > s->left)
        return qs_err_set(err, QS_E_USAGE, "tensor '%s': its source gave more bytes than the tensor has", s->name);
    s->left -= n;
    return put(s->af, data, n, err);
}

static int put_src(qs_afile *af, const wtensor *t, qs_err *err)
{
    src_sink s = {af, t->nbytes, t->name};
    int rc = t->src(t->src_ctx, src_put, &s, err);
    if (!rc && s.left)
        rc = qs_err_set(err, QS_E_USAGE, "tensor '%s': its source gave %llu bytes of %llu", t->name,
                        (unsigned long long)(t->nbytes - s.left), (unsigned long long)t->nbytes);
    return rc;
}

static int write_header(qs_gguf_writer *w, qs_afile *af, uint64_t *pos, qs_err *err)
{
    uint32_t version = 3;
    uint64_t nt = w->n_t, nkv = w->n_kv, al = writer_alignment(w);
    int rc = put(af, "GGUF", 4, err);
    if (!rc) rc = put(af, &version, 4, err);
    if (!rc) rc = put(af, &nt, 8, err);
    if (!rc) rc = put(af, &nkv, 8, err);
    *pos = 24;
    for (size_t i = 0; !rc && i < w->n_kv; i++) {
        uint64_t kl = strlen(w->kv[i].key);
        uint32_t t = (uint32_t)w->kv[i].type;
        rc = put(af, &kl, 8, err);
        if (!rc) rc = put(af, w->kv[i].key, kl, err);
        if (!rc) rc = put(af, &t, 4, err);
        if (!rc) rc = put(af, w->kv[i].raw, w->kv[i].raw_size, err);
        *pos += 12 + kl + w->kv[i].raw_size;
    }
    uint64_t off = 0;
    for (size_t i = 0; !rc && i < w->n_t; i++) {
        wtensor *t = &w->t[i];
        uint64_t nl = strlen(t->name);
        uint32_t type = (uint32_t)t->type;
        rc = put(af, &nl, 8, err);
        if (!rc) rc = put(af, t->name, nl, err);
        if (!rc) rc = put(af, &t->n_dims, 4, err);
        if (!rc) rc = put(af, t->ne, 8 * t->n_dims, err);
        if (!rc) rc = put(af, &type, 4, err);
        if (!rc) rc = put(af, &off, 8, err);
        *pos += 8 + nl + 4 + 8 * t->n_dims + 4 + 8;
        off += (t->nbytes + al - 1) / al * al;
    }
    return rc;
}

int qs_gguf_writer_write(qs_gguf_writer *w, const char *path, qs_err *err)
{
    qs_afile af;
    int rc = qs_afile_open(&af, path, err);
    if (rc) return rc;
    uint64_t pos, al = writer_alignment(w);
    rc = write_header(w, &af, &pos, err);
    if (!rc && w->n_t) rc = put_zeros(&af, (al - pos % al) % al, err);
    for (size_t i = 0; !rc && i < w->n_t; i++) {
        rc = w->t[i].src ? put_src(&af, &w->t[i], err) : put_data(&af, w->t[i].data, w->t[i].nbytes, err);
        if (!rc) rc = put_zeros(&af, (al - w->t[i].nbytes % al) % al, err);
    }
    if (rc) {
        qs_afile_abort(&af);
        return rc;
    }
    return qs_afile_commit(&af, err);
}
