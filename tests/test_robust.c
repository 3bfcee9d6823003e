/* Robustness over real files (models and golden dirs): truncation inside the header and
 * tensor-info region (at every byte of a small one; for a large one — a 128k vocabulary makes
 * a 5 MB header, and each open parses up to the cut, so every byte would be quadratic — the
 * first 4 KiB, then a bounded sample), at 200 random data offsets, 500 single-byte flips in the
 * header region. Each must give a clean error or a valid model whose rows all read back
 * (run under `make test SAN=1` for sanitizer coverage). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/gguf.h"
#include "core/model/model.h"
#include "tests/testutil.h"

/* Opens an exact-size copy; if valid, reads the first and last row of every tensor. */
static int try_open(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    qs_err err = {0};
    qs_gguf *g = qs_gguf_open_mem(copy, size, &err);
    int ok = 0;
    if (g) {
        qs_model *m = qs_model_from_gguf(g, "mem", &err);
        if (m) {
            ok = 1;
            for (int64_t i = 0; i < m->n_tensors; i++) {
                const qs_tensor *t = &m->tensors[i];
                int64_t rows = qs_tensor_nrows(t);
                if (!rows || t->ne[0] > (1 << 20)) continue;
                float *row = malloc((size_t)(t->ne[0] ? t->ne[0] : 1) * sizeof *row);
                qs_tensor_read_rows(t, 0, 1, row, &err);
                qs_tensor_read_rows(t, rows - 1, 1, row, &err);
                free(row);
            }
            qs_model_close(m);
        }
    } else {
        cr_assert(err.msg[0] != '\0', "an error must come with a message");
        cr_assert(strchr(err.msg, '\n') == NULL, "one line: %s", err.msg);
    }
    free(copy);
    return ok;
}

/* every byte of a header up to this size; beyond it, these and QS_ROBUST_SAMPLES random cuts */
#define ROBUST_ALL_CUTS 4096
#define QS_ROBUST_SAMPLES 1500

static void hammer_mem(const char *path, uint8_t *data, size_t size)
{
    qs_err err = {0};
    qs_gguf *g = qs_gguf_open_mem(data, size, &err);
    cr_assert_not_null(g, "%s: %s", path, err.msg);
    size_t header = (size_t)g->data_start, data_end = header;
    for (int64_t i = 0; i < g->n_tensors; i++)
        if (header + g->tensors[i].offset + g->tensors[i].nbytes > data_end)
            data_end = header + (size_t)(g->tensors[i].offset + g->tensors[i].nbytes);
    qs_gguf_close(g);
    srand(12345);
    size_t all = header < ROBUST_ALL_CUTS ? header : ROBUST_ALL_CUTS;
    for (size_t cut = 0; cut < all; cut++)
        cr_assert_not(try_open(data, cut) && cut < 24, "%s cut at %zu", path, cut);
    for (int i = 0; header > all && i < QS_ROBUST_SAMPLES; i++) {
        size_t cut = all + ((size_t)rand() * ((size_t)RAND_MAX + 1) + (size_t)rand()) % (header - all);
        try_open(data, i == 0 ? header - 1 : cut); /* the last byte of the header too */
    }
    for (int i = 0; i < 200 && size > header; i++) {
        size_t cut = header + (size_t)rand() % (size - header);
        cr_assert_eq(try_open(data, cut), cut >= data_end,
                     "%s cut at %zu: refused iff inside the tensor data (which ends at %zu)", path, cut, data_end);
    }
    uint8_t *mut = malloc(size);
    for (int i = 0; i < 500; i++) {
        memcpy(mut, data, size);
        size_t at = (size_t)rand() % header;
        mut[at] ^= (uint8_t)(1 + rand() % 255);
        try_open(mut, size);
    }
    free(mut);
}

static void hammer(const char *path)
{
    size_t size;
    uint8_t *data = tu_read(path, &size);
    cr_assert_not_null(data, "%s", path);
    hammer_mem(path, data, size);
    free(data);
}

/* A vocabulary-sized header (a 128k-token model's is 5 MB; here 120k tokens, about 1.8 MB) is
 * hammered in seconds: cutting at every byte would parse ~10^12 bytes. */
Test(robust, large_header_is_sampled, .timeout = 120)
{
    tu_buf b = {0};
    enum { N_TOK = 120000 };
    tu_put(&b, "GGUF", 4);
    tu_u32(&b, 3);
    tu_u64(&b, 1); /* tensors */
    tu_u64(&b, 2); /* keys */
    tu_gstr(&b, "general.architecture");
    tu_u32(&b, 8);
    tu_gstr(&b, "llama");
    tu_gstr(&b, "tokenizer.ggml.tokens");
    tu_u32(&b, 9);
    tu_u32(&b, 8);
    tu_u64(&b, N_TOK);
    for (int i = 0; i < N_TOK; i++) {
        char tok[32];
        snprintf(tok, sizeof tok, "tok%06d_piece", i);
        tu_gstr(&b, tok);
    }
    tu_gstr(&b, "t");
    tu_u32(&b, 1);
    tu_u64(&b, 8);
    tu_u32(&b, 0); /* F32 */
    tu_u64(&b, 0);
    tu_pad(&b, 32);
    static const float zeros[8];
    tu_put(&b, zeros, sizeof zeros);
    cr_assert_gt(b.n, (size_t)1 << 20);
    hammer_mem("synthetic large header", b.p, b.n);
    free(b.p);
}

Test(robust, truncations_and_flips, .timeout = 900)
{
    const char *dirs[] = {tu_models_dir(), tu_golden_dir()};
    int total = 0;
    for (int d = 0; d < 2; d++) {
        int n = 0;
        char **files = tu_list(dirs[d], ".gguf", 1, &n);
        for (char **f = files; f && *f; f++, total++) hammer(*f);
        tu_free_list(files);
    }
    if (!total) tu_skip("no GGUF under %s or %s", dirs[0], dirs[1]);
}
