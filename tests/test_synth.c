/* quantscope synth: random-weight llama GGUFs of real shapes (core/synth.h) and the streamed
 * tensors of the GGUF writer it relies on. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/quant/ggml_types.h"
#include "core/formats/gguf.h"
#include "core/model/model.h"
#include "core/recipe/synth.h"
#include "core/model/tokenizer.h"
#include "tests/testutil.h"

static void synth(const char *shape, const char *type, uint64_t seed, int threads, const char *path)
{
    qs_err err = {0};
    qs_synth_opts o = {qs_synth_shape_find(shape), type, seed, NULL, threads};
    cr_assert(o.shape, "shape %s", shape);
    cr_assert_eq(qs_synth_write(&o, path, NULL, &err), 0, "%s", err.msg);
}

static char *tmp_file(char *dir, const char *name)
{
    static char p[4][4200];
    static int k;
    char *s = p[k++ % 4];
    snprintf(s, sizeof p[0], "%s/%s", dir, name);
    return s;
}

static double stddev(const qs_tensor *t, double *mean)
{
    int64_t n = qs_tensor_nelements(t);
    float *x = malloc((size_t)n * sizeof *x);
    qs_err err = {0};
    cr_assert_eq(qs_tensor_read_rows(t, 0, qs_tensor_nrows(t), x, &err), 0, "%s", err.msg);
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < n; i++) s += x[i];
    *mean = s / (double)n;
    for (int64_t i = 0; i < n; i++) s2 += (x[i] - *mean) * (x[i] - *mean);
    free(x);
    return sqrt(s2 / (double)n);
}

Test(synth, tiny_opens_with_its_shape_and_a_working_tokenizer)
{
    char *dir = tu_tmpdir(), *path = tmp_file(dir, "tiny.gguf");
    synth("tiny", NULL, 1, 0, path);
    qs_err err = {0};
    qs_model *m = qs_model_open(path, &err);
    cr_assert(m, "%s", err.msg);
    const qs_hparams *hp = &m->hp;
    cr_assert_str_eq(hp->arch, "llama");
    cr_assert(hp->supported, "%s", hp->unsupported_why);
    cr_assert_eq(hp->n_layer, 2);
    cr_assert_eq(hp->n_embd, 256);
    cr_assert_eq(hp->n_ff, 768);
    cr_assert_eq(hp->n_head, 4);
    cr_assert_eq(hp->n_head_kv, 2);
    cr_assert_eq(hp->head_dim, 64);
    cr_assert_eq(hp->n_rot, 64);
    cr_assert_eq(hp->n_vocab, 512);
    cr_assert_float_eq(hp->rope_base, 10000.0f, 1e-3);
    cr_assert_float_eq(hp->norm_eps, 1e-5f, 1e-9);
    cr_assert(!hp->tied_output);
    cr_assert_eq(m->n_tensors, 3 + 2 * 9);
    struct { const char *name; int64_t ne0, ne1; int type; } want[] = {
        {"token_embd.weight", 256, 512, QS_TYPE_F16},       {"output.weight", 256, 512, QS_TYPE_F16},
        {"output_norm.weight", 256, 1, QS_TYPE_F32},        {"blk.1.attn_norm.weight", 256, 1, QS_TYPE_F32},
        {"blk.1.attn_q.weight", 256, 256, QS_TYPE_F16},     {"blk.1.attn_k.weight", 256, 128, QS_TYPE_F16},
        {"blk.1.attn_v.weight", 256, 128, QS_TYPE_F16},     {"blk.1.attn_output.weight", 256, 256, QS_TYPE_F16},
        {"blk.0.ffn_norm.weight", 256, 1, QS_TYPE_F32},     {"blk.0.ffn_gate.weight", 256, 768, QS_TYPE_F16},
        {"blk.0.ffn_up.weight", 256, 768, QS_TYPE_F16},     {"blk.0.ffn_down.weight", 768, 256, QS_TYPE_F16}};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        const qs_tensor *t = qs_model_find_tensor(m, want[i].name);
        cr_assert(t, "%s missing", want[i].name);
        cr_assert(t->ne[0] == want[i].ne0 && t->ne[1] == want[i].ne1, "%s: [%lld, %lld]", want[i].name,
                  (long long)t->ne[0], (long long)t->ne[1]);
        cr_assert_eq(t->type, want[i].type, "%s: %s", want[i].name, t->dtype);
    }
    /* llama-quantize's order: output, output_norm, token_embd, then block by block */
    cr_assert_str_eq(m->tensors[0].name, "output.weight");
    cr_assert_str_eq(m->tensors[2].name, "token_embd.weight");
    cr_assert_str_eq(m->tensors[3].name, "blk.0.attn_k.weight");
    cr_assert_str_eq(m->tensors[m->n_tensors - 1].name, "blk.1.ffn_up.weight");
    uint32_t ft = 99;
    cr_assert_eq(qs_gguf_get_u32(m->gguf, "general.file_type", &ft, &err), 0);
    cr_assert_eq(ft, 1, "MOSTLY_F16");

    /* roughly real statistics */
    double mean, sd = stddev(qs_model_find_tensor(m, "token_embd.weight"), &mean);
    cr_assert(sd > 0.015 && sd < 0.04 && fabs(mean) < 0.005, "embeddings: mean %g sd %g", mean, sd);
    sd = stddev(qs_model_find_tensor(m, "blk.0.attn_norm.weight"), &mean);
    cr_assert(fabs(mean - 1.0) < 0.02 && sd < 0.1, "norm: mean %g sd %g", mean, sd);
    sd = stddev(qs_model_find_tensor(m, "blk.0.attn_q.weight"), &mean);
    cr_assert(sd > 0.9 / 16 && sd < 2.0 / 16, "attn_q: sd %g against 1/sqrt(256)", sd);

    /* the synthetic SentencePiece vocabulary: specials, 256 byte tokens, round trips */
    cr_assert_str_eq(m->tok.kind, "llama");
    cr_assert_eq(m->tok.n_tokens, 512);
    qs_vocab *v = qs_vocab_load(m->gguf, &err);
    cr_assert(v, "%s", err.msg);
    cr_assert_eq(qs_vocab_bos(v), 1);
    cr_assert_eq(qs_vocab_eos(v), 2);
    qs_vocab_free(v);
    qs_model_close(m);
    tu_rmtree(dir);
    free(dir);
}

