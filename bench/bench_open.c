/* bench/bench_open.c — opening a large GGUF must not read its weights.
 * Writes a ~2 GB F16 GGUF (128 tensors of 4096 × 2048; deleted afterwards), then opens it
 * in a fresh child process and reports the wall time of qs_model_open and the child's peak
 * resident memory. Baseline measured in the same run: the same child reading one byte of
 * every page (what a loader that touched the weights would pay). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/quant/ggml_types.h"
#include "core/formats/gguf.h"
#include "core/model/model.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int write_big(const char *path)
{
    const int64_t cols = 4096, rows = 2048;
    size_t nb = (size_t)(cols * rows) * 2;
    void *zeros = calloc(1, nb);
    qs_gguf_writer *w = qs_gguf_writer_new();
    qs_gguf_writer_set_str(w, "general.architecture", "llama");
    qs_gguf_writer_set_u32(w, "llama.block_count", 32);
    qs_gguf_writer_set_u32(w, "llama.embedding_length", 4096);
    qs_gguf_writer_set_u32(w, "llama.attention.head_count", 32);
    qs_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    qs_err err = {0};
    for (int i = 0; i < 128; i++) {
        char name[64];
        snprintf(name, sizeof name, "blk.%d.ffn_%s.weight", i / 4, (const char *[]){"gate", "up", "down", "x"}[i % 4]);
        int64_t ne[4] = {cols, rows, 1, 1};
        qs_gguf_writer_add_tensor(w, name, QS_TYPE_F16, 0, ne, zeros, &err);
    }
    int rc = qs_gguf_writer_write(w, path, &err);
    if (rc) fprintf(stderr, "bench_open: %s: %s\n", path, err.msg);
    qs_gguf_writer_free(w);
    free(zeros);
    return rc;
}

/* child: open (and optionally touch every page); prints seconds; parent reads maxrss */
static void measure(const char *path, int touch, double *secs, long *rss_kb)
{
    int fd[2];
    if (pipe(fd) != 0) exit(1);
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        double t0 = now();
        qs_err err = {0};
        qs_model *m = qs_model_open(path, &err);
        volatile unsigned sum = 0;
        for (int64_t i = 0; touch && m && i < m->n_tensors; i++)
            for (uint64_t o = 0; o < m->tensors[i].nbytes; o += 4096) sum += m->tensors[i].data[o];
        double dt = now() - t0;
        if (write(fd[1], &dt, sizeof dt) != sizeof dt) _exit(1);
        qs_model_close(m);
        _exit(m ? 0 : 1);
    }
    close(fd[1]);
    if (read(fd[0], secs, sizeof *secs) != sizeof *secs) *secs = -1;
    close(fd[0]);
    int st;
    struct rusage ru;
    wait4(pid, &st, 0, &ru);
    *rss_kb = ru.ru_maxrss;
}

int main(void)
{
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char path[4096];
    snprintf(path, sizeof path, "%s/qs-bench-2g-%d.gguf", dir, (int)getpid());
    double t0 = now();
    if (write_big(path)) return 1;
    printf("wrote %s (128 × 4096×2048 F16, 2.0 GiB) in %.2f s\n", path, now() - t0);
    double open_s, touch_s;
    long open_rss, touch_rss;
    measure(path, 0, &open_s, &open_rss);
    measure(path, 1, &touch_s, &touch_rss);
    printf("%-32s %10s %12s\n", "", "seconds", "peak RSS MB");
    printf("%-32s %10.4f %12.1f\n", "qs_model_open (headers only)", open_s, open_rss / 1024.0);
    printf("%-32s %10.4f %12.1f\n", "baseline: open + touch all pages", touch_s, touch_rss / 1024.0);
    printf("open is %.0fx faster than touching the weights; target < 0.5 s and < 50 MB: %s\n",
           touch_s / (open_s > 0 ? open_s : 1e-9),
           open_s < 0.5 && open_rss < 50 * 1024 ? "met" : "MISSED");
    unlink(path);
    return 0;
}
