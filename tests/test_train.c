/* Training: finite-difference gradient check of every parameter tensor, the trainer's loss
 * against the inference engine's logits on the written GGUF, loss going down, exact resume
 * from a checkpoint; the BPE vocabulary trainer's vocabulary layout and round trip. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/model/bpe_train.h"
#include "core/recipe/export.h"
#include "core/formats/gguf.h"
#include "core/model/infer.h"
#include "core/model/model.h"
#include "core/model/tokenizer.h"
#include "core/model/train.h"
#include "tests/testutil.h"

static qs_trainer *gradcheck_trainer_tied(bool tied)
{
    qs_train_config c;
    qs_err err = {0};
    cr_assert_eq(qs_train_preset("gradcheck", &c, &err), 0);
    c.tied = tied;
    qs_trainer *t = qs_trainer_new(&c, &err);
    cr_assert_not_null(t, "%s", err.msg);
    return t;
}

static void random_tokens(int32_t *tok, int n, int vocab, uint32_t seed)
{
    for (int i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        tok[i] = (int32_t)((seed >> 8) % (uint32_t)vocab);
    }
}

static qs_trainer *gradcheck_trainer(void) { return gradcheck_trainer_tied(false); }

static void gradient_check(bool tied)
{
    qs_trainer *t = gradcheck_trainer_tied(tied);
    const qs_train_config *c = qs_trainer_config(t);
    int B = c->batch, W = c->seq + 1;
    int32_t tok[64];
    random_tokens(tok, B * W, c->vocab, 7);
    qs_trainer_zero_grad(t);
    double base = qs_trainer_loss(t, tok, B, true);
    cr_assert(base > 0 && isfinite(base));
    const float eps = 2e-2f;
    int checked = 0;
    double worst = 0;
    for (int i = 0; i < qs_trainer_n_params(t); i++) {
        float *w, *g;
        int64_t n;
        const char *name = qs_trainer_param(t, i, &w, &g, &n);
        float *gsave = malloc((size_t)n * sizeof *gsave);
        memcpy(gsave, g, (size_t)n * sizeof *g);
        int64_t pick[4] = {0, n / 3, (2 * n) / 3, n - 1};
        for (int64_t j = 0; j < n; j++)
            if (fabsf(gsave[j]) > fabsf(gsave[pick[0]])) pick[0] = j;
        for (int k = 0; k < 4; k++) {
            int64_t j = pick[k];
            /* central differences at h and h/2, Richardson-extrapolated: error O(h⁴), so h can
             * stay large against float32 rounding of the loss */
            double d[2];
            for (int r = 0; r < 2; r++) {
                float w0 = w[j], h = r ? eps / 2 : eps;
                w[j] = w0 + h;
                double lp = qs_trainer_loss(t, tok, B, false);
                w[j] = w0 - h;
                double lm = qs_trainer_loss(t, tok, B, false);
                w[j] = w0;
                d[r] = (lp - lm) / (2.0 * h);
            }
            double fd = (4.0 * d[1] - d[0]) / 3.0, an = gsave[j], mag = fmax(fabs(fd), fabs(an));
            if (k == 0) cr_assert_gt(mag, 1e-3, "%s: the largest gradient is %g; the check would be vacuous", name, an);
            if (mag > 1e-3) {
                double rel = fabs(fd - an) / mag;
                worst = fmax(worst, rel);
                cr_expect_lt(rel, 1e-2, "%s[%lld]: analytic %.6g, finite difference %.6g (rel. error %.3g)", name,
                             (long long)j, an, fd, rel);
            } else {
                cr_expect_lt(fabs(fd - an), 1e-4, "%s[%lld]: analytic %.3g, finite difference %.3g", name, (long long)j, an, fd);
            }
            checked++;
        }
        free(gsave);
    }
    cr_log_info("gradient check (%s output): %d values of %d tensors, worst relative error %.2e", tied ? "tied" : "untied",
                checked, qs_trainer_n_params(t), worst);
    qs_trainer_free(t);
}

