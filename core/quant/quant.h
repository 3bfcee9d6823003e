/* core/quant/quant.h — the one quantizer interface and the one method table.
 *
 * A qs_qconfig (method + knobs) and a float matrix (rows × cols, quantized along each row)
 * go into qs_quant_run; out come the encoded bytes (GGML types: exactly the GGUF tensor data;
 * RTN: one code per weight; NF4/FP4: the packed nibbles), the side tensors (scales, zeros,
 * absmax …), the dequantized floats, bits per weight including every scale and zero, and the
 * grid of each group. Every method is one file under core/quant/ exporting its qs_method_ops
 * (below) and one line in core/quant/methods.def, which makes qs_method_table; the CLI, the
 * workbench, the recipe engine and export call the ops and never ask which method it is. */
#ifndef QS_QUANT_H
#define QS_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/quant/bnb4.h"
#include "core/util/err.h"

typedef enum qs_knob_id {
    QS_KNOB_BITS, QS_KNOB_GROUP, QS_KNOB_ASYM, QS_KNOB_CLIP, QS_KNOB_BLOCK, QS_KNOB_DOUBLE_QUANT,
    QS_KNOB_DAMP, QS_KNOB_ACT_ORDER, QS_KNOB_STATIC_GROUPS, QS_KNOB_ALPHA, QS_KNOB_DUO, QS_KNOB_GGML,
    QS_KNOB_COUNT
} qs_knob_id;

typedef struct qs_knob_info {
    const char *name;        /* as typed on the CLI: bits=4, group=128 … */
    const char *desc;
    bool is_bool;
    int min, max;            /* integer knobs */
    const int *steps;        /* values +/- cycles through (NULL: every integer) */
    int n_steps;
    double unit;             /* > 0: the knob holds value/unit as an integer (damp 0.01 = 10 × 0.001) */
} qs_knob_info;

typedef struct qs_method_ops qs_method_ops; /* what a method does: core/quant/method.h */

typedef struct qs_method {
    const char *name;        /* "rtn", "nf4", "q4_K", … (GGML types as llama.cpp spells them) */
    const char *desc;        /* one line */
    const qs_method_ops *ops;
    int ggml_type;           /* the GGML methods: their type; else -1 */
} qs_method;

/* the registered methods, in the order of core/quant/methods.def */
extern const qs_method qs_method_table[];
extern const int qs_method_count;
const qs_method *qs_method_find(const char *name);   /* case-insensitive; NULL if unknown */
const qs_knob_info *qs_knob_get(qs_knob_id k);
/* the method's flags and knobs (its ops) */
unsigned qs_method_knobs(const qs_method *m);          /* bit (1 << qs_knob_id) for every knob that applies */
bool qs_method_needs_calib(const qs_method *m);        /* a Hessian or calibration rows */
bool qs_method_needs_hessian(const qs_method *m);
bool qs_method_uses_imatrix(const qs_method *m);

typedef struct qs_qconfig {
    const qs_method *method;
    int bits;                /* RTN: 2…8 */
    int group;               /* RTN: −1 tensor, 0 row, else the group size */
    bool asym, clip;
    int block;               /* NF4/FP4 block size */
    bool double_quant;       /* NF4/FP4 */
    int damp;                /* GPTQ: percdamp in thousandths (10 = 0.01) */
    bool act_order, static_groups; /* GPTQ */
    int alpha;               /* AWQ: −1 search the grid, else α = alpha/20 */
    bool duo;                /* AWQ: duo scaling */
    int ggml;                /* AWQ: −1 its own integer grid; else the GGML type the scaled, clipped W·s is
                                quantized with (llama.cpp's AWQ route: fold the scales, then any type) */
} qs_qconfig;

void qs_qconfig_default(qs_qconfig *c, const qs_method *m);
int qs_qconfig_get(const qs_qconfig *c, qs_knob_id k);
/* Sets a knob from text ("4", "true", "row", "tensor"); errors name the knob and the range. */
int qs_qconfig_set(qs_qconfig *c, const char *knob, const char *value, qs_err *err);
/* Steps a knob to the next (dir > 0) or previous value of its range; returns false at an end. */
bool qs_qconfig_step(qs_qconfig *c, qs_knob_id k, int dir);
/* same method and knobs (compare configs with this, never memcmp: the struct has padding) */
bool qs_qconfig_equal(const qs_qconfig *x, const qs_qconfig *y);
/* a knob's value as typed and shown: "0.01", "search", "row", "true" */
void qs_knob_format(qs_knob_id k, int v, char *buf, size_t n);
/* "rtn w4 g128 sym", "nf4 b64 dq", "q4_K", "gptq w4 g128 sym damp 0.01 act-order" */
void qs_qconfig_describe(const qs_qconfig *c, char *buf, size_t n);
/* bits per weight of a config on a rows × cols tensor, with every scale and zero as stored (GGML:
 * the effective type after llama-quantize's fallback, -1 for none; GPTQ/AWQ: their checkpoint
 * layouts — f16 scales, packed zeros, GPTQ's g_idx) */