Test(synth, same_seed_same_bytes_whatever_the_threads)
{
    char *dir = tu_tmpdir(), *a = tmp_file(dir, "a.gguf"), *b = tmp_file(dir, "b.gguf"), *c = tmp_file(dir, "c.gguf");
    synth("tiny", "q8_0", 7, 1, a);
    synth("tiny", "q8_0", 7, 3, b);
    synth("tiny", "q8_0", 8, 2, c);
    size_t na, nb, nc;
    uint8_t *x = tu_read(a, &na), *y = tu_read(b, &nb), *z = tu_read(c, &nc);
    cr_assert(x && y && z);
    cr_assert(na == nb && !memcmp(x, y, na), "the same seed gives the same file");
    cr_assert_eq(na, nc);
    size_t differ = 0;
    for (size_t i = 0; i < na; i++) differ += x[i] != z[i];
    cr_assert_gt(differ, na / 2, "another seed, other weights (%zu of %zu bytes differ)", differ, na);
    free(x), free(y), free(z);
    tu_rmtree(dir);
    free(dir);
}

static void count_types(const char *path, int *counts)
{
    qs_err err = {0};
    qs_model *m = qs_model_open(path, &err);
    cr_assert(m, "%s", err.msg);
    memset(counts, 0, QS_TYPE_COUNT * sizeof *counts);
    for (int64_t i = 0; i < m->n_tensors; i++) counts[m->tensors[i].type]++;
    qs_model_close(m);
}