Test(train, gradients_match_finite_differences, .timeout = 60)
{
    gradient_check(false);
    gradient_check(true);
}

Test(train, loss_equals_inference_engine_on_the_written_model, .timeout = 60)
{
    qs_trainer *t = gradcheck_trainer();
    const qs_train_config *c = qs_trainer_config(t);
    qs_err err = {0};
    double loss = 0;
    int32_t stream[400];
    random_tokens(stream, 400, c->vocab, 3);
    for (int s = 0; s < 3; s++) cr_assert_eq(qs_trainer_step(t, stream, 400, &loss, &err), 0, "%s", err.msg);
    int32_t tok[7];
    memcpy(tok, stream + 11, sizeof tok);
    double mine = qs_trainer_loss(t, tok, 1, false);

    char *dir = tu_tmpdir(), path[4200];
    snprintf(path, sizeof path, "%s/m.gguf", dir);
    qs_gguf_writer *w = qs_gguf_writer_new();
    cr_assert_eq(qs_trainer_write_model(t, w, &err), 0, "%s", err.msg);
    cr_assert_eq(qs_gguf_writer_write(w, path, &err), 0, "%s", err.msg);
    qs_gguf_writer_free(w);
    qs_model *m = qs_model_open(path, &err);
    cr_assert_not_null(m, "%s", err.msg);
    cr_assert(m->hp.supported, "%s", m->hp.unsupported_why);
    qs_llm *l = qs_llm_new(m, c->ctx, &err);
    cr_assert_not_null(l, "%s", err.msg);
    float *logits = malloc((size_t)6 * (size_t)c->vocab * sizeof *logits);
    cr_assert_eq(qs_llm_eval(l, tok, 6, 0, logits, &err), 0, "%s", err.msg);
    double ref = 0;
    for (int i = 0; i < 6; i++) {
        const float *z = logits + (size_t)i * c->vocab;
        double mx = -INFINITY, s = 0;
        for (int v = 0; v < c->vocab; v++) mx = fmax(mx, z[v]);
        for (int v = 0; v < c->vocab; v++) s += exp(z[v] - mx);
        ref += log(s) + mx - z[tok[i + 1]];
    }
    ref /= 6;
    cr_assert_float_eq(mine, ref, 1e-4 * ref, "trainer %.7f, inference engine %.7f", mine, ref);

    /* the same model as an HF checkpoint directory gives the same logits */
    char hf[4200];
    snprintf(hf, sizeof hf, "%s/hf", dir);
    cr_assert_eq(qs_export_hf_dir(m, 1, 2, hf, &err), 0, "%s", err.msg);
    qs_model *mh = qs_model_open(hf, &err);
    cr_assert_not_null(mh, "%s", err.msg);
    cr_assert_eq(mh->format, QS_FORMAT_SAFETENSORS);
    cr_assert(mh->hp.n_head == m->hp.n_head && mh->hp.n_head_kv == m->hp.n_head_kv && mh->hp.n_ff == m->hp.n_ff &&
              mh->hp.norm_eps == m->hp.norm_eps && mh->hp.tied_output == m->hp.tied_output);
    qs_llm *lh = qs_llm_new(mh, c->ctx, &err);
    cr_assert_not_null(lh, "%s", err.msg);
    float *logits_hf = malloc((size_t)6 * (size_t)c->vocab * sizeof *logits_hf);
    cr_assert_eq(qs_llm_eval(lh, tok, 6, 0, logits_hf, &err), 0, "%s", err.msg);
    cr_assert(!memcmp(logits, logits_hf, (size_t)6 * (size_t)c->vocab * sizeof *logits), "HF export changes the model");
    free(logits_hf);
    qs_llm_free(lh);
    qs_model_close(mh);
    free(logits);
    qs_llm_free(l);
    qs_model_close(m);
    tu_rmtree(dir);
    free(dir);
    qs_trainer_free(t);
}

