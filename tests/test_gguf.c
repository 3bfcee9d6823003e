/* GGUF reader/writer: the spec's worked example, byte-identical round trips of every GGUF
 * under ../shared, and one test per validation rule (spec/gguf.md §3). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/quant/ggml_types.h"
#include "core/formats/gguf.h"
#include "tests/testutil.h"

/* spec/gguf.md §2.8, transcribed from the hex dump */
static const uint8_t worked_example[192] = {
    0x47, 0x47, 0x55, 0x46, 0x03, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0,
    0x02, 0, 0, 0, 0, 0, 0, 0, 0x14, 0, 0, 0, 0, 0, 0, 0,
    'g', 'e', 'n', 'e', 'r', 'a', 'l', '.', 'a', 'r', 'c', 'h', 'i', 't', 'e', 'c',
    't', 'u', 'r', 'e', 0x08, 0, 0, 0, 0x05, 0, 0, 0, 0, 0, 0, 0,
    'l', 'l', 'a', 'm', 'a', 0x11, 0, 0, 0, 0, 0, 0, 0, 'l', 'l', 'a',
    'm', 'a', '.', 'b', 'l', 'o', 'c', 'k', '_', 'c', 'o', 'u', 'n', 't', 0x04, 0,
    0, 0, 0x01, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 'w', 0x01,
    0, 0, 0, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    [0xa0] = 0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, 0, 0, 0x40, 0x40, 0, 0, 0x80, 0x40,
};

Test(gguf, reads_the_worked_example)
{
    qs_err err = {0};
    qs_gguf *g = qs_gguf_open_mem(worked_example, sizeof worked_example, &err);
    cr_assert_not_null(g, "%s", err.msg);
    cr_assert_eq(g->version, 3);
    cr_assert_eq(g->n_kv, 2);
    cr_assert_eq(g->n_tensors, 1);
    cr_assert_eq(g->data_start, 160);
    cr_assert(g->canonical);
    const char *s;
    size_t len;
    cr_assert_eq(qs_gguf_get_str(g, "general.architecture", &s, &len, &err), 0);
    cr_assert_eq(len, 5);
    cr_assert_eq(memcmp(s, "llama", 5), 0);
    uint32_t bc = 0;
    cr_assert_eq(qs_gguf_get_u32(g, "llama.block_count", &bc, &err), 0);
    cr_assert_eq(bc, 1);
    float f;
    cr_assert_lt(qs_gguf_get_f32(g, "llama.block_count", &f, &err), 0, "wrong type is an error");
    cr_assert_eq(qs_gguf_get_f32(g, "absent.key", &f, &err), 1);
    const qs_gguf_tensor *t = qs_gguf_find_tensor(g, "w");
    cr_assert_not_null(t);
    cr_assert_eq(t->ne[0], 4);
    float v[4];
    qs_dequantize_row(t->type, t->data, v, 4);
    cr_assert(v[0] == 1 && v[1] == 2 && v[2] == 3 && v[3] == 4);
    qs_gguf_close(g);
}

Test(gguf, writes_the_worked_example)
{
    char *dir = tu_tmpdir(), path[4096];
    snprintf(path, sizeof path, "%s/w.gguf", dir);
    qs_gguf_writer *w = qs_gguf_writer_new();
    qs_gguf_writer_set_str(w, "general.architecture", "llama");
    qs_gguf_writer_set_u32(w, "llama.block_count", 1);
    float data[4] = {1, 2, 3, 4};
    int64_t ne[4] = {4, 1, 1, 1};
    qs_err err = {0};
    cr_assert_eq(qs_gguf_writer_add_tensor(w, "w", QS_TYPE_F32, 0, ne, data, &err), 0, "%s", err.msg);
    cr_assert_eq(qs_gguf_writer_write(w, path, &err), 0, "%s", err.msg);
    qs_gguf_writer_free(w);
    size_t n;
    uint8_t *got = tu_read(path, &n);
    cr_assert_eq(n, sizeof worked_example);
    cr_assert_eq(memcmp(got, worked_example, n), 0, "bytes differ from spec §2.8");
    free(got);
    tu_rmtree(dir);
    free(dir);
}