Test(synth, types_and_presets)
{
    char *dir = tu_tmpdir(), *a = tmp_file(dir, "q4k.gguf"), *b = tmp_file(dir, "q4km.gguf");
    int n[QS_TYPE_COUNT];
    synth("tiny", "q4_K", 1, 0, a); /* a GGML type: every matrix */
    count_types(a, n);
    cr_assert_eq(n[QS_TYPE_Q4_K], 2 + 2 * 7);
    cr_assert_eq(n[QS_TYPE_F32], 1 + 2 * 2);
    synth("tiny", "Q4_K_M", 1, 0, b); /* a preset: llama-quantize's mix */
    count_types(b, n);
    cr_assert_gt(n[QS_TYPE_Q6_K], 0, "Q4_K_M puts output and some attn_v / ffn_down in q6_K");
    cr_assert_eq(n[QS_TYPE_Q4_K] + n[QS_TYPE_Q6_K], 2 + 2 * 7);
    int ft, ty;
    qs_err err = {0};
    cr_assert_eq(qs_synth_parse_type("q4_K", &ft, &ty, &err), 0);
    cr_assert(ft == -1 && ty == QS_TYPE_Q4_K);
    cr_assert_eq(qs_synth_parse_type("q4_k_m", &ft, &ty, &err), 0);
    cr_assert(ft == 15 && ty == -1);
    cr_assert_eq(qs_synth_parse_type("BF16", &ft, &ty, &err), 0);
    cr_assert_eq(ft, 32);
    cr_assert_lt(qs_synth_parse_type("q9_K", &ft, &ty, &err), 0);
    cr_assert_eq(err.code, QS_E_USAGE);
    tu_rmtree(dir);
    free(dir);
}

static int one_line(const char *s)
{
    const char *nl = strchr(s, '\n');
    return nl && nl[1] == '\0';
}

Test(synth, cli_writes_a_model_that_ppl_and_generate_run, .timeout = 60)
{
    char *dir = tu_tmpdir(), args[9000], *path = tmp_file(dir, "tiny q.gguf"), *text = tmp_file(dir, "t.txt");
    FILE *f = fopen(text, "w");
    cr_assert(f);
    for (int i = 0; i < 60; i++) fprintf(f, "the quick brown fox %d jumps over the lazy dog. ", i);
    fclose(f);
    snprintf(args, sizeof args, "synth --shape tiny --type q4_K --seed 3 -o '%s'", path);
    tu_run_result r = tu_run(args);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "wrote "), "%s", r.out);
    tu_run_free(&r);
    snprintf(args, sizeof args, "ppl '%s' --text '%s' --ctx 64 --chunks 2", path, text);
    r = tu_run(args);
    cr_assert_eq(r.status, 0, "%s", r.err);
    const char *p = strstr(r.out, "PPL = ");
    cr_assert(p, "%s", r.out);
    double ppl = atof(p + 6);
    cr_assert(isfinite(ppl) && ppl > 1 && ppl < 1e5, "PPL %g", ppl);
    tu_run_free(&r);
    snprintf(args, sizeof args, "generate '%s' -p 'the fox' -n 5 --temp 0", path);
    r = tu_run(args);
    cr_assert_eq(r.status, 0, "%s", r.err);
    tu_run_free(&r);

    r = tu_run("synth --shape llama-99b -o x.gguf");
    cr_assert_eq(r.status, 1);
    cr_assert(one_line(r.err) && strstr(r.err, "unknown shape 'llama-99b'"), "%s", r.err);
    tu_run_free(&r);
    r = tu_run("synth --shape tiny --type q9_K -o x.gguf");
    cr_assert_eq(r.status, 1);
    cr_assert(one_line(r.err) && strstr(r.err, "unknown type 'q9_K'"), "%s", r.err);
    tu_run_free(&r);
    r = tu_run("synth --shape tiny");
    cr_assert_eq(r.status, 1, "-o is required");
    tu_run_free(&r);
    struct stat st;
    cr_assert(stat("x.gguf", &st) != 0, "no file left behind");
    tu_rmtree(dir);
    free(dir);
}

