/* bench/bench_knob.c — what a knob change costs in the workbench: worker_compute (the worker's
 * whole job: quantize, metrics, histograms, heatmap tiles, outlier rows, explain) on a 4096 × 4096
 * F32 tensor. First opening the tensor: the preview drawn at once (the floats read, statistics of
 * a sample of rows), then the full result (the distribution with its percentiles and the outlier
 * rows computed once and cached); then each knob change: its preview and its full result.
 * Baseline measured in the same run: one pass of sum w^2 over the tensor. Target: the preview in
 * < 100 ms on 2 cores.
 * With a model file (bench_knob MODEL): the same on its token_embd, blk.0.ffn_down and blk.0.attn_k
 * (the real-shape synthetic models of `make bench-models`): preview and full latency of opening
 * each and of a knob step (q4_K → q4_1), and the process's peak RSS after each (the mapped pages
 * read count in it). Targets (issue 15): full metrics of a knob step on the 1.1B's token_embd
 * < 5 s on 2 cores; peak RSS < 1 GB plus the mapped pages read. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/quant/ggml_types.h"
#include "core/formats/gguf.h"
#include "core/model/model.h"
#include "core/quant/quant.h"
#include "core/recipe/recipe.h"
#include "tui/app.h"
#include "tui/worker.h"

enum { ROWS = 4096, COLS = 4096 };

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* a one-tensor GGUF (blk.0.ffn_up.weight, heavy-tailed) in a temporary file */
static int make_model(const char *path)
{
    float *w = malloc(sizeof(float) * ROWS * COLS);
    uint64_t s = 88172645463325252ull;
    for (int64_t i = 0; i < (int64_t)ROWS * COLS; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        double u = (double)(s >> 11) / 9007199254740992.0 - 0.5;
        w[i] = (float)(0.02 * u * ((i % COLS) % 509 == 0 ? 8 : 1) / sqrt(0.3 + fabs(u)));
    }
    qs_gguf_writer *g = qs_gguf_writer_new();
    qs_gguf_writer_set_str(g, "general.architecture", "llama");
    int64_t ne[4] = {COLS, ROWS, 1, 1};
    qs_err err = {0};
    int rc = qs_gguf_writer_add_tensor(g, "blk.0.ffn_up.weight", 0, 0, ne, w, &err) || qs_gguf_writer_write(g, path, &err);
    if (rc) fprintf(stderr, "bench_knob: %s\n", err.msg);
    qs_gguf_writer_free(g);
    free(w);
    return rc;
}

static double peak_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

/* preview and full result of cfg on tensor t (cache as the worker keeps it) */
static void time_job(app *a, int t, const char *cfg, app_view_req *view, tensor_cache *cache, app_result *r, const char *what)
{
    qs_qconfig c;
    bool keep;
    qs_err err = {0};
    qs_config_parse(cfg, &c, &keep, &err);
    const qs_tensor *x = &a->model->tensors[t];
    int step = worker_preview_step(qs_tensor_nrows(x), x->ne[0]);
    double t0 = now(), tp = 0;
    if (step > 1) worker_compute(a, t, &c, view, step, cache, NULL, r), tp = now() - t0;
    t0 = now();
    worker_compute(a, t, &c, view, 1, cache, NULL, r);
    double tf = now() - t0;
    printf("  %-22s %-6s preview %8.1f ms %-9s full %8.2f s   peak RSS %7.0f MiB%s%s\n", what, cfg, tp * 1e3,
           step > 1 ? (tp < 0.1 ? "(<100ms)" : "(SLOW)") : "(none)", tf, peak_mib(), r->ok ? "" : "  error: ", r->ok ? "" : r->error);
}