Test(train, learns_and_resumes_exactly, .timeout = 60)
{
    qs_err err = {0};
    qs_train_config c;
    qs_train_preset("gradcheck", &c, &err);
    c.init_std = 0.05f, c.lr = 1e-2f, c.steps = 60;
    /* a stream with structure to learn: 0 1 2 … 10 0 1 2 … */
    int32_t stream[600];
    for (int i = 0; i < 600; i++) stream[i] = i % c.vocab;
    qs_trainer *a = qs_trainer_new(&c, &err), *b = qs_trainer_new(&c, &err);
    double first = 0, loss = 0;
    for (int s = 0; s < 60; s++) {
        cr_assert_eq(qs_trainer_step(a, stream, 600, &loss, &err), 0, "%s", err.msg);
        if (!s) first = loss;
    }
    cr_assert_lt(loss, first * 0.2, "loss %.4f → %.4f", first, loss);
    /* b: 25 steps, checkpoint, a fresh trainer resumes and runs the other 35 */
    for (int s = 0; s < 25; s++) qs_trainer_step(b, stream, 600, &loss, &err);
    char *dir = tu_tmpdir(), path[4200];
    snprintf(path, sizeof path, "%s/ck.gguf", dir);
    qs_gguf_writer *w = qs_gguf_writer_new();
    cr_assert_eq(qs_trainer_write_checkpoint(b, w, &err), 0, "%s", err.msg);
    cr_assert_eq(qs_gguf_writer_write(w, path, &err), 0, "%s", err.msg);
    qs_gguf_writer_free(w);
    qs_trainer_free(b);
    b = qs_trainer_new(&c, &err);
    qs_gguf *g = qs_gguf_open(path, &err);
    cr_assert_not_null(g, "%s", err.msg);
    cr_assert_eq(qs_trainer_load_checkpoint(b, g, &err), 0, "%s", err.msg);
    qs_gguf_close(g);
    cr_assert_eq(qs_trainer_step_no(b), 25);
    for (int s = 25; s < 60; s++) qs_trainer_step(b, stream, 600, &loss, &err);
    for (int i = 0; i < qs_trainer_n_params(a); i++) {
        float *wa, *wb, *ga, *gb;
        int64_t n;
        const char *name = qs_trainer_param(a, i, &wa, &ga, &n);
        qs_trainer_param(b, i, &wb, &gb, &n);
        cr_assert(!memcmp(wa, wb, (size_t)n * sizeof *wa), "%s differs after resuming", name);
    }
    qs_trainer_free(a);
    qs_trainer_free(b);
    tu_rmtree(dir);
    free(dir);
}

Test(train, bad_configs_are_errors)
{
    qs_train_config c;
    qs_err err = {0};
    cr_assert_lt(qs_train_preset("huge", &c, &err), 0);
    qs_train_preset("tiny", &c, &err);
    c.vocab = 2048;
    const char *bad[] = {"{\"dim\": 250}", "{\"n_kv_heads\": 3}", "{\"seq\": 9999}", "{\"lr\": 0}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        qs_train_config d = c;
        cr_assert_eq(qs_train_config_parse(bad[i], strlen(bad[i]), &d, &err), 0, "%s", err.msg);
        cr_assert_lt(qs_train_config_check(&d, &err), 0, "%s is refused", bad[i]);
    }
    qs_train_config d = c;
    cr_assert_lt(qs_train_config_parse("{\"dimm\": 3}", 11, &d, &err), 0);
    cr_assert(strstr(err.msg, "unknown training setting 'dimm'"), "%s", err.msg);
    cr_assert_lt(qs_train_config_parse("{\"tied\": 1}", 11, &d, &err), 0);
    cr_assert_eq(qs_train_config_parse("{\"dim\": 128, \"tied\": false}", 27, &d, &err), 0, "%s", err.msg);
    cr_assert(d.dim == 128 && !d.tied && d.n_layers == c.n_layers);
}

static const char *sample_text =
    "In the beginning God created the heaven and the earth.\n"
    "And the earth was without form, and void; and darkness was upon the face of the deep.\n"
    "And God said, Let there be light: and there was light.\n"
    "And God saw the light, that it was good: and God divided the light from the darkness.\n"
    "And God called the light Day, and the darkness he called Night. Ca\xc3\xa9sar \xe2\x80\x94 na\xc3\xafve.\n";

