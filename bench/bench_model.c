/* bench/bench_model.c — one model file at real scale: what `ppl --ctx 256 --chunks 4` and
 * `generate` cost. Usage: bench_model MODEL.gguf [LABEL]. Prints one line: load time, prefill
 * (4 passes of 256 tokens) in tok/s, generation tok/s (64 tokens after a 16-token prompt),
 * peak RSS, and two baselines measured in the same run on the same machine: the OpenBLAS sgemm
 * ceiling for a pass's FLOPs (prefill) and the time to read the file's weight bytes once from
 * memory (generation is memory-bound: one read of every weight per token). `make bench` runs it
 * on synthetic TinyLlama- and Llama-3-8B-shaped models (quantscope synth, generated into build/). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "core/model/infer.h"
#include "core/model/model.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double peak_rss_gb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / (1024.0 * 1024.0);
}

/* seconds for one sgemm with the multiply-adds of a T-token pass over `params` weights */
static double sgemm_ceiling(double params, int T)
{
    int n = 4096, k = 4096;
    float *a = calloc((size_t)T * k, 4), *b = calloc((size_t)n * k, 4), *c = calloc((size_t)T * n, 4);
    double best = 1e30;
    for (int r = 0; r < 4; r++) { /* the best of 4 (the first wakes OpenBLAS's threads) */
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, n, k, 1, a, k, b, k, 0, c, n);
        double t = now() - t0;
        if (t < best) best = t;
    }
    double s = best * params / ((double)n * k);
    free(a), free(b), free(c);
    return s;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_model MODEL.gguf [LABEL]\n");
        return 1;
    }
    const char *label = argc > 2 ? argv[2] : argv[1];
    qs_err err = {0};
    double t0 = now();
    qs_model *m = qs_model_open(argv[1], &err);
    qs_llm *l = m ? qs_llm_new(m, 256, &err) : NULL;
    if (!l) {
        fprintf(stderr, "bench_model: %s: %s\n", argv[1], err.msg);
        qs_model_close(m);
        return 2;
    }
    double load = now() - t0, params = 0, bytes = 0;
    for (int64_t i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].n_dims >= 2 && strcmp(m->tensors[i].gguf_name, "token_embd.weight")) {
            params += (double)qs_tensor_nelements(&m->tensors[i]);
            bytes += (double)m->tensors[i].nbytes;
        }
    if (!qs_model_find_tensor(m, "output.weight")) params += (double)qs_tensor_nelements(qs_model_find_tensor(m, "token_embd.weight"));
    int nv = qs_llm_n_vocab(l);
    int32_t toks[256];
    for (int i = 0; i < 256; i++) toks[i] = (int32_t)((i * 7919 + 13) % nv);
    float *logits = malloc(sizeof(float) * 256 * (size_t)nv);
    t0 = now();
    int rc = 0;
    for (int pass = 0; pass < 4 && !rc; pass++) rc = qs_llm_eval(l, toks, 256, 0, logits, &err);
    double prefill = (now() - t0) / 4;
    /* the same four passes as one batch of four sequences (how `ppl` runs its chunks) */
    int32_t toks4[4 * 256];
    for (int i = 0; i < 4 * 256; i++) toks4[i] = toks[i % 256];
    float *logits4 = malloc(sizeof(float) * 4 * 256 * (size_t)nv);
    t0 = now();
    if (!rc) rc = logits4 ? qs_llm_eval_seqs(l, toks4, 4, 256, logits4, &err) : qs_err_set(&err, QS_E_OOM, "out of memory");
    double batched = (now() - t0) / 4;
    free(logits4);
    if (!rc) rc = qs_llm_eval(l, toks, 16, 0, logits, &err);
    t0 = now();
    for (int p = 16; p < 80 && !rc; p++) rc = qs_llm_eval(l, &toks[p], 1, p, logits, &err);
    double tok = (now() - t0) / 64;
    if (rc) {
        fprintf(stderr, "bench_model: %s: %s\n", argv[1], err.msg);
        return 2;
    }
    double rss = peak_rss_gb();
    /* baselines: sgemm ceiling of a pass; one read of the weight bytes */
    double ceil_s = sgemm_ceiling(params, 256);
    size_t nb = (size_t)(bytes < 1e9 ? bytes : 1e9); /* measured on at most 1 GB, scaled */
    char *buf = malloc(nb);
    double read_s = 0;
    if (buf) {
        memset(buf, 1, nb);
        volatile long sum = 0;
        t0 = now();
        for (size_t i = 0; i < nb; i += 64) sum += buf[i];
        read_s = (now() - t0) * bytes / (double)nb;
        free(buf);
    }
    printf("%-26s load %5.2f s | prefill %7.1f tok/s (%.2f s/pass, sgemm ceiling %.2f s = %.2fx; 4 passes batched %.2f s/pass) | generate %6.2f tok/s "
           "(%.0f ms/tok, one weight read %.0f ms = %.2fx) | peak RSS %.2f GB (weights %.2f GB)\n",
           label, load, 256 / prefill, prefill, ceil_s, ceil_s / prefill, batched, 1 / tok, tok * 1e3, read_s * 1e3, read_s / tok, rss,
           bytes / 1e9);
    free(logits);
    qs_llm_free(l);
    qs_model_close(m);
    return 0;
}