static int round_trip(const char *path, const char *out)
{
    qs_err err = {0};
    qs_gguf *g = qs_gguf_open(path, &err);
    cr_assert_not_null(g, "%s: %s", path, err.msg);
    qs_gguf_writer *w = qs_gguf_writer_new();
    for (int64_t i = 0; i < g->n_kv; i++) qs_gguf_writer_copy_kv(w, &g->kv[i]);
    for (int64_t i = 0; i < g->n_tensors; i++) {
        const qs_gguf_tensor *t = &g->tensors[i];
        cr_assert_eq(qs_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, &err), 0, "%s", err.msg);
    }
    cr_assert_eq(qs_gguf_writer_write(w, out, &err), 0, "%s", err.msg);
    qs_gguf_writer_free(w);
    qs_gguf_close(g);
    size_t na, nb;
    uint8_t *a = tu_read(path, &na), *b = tu_read(out, &nb);
    int same = na == nb && memcmp(a, b, na) == 0;
    free(a);
    free(b);
    return same;
}

Test(gguf, round_trip_is_byte_identical, .timeout = 120)
{
    const char *dirs[] = {tu_models_dir(), tu_golden_dir(), tu_vocab_dir()};
    char *tmp = tu_tmpdir(), out[4096];
    snprintf(out, sizeof out, "%s/rt.gguf", tmp);
    int total = 0;
    for (int d = 0; d < 3; d++) {
        int n = 0;
        char **files = tu_list(dirs[d], ".gguf", 1, &n);
        for (char **f = files; f && *f; f++, total++)
            cr_expect(round_trip(*f, out), "%s: written copy differs", *f);
        tu_free_list(files);
    }
    tu_rmtree(tmp);
    free(tmp);
    if (total == 0) tu_skip("no GGUF files under %s, %s, %s", dirs[0], dirs[1], dirs[2]);
}

Test(gguf, writer_failure_leaves_nothing)
{
    qs_gguf_writer *w = qs_gguf_writer_new();
    qs_gguf_writer_set_str(w, "general.architecture", "llama");
    qs_err err = {0};
    cr_assert_lt(qs_gguf_writer_write(w, "/nonexistent-dir/x.gguf", &err), 0);
    cr_assert_eq(err.code, QS_E_IO);
    int64_t ne[4] = {33, 1, 1, 1};
    float d[33] = {0};
    cr_assert_lt(qs_gguf_writer_add_tensor(w, "t", QS_TYPE_Q4_0, 0, ne, d, &err), 0, "33 is no multiple of 32");
    qs_gguf_writer_free(w);

    /* a commit that fails at the rename (the target is a directory) must remove its
     * temporary file */
    char *dir = tu_tmpdir(), path[4096];
    snprintf(path, sizeof path, "%s/sub", dir);
    mkdir(path, 0755);
    w = qs_gguf_writer_new();
    qs_gguf_writer_set_u32(w, "k", 1);
    cr_assert_lt(qs_gguf_writer_write(w, path, &err), 0);
    qs_gguf_writer_free(w);
    int n = 0;
    char **left = tu_list(dir, "", 0, &n);
    cr_assert_eq(n, 0, "temporary file left behind: %s", n ? left[0] : "");
    tu_free_list(left);
    tu_rmtree(dir);
    free(dir);
}

/* ---- validation: a hand-built base file, then one violation at a time ---- */

typedef struct spec_file {
    uint32_t version;
    int64_t n_tensors_override, n_kv_override;
    int dup_key, bad_vtype, nested_array, align_type_f32, align_value, long_string;
    int dup_tensor, n_dims, type_id, ne0, misalign, past_end, overlap, gap, long_name;
} spec_file;

