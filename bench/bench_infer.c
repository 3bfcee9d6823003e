/* bench/bench_infer.c — prompt processing (one 256-token perplexity pass) and generation
 * speed, single- and multi-threaded, for stories260K (when ../shared/models has it) and a
 * synthetic llama written here (dim 768, 12 layers, 12 heads / 4 KV heads, ff 2048, vocab
 * 512 ≈ 76M parameters) in F32 and with every matrix in Q4_K.
 * Baseline measured in the same run: one sgemm with the FLOPs of a 256-token pass (the
 * OpenBLAS ceiling). Reference (from the issue): llama-perplexity, 2 threads, ctx 256:
 * 0.32 s per pass on the F32 model, 0.23 s on Q4_K_M. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/quant/ggml_quants.h"
#include "core/quant/ggml_types.h"
#include "core/formats/gguf.h"
#include "core/model/infer.h"
#include "core/model/model.h"
#include "core/util/parallel.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static float frand(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return (float)((double)(*s >> 11) / 9007199254740992.0 - 0.5);
}

enum { E = 768, L = 12, H = 12, HKV = 4, F = 2048, V = 512 };

/* writes the synthetic model with matrices of type mt (F32 or Q4_K) */
static int write_synth(const char *path, int mt)
{
    qs_gguf_writer *w = qs_gguf_writer_new();
    qs_gguf_writer_set_str(w, "general.architecture", "llama");
    qs_gguf_writer_set_u32(w, "llama.block_count", L);
    qs_gguf_writer_set_u32(w, "llama.embedding_length", E);
    qs_gguf_writer_set_u32(w, "llama.feed_forward_length", F);
    qs_gguf_writer_set_u32(w, "llama.attention.head_count", H);
    qs_gguf_writer_set_u32(w, "llama.attention.head_count_kv", HKV);
    qs_gguf_writer_set_u32(w, "llama.context_length", 1024);
    qs_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    void *bufs[16 * L + 4];
    int nb = 0;
    uint64_t seed = 42;
    qs_err err = {0};
    struct { const char *name; int64_t cols, rows; } g[] = {{"token_embd.weight", E, V}, {"output_norm.weight", E, 1},
                                                            {"output.weight", E, V}};
    struct { const char *stem; int64_t cols, rows; } b[] = {
        {"attn_norm", E, 1}, {"attn_q", E, E}, {"attn_k", E, E / H * HKV}, {"attn_v", E, E / H * HKV},
        {"attn_output", E, E}, {"ffn_norm", E, 1}, {"ffn_gate", E, F}, {"ffn_up", E, F}, {"ffn_down", F, E}};
    for (int i = -1; i < L; i++)
        for (int k = 0; k < (i < 0 ? 3 : 9); k++) {
            char name[64];
            int64_t cols = i < 0 ? g[k].cols : b[k].cols, rows = i < 0 ? g[k].rows : b[k].rows;
            if (i < 0) snprintf(name, sizeof name, "%s", g[k].name);
            else snprintf(name, sizeof name, "blk.%d.%s.weight", i, b[k].stem);
            float *x = malloc(sizeof(float) * (size_t)(rows * cols));
            for (int64_t j = 0; j < rows * cols; j++) x[j] = rows == 1 ? 1.0f : frand(&seed) * 0.08f;
            int type = rows > 1 && mt != QS_TYPE_F32 ? mt : QS_TYPE_F32;
            void *data = x;
            if (type != QS_TYPE_F32) {
                data = malloc((size_t)qs_type_row_bytes(type, cols) * (size_t)rows);
                qs_ggml_quantize(type, x, data, rows, cols, NULL, 0, &err);
                free(x);
            }
            int64_t ne[4] = {cols, rows, 1, 1};
            qs_gguf_writer_add_tensor(w, name, type, 0, ne, data, &err);
            bufs[nb++] = data;
        }
    int rc = qs_gguf_writer_write(w, path, &err);
    if (rc) fprintf(stderr, "bench_infer: %s: %s\n", path, err.msg);
    qs_gguf_writer_free(w);
    for (int i = 0; i < nb; i++) free(bufs[i]);
    return rc;
}

