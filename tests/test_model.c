/* The model layer: roles and names, hyperparameters of the reference models (numbers from
 * ../shared/README.md), strict key types, non-model GGUFs, config.json parsing. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/quant/ggml_types.h"
#include "core/formats/gguf.h"
#include "core/model/infer.h"
#include "core/model/model.h"
#include "tests/testutil.h"

Test(model, roles_from_gguf_names)
{
    struct { const char *name; qs_role role; int block; bool bias; } c[] = {
        {"token_embd.weight", QS_ROLE_TOKEN_EMBD, -1, false}, {"output.weight", QS_ROLE_OUTPUT, -1, false},
        {"output_norm.weight", QS_ROLE_OUTPUT_NORM, -1, false}, {"blk.0.attn_q.weight", QS_ROLE_ATTN_Q, 0, false},
        {"blk.12.attn_k.bias", QS_ROLE_ATTN_K, 12, true}, {"blk.3.attn_output.weight", QS_ROLE_ATTN_O, 3, false},
        {"blk.31.ffn_down.weight", QS_ROLE_FFN_DOWN, 31, false}, {"blk.1.ffn_up_exps.weight", QS_ROLE_FFN_UP, 1, false},
        {"blk.2.ffn_gate_inp.weight", QS_ROLE_OTHER, 2, false}, {"rope_freqs.weight", QS_ROLE_ROPE_FREQS, -1, false},
        {"something", QS_ROLE_OTHER, -1, false}};
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        qs_role r;
        int b;
        bool bias;
        qs_role_from_gguf_name(c[i].name, &r, &b, &bias);
        cr_assert_eq(r, c[i].role, "%s role", c[i].name);
        cr_assert_eq(b, c[i].block, "%s block", c[i].name);
        cr_assert_eq(bias, c[i].bias, "%s bias", c[i].name);
    }
}

Test(model, hf_names_map_to_gguf)
{
    const char *c[][2] = {{"model.embed_tokens.weight", "token_embd.weight"}, {"lm_head.weight", "output.weight"},
                          {"model.norm.weight", "output_norm.weight"},
                          {"model.layers.7.self_attn.q_proj.weight", "blk.7.attn_q.weight"},
                          {"model.layers.7.self_attn.k_proj.bias", "blk.7.attn_k.bias"},
                          {"layers.0.mlp.down_proj.weight", "blk.0.ffn_down.weight"},
                          {"model.layers.2.post_attention_layernorm.weight", "blk.2.ffn_norm.weight"},
                          {"model.layers.2.self_attn.o_proj.weight", "blk.2.attn_output.weight"}};
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        char out[64];
        cr_assert(qs_hf_to_gguf_name(c[i][0], out, sizeof out), "%s", c[i][0]);
        cr_assert_str_eq(out, c[i][1]);
    }
    char out[64];
    cr_assert_not(qs_hf_to_gguf_name("model.layers.0.mlp.experts.0.w1.weight", out, sizeof out));
}

Test(model, stories260k_hyperparameters)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/stories260K.gguf", tu_models_dir());
    qs_err err = {0};
    qs_model *m = qs_model_open(path, &err);
    if (!m) tu_skip("%s: %s", path, err.msg);
    /* ../shared/README.md: dim 64, 5 layers, 8 heads / 4 KV heads, hidden 172, SPM vocab of 512 */
    cr_assert_str_eq(m->hp.arch, "llama");
    cr_assert_eq(m->hp.n_embd, 64);
    cr_assert_eq(m->hp.n_layer, 5);
    cr_assert_eq(m->hp.n_head, 8);
    cr_assert_eq(m->hp.n_head_kv, 4);
    cr_assert_eq(m->hp.n_ff, 172);
    cr_assert_eq(m->hp.n_vocab, 512);
    cr_assert_eq(m->hp.head_dim, 8);
    cr_assert(m->hp.supported);
    cr_assert_str_eq(m->tok.kind, "llama");
    cr_assert_eq(m->tok.n_tokens, 512);
    int per_block[QS_ROLE_COUNT] = {0};
    for (int64_t i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].block >= 0) per_block[m->tensors[i].role]++;
    for (int r = QS_ROLE_ATTN_NORM; r <= QS_ROLE_FFN_DOWN; r++)
        if (r != QS_ROLE_ATTN_QKV) cr_assert_eq(per_block[r], 5, "%s per block", qs_role_name(r));
    qs_model_close(m);
}

