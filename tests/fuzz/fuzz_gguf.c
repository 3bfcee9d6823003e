/* libFuzzer harness: GGUF reader + model layer over arbitrary bytes. Every accepted file is
 * walked completely: metadata rendered, every tensor's first and last row dequantized. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/quant/ggml_types.h"
#include "core/formats/gguf.h"
#include "core/model/model.h"

static void walk(const qs_model *m)
{
    char buf[256];
    for (int64_t i = 0; m->gguf && i < m->gguf->n_kv; i++) qs_gguf_kv_format(&m->gguf->kv[i], buf, sizeof buf);
    for (int64_t i = 0; i < m->n_tensors; i++) {
        const qs_tensor *t = &m->tensors[i];
        int64_t rows = qs_tensor_nrows(t);
        if (rows == 0 || t->ne[0] > (1 << 16)) continue;
        float *row = malloc((size_t)(t->ne[0] ? t->ne[0] : 1) * sizeof *row);
        qs_err err;
        qs_tensor_read_rows(t, 0, 1, row, &err);
        qs_tensor_read_rows(t, rows - 1, 1, row, &err);
        free(row);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact-size copy so that any read past the end is caught */
    uint8_t *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    qs_err err;
    qs_gguf *g = qs_gguf_open_mem(copy, size, &err);
    if (g) {
        qs_model *m = qs_model_from_gguf(g, "fuzz.gguf", &err);
        if (m) {
            walk(m);
            qs_model_close(m);
        }
    }
    free(copy);
    return 0;
}