static tu_buf build(const spec_file *s)
{
    tu_buf b = {0};
    int nkv = 2 + (s->dup_key ? 1 : 0) + (s->align_value || s->align_type_f32 ? 1 : 0);
    tu_put(&b, "GGUF", 4);
    tu_u32(&b, s->version ? s->version : 3);
    tu_u64(&b, s->n_tensors_override ? (uint64_t)s->n_tensors_override : 2);
    tu_u64(&b, s->n_kv_override ? (uint64_t)s->n_kv_override : (uint64_t)nkv);
    tu_gstr(&b, "general.architecture");
    if (s->long_string) {
        tu_u32(&b, 8);
        tu_u64(&b, 1000000);
    } else {
        tu_u32(&b, s->bad_vtype ? 13 : 8);
        tu_gstr(&b, "llama");
    }
    tu_gstr(&b, "tokens");
    tu_u32(&b, 9);
    tu_u32(&b, s->nested_array ? 9 : 8);
    tu_u64(&b, 2);
    tu_gstr(&b, "a");
    tu_gstr(&b, "bc");
    if (s->dup_key) {
        tu_gstr(&b, "tokens");
        tu_u32(&b, 4);
        tu_u32(&b, 7);
    }
    uint32_t align = 32;
    if (s->align_value || s->align_type_f32) {
        tu_gstr(&b, "general.alignment");
        tu_u32(&b, s->align_type_f32 ? 6 : 4);
        tu_u32(&b, s->align_value ? (uint32_t)s->align_value : 64);
        if (!s->align_type_f32 && s->align_value && !(s->align_value & (s->align_value - 1))) align = (uint32_t)s->align_value;
    }
    /* tensor a: f32 [8, 2] = 64 bytes; tensor b: q8_0 [32] = 34 bytes */
    tu_gstr(&b, s->long_name ? "a123456789012345678901234567890123456789012345678901234567890123" : "a");
    tu_u32(&b, s->n_dims ? (uint32_t)s->n_dims : 2);
    tu_u64(&b, 8);
    tu_u64(&b, 2);
    for (int d = 2; d < s->n_dims; d++) tu_u64(&b, 1);
    tu_u32(&b, 0);
    tu_u64(&b, 0);
    tu_gstr(&b, s->dup_tensor ? "a" : "b");
    tu_u32(&b, 1);
    tu_u64(&b, s->ne0 ? (uint64_t)s->ne0 : 32);
    tu_u32(&b, s->type_id ? (uint32_t)s->type_id : 8);
    uint64_t off_b = s->misalign ? 40 : s->overlap ? 32 : s->gap ? 128 : 64;
    if (s->past_end) off_b = 4096;
    tu_u64(&b, off_b);
    tu_pad(&b, align);
    size_t data = b.n;
    uint8_t zero[256] = {0};
    tu_put(&b, zero, (off_b > 64 && off_b < 256 ? off_b : 64) + 34);
    tu_pad(&b, 32);
    (void)data;
    return b;
}

static void expect_error(const spec_file *s, const char *needle)
{
    tu_buf b = build(s);
    qs_err err = {0};
    qs_gguf *g = qs_gguf_open_mem(b.p, b.n, &err);
    cr_expect_null(g, "expected an error containing '%s'", needle);
    if (g) qs_gguf_close(g);
    else cr_expect(strstr(err.msg, needle) != NULL, "error '%s' lacks '%s'", err.msg, needle);
    free(b.p);
}

Test(gguf, base_file_is_valid)
{
    spec_file s = {0};
    tu_buf b = build(&s);
    qs_err err = {0};
    qs_gguf *g = qs_gguf_open_mem(b.p, b.n, &err);
    cr_assert_not_null(g, "%s", err.msg);
    cr_assert(g->canonical);
    size_t len;
    const char *s1 = qs_gguf_kv_arr_str(qs_gguf_get_kv(g, "tokens"), 1, &len);
    cr_assert_eq(len, 2);
    cr_assert_eq(memcmp(s1, "bc", 2), 0);
    qs_gguf_close(g);
    free(b.p);
}