Test(model, every_shared_gguf_opens)
{
    const char *dirs[] = {tu_models_dir(), tu_golden_dir(), tu_vocab_dir()};
    int total = 0;
    for (int d = 0; d < 3; d++) {
        int n = 0;
        char **files = tu_list(dirs[d], ".gguf", 1, &n);
        for (char **f = files; f && *f; f++, total++) {
            qs_err err = {0};
            qs_model *m = qs_model_open(*f, &err);
            cr_expect_not_null(m, "%s: %s", *f, err.msg);
            qs_model_close(m);
        }
        tu_free_list(files);
    }
    if (!total) tu_skip("no GGUF files found");
}

static qs_model *model_with(void (*edit)(qs_gguf_writer *), qs_err *err)
{
    static char path[4096];
    char *dir = tu_tmpdir();
    snprintf(path, sizeof path, "%s/m.gguf", dir);
    qs_gguf_writer *w = qs_gguf_writer_new();
    qs_gguf_writer_set_str(w, "general.architecture", "llama");
    qs_gguf_writer_set_u32(w, "llama.block_count", 1);
    qs_gguf_writer_set_u32(w, "llama.embedding_length", 32);
    qs_gguf_writer_set_u32(w, "llama.attention.head_count", 4);
    uint32_t ff[1] = {64};
    qs_gguf_writer_set_arr(w, "llama.feed_forward_length", QS_GGUF_U32, ff, 1);
    qs_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    float e[32 * 10] = {0};
    int64_t ne[4] = {32, 10, 1, 1};
    qs_gguf_writer_add_tensor(w, "token_embd.weight", QS_TYPE_F32, 0, ne, e, err);
    if (edit) edit(w);
    qs_gguf_writer_write(w, path, err);
    qs_gguf_writer_free(w);
    qs_model *m = qs_model_open(path, err);
    tu_rmtree(dir);
    free(dir);
    return m;
}

static void wrong_block_count_type(qs_gguf_writer *w) { qs_gguf_writer_set_f32(w, "llama.block_count", 1.0f); }
static void other_arch(qs_gguf_writer *w) { qs_gguf_writer_set_str(w, "general.architecture", "mamba"); }
static void wrong_tokens(qs_gguf_writer *w) { qs_gguf_writer_set_u32(w, "tokenizer.ggml.tokens", 5); }

Test(model, key_types_and_architectures)
{
    qs_err err = {0};
    qs_model *m = model_with(NULL, &err);
    cr_assert_not_null(m, "%s", err.msg);
    cr_assert_eq(m->hp.n_ff, 64, "per-layer arrays give layer 0");
    cr_assert_eq(m->hp.n_head_kv, 4, "head_count_kv defaults to head_count");
    cr_assert_eq(m->hp.n_vocab, 10, "vocab from token_embd");
    cr_assert(m->hp.tied_output);
    cr_assert(m->hp.supported, "%s", m->hp.unsupported_why);
    qs_model_close(m);

    cr_assert_null(model_with(wrong_block_count_type, &err));
    cr_assert(strstr(err.msg, "llama.block_count has type float32, expected uint32"), "%s", err.msg);
    cr_assert_null(model_with(wrong_tokens, &err));
    cr_assert(strstr(err.msg, "tokenizer.ggml.tokens must be an array of strings"), "%s", err.msg);

    m = model_with(other_arch, &err);
    cr_assert_not_null(m, "other architectures still open: %s", err.msg);
    cr_assert_not(m->hp.supported);
    cr_assert_str_eq(m->hp.unsupported_why, "unsupported architecture mamba");
    qs_model_close(m);
}

Test(model, imatrix_gguf_is_browsable_not_a_model)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/ggml", tu_golden_dir());
    int n = 0;
    char **files = tu_list(dir, ".gguf", 0, &n);
    const char *imat = NULL;
    for (char **f = files; f && *f; f++)
        if (strstr(*f, "/imatrix-")) imat = *f;
    if (!imat) {
        tu_free_list(files);
        tu_skip("no imatrix-*.gguf in %s", dir);
    }
    qs_err err = {0};
    qs_model *m = qs_model_open(imat, &err);
    cr_assert_not_null(m, "%s", err.msg);
    cr_assert_not(m->hp.supported);
    cr_assert(strstr(m->warning, "general.type imatrix"), "%s", m->warning);
    cr_assert_gt(m->n_tensors, 0);
    qs_model_close(m);
    tu_free_list(files);
}

