/* core/formats/safetensors.c — safetensors header validation and sharded checkpoints. */
#include "core/formats/safetensors.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/quant/ggml_types.h"

static const struct { const char *name; int size; int type; } dtypes[QS_ST_NDTYPES] = {
    [QS_ST_F32] = {"F32", 4, QS_TYPE_F32},   [QS_ST_F16] = {"F16", 2, QS_TYPE_F16},
    [QS_ST_BF16] = {"BF16", 2, QS_TYPE_BF16}, [QS_ST_I32] = {"I32", 4, QS_TYPE_I32},
    [QS_ST_U8] = {"U8", 1, -1},              [QS_ST_I8] = {"I8", 1, QS_TYPE_I8},
    [QS_ST_I16] = {"I16", 2, QS_TYPE_I16},   [QS_ST_U16] = {"U16", 2, -1},
    [QS_ST_U32] = {"U32", 4, -1},            [QS_ST_I64] = {"I64", 8, QS_TYPE_I64},
    [QS_ST_U64] = {"U64", 8, -1},            [QS_ST_F64] = {"F64", 8, QS_TYPE_F64},
    [QS_ST_BOOL] = {"BOOL", 1, -1},
};
static const char *const unsupported_dtypes[] = {
    "F8_E4M3", "F8_E5M2", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "F4", "F6_E2M3", "F6_E3M2", "C64",
};

const char *qs_st_dtype_name(int d) { return d >= 0 && d < QS_ST_NDTYPES ? dtypes[d].name : "?"; }
int qs_st_dtype_size(int d) { return d >= 0 && d < QS_ST_NDTYPES ? dtypes[d].size : 0; }
int qs_st_dtype_to_type(int d) { return d >= 0 && d < QS_ST_NDTYPES ? dtypes[d].type : -1; }

static bool utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!len || i + len > n || (len == 2 && c < 0xC2) || (len == 4 && c > 0xF4)) return false;
        for (size_t k = 1; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80) return false;
        if (len == 3 && ((c == 0xE0 && s[i + 1] < 0xA0) || (c == 0xED && s[i + 1] > 0x9F))) return false;
        if (len == 4 && ((c == 0xF0 && s[i + 1] < 0x90) || (c == 0xF4 && s[i + 1] > 0x8F))) return false;
        i += len;
    }
    return true;
}

/* A JSON number that is a non-negative integer no larger than 2^53. */
static bool json_uint(const cJSON *j, uint64_t *out)
{
    if (!cJSON_IsNumber(j)) return false;
    double v = j->valuedouble;
    if (!(v >= 0 && v <= 9007199254740992.0) || v != (double)(uint64_t)v) return false;
    *out = (uint64_t)v;
    return true;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp((*(const cJSON *const *)a)->string, (*(const cJSON *const *)b)->string);
}

static int check_unique_keys(const cJSON *obj, qs_err *err)
{
    int n = cJSON_GetArraySize(obj);
    if (n < 2) return 0;
    const cJSON **items = malloc((size_t)n * sizeof *items);
    if (!items) return qs_err_set(err, QS_E_OOM, "out of memory");
    int i = 0;
    for (const cJSON *c = obj->child; c; c = c->next) items[i++] = c;
    qsort(items, (size_t)n, sizeof *items, cmp_name);
    int rc = 0;
    for (i = 1; i < n && !rc; i++)
        if (strcmp(items[i - 1]->string, items[i]->string) == 0)
            rc = qs_err_set(err, QS_E_INPUT, "duplicate key '%.100s' in header", items[i]->string);
    free(items);
    return rc;
}

