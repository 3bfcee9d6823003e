/* safetensors: header validation rules (spec/gguf.md §9.2), the writer, and HF checkpoints
 * (single and sharded) read as the same model as the GGUF they were made from. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/quant/ggml_types.h"
#include "core/formats/gguf.h"
#include "core/model/model.h"
#include "core/formats/safetensors.h"
#include "tests/testutil.h"

/* file image = u64 length + header (padded) + nbuf zero bytes */
static tu_buf image(const char *header, size_t nbuf)
{
    tu_buf b = {0};
    tu_u64(&b, strlen(header));
    tu_put(&b, header, strlen(header));
    for (size_t i = 0; i < nbuf; i++) tu_put(&b, "", 1);
    return b;
}

static void expect_st_error(const char *header, size_t nbuf, const char *needle)
{
    tu_buf b = image(header, nbuf);
    qs_st_set set = {0};
    qs_err err = {0};
    int rc = qs_st_parse(b.p, b.n, &set, 0, &err);
    cr_expect_lt(rc, 0, "header %s: expected an error with '%s'", header, needle);
    if (rc < 0) cr_expect(strstr(err.msg, needle) != NULL, "error '%s' lacks '%s'", err.msg, needle);
    for (int64_t i = 0; i < set.n_tensors; i++) free(set.tensors[i].name);
    free(set.tensors);
    free(b.p);
}

Test(safetensors, valid_header)
{
    tu_buf b = image("{\"__metadata__\":{\"format\":\"pt\"},\"b\":{\"dtype\":\"F16\",\"shape\":[2,3],"
                     "\"data_offsets\":[0,12]},\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[12,16]}}   ", 16);
    qs_st_set set = {0};
    qs_err err = {0};
    cr_assert_eq(qs_st_parse(b.p, b.n, &set, 0, &err), 0, "%s", err.msg);
    cr_assert_eq(set.n_tensors, 2);
    const qs_st_tensor *t = qs_st_find(&set, "b");
    cr_assert_eq(t->n_dims, 2);
    cr_assert_eq(t->shape[0], 2);
    cr_assert_eq(t->dtype, QS_ST_F16);
    cr_assert_eq(qs_st_find(&set, "a")->n_dims, 0);
    for (int64_t i = 0; i < set.n_tensors; i++) free(set.tensors[i].name);
    free(set.tensors);
    free(b.p);
}

Test(safetensors, rejects_each_rule)
{
    expect_st_error("[1]", 0, "does not start with '{'");
    expect_st_error("{\"a\":1", 0, "not valid JSON");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}} x", 4, "garbage after");
    expect_st_error("{\"\xff\":1}", 0, "UTF-8");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                    "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "duplicate key 'a'");
    expect_st_error("{\"a\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "unknown dtype");
    expect_st_error("{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "unsupported dtype F8_E4M3");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "shape[0]");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "shape[0]");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, "BEGIN <= END");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "need 8");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "expected 0");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                    "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[2,6]}}", 6, "expected 4");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 9, "buffer holds 9");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "truncated");
    expect_st_error("{\"__metadata__\":{\"k\":1}}", 0, "not a string");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,4]}}", 4, "overflows");
    tu_buf b = {0};
    tu_u64(&b, 200000000);
    qs_st_set set = {0};
    qs_err err = {0};
    cr_assert_lt(qs_st_parse(b.p, b.n, &set, 0, &err), 0);
    cr_assert(strstr(err.msg, "100 MB"), "%s", err.msg);
    cr_assert_lt(qs_st_parse(b.p, 5, &set, 0, &err), 0);
    cr_assert(strstr(err.msg, "too small"), "%s", err.msg);
    free(b.p);
}

/* ---- an HF checkpoint made by the test from a GGUF: names mapped, q/k rows un-permuted ---- */

static const char *const name_map[][2] = {
    {"token_embd", "model.embed_tokens"}, {"output_norm", "model.norm"}, {"output", "lm_head"},
    {"attn_norm", "input_layernorm"}, {"attn_q", "self_attn.q_proj"}, {"attn_k", "self_attn.k_proj"},
    {"attn_v", "self_attn.v_proj"}, {"attn_output", "self_attn.o_proj"},
    {"ffn_norm", "post_attention_layernorm"}, {"ffn_gate", "mlp.gate_proj"}, {"ffn_up", "mlp.up_proj"},
    {"ffn_down", "mlp.down_proj"}};

static void hf_name(const char *gguf, char *out, size_t n)
{
    int blk = -1, len = 0;
    char stem[256];
    if (sscanf(gguf, "blk.%d.%n", &blk, &len) == 1) gguf += len;
    snprintf(stem, sizeof stem, "%s", gguf);
    *strrchr(stem, '.') = '\0';
    for (size_t i = 0; i < sizeof name_map / sizeof *name_map; i++)
        if (strcmp(stem, name_map[i][0]) == 0) {
            if (blk >= 0) snprintf(out, n, "model.layers.%d.%s.weight", blk, name_map[i][1]);
            else snprintf(out, n, "%s.weight", name_map[i][1]);
            return;
        }
    cr_assert_fail("unmapped tensor %s", gguf);
}

