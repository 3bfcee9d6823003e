/* tui/jobs.h — the worker's job kinds behind one interface (the worker's insides, shared by
 * tui/worker.c, which keeps the loop, the queue and cancellation, tui/jobs.c, which holds the
 * long jobs and the generation, and tui/tensor_job.c, the tensor's computation). Not for the
 * views or the rest of tui/. */
#ifndef QS_JOBS_H
#define QS_JOBS_H

#include <pthread.h>
#include <stdbool.h>

#include "core/data/kld.h"
#include "core/model/infer.h"
#include "core/model/tokenizer.h"
#include "core/recipe/recipe.h"
#include "tui/worker.h"

enum { GEN_TOKENS = 48, GEN_CTX = 256 };

struct worker {
    app *a;
    int fd;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool pending, running, quit;
    bool tensor_seen;
    bool tensor_running;     /* the job running is a tensor request: a newer one cancels it */
    qs_progress tensor_prog; /* its progress (into app->jobs.job_pct) and cancel flag */
    int hold_at;             /* test hook: the next tensor job stops at this step until released (-1: none) */
    bool held;               /* it is stopped there */
    bool gen_running;        /* a generation runs: a tensor request cancels it (and queues it again) */
    volatile int gen_cancel;
    /* the long jobs on the calibration text: pending bits (1u << job_kind), run in the order of
     * job_kind after tensor requests and before generation */
    unsigned long_pending;
    char calib_path[256];
    qs_progress calib_prog;  /* of the running long job (Esc cancels) */
    const char *job_label;   /* its progress line: "calibrating: chunk" … */
    char label[96];          /* a job label made at run time */
    qs_qconfig scan_cfg;
    app_view_req view;       /* of the pending tensor request */
    qs_recipe_table export_table; /* the export job's recipe (owned), file and format */
    char export_path[512];
    int export_format;
    qs_qconfig *ppl_cfg;     /* the `p` job's per-tensor configs and text */
    char ppl_path[256];
    qs_kld_base kbase;       /* the original model's records on kbase_path (computed once) */
    char kbase_path[256];
    int tensor;
    qs_qconfig cfg;
    tensor_cache cache;
    app_result *result;      /* the tensor job's result buffer (the previous one, reused) */
    /* generation: the configs of every tensor at the request, and the two models */
    bool gen_pending;
    qs_qconfig *gen_cfg;
    char gen_prompt[128];
    qs_vocab *vocab;
    qs_llm *base, *quant;
    qs_qconfig *applied;   /* what the quantized model holds per tensor */
    bool *applied_set;
};

/* the kinds, in the order the loop takes them: a tensor request first, the long jobs on the
 * calibration text next (in this order), the generation last */
typedef enum job_kind {
    JOB_TENSOR, JOB_CALIB, JOB_SCAN, JOB_PARETO, JOB_EXPORT, JOB_PPL, JOB_GEN, JOB_KINDS
} job_kind;

/* what a job took from the queue at its start (each kind uses its part; finish frees it) */
typedef struct job_args {
    int tensor;
    qs_qconfig cfg;
    app_view_req view;
    char path[512];
    qs_recipe_table table;
    int format;
    qs_qconfig *cfgs;
    char prompt[128];
} job_args;

/* one job kind: start takes its request off the queue (w->mu held), run computes (mu not held),
 * finish undoes what start set and frees what it took (mu held) */
typedef struct job_ops {
    const char *name;
    void (*start)(worker *w, job_args *j);
    void (*run)(worker *w, job_args *j);
    void (*finish)(worker *w, job_args *j);
} job_ops;

extern const job_ops calib_job_ops, scan_job_ops, pareto_job_ops, export_job_ops, ppl_job_ops, gen_job_ops;

/* one byte on the pipe: the UI redraws */
void worker_notify(worker *w);
/* the tensor's calibration view: required by gptq/awq, optional (the output error) for the rest */
int worker_calib_view(const app *a, const qs_tensor *x, const qs_qconfig *cfg, qs_calib *v, char *msg, size_t n);

#endif