static int bench_model(const char *path)
{
    qs_err err = {0};
    double t0 = now();
    qs_model *m = qs_model_open(path, &err);
    static app a;
    char msg[256];
    if (!m || app_init(&a, m, msg, sizeof msg)) return fprintf(stderr, "bench_knob: %s\n", m ? msg : err.msg), 1;
    printf("%s: opened in %.2f s, peak RSS %.0f MiB\n", path, now() - t0, peak_mib());
    static const char *const names[] = {"token_embd.weight", "blk.0.ffn_down.weight", "blk.0.attn_k.weight"};
    app_result *r = malloc(sizeof *r);
    app_view_req view = {.heat_pr = 40, .heat_pc = 44};
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        const qs_tensor *x = qs_model_find_tensor(m, names[k]);
        if (!x) continue;
        tensor_cache cache = {.t = -1};
        printf("%s (%lld x %lld, %s)\n", names[k], (long long)qs_tensor_nrows(x), (long long)x->ne[0], qs_type_name(x->type));
        time_job(&a, (int)(x - m->tensors), "q4_K", &view, &cache, r, "opened (stats + q4_K)");
        time_job(&a, (int)(x - m->tensors), "q4_1", &view, &cache, r, "knob step");
        tensor_cache_free(&cache);
    }
    free(r);
    app_free(&a);
    qs_model_close(m);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1) return bench_model(argv[1]);
    char path[] = "/tmp/qs-bench-knob-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || make_model(path)) return 1;
    close(fd);
    qs_err err = {0};
    qs_model *m = qs_model_open(path, &err);
    static app a;
    char msg[256];
    if (!m || app_init(&a, m, msg, sizeof msg)) return fprintf(stderr, "bench_knob: %s\n", m ? msg : err.msg), 1;
    float *w = malloc(sizeof(float) * ROWS * COLS);
    qs_tensor_read_rows(&m->tensors[0], 0, ROWS, w, &err);
    double t0 = now(), sink = 0;
    for (int64_t i = 0; i < (int64_t)ROWS * COLS; i++) sink += (double)w[i] * w[i];
    double base = now() - t0;
    free(w);
    printf("4096 x 4096 F32 in the workbench; baseline (one pass of sum w^2): %.1f ms%s\n", base * 1e3, sink < 0 ? "!" : "");
    tensor_cache cache = {.t = -1};
    app_result *r = malloc(sizeof *r);
    app_view_req view = {.heat_pr = 40, .heat_pc = 44};
    qs_qconfig c;
    qs_qconfig_default(&c, qs_method_find("q4_K"));
    int step = worker_preview_step(ROWS, COLS);
    t0 = now();
    worker_compute(&a, 0, &c, &view, step, &cache, NULL, r);
    double t_open = now() - t0;
    t0 = now();
    worker_compute(&a, 0, &c, &view, 1, &cache, NULL, r);
    printf("a tensor opened: first preview (the floats read, a sample's statistics) %.1f ms %s; the full result "
           "(distribution and outlier rows computed and cached) %.1f ms\n",
           t_open * 1e3, t_open < 0.1 ? "(< 100 ms)" : "(NOT < 100 ms)", (now() - t0) * 1e3);
    static const char *const cfgs[] = {"q4_K", "q3_K", "q6_K", "q8_0", "rtn:bits=3,group=64", "rtn:bits=4,group=128",
                                       "q4_0", "nf4", "iq4_nl"};
    printf("%-22s %12s %12s %10s %8s\n", "knob change to", "preview", "full", "x baseline", "<100ms");
    for (size_t k = 0; k < sizeof cfgs / sizeof *cfgs; k++) {
        bool keep;
        if (qs_config_parse(cfgs[k], &c, &keep, &err)) return fprintf(stderr, "bench_knob: %s\n", err.msg), 1;
        double best_p = 1e9, best_f = 1e9;
        for (int rep = 0; rep < 2; rep++) {
            t0 = now();
            worker_compute(&a, 0, &c, &view, step, &cache, NULL, r);
            double tp = now() - t0;
            t0 = now();
            worker_compute(&a, 0, &c, &view, 1, &cache, NULL, r);
            double tf = now() - t0;
            if (!r->ok) return fprintf(stderr, "bench_knob: %s: %s\n", cfgs[k], r->error), 1;
            best_p = tp < best_p ? tp : best_p, best_f = tf < best_f ? tf : best_f;
        }
        printf("%-22s %10.1fms %10.1fms %10.1f %8s\n", cfgs[k], best_p * 1e3, best_f * 1e3, best_p / base,
               best_p < 0.1 ? "yes" : "NO");
    }
    printf("(preview: every %dth row quantized; the full result replaces it when ready)\n", step);
    free(r);
    tensor_cache_free(&cache);
    app_free(&a);
    qs_model_close(m);
    unlink(path);
    return 0;
}
