/* core/quant.h — the one quantizer interface and the one method table.
 *
 * A qs_qconfig (method + knobs) and a float matrix (rows × cols, quantized along each row)
 * go into qs_quant_run; out come the encoded bytes (GGML types: exactly the GGUF tensor data;
 * RTN: one code per weight; NF4/FP4: the packed nibbles), the side tensors (scales, zeros,
 * absmax …), the dequantized floats, bits per weight including every scale and zero, and the
 * grid of each group. Every method registers in qs_method_table with its knobs; the CLI's
 * `methods`, the TUI's knob panel and the explain view read the table. Later methods (GPTQ,
 * AWQ) plug in through the calibration argument. */
#ifndef QS_QUANT_H
#define QS_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bnb4.h"
#include "err.h"

typedef enum qs_method_kind {
    QS_METHOD_RTN, QS_METHOD_NF4, QS_METHOD_FP4, QS_METHOD_GGML, QS_METHOD_GPTQ, QS_METHOD_AWQ
} qs_method_kind;

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

typedef struct qs_method {
    const char *name;        /* "rtn", "nf4", "q4_K", … (GGML types as llama.cpp spells them) */
    const char *desc;        /* one line */
    qs_method_kind kind;
    int ggml_type;           /* QS_METHOD_GGML: the type; else -1 */
    unsigned knobs;          /* bit (1 << qs_knob_id) for every knob that applies */
    bool uses_imatrix;
    bool needs_calib;
} qs_method;

extern const qs_method qs_method_table[];
extern const int qs_method_count;
const qs_method *qs_method_find(const char *name);   /* case-insensitive; NULL if unknown */
const qs_knob_info *qs_knob_get(qs_knob_id k);

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

struct qs_calib; /* calibration statistics (core/calib.h): GPTQ needs its H, AWQ its rows */

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

#endif