/* HF_row[h·D + s·(D/2) + i] = GGUF_row[h·D + 2i + s]  (spec/gguf.md §8) */
static float *unpermute(const float *g, int64_t rows, int64_t cols, int heads)
{
    float *h = malloc((size_t)(rows * cols) * sizeof *h);
    int64_t d = rows / heads;
    for (int64_t hd = 0; hd < heads; hd++)
        for (int64_t i = 0; i < d / 2; i++)
            for (int s = 0; s < 2; s++)
                memcpy(h + (hd * d + s * (d / 2) + i) * cols, g + (hd * d + 2 * i + s) * cols, (size_t)cols * sizeof *h);
    return h;
}

static void write_config(const char *dir, const qs_hparams *hp)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"hidden_size\":%u,"
               "\"intermediate_size\":%u,\"num_hidden_layers\":%u,\"num_attention_heads\":%u,"
               "\"num_key_value_heads\":%u,\"max_position_embeddings\":%u,\"rms_norm_eps\":%g,"
               "\"rope_theta\":%g,\"vocab_size\":%u,\"tie_word_embeddings\":false}\n",
            hp->n_embd, hp->n_ff, hp->n_layer, hp->n_head, hp->n_head_kv, hp->n_ctx, (double)hp->norm_eps,
            (double)hp->rope_base, hp->n_vocab);
    fclose(f);
}

/* Writes dir/NAME (or two shards + index when sharded) from GGUF model g. */
static void write_hf(const qs_model *g, const char *dir, int sharded)
{
    int n = (int)g->n_tensors;
    qs_st_out *outs = calloc((size_t)n, sizeof *outs);
    float **bufs = calloc((size_t)n, sizeof *bufs);
    char (*names)[128] = calloc((size_t)n, sizeof *names);
    qs_err err = {0};
    for (int i = 0; i < n; i++) {
        const qs_tensor *t = &g->tensors[i];
        int64_t rows = qs_tensor_nrows(t), cols = t->ne[0];
        float *v = malloc((size_t)(rows * cols) * sizeof *v);
        cr_assert_eq(qs_tensor_read_rows(t, 0, rows, v, &err), 0, "%s", err.msg);
        int heads = t->role == QS_ROLE_ATTN_Q ? (int)g->hp.n_head : t->role == QS_ROLE_ATTN_K ? (int)g->hp.n_head_kv : 0;
        if (heads) {
            float *u = unpermute(v, rows, cols, heads);
            free(v);
            v = u;
        }
        bufs[i] = v;
        hf_name(t->name, names[i], sizeof names[i]);
        outs[i] = (qs_st_out){.name = names[i], .dtype = QS_ST_F32, .n_dims = t->n_dims, .data = v};
        for (int d = 0; d < t->n_dims; d++) outs[i].shape[d] = t->ne[t->n_dims - 1 - d];
    }
    char path[4096];
    const char *meta[] = {"format", "pt"};
    if (!sharded) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        cr_assert_eq(qs_st_write(path, outs, n, meta, 1, &err), 0, "%s", err.msg);
    } else {
        int half = n / 2;
        snprintf(path, sizeof path, "%s/model-00001-of-00002.safetensors", dir);
        cr_assert_eq(qs_st_write(path, outs, half, meta, 1, &err), 0, "%s", err.msg);
        snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
        cr_assert_eq(qs_st_write(path, outs + half, n - half, NULL, 0, &err), 0, "%s", err.msg);
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        FILE *f = fopen(path, "w");
        fprintf(f, "{\"metadata\":{\"total_size\":0},\"weight_map\":{");
        for (int i = 0; i < n; i++)
            fprintf(f, "%s\"%s\":\"model-0000%d-of-00002.safetensors\"", i ? "," : "", names[i], i < half ? 1 : 2);
        fprintf(f, "}}\n");
        fclose(f);
    }
    write_config(dir, &g->hp);
    for (int i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
    free(outs);
    free(names);
}