static int parse_dtype(const cJSON *j, const char *name, int *out, qs_err *err)
{
    if (!cJSON_IsString(j))
        return qs_err_set(err, QS_E_INPUT, "tensor '%.100s': dtype missing or not a string", name);
    for (int d = 0; d < QS_ST_NDTYPES; d++)
        if (strcmp(j->valuestring, dtypes[d].name) == 0) { *out = d; return 0; }
    for (size_t k = 0; k < sizeof unsupported_dtypes / sizeof *unsupported_dtypes; k++)
        if (strcmp(j->valuestring, unsupported_dtypes[k]) == 0)
            return qs_err_set(err, QS_E_UNSUPPORTED, "tensor '%.100s': unsupported dtype %s", name, j->valuestring);
    return qs_err_set(err, QS_E_INPUT, "tensor '%.100s': unknown dtype '%.40s'", name, j->valuestring);
}

static int parse_entry(const cJSON *e, qs_st_tensor *t, qs_err *err)
{
    const char *name = e->string;
    if (!cJSON_IsObject(e))
        return qs_err_set(err, QS_E_INPUT, "tensor '%.100s': entry is not an object", name);
    int rc = parse_dtype(cJSON_GetObjectItemCaseSensitive(e, "dtype"), name, &t->dtype, err);
    if (rc) return rc;
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    if (!cJSON_IsArray(shape))
        return qs_err_set(err, QS_E_INPUT, "tensor '%.100s': shape missing or not an array", name);
    int nd = cJSON_GetArraySize(shape);
    if (nd > QS_ST_MAX_DIMS)
        return qs_err_set(err, QS_E_INPUT, "tensor '%.100s': %d dimensions (at most %d)", name, nd, QS_ST_MAX_DIMS);
    t->n_dims = nd;
    uint64_t nel = 1, nz = 1; /* nz: product of the non-zero dimensions, kept below 2^63 */
    int d = 0;
    for (const cJSON *s = shape->child; s; s = s->next, d++) {
        uint64_t v;
        if (!json_uint(s, &v) || v > INT64_MAX)
            return qs_err_set(err, QS_E_INPUT, "tensor '%.100s': shape[%d] is not a non-negative integer", name, d);
        if (v && nz > (uint64_t)INT64_MAX / v)
            return qs_err_set(err, QS_E_INPUT, "tensor '%.100s': shape overflows", name);
        nel *= v;
        if (v) nz *= v;
        t->shape[d] = (int64_t)v;
    }
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || !json_uint(offs->child, &t->begin) ||
        !json_uint(offs->child->next, &t->end) || t->begin > t->end)
        return qs_err_set(err, QS_E_INPUT, "tensor '%.100s': data_offsets must be [BEGIN, END] with BEGIN <= END", name);
    uint64_t es = (uint64_t)dtypes[t->dtype].size;
    if (nel > UINT64_MAX / es || t->end - t->begin != nel * es)
        return qs_err_set(err, QS_E_INPUT, "tensor '%.100s': data_offsets span %" PRIu64
                          " bytes, shape and dtype need %" PRIu64, name, t->end - t->begin,
                          nel <= UINT64_MAX / es ? nel * es : UINT64_MAX);
    t->name = strdup(name);
    return t->name ? 0 : qs_err_set(err, QS_E_OOM, "out of memory");
}

static int check_metadata(const cJSON *m, qs_err *err)
{
    if (!cJSON_IsObject(m))
        return qs_err_set(err, QS_E_INPUT, "__metadata__ is not an object");
    for (const cJSON *c = m->child; c; c = c->next)
        if (!cJSON_IsString(c))
            return qs_err_set(err, QS_E_INPUT, "__metadata__ value '%.100s' is not a string", c->string);
    return check_unique_keys(m, err);
}