Test(model, hf_config_parsing)
{
    const char *ok = "{\"architectures\":[\"Qwen2ForCausalLM\"],\"hidden_size\":896,\"num_attention_heads\":14,"
                     "\"num_key_value_heads\":2,\"num_hidden_layers\":24,\"intermediate_size\":4864,"
                     "\"rope_theta\":1000000.0,\"vocab_size\":151936,\"tie_word_embeddings\":true,\"head_dim\":null}";
    qs_hparams hp;
    qs_err err = {0};
    cr_assert_eq(qs_hf_config_parse(ok, strlen(ok), &hp, &err), 0, "%s", err.msg);
    cr_assert_str_eq(hp.arch, "qwen2");
    cr_assert_eq(hp.head_dim, 64);
    cr_assert_eq(hp.rope_style, QS_ROPE_NEOX);
    cr_assert(hp.tied_output);
    cr_assert_float_eq(hp.rope_base, 1e6f, 1);
    const char *bad[][2] = {{"[]", "not a JSON object"}, {"{", "not valid JSON"},
                            {"{\"hidden_size\":-4}", "hidden_size must be a non-negative integer"},
                            {"{\"hidden_size\":\"4\"}", "hidden_size"}, {"{\"num_hidden_layers\":1.5}", "num_hidden_layers"},
                            {"{\"rms_norm_eps\":\"x\"}", "rms_norm_eps"}, {"{\"tie_word_embeddings\":1}", "tie_word_embeddings"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_lt(qs_hf_config_parse(bad[i][0], strlen(bad[i][0]), &hp, &err), 0, "%s", bad[i][0]);
        cr_assert(strstr(err.msg, bad[i][1]), "%s: %s", bad[i][0], err.msg);
    }
}

/* Issue 16: hyperparameters are validated once, where the model is opened. Values beyond sane
 * bounds are corrupt headers (the model does not open: bad input, naming the key); values that
 * disagree with each other or with the tensors leave the model browsable but not runnable, and
 * qs_llm_new refuses it instead of overflowing. */
static qs_model *crafted(const tu_llama *s, qs_err *err)
{
    char *dir = tu_tmpdir(), path[4200];
    snprintf(path, sizeof path, "%s/m.gguf", dir);
    tu_llama_gguf(path, s);
    qs_model *m = qs_model_open(path, err);
    tu_rmtree(dir);
    free(dir);
    return m;
}

Test(model, hyperparameters_validated_at_open)
{
    struct { const char *what; tu_llama s; const char *why; } hard[] = {
        {"ctx", {.n_layer = 2, .n_embd = 64, .n_ff = 128, .n_head = 4, .n_ctx = 0xffffffffu}, "llama.context_length 4294967295 is beyond"},
        {"embd", {.n_layer = 2, .n_embd = 0x80000000u, .n_ff = 128, .n_head = 4, .t_embd = 64, .t_q_rows = 64, .t_kv_rows = 64},
         "llama.embedding_length 2147483648 is beyond"},
        {"heads", {.n_layer = 2, .n_embd = 64, .n_ff = 128, .n_head = 0xffffffffu, .t_q_rows = 64, .t_kv_rows = 64},
         "llama.attention.head_count 4294967295 is beyond"},
        {"layers", {.n_layer = 0x7fffffffu, .n_embd = 64, .n_ff = 128, .n_head = 4, .t_layers = 2}, "llama.block_count 2147483647"},
        {"ff", {.n_layer = 2, .n_embd = 64, .n_ff = 0xfffffff0u, .n_head = 4, .t_ff = 128}, "llama.feed_forward_length"},
        {"vocab", {.n_layer = 1, .n_embd = 64, .n_ff = 128, .n_head = 4, .vocab_size = 0x7fffffffu, .t_vocab = 32}, "llama.vocab_size"},
    };
    for (size_t i = 0; i < sizeof hard / sizeof *hard; i++) {
        qs_err err = {0};
        qs_model *m = crafted(&hard[i].s, &err);
        cr_expect_null(m, "%s opens", hard[i].what);
        qs_model_close(m);
        cr_expect_eq(err.code, QS_E_INPUT, "%s: %s", hard[i].what, err.msg);
        cr_expect(strstr(err.msg, hard[i].why), "%s: %s", hard[i].what, err.msg);
    }
    struct { const char *what; tu_llama s; const char *why; } soft[] = {
        {"head count 0", {.n_layer = 2, .n_embd = 64, .n_ff = 128, .n_head = 0}, "head count 0"},
        {"kv heads", {.n_layer = 2, .n_embd = 64, .n_ff = 128, .n_head = 4, .n_head_kv = 3, .key_length = 16, .t_q_rows = 64, .t_kv_rows = 48},
         "KV head count 3 does not divide the head count 4"},
        {"head_dim", {.n_layer = 2, .n_embd = 64, .n_ff = 128, .n_head = 4, .n_head_kv = 4, .key_length = 8, .t_q_rows = 64, .t_kv_rows = 64},
         "blk.0.attn_q.weight is 64 × 64, the hyperparameters say 32 × 64"},
        {"odd head_dim", {.n_layer = 2, .n_embd = 60, .n_ff = 128, .n_head = 4, .n_head_kv = 4, .key_length = 15}, "invalid head dimension 15"},
        {"1-D q", {.n_layer = 2, .n_embd = 64, .n_ff = 128, .n_head = 4, .q_dims = 1}, "blk.0.attn_q.weight is not a matrix"},
        {"vocab", {.n_layer = 2, .n_embd = 64, .n_ff = 128, .n_head = 4, .vocab_size = 5000, .t_vocab = 40},
         "token_embd.weight is 40 × 64, the hyperparameters say 5000 × 64"},
        {"blocks", {.n_layer = 1, .n_embd = 64, .n_ff = 128, .n_head = 4, .t_layers = 2}, "blk.1.attn_norm.weight is beyond the block count 1"},
        {"missing blocks", {.n_layer = 9, .n_embd = 64, .n_ff = 128, .n_head = 4, .t_layers = 2},
         "the block count is 9 but the tensors fill 2 blocks"},
        {"ff", {.n_layer = 2, .n_embd = 64, .n_ff = 100, .n_head = 4, .t_ff = 128}, "ffn_gate.weight is 128 × 64, the hyperparameters say 100 × 64"},
    };
    for (size_t i = 0; i < sizeof soft / sizeof *soft; i++) {
        qs_err err = {0};
        qs_model *m = crafted(&soft[i].s, &err);
        cr_assert_not_null(m, "%s still opens for browsing: %s", soft[i].what, err.msg);
        cr_expect_not(m->hp.supported, "%s", soft[i].what);
        cr_expect(strstr(m->hp.unsupported_why, soft[i].why), "%s: %s", soft[i].what, m->hp.unsupported_why);
        qs_llm *l = qs_llm_new(m, 64, &err);
        cr_expect_null(l, "%s runs", soft[i].what);
        cr_expect_eq(err.code, QS_E_UNSUPPORTED, "%s: %s", soft[i].what, err.msg);
        qs_llm_free(l);
        qs_model_close(m);
    }
    qs_err err = {0};
    qs_model *m = crafted(&(tu_llama){.n_layer = 2, .n_embd = 64, .n_ff = 128, .n_head = 4, .n_head_kv = 2, .n_ctx = 256}, &err);
    cr_assert_not_null(m, "%s", err.msg);
    cr_expect(m->hp.supported, "%s", m->hp.unsupported_why);
    qs_llm *l = qs_llm_new(m, 64, &err);
    cr_expect_not_null(l, "%s", err.msg);
    qs_llm_free(l);
    qs_model_close(m);
}

Test(model, hf_config_bounds)
{
    const char *bad[][2] = {{"{\"max_position_embeddings\":4294967295}", "max_position_embeddings 4294967295 is beyond"},
                            {"{\"hidden_size\":2147483648}", "hidden_size 2147483648 is beyond"},
                            {"{\"num_attention_heads\":4294967295}", "num_attention_heads 4294967295 is beyond"},
                            {"{\"num_hidden_layers\":2147483647}", "num_hidden_layers 2147483647 is beyond"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *dir = tu_tmpdir(), path[4200];
        snprintf(path, sizeof path, "%s/config.json", dir);
        FILE *f = fopen(path, "w");
        fputs(bad[i][0], f);
        fclose(f);
        /* a minimal checkpoint: one F32 tensor */
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        f = fopen(path, "wb");
        const char *hdr = "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
        uint64_t n = strlen(hdr);
        fwrite(&n, 8, 1, f);
        fputs(hdr, f);
        float x[2] = {1, 1};
        fwrite(x, sizeof x, 1, f);
        fclose(f);
        qs_err err = {0};
        qs_model *m = qs_model_open(dir, &err);
        cr_expect_null(m, "%s", bad[i][0]);
        qs_model_close(m);
        cr_expect_eq(err.code, QS_E_INPUT, "%s", err.msg);
        cr_expect(strstr(err.msg, bad[i][1]), "%s: %s", bad[i][0], err.msg);
        tu_rmtree(dir);
        free(dir);
    }
}