double qs_qconfig_bpw(const qs_qconfig *c, int64_t rows, int64_t cols, int effective_type);
/* Checks the config against a shape; for GGML types reports llama-quantize's block-size
 * fallback in *effective_type (-1 when there is none: an error). */
int qs_qconfig_check(const qs_qconfig *c, int64_t rows, int64_t cols, int *effective_type, qs_err *err);

typedef struct qs_qresult {
    int64_t rows, cols;
    qs_qconfig cfg;
    int ggml_type;           /* GGML methods: the type actually used (after fallback), else -1 */
    bool fell_back;
    uint8_t *data;           /* encoded bytes */
    size_t nbytes;
    int64_t group_len;       /* weights per scale group (GGML: per sub-block) */
    int64_t n_groups;
    float *scales;           /* per group: RTN scale, NF4 absmax used, GGML sub-block step */
    float *zeros;            /* RTN asymmetric zero points; else NULL */
    float *clip_ratio;       /* RTN clip search: chosen ratio per group; else NULL */
    int32_t *g_idx;          /* GPTQ: the group (within its row) of each column; else NULL */
    float *col_scale;        /* AWQ: the channel scales s (the grid of column c is divided by s[c]) */
    double loss;             /* GPTQ: Σ ½(w−q)²/d²; AWQ: the chosen α's output MSE; else NAN */
    double out_err;          /* ‖X(W−Q)ᵀ‖²/‖XWᵀ‖² on the calibration rows; NAN without them */
    qs_bnb4 bnb;             /* NF4/FP4 side tensors */
    float *deq;              /* rows × cols */
    double bpw;
    int64_t n_clipped;       /* weights outside the range of their group's grid */
    char report[256];
} qs_qresult;

/* One weight's calibration view (made by qs_calib_for_tensor, core/calib.h, freed by qs_calib_free):
 * pointers into a calibration set (x_mean and H are made on request and owned here). GPTQ needs
 * its H, AWQ its rows. */
typedef struct qs_calib {
    int64_t cols;
    const float *H;      /* [cols][cols] 2/N_seq · Σ x xᵀ, or NULL */
    const float *x_mean; /* [cols] mean |x| */
    const float *X;      /* [n_rows][cols] kept input rows */
    int64_t n_rows;
    float *owned_H, *owned_mean; /* freed by qs_calib_free */
} qs_calib;

/* n_threads <= 0: all cores. imatrix: cols floats or NULL (GGML types use it as llama-quantize).
 * calib: NULL, or the tensor's calibration view; with rows in it every method also reports the
 * relative output error (out_err). */
int qs_quant_run(const qs_qconfig *cfg, const float *w, int64_t rows, int64_t cols, const struct qs_calib *calib,
                 const float *imatrix, int n_threads, qs_qresult *out, qs_err *err);
/* the same with progress and cancellation for the long methods (GPTQ's column blocks, AWQ's
 * search): a cancelled run returns QS_E_CANCELLED */
struct qs_progress;
int qs_quant_run_progress(const qs_qconfig *cfg, const float *w, int64_t rows, int64_t cols, const struct qs_calib *calib,
                          const float *imatrix, int n_threads, struct qs_progress *prog, qs_qresult *out, qs_err *err);
void qs_qresult_free(qs_qresult *r);
/* The grid of the group holding weight (row, col): ascending values, returns the count
 * (<= 256; 0 when the format has no grid, e.g. F16). */
int qs_qresult_levels(const qs_qresult *r, int64_t row, int64_t col, float *levels);

/* The scale of each weight's group — its grid's step (RTN, GPTQ, AWQ: scale; AWQ divided by the
 * channel scale; GGML: the sub-block's mean level spacing; NF4/FP4: the block's absmax) — as
 * rows × cols floats, 0 where the format has no grid; for heatmaps of the scales. */
void qs_qresult_group_scales(const qs_qresult *r, float *out);

/* llama-quantize's block-size fallback (spec/llama-quant-presets.md §4): the type to use for a
 * row of ne0 weights, or -1 when the requested type has none. */
int qs_ggml_fallback_type(int type, int64_t ne0);

/* ---- what a method is: its ops ----
 * Every method is one file under core/quant/ exporting its qs_method_ops, and one line in
 * core/quant/methods.def (name, description, ops, GGML type); nothing outside core/quant/ asks
 * which method a config holds — it calls these. */

/* the HF checkpoint formats a method's grids go into (export_hf.c) */
typedef enum qs_ckpt_format { QS_CKPT_NONE = -1, QS_CKPT_GPTQ, QS_CKPT_AWQ } qs_ckpt_format;