static int cmp_span(const void *a, const void *b)
{
    const qs_st_tensor *x = *(const qs_st_tensor *const *)a, *y = *(const qs_st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static int check_tiling(qs_st_tensor *ts, int64_t n, uint64_t buf_size, qs_err *err)
{
    const qs_st_tensor **order = malloc((size_t)(n ? n : 1) * sizeof *order);
    if (!order) return qs_err_set(err, QS_E_OOM, "out of memory");
    for (int64_t i = 0; i < n; i++) order[i] = &ts[i];
    qsort(order, (size_t)n, sizeof *order, cmp_span);
    uint64_t at = 0;
    int rc = 0;
    for (int64_t i = 0; i < n && !rc; i++) {
        if (order[i]->begin != at)
            rc = qs_err_set(err, QS_E_INPUT, "tensor '%.100s' starts at %" PRIu64 ", expected %" PRIu64
                            " (the buffer must be tiled without holes or overlaps)", order[i]->name,
                            order[i]->begin, at);
        at = order[i]->end;
    }
    if (!rc && at != buf_size)
        rc = qs_err_set(err, QS_E_INPUT, "tensor data end at %" PRIu64 " but the buffer holds %" PRIu64
                        " bytes%s", at, buf_size, at > buf_size ? " (truncated file)" : "");
    free(order);
    return rc;
}

static int parse_header_json(const uint8_t *hdr, uint64_t n, cJSON **out, qs_err *err)
{
    if (n == 0 || hdr[0] != '{')
        return qs_err_set(err, QS_E_INPUT, "header does not start with '{'");
    if (!utf8_valid(hdr, (size_t)n))
        return qs_err_set(err, QS_E_INPUT, "header is not valid UTF-8");
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)hdr, (size_t)n, &end, false);
    if (!root)
        return qs_err_set(err, QS_E_INPUT, "header is not valid JSON (near byte %td)",
                          end ? end - (const char *)hdr : (ptrdiff_t)0);
    for (const char *p = end; p < (const char *)hdr + n; p++)
        if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') {
            cJSON_Delete(root);
            return qs_err_set(err, QS_E_INPUT, "garbage after the JSON header at byte %td", p - (const char *)hdr);
        }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return qs_err_set(err, QS_E_INPUT, "header is not a JSON object");
    }
    *out = root;
    return 0;
}

int qs_st_parse(const uint8_t *data, size_t size, qs_st_set *set, int file, qs_err *err)
{
    if (size < 8)
        return qs_err_set(err, QS_E_INPUT, "truncated: %zu bytes is too small for a safetensors file", size);
    uint64_t n;
    memcpy(&n, data, 8);
    if (n > QS_ST_MAX_HEADER)
        return qs_err_set(err, QS_E_INPUT, "header length %" PRIu64 " exceeds the 100 MB limit", n);
    if (n > size - 8)
        return qs_err_set(err, QS_E_INPUT, "truncated: header length %" PRIu64 " exceeds the file", n);
    cJSON *root = NULL;
    int rc = parse_header_json(data + 8, n, &root, err);
    if (rc) return rc;
    rc = check_unique_keys(root, err);
    int64_t first = set->n_tensors, count = 0;
    for (const cJSON *e = root->child; e && !rc; e = e->next)
        if (strcmp(e->string, "__metadata__") != 0) count++;
    qs_st_tensor *nt = rc ? NULL : realloc(set->tensors, (size_t)(first + count + 1) * sizeof *nt);
    if (!rc && !nt) rc = qs_err_set(err, QS_E_OOM, "out of memory");
    if (nt) set->tensors = nt;
    for (const cJSON *e = root->child; e && !rc; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            rc = check_metadata(e, err);
            continue;
        }
        qs_st_tensor *t = &set->tensors[set->n_tensors];
        memset(t, 0, sizeof *t);
        rc = parse_entry(e, t, err);
        if (rc) break;
        t->file = file;
        set->n_tensors++;
    }
    cJSON_Delete(root);
    if (!rc) rc = check_tiling(set->tensors + first, set->n_tensors - first, size - 8 - n, err);
    for (int64_t i = first; !rc && i < set->n_tensors; i++)
        set->tensors[i].data = data + 8 + n + set->tensors[i].begin;
    return rc;
}

/* ---- opening files and sharded sets ---- */

