/* core/formats/gguf.h — GGUF v2/v3 reader and writer (spec/gguf.md).
 *
 * Reader: the file is mmap'ed (or a caller's buffer is used) and every field is validated
 * before use (spec/gguf.md §3): a malformed file gives an error naming the record and the
 * rule, never a read outside the buffer. Tensor data are views into the mapping; opening
 * reads only the header.
 * Writer: collects metadata (raw encoded values, so a KV read from one file is written back
 * byte for byte) and tensors (data borrowed from the caller until the write), writes with
 * llama.cpp's layout (alignment 32 unless general.alignment says otherwise, zero padding after
 * every tensor) to a temporary file in the target directory, fsyncs, then renames. */
#ifndef QS_GGUF_H
#define QS_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util/err.h"

enum qs_gguf_vtype {
    QS_GGUF_U8 = 0, QS_GGUF_I8 = 1, QS_GGUF_U16 = 2, QS_GGUF_I16 = 3, QS_GGUF_U32 = 4,
    QS_GGUF_I32 = 5, QS_GGUF_F32 = 6, QS_GGUF_BOOL = 7, QS_GGUF_STRING = 8, QS_GGUF_ARRAY = 9,
    QS_GGUF_U64 = 10, QS_GGUF_I64 = 11, QS_GGUF_F64 = 12, QS_GGUF_NTYPES = 13
};

#define QS_GGUF_DEFAULT_ALIGNMENT 32
#define QS_GGUF_MAX_NAME 63

typedef struct qs_gguf_kv {
    char *key;              /* NUL-terminated copy */
    int type;               /* enum qs_gguf_vtype */
    int arr_type;           /* element type when type == ARRAY, else -1 */
    uint64_t n;             /* element count (1 for a scalar or a string) */
    const uint8_t *raw;     /* encoded value as stored, after the type field */
    size_t raw_size;
    const uint8_t **strs;   /* STRING arrays: each element's encoded start (u64 length) */
} qs_gguf_kv;

typedef struct qs_gguf_tensor {
    char name[QS_GGUF_MAX_NAME + 1];
    uint32_t n_dims;        /* as stored (0..4) */
    int64_t ne[4];          /* ne[0] = row length; unlisted dims are 1 */
    int type;               /* qs_type id */
    uint64_t offset;        /* relative to the data section */
    uint64_t nbytes;
    const uint8_t *data;    /* view into the file */
} qs_gguf_tensor;

typedef struct qs_gguf {
    const uint8_t *base;
    size_t size;
    bool mapped;
    uint32_t version;
    int64_t n_kv, n_tensors;
    int64_t n_kv_parsed;    /* records allocated so far (for cleanup) */
    qs_gguf_kv *kv;
    qs_gguf_tensor *tensors;
    uint32_t alignment;
    uint64_t data_start;
    bool canonical;         /* offsets follow llama.cpp's layout */
    char warning[256];      /* non-fatal finding, "" if none */
} qs_gguf;

qs_gguf *qs_gguf_open(const char *path, qs_err *err);
/* Parses a caller-owned buffer; it must outlive the returned object. */
qs_gguf *qs_gguf_open_mem(const void *data, size_t size, qs_err *err);
void qs_gguf_close(qs_gguf *g);

/* Index of the key or tensor, -1 when absent. */
int64_t qs_gguf_find_key(const qs_gguf *g, const char *key);
const qs_gguf_kv *qs_gguf_get_kv(const qs_gguf *g, const char *key);
const qs_gguf_tensor *qs_gguf_find_tensor(const qs_gguf *g, const char *name);

/* Typed getters: 0 found, 1 absent (out untouched), negative with err set when the key has
 * another type. get_uint accepts any unsigned/signed integer type with a non-negative value
 * that fits in 32 bits only where `strict` is false; with strict it demands UINT32. */