/* what the explain view shows of a result's first group */
typedef struct qs_explain_in {
    float min, max;          /* of the group's weights */
    float scale, zero;       /* the group's scale (step, absmax) and zero point */
    int n_levels;            /* of its grid */
    int ggml_type;           /* the type used (after fallback), -1 none */
    int64_t cols;
} qs_explain_in;
typedef enum qs_explain_style { QS_EXPLAIN_FORMULA, QS_EXPLAIN_EXAMPLE, QS_EXPLAIN_WARN } qs_explain_style;
typedef struct qs_explain_line {
    qs_explain_style style;
    char text[256];
} qs_explain_line;
enum { QS_EXPLAIN_MAX_LINES = 4, QS_CODE_NONE = -999 };

/* what a method's run gets besides the weights (qs_quant_run's arguments) */
typedef struct qs_quant_in {
    const struct qs_calib *calib;
    const float *imatrix;
    int n_threads;
    struct qs_progress *prog;
    int effective_type;      /* from check: the GGML type after fallback, -1 none */
} qs_quant_in;

struct qs_qgrid;

struct qs_method_ops {
    /* the knobs users set (bit 1 << qs_knob_id) and the flags the callers plan with */
    unsigned knobs;
    bool needs_hessian;      /* calibration: the Hessian H of the layer's inputs (GPTQ) */
    bool needs_calib_rows;   /* calibration: the input rows themselves (AWQ) */
    bool joint_by_input;     /* quantized together with the tensors reading the same input (AWQ) */
    bool ggml_native;        /* GGUF blocks straight from the weights: export quantizes it itself */
    qs_ckpt_format ckpt;     /* the HF checkpoint format its grids go into, QS_CKPT_NONE none */
    const char *gguf_near;   /* the nearest GGML type when it has no integer grid (NULL: by its bits) */
    bool (*uses_imatrix)(const qs_method *m);        /* NULL: never */
    void (*defaults)(qs_qconfig *c);                 /* after the common defaults; NULL: none */
    void (*describe)(const qs_qconfig *c, char *buf, size_t n);
    /* the shape check (and the effective GGML type) and the bits per weight, as quant.h says */
    int (*check)(const qs_qconfig *c, int64_t rows, int64_t cols, int *effective_type, qs_err *err);
    double (*bpw)(const qs_qconfig *c, int64_t rows, int64_t cols, int effective_type);
    /* the GGML type the config asks for (before fallback), -1 none */
    int (*ggml_request)(const qs_qconfig *c);
    /* quantizes into r (rows, cols, cfg, deq allocated, the rest zero): data, side tensors,
     * deq, bpw, group_len/n_groups, n_clipped, report */
    int (*run)(qs_qresult *r, const float *w, const qs_quant_in *in, qs_err *err);
    /* the weights again from r's encoded bytes and side tensors (rows × cols) */
    void (*dequantize)(const qs_qresult *r, float *out);
    /* weight i's code as explain shows it; NULL: QS_CODE_NONE */
    int (*code_at)(const qs_qresult *r, int64_t i);
    /* the grid (sorted) and the scale of weight (row, col)'s group; r->group_len > 0 */
    int (*levels)(const qs_qresult *r, int64_t row, int64_t col, float *levels);
    float (*group_scale)(const qs_qresult *r, int64_t row, int64_t col);
    /* the formula lines with the example's numbers; returns the count (<= QS_EXPLAIN_MAX_LINES) */
    int (*explain)(const qs_qconfig *c, const qs_explain_in *ex, qs_explain_line *out);
    /* export: rows [row0, row0+nrows) as an integer grid (NULL: none); the grid's GGML type (-1 and
     * why not, as qs_qconfig_ggml_type); whether columns are quantized out of order (desc_act) */
    int (*to_grid)(const qs_qresult *r, int64_t row0, int64_t nrows, struct qs_qgrid *g, qs_err *err);
    bool (*desc_act)(const qs_qconfig *c);
    /* the config to use when its column scales have no op to fold into (NULL: unchanged) */
    void (*unfolded)(qs_qconfig *c);
    /* rows quantize independently, in blocks of this many consecutive weights (1: each row on
     * its own), so chunks of whole rows whose weight counts are multiples of it give the same
     * bytes as the whole tensor; 0: the tensor at once (NULL: 0) */
    int64_t (*row_block)(const qs_qconfig *c);
};

/* the ops' answers for a config or result (NULL ops give the defaults named above) */
int qs_qconfig_ggml_request(const qs_qconfig *c);
int64_t qs_qconfig_row_block(const qs_qconfig *c);
/* the method writes GGUF blocks straight from the weights (a GGML type) */
bool qs_qconfig_ggml_native(const qs_qconfig *c);
int qs_qconfig_explain(const qs_qconfig *c, const qs_explain_in *ex, qs_explain_line *out);
int qs_qresult_code_at(const qs_qresult *r, int64_t i);
void qs_qresult_dequantize(const qs_qresult *r, float *out);

#endif