static int add_file(qs_st_set *set, const char *path, qs_err *err)
{
    qs_mapping *nf = realloc(set->files, (size_t)(set->n_files + 1) * sizeof *nf);
    if (!nf) return qs_err_set(err, QS_E_OOM, "out of memory");
    set->files = nf;
    char **nn = realloc(set->file_names, (size_t)(set->n_files + 1) * sizeof *nn);
    if (!nn) return qs_err_set(err, QS_E_OOM, "out of memory");
    set->file_names = nn;
    int rc = qs_map_file(path, &set->files[set->n_files], err);
    if (rc) return qs_err_prefix(err, "%.120s", path);
    set->file_names[set->n_files] = strdup(path);
    int idx = set->n_files++;
    rc = qs_st_parse(set->files[idx].data, set->files[idx].size, set, idx, err);
    if (rc && set->n_files > 1) return qs_err_prefix(err, "shard %.100s", path);
    return rc;
}

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int open_index(qs_st_set *set, const char *index_path, qs_err *err)
{
    size_t len;
    char *text = qs_read_file(index_path, 64u << 20, &len, err);
    if (!text) return -(err ? err->code : QS_E_IO);
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *map = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    int rc = 0;
    if (!cJSON_IsObject(map))
        rc = qs_err_set(err, QS_E_INPUT, "index has no \"weight_map\" object");
    if (!rc) rc = check_unique_keys(map, err);
    /* open each distinct shard once, in first-mention order */
    for (const cJSON *e = map ? map->child : NULL; e && !rc; e = e->next) {
        if (!cJSON_IsString(e) || strchr(e->valuestring, '/'))
            rc = qs_err_set(err, QS_E_INPUT, "weight_map['%.100s'] is not a shard file name", e->string);
        else {
            char path[8192];
            snprintf(path, sizeof path, "%s/%s", set->dir, e->valuestring);
            bool seen = false;
            for (int f = 0; f < set->n_files; f++) seen |= strcmp(set->file_names[f], path) == 0;
            if (!seen) rc = add_file(set, path, err);
        }
    }
    for (const cJSON *e = map ? map->child : NULL; e && !rc; e = e->next) {
        const qs_st_tensor *t = qs_st_find(set, e->string);
        if (!t)
            rc = qs_err_set(err, QS_E_INPUT, "tensor '%.100s' listed in the index is missing from %.100s",
                            e->string, e->valuestring);
        else if (!ends_with(set->file_names[t->file], e->valuestring))
            rc = qs_err_set(err, QS_E_INPUT, "tensor '%.100s' is in %.100s, the index says %.100s",
                            e->string, set->file_names[t->file], e->valuestring);
    }
    cJSON_Delete(root);
    return rc;
}

static int cmp_tensor_name(const void *a, const void *b)
{
    return strcmp(((const qs_st_tensor *)a)->name, ((const qs_st_tensor *)b)->name);
}

qs_st_set *qs_st_open(const char *path, qs_err *err)
{
    qs_st_set *set = calloc(1, sizeof *set);
    if (!set) {
        qs_err_set(err, QS_E_OOM, "out of memory");
        return NULL;
    }
    char target[8192];
    int rc = 0;
    if (is_dir(path)) {
        snprintf(set->dir, sizeof set->dir, "%s", path);
        snprintf(target, sizeof target, "%s/model.safetensors.index.json", path);
        if (!exists(target)) snprintf(target, sizeof target, "%s/model.safetensors", path);
        if (!exists(target))
            rc = qs_err_set(err, QS_E_INPUT, "directory has no model.safetensors or model.safetensors.index.json");
    } else {
        snprintf(target, sizeof target, "%s", path);
        snprintf(set->dir, sizeof set->dir, "%s", path);
        char *slash = strrchr(set->dir, '/');
        if (slash) *slash = '\0';
        else snprintf(set->dir, sizeof set->dir, ".");
    }
    if (!rc) rc = ends_with(target, ".json") ? open_index(set, target, err) : add_file(set, target, err);
    if (!rc && set->n_tensors > 1) {
        /* names sorted for lookup; duplicates across shards are an error */
        qsort(set->tensors, (size_t)set->n_tensors, sizeof *set->tensors, cmp_tensor_name);
        for (int64_t i = 1; i < set->n_tensors && !rc; i++)
            if (strcmp(set->tensors[i - 1].name, set->tensors[i].name) == 0)
                rc = qs_err_set(err, QS_E_INPUT, "tensor '%.100s' appears in two shards", set->tensors[i].name);
    }
    if (rc) {
        qs_st_close(set);
        return NULL;
    }
    return set;
}