Test(synth, vocabulary_of_another_size_is_refused)
{
    char vocab[4200];
    snprintf(vocab, sizeof vocab, "%s/ggml-vocab-llama-spm.gguf", tu_vocab_dir());
    struct stat st;
    if (stat(vocab, &st)) tu_skip("%s missing", vocab);
    char args[9000];
    snprintf(args, sizeof args, "synth --shape tiny -o /nonexistent/x.gguf --vocab '%s'", vocab);
    tu_run_result r = tu_run(args);
    cr_assert_eq(r.status, 2);
    cr_assert(one_line(r.err) && strstr(r.err, "32000 tokens") && strstr(r.err, "needs 512"), "%s", r.err);
    tu_run_free(&r);
    qs_err err = {0};
    qs_gguf *g = qs_gguf_open(vocab, &err);
    cr_assert(g, "%s", err.msg);
    cr_assert_eq(qs_synth_check_vocab(qs_synth_shape_find("tinyllama"), g, &err), 0, "%s", err.msg);
    qs_gguf_close(g);
}

/* ---- the writer's streamed tensors ---- */

typedef struct chunks {
    const uint8_t *data;
    size_t n, step;
} chunks;

static int give(void *ctx, qs_gguf_put_fn put, void *put_ctx, qs_err *err)
{
    const chunks *c = ctx;
    for (size_t o = 0; o < c->n; o += c->step) {
        int rc = put(put_ctx, c->data + o, c->n - o < c->step ? c->n - o : c->step, err);
        if (rc) return rc;
    }
    return 0;
}

Test(synth, streamed_tensors_equal_borrowed_ones_and_must_be_complete)
{
    char *dir = tu_tmpdir(), *a = tmp_file(dir, "a.gguf"), *b = tmp_file(dir, "b.gguf"), *c = tmp_file(dir, "c.gguf");
    float x[96];
    for (int i = 0; i < 96; i++) x[i] = (float)i * 0.5f;
    int64_t ne[4] = {32, 3, 1, 1}, ne2[4] = {5, 1, 1, 1};
    qs_err err = {0};
    qs_gguf_writer *w = qs_gguf_writer_new();
    qs_gguf_writer_set_u32(w, "k", 1);
    cr_assert_eq(qs_gguf_writer_add_tensor(w, "t", QS_TYPE_F32, 0, ne, x, &err), 0);
    cr_assert_eq(qs_gguf_writer_add_tensor(w, "u", QS_TYPE_F32, 0, ne2, x, &err), 0);
    cr_assert_eq(qs_gguf_writer_write(w, a, &err), 0, "%s", err.msg);
    qs_gguf_writer_free(w);
    chunks ct = {(const uint8_t *)x, sizeof x, 7}, cu = {(const uint8_t *)x, 20, 20};
    w = qs_gguf_writer_new();
    qs_gguf_writer_set_u32(w, "k", 1);
    cr_assert_eq(qs_gguf_writer_add_tensor_src(w, "t", QS_TYPE_F32, 0, ne, give, &ct, &err), 0);
    cr_assert_eq(qs_gguf_writer_add_tensor_src(w, "u", QS_TYPE_F32, 0, ne2, give, &cu, &err), 0);
    cr_assert_eq(qs_gguf_writer_write(w, b, &err), 0, "%s", err.msg);
    size_t na, nb;
    uint8_t *fa = tu_read(a, &na), *fb = tu_read(b, &nb);
    cr_assert(na == nb && !memcmp(fa, fb, na), "streamed and borrowed tensors write the same file");
    free(fa), free(fb);
    cu.n = 16; /* one float short */
    cr_assert_lt(qs_gguf_writer_write(w, c, &err), 0);
    cr_assert(strstr(err.msg, "16 bytes of 20"), "%s", err.msg);
    struct stat st;
    cr_assert(stat(c, &st) != 0, "an incomplete file is not left behind");
    qs_gguf_writer_free(w);
    tu_rmtree(dir);
    free(dir);
}