int qs_gguf_get_u32(const qs_gguf *g, const char *key, uint32_t *out, qs_err *err);
int qs_gguf_get_f32(const qs_gguf *g, const char *key, float *out, qs_err *err);
int qs_gguf_get_bool(const qs_gguf *g, const char *key, bool *out, qs_err *err);
int qs_gguf_get_str(const qs_gguf *g, const char *key, const char **s, size_t *len, qs_err *err);

/* Element i of a STRING array (0 <= i < kv->n). */
const char *qs_gguf_kv_arr_str(const qs_gguf_kv *kv, uint64_t i, size_t *len);
/* Element i of a numeric array, or the scalar itself (i = 0), as double. */
double qs_gguf_kv_num(const qs_gguf_kv *kv, uint64_t i);
const char *qs_gguf_vtype_name(int t);
size_t qs_gguf_vtype_size(int t);   /* 0 for STRING / ARRAY */
/* A short human-readable rendering of the value (arrays: type, length, first items). */
void qs_gguf_kv_format(const qs_gguf_kv *kv, char *buf, size_t n);

/* ---- writer ---- */
typedef struct qs_gguf_writer qs_gguf_writer;

qs_gguf_writer *qs_gguf_writer_new(void);
void qs_gguf_writer_free(qs_gguf_writer *w);
/* Sets (or replaces in place) a key with an encoded value; the bytes are copied. */
int qs_gguf_writer_set_raw(qs_gguf_writer *w, const char *key, int type, const void *raw,
                           size_t raw_size);
int qs_gguf_writer_copy_kv(qs_gguf_writer *w, const qs_gguf_kv *kv);
int qs_gguf_writer_set_u32(qs_gguf_writer *w, const char *key, uint32_t v);
int qs_gguf_writer_set_f32(qs_gguf_writer *w, const char *key, float v);
int qs_gguf_writer_set_bool(qs_gguf_writer *w, const char *key, bool v);
int qs_gguf_writer_set_str(qs_gguf_writer *w, const char *key, const char *s);
/* Numeric array of elem_type (not STRING/ARRAY) with n elements from data. */
int qs_gguf_writer_set_arr(qs_gguf_writer *w, const char *key, int elem_type,
                           const void *data, uint64_t n);
int qs_gguf_writer_set_arr_str(qs_gguf_writer *w, const char *key, const char *const *strs,
                               uint64_t n);
void qs_gguf_writer_remove(qs_gguf_writer *w, const char *key);
/* Adds a tensor; data is borrowed until qs_gguf_writer_write returns. n_dims 0 means the
 * trimmed form ggml writes (trailing 1-dimensions dropped, at least 1). */
int qs_gguf_writer_add_tensor(qs_gguf_writer *w, const char *name, int type, uint32_t n_dims,
                              const int64_t ne[4], const void *data, qs_err *err);
/* A tensor whose bytes are made while the file is written, so that a file larger than memory
 * can be written one tensor (or row chunk) at a time: in the tensor's turn src(ctx, put,
 * put_ctx, err) is called and must hand exactly the tensor's bytes to put(put_ctx, data, n,
 * err), in pieces of any size; an error of either stops the write (nothing is left behind). */
typedef int (*qs_gguf_put_fn)(void *put_ctx, const void *data, size_t n, qs_err *err);
typedef int (*qs_gguf_src_fn)(void *ctx, qs_gguf_put_fn put, void *put_ctx, qs_err *err);
int qs_gguf_writer_add_tensor_src(qs_gguf_writer *w, const char *name, int type, uint32_t n_dims,
                                  const int64_t ne[4], qs_gguf_src_fn src, void *ctx, qs_err *err);
int qs_gguf_writer_write(qs_gguf_writer *w, const char *path, qs_err *err);

/* Bytes of a tensor of `type` with shape ne, or -1 if impossible (block size, overflow). */
int64_t qs_gguf_tensor_nbytes(int type, const int64_t ne[4]);
uint32_t qs_gguf_trimmed_ndims(const int64_t ne[4]);

#endif
