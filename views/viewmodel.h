/* views/viewmodel.h — the workbench's application state as the views draw it (the only
 * global-like object of the program, owned by tui/tui.c; its key handling is tui/app.h).
 * Computation for the selected tensor runs on the worker (tui/worker.h); its results arrive as
 * a snapshot (app_result) the views draw. The views read this state and the queries below,
 * never tui/. */
#ifndef QS_VIEWMODEL_H
#define QS_VIEWMODEL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/model/model.h"
#include "core/quant/quant.h"
#include "core/quant/stats.h"
#include "views/plot.h"

enum { APP_HIST_BINS = 160, APP_TILE_ROWS = 64, APP_TILE_COLS = 160 };

enum reaction {
    R_NONE = 0, R_REDRAW = 1, R_RECOMPUTE = 2, R_QUIT = 4, R_RELAYOUT = 8, R_SAVE = 16, R_REGENERATE = 32,
    R_CALIBRATE = 64, R_CANCEL = 128, R_SCAN = 256, R_PARETO = 512, R_EXPORT = 1024, R_PPL = 2048, R_VIEW = 4096, R_CHECKPOINT = 8192,
};

typedef enum app_mode {
    MODE_NORMAL, MODE_FILTER, MODE_HELP, MODE_EXPLAIN, MODE_CONFIRM_QUIT, MODE_RECIPE, MODE_BULK, MODE_SCAN, MODE_PARETO, MODE_PROMPT
} app_mode;
typedef enum app_pane { PANE_LAYERS, PANE_TENSOR, PANE_KNOBS, PANE_COUNT } app_pane;
typedef enum app_tab { TAB_HISTOGRAM, TAB_HEATMAP, TAB_CHANNELS, TAB_COUNT } app_tab;

/* what the tensor view asks the worker for besides the metrics: the histogram's range and the
 * heatmap's window (nr = 0: the whole tensor) and cell grid */
typedef struct app_view_req {
    bool tails;                    /* histogram of |w| beyond 3σ, both signs folded */
    int64_t heat_r0, heat_c0, heat_nr, heat_nc;
    int heat_pr, heat_pc;          /* cells (0: the pane's) */
} app_view_req;

/* what the worker computed for one (tensor, config) */
typedef struct app_result {
    int tensor;                    /* -1: none yet */
    qs_qconfig cfg;
    bool ok;
    char error[256];
    int64_t rows, cols;
    qs_metrics m;
    double bpw;
    int64_t bytes, n_clipped;
    int ggml_type;                 /* after fallback, -1 for non-GGML methods */
    char report[256];
    double out_err;                /* relative output error on calibration rows (NAN without them) */
    qs_dist dist;                  /* of the original weights */
    qs_hist_spec hist;
    int64_t hist_orig[APP_HIST_BINS], hist_deq[APP_HIST_BINS];
    float levels[256];             /* grid of the first group */
    int n_levels;
    float tiles_w[APP_TILE_ROWS * APP_TILE_COLS], tiles_err[APP_TILE_ROWS * APP_TILE_COLS];
    float tiles_scale[APP_TILE_ROWS * APP_TILE_COLS]; /* max group scale per cell (not in a preview) */
    int tile_rows, tile_cols;
    app_view_req view;             /* what was computed: the window the tiles cover, tails or not */
    double tail_cut;               /* tails: the 3σ the histogram starts at */
    int sampled;                   /* > 1: a preview quantized on every sampled-th row (the full result follows) */
    /* explain: the first group */
    float ex_w[8], ex_deq[8];
    int ex_code[8];               /* the method's codes; QS_CODE_NONE (GGML): not shown */
    int ex_n;
    float ex_scale, ex_zero, ex_min, ex_max;
    /* channels: the 8 rows with the largest max/median ratio */
    int ch_row[8];
    qs_channel_stats ch[8];
    float ch_err[8];
} app_result;

/* the generation pane: the original model's greedy continuation beside the quantized one's */
typedef struct app_gen {
    bool enabled;                  /* the model can run (llama family, GGUF vocabulary) */
    bool ready;
    char prompt[128];
    char base[1024], quant[1024];  /* continuations (prompt excluded) */
    int diverge_base, diverge_quant; /* byte offsets of the first differing token, -1 if none */
    int n_quantized;               /* tensors quantized in the quantized model so far */
    char error[160];
} app_gen;

/* `p`: perplexity and KL divergence of the current recipe against the original model */
typedef enum app_sort { SORT_FILE, SORT_NAME, SORT_SIZE, SORT_ERROR, SORT_COUNT } app_sort;
extern const char *const app_sort_names[SORT_COUNT];

typedef struct app_ppl {
    bool running, ready;
    double base, quant, kld, same_top;  /* PPLs, mean KLD, % same top token */
    int n_chunks, n_ctx;
    char error[160];
} app_ppl;

typedef struct undo_entry {
    int tensor;
    qs_qconfig before, after;
    int group;                     /* entries of one edit (a preset) share it and undo together */
} undo_entry;