static void expect_same_model(const qs_model *a, const qs_model *b)
{
    cr_assert_eq(a->n_tensors, b->n_tensors);
    cr_assert_eq(a->hp.n_layer, b->hp.n_layer);
    cr_assert_eq(a->hp.n_head_kv, b->hp.n_head_kv);
    cr_assert_eq(a->hp.head_dim, b->hp.head_dim);
    cr_assert(b->hp.supported, "%s", b->hp.unsupported_why);
    qs_err err = {0};
    for (int64_t i = 0; i < a->n_tensors; i++) {
        const qs_tensor *x = &a->tensors[i], *y = qs_model_find_tensor(b, x->name);
        cr_assert_not_null(y, "HF checkpoint lacks %s", x->name);
        cr_assert_eq(x->role, y->role, "%s", x->name);
        cr_assert_eq(x->block, y->block, "%s", x->name);
        cr_assert_eq(memcmp(x->ne, y->ne, sizeof x->ne), 0, "%s shape", x->name);
        int64_t n = qs_tensor_nelements(x);
        float *u = malloc((size_t)n * sizeof *u), *v = malloc((size_t)n * sizeof *v);
        qs_tensor_read_rows(x, 0, qs_tensor_nrows(x), u, &err);
        cr_assert_eq(qs_tensor_read_rows(y, 0, qs_tensor_nrows(y), v, &err), 0, "%s", err.msg);
        cr_assert_eq(memcmp(u, v, (size_t)n * sizeof *u), 0, "%s: values differ", x->name);
        free(u);
        free(v);
    }
}

static void hf_equivalence(int sharded)
{
    char src[4096];
    snprintf(src, sizeof src, "%s/stories260K.gguf", tu_models_dir());
    qs_err err = {0};
    qs_model *g = qs_model_open(src, &err);
    if (!g) tu_skip("%s: %s", src, err.msg);
    char *dir = tu_tmpdir();
    write_hf(g, dir, sharded);
    qs_model *h = qs_model_open(dir, &err);
    cr_assert_not_null(h, "%s", err.msg);
    cr_assert_eq(h->format, QS_FORMAT_SAFETENSORS);
    cr_assert_eq(h->st->n_files, sharded ? 2 : 1);
    expect_same_model(g, h);
    qs_model_close(h);
    qs_model_close(g);
    tu_rmtree(dir);
    free(dir);
}

Test(safetensors, hf_checkpoint_reads_as_the_gguf_model) { hf_equivalence(0); }
Test(safetensors, sharded_checkpoint_reads_as_the_gguf_model) { hf_equivalence(1); }

Test(safetensors, qk_permutation_spec_example)
{
    /* one head, D = 8: HF rows r0…r7 become GGUF rows r0 r4 r1 r5 r2 r6 r3 r7 */
    char *dir = tu_tmpdir(), path[4096];
    float q[8 * 2];
    for (int r = 0; r < 8; r++) q[2 * r] = q[2 * r + 1] = (float)r;
    qs_st_out o = {.name = "model.layers.0.self_attn.q_proj.weight", .dtype = QS_ST_F32, .n_dims = 2,
                   .shape = {8, 2}, .data = q};
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    qs_err err = {0};
    cr_assert_eq(qs_st_write(path, &o, 1, NULL, 0, &err), 0, "%s", err.msg);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"model_type\":\"llama\",\"hidden_size\":2,\"num_attention_heads\":1,\"num_hidden_layers\":1}", f);
    fclose(f);
    qs_model *m = qs_model_open(dir, &err);
    cr_assert_not_null(m, "%s", err.msg);
    const qs_tensor *t = qs_model_find_tensor(m, "blk.0.attn_q.weight");
    cr_assert_not_null(t);
    float out[16];
    cr_assert_eq(qs_tensor_read_rows(t, 0, 8, out, &err), 0, "%s", err.msg);
    const int want[8] = {0, 4, 1, 5, 2, 6, 3, 7};
    for (int r = 0; r < 8; r++) cr_assert_eq(out[2 * r], (float)want[r], "GGUF row %d", r);
    qs_model_close(m);
    tu_rmtree(dir);
    free(dir);
}

Test(safetensors, writer_layout_follows_reference)
{
    /* sorted by dtype alignment, then name; header padded with spaces to a multiple of 8 */
    char *dir = tu_tmpdir(), path[4096];
    snprintf(path, sizeof path, "%s/x.safetensors", dir);
    uint16_t h[3] = {1, 2, 3};
    float f[1] = {5};
    qs_st_out o[3] = {{.name = "z16", .dtype = QS_ST_F16, .n_dims = 1, .shape = {3}, .data = h},
                      {.name = "b32", .dtype = QS_ST_F32, .n_dims = 0, .data = f},
                      {.name = "a16", .dtype = QS_ST_BF16, .n_dims = 1, .shape = {3}, .data = h}};
    qs_err err = {0};
    cr_assert_eq(qs_st_write(path, o, 3, NULL, 0, &err), 0, "%s", err.msg);
    size_t n;
    uint8_t *d = tu_read(path, &n);
    uint64_t hl;
    memcpy(&hl, d, 8);
    cr_assert_eq(hl % 8, 0);
    const char *want = "{\"b32\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
                       "\"a16\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[4,10]},"
                       "\"z16\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[10,16]}}";
    cr_assert_eq(memcmp(d + 8, want, strlen(want)), 0, "header: %.*s", (int)hl, (const char *)d + 8);
    for (size_t i = strlen(want); i < hl; i++) cr_assert_eq(d[8 + i], ' ');
    cr_assert_eq(n, 8 + hl + 16);
    free(d);
    tu_rmtree(dir);
    free(dir);
}