Test(train, bpe_vocabulary_layout_and_round_trip)
{
    /* the sample repeated so that merges have counts */
    size_t one = strlen(sample_text), len = one * 20;
    char *text = malloc(len + 1);
    for (int i = 0; i < 20; i++) memcpy(text + (size_t)i * one, sample_text, one);
    text[len] = '\0';
    qs_spm_vocab v;
    qs_err err = {0};
    cr_assert_lt(qs_bpe_train(text, 0, 400, &v, NULL, &err), 0, "an empty text has no vocabulary");
    cr_assert_lt(qs_bpe_train(text, len, 100, &v, NULL, &err), 0, "a vocabulary needs room for specials and bytes");
    cr_assert_eq(qs_bpe_train(text, len, 400, &v, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(v.n, 400);
    cr_assert_str_eq(v.pieces[0], "<unk>");
    cr_assert(v.types[0] == 2 && v.types[1] == 3 && v.types[2] == 3);
    cr_assert_str_eq(v.pieces[3 + 0x41], "<0x41>");
    cr_assert_eq(v.types[3 + 255], 6);
    for (int i = 260; i < v.n; i++) {
        cr_assert_eq(v.types[i], 1);
        for (int j = 259; j < i; j++) cr_assert_str_neq(v.pieces[i], v.pieces[j], "piece %d repeats %d", i, j);
    }
    /* merges score above characters, in the order learnt */
    int first_merge = -1;
    for (int i = 259; i < v.n && first_merge < 0; i++)
        if (v.scores[i] == 0.0f) first_merge = i;
    cr_assert_gt(first_merge, 259);
    for (int i = first_merge + 1; i < v.n; i++) cr_assert_lt(v.scores[i], v.scores[i - 1]);
    for (int i = 259; i < first_merge; i++) cr_assert_lt(v.scores[i], v.scores[v.n - 1]);

    qs_gguf_writer *w = qs_gguf_writer_new();
    cr_assert_eq(qs_spm_vocab_write_keys(&v, w), 0);
    char *dir = tu_tmpdir(), path[4200];
    snprintf(path, sizeof path, "%s/v.gguf", dir);
    cr_assert_eq(qs_gguf_writer_write(w, path, &err), 0, "%s", err.msg);
    qs_gguf_writer_free(w);
    qs_gguf *g = qs_gguf_open(path, &err);
    qs_vocab *voc = qs_vocab_load(g, &err);
    cr_assert_not_null(voc, "%s", err.msg);
    int32_t *ids;
    int64_t n;
    cr_assert_eq(qs_tokenize(voc, text, len, false, false, &ids, &n, &err), 0, "%s", err.msg);
    char *back = qs_detokenize(voc, ids, n, false, false);
    cr_assert_str_eq(back, text, "decode(encode(text)) is the text");
    cr_assert_lt(n, (int64_t)len / 3, "%lld tokens for %zu bytes: the merges compress", (long long)n, len);
    int32_t *one_ids;
    int64_t n1;
    cr_assert_eq(qs_tokenize(voc, "the earth", 9, false, false, &one_ids, &n1, &err), 0);
    cr_assert_eq(n1, 2, "frequent words are single tokens (%lld tokens)", (long long)n1);
    free(one_ids);
    free(back);
    free(ids);
    qs_vocab_free(voc);
    qs_gguf_close(g);
    tu_rmtree(dir);
    free(dir);
    qs_spm_vocab_free(&v);
    free(text);
}

/* spec/gguf.md §5–6: what llama.cpp needs to load a `llama` model with a SentencePiece vocabulary */
static void check_llama_cpp_keys(const char *path)
{
    qs_err err = {0};
    qs_gguf *g = qs_gguf_open(path, &err);
    cr_assert_not_null(g, "%s: %s", path, err.msg);
    const char *arch;
    size_t n;
    cr_assert_eq(qs_gguf_get_str(g, "general.architecture", &arch, &n, &err), 0, "%s", path);
    cr_assert(n == 5 && !memcmp(arch, "llama", 5));
    const char *u32[] = {"llama.context_length", "llama.embedding_length", "llama.block_count", "llama.feed_forward_length",
                         "llama.attention.head_count", "llama.attention.head_count_kv", "llama.rope.dimension_count",
                         "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id"};
    uint32_t v[10];
    for (int i = 0; i < 10; i++) cr_assert_eq(qs_gguf_get_u32(g, u32[i], &v[i], &err), 0, "%s: %s", path, u32[i]);
    float eps;
    cr_assert_eq(qs_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &eps, &err), 0, "%s", path);
    cr_assert_eq(v[6], v[1] / v[4], "%s: rope.dimension_count must equal the head dimension", path);
    const char *model;
    cr_assert_eq(qs_gguf_get_str(g, "tokenizer.ggml.model", &model, &n, &err), 0);
    cr_assert(n == 5 && !memcmp(model, "llama", 5));
    const qs_gguf_kv *tok = qs_gguf_get_kv(g, "tokenizer.ggml.tokens"), *sc = qs_gguf_get_kv(g, "tokenizer.ggml.scores"),
                     *ty = qs_gguf_get_kv(g, "tokenizer.ggml.token_type");
    cr_assert(tok && sc && ty && tok->n == sc->n && tok->n == ty->n && sc->arr_type == QS_GGUF_F32 &&
              ty->arr_type == QS_GGUF_I32, "%s: tokens, scores and token types", path);
    qs_model *m = qs_model_from_gguf(g, path, &err);
    cr_assert_not_null(m, "%s", err.msg);
    cr_assert(m->hp.supported, "%s: %s", path, m->hp.unsupported_why);
    cr_assert_eq(m->hp.n_vocab, tok->n);
    const char *per_layer[] = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"};
    int expect = 2 + (qs_model_find_tensor(m, "output.weight") ? 1 : 0) + (int)v[2] * 9;
    cr_assert_eq(m->n_tensors, expect, "%s: exactly the tensors llama.cpp loads", path);
    for (uint32_t b = 0; b < v[2]; b++)
        for (int k = 0; k < 9; k++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%u.%s.weight", b, per_layer[k]);
            cr_assert_not_null(qs_model_find_tensor(m, name), "%s: %s", path, name);
        }
    qs_model_close(m); /* closes g too */
}

Test(train, written_models_carry_what_llama_cpp_needs)
{
    qs_trainer *t = gradcheck_trainer();
    qs_err err = {0};
    qs_spm_vocab v;
    const char *text = "a tiny text for a tiny vocabulary\n";
    cr_assert_eq(qs_bpe_train(text, strlen(text), 300, &v, NULL, &err), 0, "%s", err.msg);
    qs_train_config c = *qs_trainer_config(t);
    c.vocab = v.n;
    qs_trainer_free(t);
    t = qs_trainer_new(&c, &err);
    qs_gguf_writer *w = qs_gguf_writer_new();
    cr_assert_eq(qs_trainer_write_model(t, w, &err), 0);
    cr_assert_eq(qs_spm_vocab_write_keys(&v, w), 0);
    char *dir = tu_tmpdir(), path[4200];
    snprintf(path, sizeof path, "%s/m.gguf", dir);
    cr_assert_eq(qs_gguf_writer_write(w, path, &err), 0, "%s", err.msg);
    qs_gguf_writer_free(w);
    check_llama_cpp_keys(path);
    int checked = 1;
    const char *samples[] = {"sample_models/kjv-tiny.gguf", "sample_models/kjv-small.gguf"};
    for (int i = 0; i < 2; i++)
        if (!access(samples[i], R_OK)) check_llama_cpp_keys(samples[i]), checked++;
    cr_log_info("llama.cpp keys checked on %d models", checked);
    tu_rmtree(dir);
    free(dir);
    qs_spm_vocab_free(&v);
    qs_trainer_free(t);
}