void qs_st_close(qs_st_set *set)
{
    if (!set) return;
    for (int64_t i = 0; i < set->n_tensors; i++) free(set->tensors[i].name);
    free(set->tensors);
    for (int f = 0; f < set->n_files; f++) {
        qs_unmap_file(&set->files[f]);
        free(set->file_names[f]);
    }
    free(set->files);
    free(set->file_names);
    free(set);
}

const qs_st_tensor *qs_st_find(const qs_st_set *set, const char *name)
{
    for (int64_t i = 0; i < set->n_tensors; i++)
        if (strcmp(set->tensors[i].name, name) == 0) return &set->tensors[i];
    return NULL;
}

/* ---- writer ---- */

static uint64_t out_bytes(const qs_st_out *t)
{
    uint64_t n = (uint64_t)qs_st_dtype_size(t->dtype);
    for (int d = 0; d < t->n_dims; d++) n *= (uint64_t)t->shape[d];
    return n;
}

static int cmp_out(const void *a, const void *b)
{
    const qs_st_out *x = *(const qs_st_out *const *)a, *y = *(const qs_st_out *const *)b;
    int sx = qs_st_dtype_size(x->dtype), sy = qs_st_dtype_size(y->dtype);
    if (sx != sy) return sy - sx;
    return strcmp(x->name, y->name);
}

static char *st_header(const qs_st_out **order, int n, const char *const *meta, int n_meta, size_t *len)
{
    cJSON *root = cJSON_CreateObject();
    if (n_meta > 0) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        for (int i = 0; i < n_meta; i++) cJSON_AddStringToObject(m, meta[2 * i], meta[2 * i + 1]);
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        cJSON *e = cJSON_AddObjectToObject(root, order[i]->name);
        cJSON_AddStringToObject(e, "dtype", qs_st_dtype_name(order[i]->dtype));
        cJSON *shape = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < order[i]->n_dims; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)order[i]->shape[d]));
        cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
        uint64_t nb = out_bytes(order[i]);
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + nb)));
        off += nb;
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!json) return NULL;
    size_t l = strlen(json), padded = (l + 7) / 8 * 8;
    char *h = realloc(json, padded + 1);
    if (!h) {
        free(json);
        return NULL;
    }
    memset(h + l, ' ', padded - l);
    h[padded] = '\0';
    *len = padded;
    return h;
}

int qs_st_write(const char *path, const qs_st_out *ts, int n, const char *const *meta, int n_meta,
                qs_err *err)
{
    const qs_st_out **order = malloc((size_t)(n > 0 ? n : 1) * sizeof *order);
    if (!order) return qs_err_set(err, QS_E_OOM, "out of memory");
    for (int i = 0; i < n; i++) order[i] = &ts[i];
    qsort(order, (size_t)n, sizeof *order, cmp_out);
    size_t hlen = 0;
    char *hdr = st_header(order, n, meta, n_meta, &hlen);
    if (!hdr) {
        free(order);
        return qs_err_set(err, QS_E_OOM, "out of memory building the header");
    }
    qs_afile af;
    int rc = qs_afile_open(&af, path, err);
    uint64_t hl = hlen;
    if (!rc) rc = qs_afile_write(&af, &hl, 8, err);
    if (!rc) rc = qs_afile_write(&af, hdr, hlen, err);
    for (int i = 0; !rc && i < n; i++) rc = qs_afile_write(&af, order[i]->data, (size_t)out_bytes(order[i]), err);
    free(hdr);
    free(order);
    if (rc) {
        if (af.f) qs_afile_abort(&af);
        return rc;
    }
    return qs_afile_commit(&af, err);
}