/* seconds per 256-token pass and per generated token (64 tokens after a 16-token prompt) */
static int measure(const char *path, int threads, double *pass_s, double *tok_s)
{
    qs_err err = {0};
    qs_model *m = qs_model_open(path, &err);
    qs_llm *l = m ? qs_llm_new(m, 256, &err) : NULL;
    if (!l) {
        fprintf(stderr, "bench_infer: %s: %s\n", path, err.msg);
        qs_model_close(m);
        return -1;
    }
    openblas_set_num_threads(threads);
    int nv = qs_llm_n_vocab(l);
    int32_t toks[256];
    for (int i = 0; i < 256; i++) toks[i] = (i * 37 + 1) % nv;
    float *logits = malloc(sizeof(float) * 256 * (size_t)nv);
    qs_llm_eval(l, toks, 256, 0, logits, &err); /* warm-up */
    double t0 = now();
    for (int r = 0; r < 2; r++) qs_llm_eval(l, toks, 256, 0, logits, &err);
    *pass_s = (now() - t0) / 2;
    qs_llm_eval(l, toks, 16, 0, logits, &err);
    t0 = now();
    for (int p = 16; p < 80; p++) qs_llm_eval(l, &toks[p], 1, p, logits, &err);
    *tok_s = (now() - t0) / 64;
    free(logits);
    qs_llm_free(l);
    qs_model_close(m);
    return 0;
}

int main(void)
{
    int cores = qs_cpu_count();
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char f32[4096], q4k[4096], stories[4096];
    snprintf(f32, sizeof f32, "%s/qs-bench-synth-f32-%d.gguf", tmp, (int)getpid());
    snprintf(q4k, sizeof q4k, "%s/qs-bench-synth-q4k-%d.gguf", tmp, (int)getpid());
    snprintf(stories, sizeof stories, "%s/stories260K.gguf", getenv("QS_MODELS_DIR") ? getenv("QS_MODELS_DIR") : "../shared/models");
    if (write_synth(f32, QS_TYPE_F32) || write_synth(q4k, QS_TYPE_Q4_K)) return 1;
    /* baseline: one sgemm of 256 × 76M weights' worth of FLOPs */
    int64_t params = (int64_t)L * (E * E * 2 + 2 * E * (E / H * HKV) + 3 * E * F) + 2 * (int64_t)V * E;
    float *a = calloc((size_t)256 * 4096, 4), *bm = calloc((size_t)4096 * 4096, 4), *c = calloc((size_t)256 * 4096, 4);
    openblas_set_num_threads(cores);
    double t0 = now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 256, 4096, 4096, 1, a, 4096, bm, 4096, 0, c, 4096);
    double gemm = now() - t0, gflops = 2.0 * 256 * 4096 * 4096 / gemm / 1e9;
    free(a), free(bm), free(c);
    printf("synthetic llama: %.1fM parameters; OpenBLAS sgemm ceiling (same run, %d threads): %.0f GFLOP/s "
           "= %.3f s per 256-token pass\n", (double)params / 1e6, cores, gflops, 2.0 * (double)params * 256 / (gflops * 1e9));
    printf("%-26s %7s %12s %12s %12s %14s\n", "model", "threads", "pass (s)", "tok/s (pp)", "tok/s (gen)", "vs llama.cpp");
    struct { const char *label, *path; double ref; } rows[] = {
        {"synthetic F32", f32, 0.32}, {"synthetic Q4_K", q4k, 0.23}, {"stories260K F32", stories, 0}};
    for (size_t r = 0; r < 3; r++) {
        if (access(rows[r].path, R_OK) != 0) continue;
        int ts[2] = {1, cores};
        for (int k = 0; k < (cores > 1 ? 2 : 1); k++) {
            double pass, tok;
            if (measure(rows[r].path, ts[k], &pass, &tok)) continue;
            char vs[32] = "-";
            if (rows[r].ref > 0 && ts[k] == 2) snprintf(vs, sizeof vs, "%.2fx", rows[r].ref / pass);
            printf("%-26s %7d %12.3f %12.0f %12.1f %14s\n", rows[r].label, ts[k], pass, 256 / pass, 1 / tok, vs);
        }
    }
    printf("('vs llama.cpp' = llama-perplexity's seconds per pass / ours, at 2 threads: > 1 is faster)\n");
    unlink(f32);
    unlink(q4k);
    return 0;
}