Test(gguf, rejects_each_rule)
{
    expect_error(&(spec_file){.version = 1}, "v1");
    expect_error(&(spec_file){.version = 4}, "unsupported GGUF version 4");
    expect_error(&(spec_file){.version = 0x03000000}, "big-endian");
    expect_error(&(spec_file){.n_kv_override = 1ll << 40}, "cannot fit");
    expect_error(&(spec_file){.n_tensors_override = -1}, "negative");
    expect_error(&(spec_file){.dup_key = 1}, "duplicate key 'tokens'");
    expect_error(&(spec_file){.bad_vtype = 1}, "invalid value type 13");
    expect_error(&(spec_file){.nested_array = 1}, "invalid array element type 9");
    expect_error(&(spec_file){.long_string = 1}, "truncated");
    expect_error(&(spec_file){.align_type_f32 = 1}, "general.alignment has type float32");
    expect_error(&(spec_file){.align_value = 48}, "not a power of two");
    expect_error(&(spec_file){.dup_tensor = 1}, "duplicate tensor name 'a'");
    expect_error(&(spec_file){.n_dims = 5}, "n_dims 5 exceeds 4");
    expect_error(&(spec_file){.type_id = 4}, "unknown or removed type id 4");
    expect_error(&(spec_file){.type_id = 43}, "unknown or removed type id 43");
    expect_error(&(spec_file){.ne0 = 48}, "not a multiple of the q8_0 block size 32");
    expect_error(&(spec_file){.misalign = 1}, "not a multiple of the alignment");
    expect_error(&(spec_file){.past_end = 1}, "extends past the end");
    expect_error(&(spec_file){.overlap = 1}, "overlap");
    expect_error(&(spec_file){.long_name = 1}, "exceeds 63");
}

Test(gguf, tolerates_gaps_with_a_warning)
{
    spec_file s = {.gap = 1};
    tu_buf b = build(&s);
    qs_err err = {0};
    qs_gguf *g = qs_gguf_open_mem(b.p, b.n, &err);
    cr_assert_not_null(g, "%s", err.msg);
    cr_assert_not(g->canonical);
    cr_assert(strstr(g->warning, "llama.cpp will refuse") != NULL);
    qs_gguf_close(g);
    free(b.p);
}

Test(gguf, tiny_and_foreign_files)
{
    qs_err err = {0};
    cr_assert_null(qs_gguf_open_mem("GGU", 3, &err));
    cr_assert(strstr(err.msg, "bad magic"));
    cr_assert_null(qs_gguf_open_mem("GGUF\3\0\0\0", 8, &err));
    cr_assert(strstr(err.msg, "truncated"));
    cr_assert_null(qs_gguf_open_mem("PK\3\4 this is a zip", 19, &err));
    cr_assert(strstr(err.msg, "not a GGUF file"));
    cr_assert_null(qs_gguf_open("/nonexistent/file.gguf", &err));
    cr_assert_eq(err.code, QS_E_IO);
    cr_assert_null(qs_gguf_open("/tmp", &err));
    cr_assert(strstr(err.msg, "not a regular file"));
}

Test(gguf, kv_format_stays_in_bounds)
{
    /* found by fuzzing: escapes near the end of the buffer overran it */
    tu_buf b = {0};
    tu_put(&b, "GGUF", 4);
    tu_u32(&b, 3);
    tu_u64(&b, 0);
    tu_u64(&b, 1);
    tu_gstr(&b, "k");
    tu_u32(&b, 8);
    tu_gstr(&b, "\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f%\n\n\n\n");
    qs_err err = {0};
    qs_gguf *g = qs_gguf_open_mem(b.p, b.n, &err);
    cr_assert_not_null(g, "%s", err.msg);
    for (size_t n = 0; n < 120; n++) {
        char *buf = malloc(n ? n : 1);
        qs_gguf_kv_format(&g->kv[0], buf, n);
        if (n) cr_assert_lt(strlen(buf), n);
        free(buf);
    }
    char big[256];
    qs_gguf_kv_format(&g->kv[0], big, sizeof big);
    cr_assert(strstr(big, "\\x7f") && strstr(big, "\\n"), "%s", big);
    qs_gguf_close(g);
    free(b.p);
}

Test(gguf, zero_dimension_does_not_hide_overflow)
{
    /* found by fuzzing: ne = [0, 2^62, 4, 1] has 0 elements but 2^64 rows */
    tu_buf b = {0};
    tu_put(&b, "GGUF", 4);
    tu_u32(&b, 3);
    tu_u64(&b, 1);
    tu_u64(&b, 0);
    tu_gstr(&b, "t");
    tu_u32(&b, 3);
    tu_u64(&b, 0);
    tu_u64(&b, 1ull << 62);
    tu_u64(&b, 4);
    tu_u32(&b, 0);
    tu_u64(&b, 0);
    tu_pad(&b, 32);
    qs_err err = {0};
    qs_gguf *g = qs_gguf_open_mem(b.p, b.n, &err);
    cr_assert_null(g);
    cr_assert(strstr(err.msg, "shape overflows"), "%s", err.msg);
    free(b.p);
}
