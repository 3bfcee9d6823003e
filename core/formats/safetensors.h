/* core/formats/safetensors.h — safetensors reader: single files and sharded checkpoints
 * (spec/gguf.md §9).
 *
 * The 8-byte length and JSON header (parsed with cJSON) are validated before use: length
 * limits, UTF-8, a JSON object with unique keys, known dtypes, shapes and data_offsets that
 * agree and tile the byte buffer exactly. Files are mmap'ed; tensor data are views.
 * A path may name a .safetensors file, a model.safetensors.index.json, or a directory
 * holding either. */
#ifndef QS_SAFETENSORS_H
#define QS_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/util/err.h"
#include "core/util/fileio.h"

#define QS_ST_MAX_HEADER 100000000ull
#define QS_ST_MAX_DIMS 8

typedef enum qs_st_dtype {
    QS_ST_F32, QS_ST_F16, QS_ST_BF16, QS_ST_I32, QS_ST_U8, QS_ST_I8, QS_ST_I16, QS_ST_U16,
    QS_ST_U32, QS_ST_I64, QS_ST_U64, QS_ST_F64, QS_ST_BOOL, QS_ST_NDTYPES
} qs_st_dtype;

typedef struct qs_st_tensor {
    char *name;
    int dtype;                     /* qs_st_dtype */
    int n_dims;
    int64_t shape[QS_ST_MAX_DIMS]; /* slowest dimension first, as in the file */
    uint64_t begin, end;           /* relative to the byte buffer */
    const uint8_t *data;
    int file;                      /* index into the set's files */
} qs_st_tensor;

typedef struct qs_st_set {
    qs_mapping *files;
    char **file_names;
    int n_files;
    qs_st_tensor *tensors;
    int64_t n_tensors;
    char dir[4096];                /* directory of the checkpoint (for config.json) */
} qs_st_set;

/* Validates one file image (the whole file: length, header, buffer) and appends its tensors
 * to set (with file index `file`). The error message does not name the file. */
int qs_st_parse(const uint8_t *data, size_t size, qs_st_set *set, int file, qs_err *err);

qs_st_set *qs_st_open(const char *path, qs_err *err);
void qs_st_close(qs_st_set *set);
const qs_st_tensor *qs_st_find(const qs_st_set *set, const char *name);
const char *qs_st_dtype_name(int dtype);
int qs_st_dtype_size(int dtype);
/* The ggml type with the same encoding, or -1 (U8, U16, U32, U64, BOOL). */
int qs_st_dtype_to_type(int dtype);

/* ---- writer ---- */
typedef struct qs_st_out {
    const char *name;
    int dtype;
    int n_dims;
    int64_t shape[QS_ST_MAX_DIMS];
    const void *data;           /* product(shape) · dtype size bytes */
} qs_st_out;

/* Writes a safetensors file like the reference writer: tensors ordered by dtype alignment
 * (descending) then name, contiguous offsets, compact JSON with __metadata__ (n_meta
 * key/value string pairs, may be 0) first, header padded with spaces to a multiple of 8.
 * Temp file + fsync + rename. */
int qs_st_write(const char *path, const qs_st_out *ts, int n, const char *const *meta, int n_meta,
                qs_err *err);

#endif