/* the layer list, the filter and sort, focus/tab/mode, the knob cursor, and the heatmap's cursor and
 * the view asked of the worker: where the user is */
typedef struct app_selection {
    int *rows;                     /* visible entries: tensor index, or -(block + 2) for a block header */
    int n_rows, sel, top;
    bool *collapsed;               /* per block */
    int n_blocks;
    char filter[128];
    struct qs_rx *filter_rx;       /* filter compiled (once per change of filter_rx_of) */
    char filter_rx_of[128];
    char prompt_edit[128];         /* the generation prompt being typed (MODE_PROMPT) */
    int sort;                      /* app_sort: the order of the tensors inside each group */
    app_pane focus;
    app_tab tab;
    app_mode mode;
    int knob_sel;
    app_view_req view;             /* the histogram range and heatmap window asked for */
    int heat_cy, heat_cx;          /* the heatmap cursor (a cell) */
    int64_t heat_fr, heat_fc;      /* the weight it points at (-1: the cell's centre); zooms centre on it */
} app_selection;

/* the recipe being edited: per tensor config and error, undo/redo, the recipe view's cursor and
 * bulk edit */
typedef struct app_recipe_state {
    /* per tensor: the configuration chosen for it and its last measured relative error */
    qs_qconfig *cfg;
    float *rel_err;                /* -1: not measured */
    /* undo/redo of configuration changes */
    undo_entry *undo;
    int n_undo, undo_pos, undo_cap, undo_group;
    /* the recipe view */
    int recipe_sel, recipe_top;
    char bulk[160];                /* the recipe view's bulk edit being typed: PATTERN=CONFIG */
    bool unsaved;
    bool config_changed;           /* since the last generation request */
} app_recipe_state;

/* the worker's jobs and what they produced: the tensor job's progress, calibration, the
 * sensitivity scan, the Pareto view, perplexity and generation */
typedef struct app_jobs {
    bool busy;                     /* a job is queued or running */
    int job_tensor, job_pct;       /* the full result being computed: its tensor and how far (percent; -1:
                                      none) (guarded by lock) */
    app_gen gen;                   /* guarded by lock */
    app_ppl ppl;                   /* guarded by lock */
    char eval_path[256];           /* the text `p` evaluates on ("" : the calibration text) */
    /* calibration (gptq/awq; the output error of every method): run by the worker on calib_path */
    char calib_path[256];          /* "" when none was given */
    struct qs_calib_set *calib;    /* set by the worker once, under lock; owned by the app */
    int64_t calib_done, calib_total; /* guarded by lock */
    bool calib_running;            /* guarded by lock */
    char calib_status[256];        /* guarded by lock */
    /* the sensitivity scan (S): every tensor alone with one config, ranked by KLD (guarded by lock) */
    struct qs_scan_row *scan;      /* sorted, most sensitive first */
    int n_scan, scan_sel, scan_top;
    char scan_cfg[64];             /* the config scanned */
    int *scan_rank;                /* per tensor: its rank (0 = most sensitive), -1 when not scanned */
    bool scan_running;
    /* the Pareto view (P): summed KLD against bpw of suggested mixes ('*') and of llama-quantize's
     * presets (letters, named in pareto_name), from scans of the K-quant candidates (guarded by lock) */
    double pareto_x[48], pareto_y[48];
    char pareto_mark[48], pareto_name[48][8];
    int n_pareto;
    bool pareto_running;
} app_jobs;

/* how things are shown: the status line, the histogram's and heatmap's modes, the layout's
 * heatmap capacity, and the previous metrics the deltas are drawn against */
typedef struct app_screen {
    char status[256];
    bool log_counts;
    int heat_mode;                 /* 0 max |w|, 1 |error|, 2 the groups' scales */
    int heat_max_r, heat_max_c;    /* the most cells the tensor pane holds (set with each request) */
    qs_metrics prev_m;             /* the previous metrics, for deltas */
    double prev_bpw;
    bool have_prev;
} app_screen;

/* the application: owns the model, the four parts of its state and the worker's result */
typedef struct app {
    qs_model *model;
    app_selection nav;
    app_recipe_state rec;
    app_jobs jobs;
    app_screen screen;
    /* the result the views draw (guarded by lock) */
    pthread_mutex_t lock;
    app_result *res;
} app;

/* the tensor under the cursor, -1 on a block header */
int app_selected_tensor(const app *a);
bool app_tensor_quantizable(const app *a, int t);
/* the recipe resolved against the model and its totals: what the recipe view draws */
typedef struct app_recipe_totals {
    int64_t bytes, orig_bytes, elements;
    int n_quantized;
} app_recipe_totals;
/* number of config knobs shown for the selected tensor (method + its knobs) */
int app_knob_count(const app *a);
/* knob i of the selected tensor: -1 for the method line, else a qs_knob_id */
int app_knob_at(const app *a, int i);

#endif
