/* core/recipe/actq.h — simulated activation quantization at every linear input (W8A8, W4A8 …) and
 * SmoothQuant's migration of activation outliers into the weights.
 *
 * An activation spec says how the input x of each linear product is fake-quantized (rounded to a
 * symmetric integer grid and back to floats) before the product: `intB:dynamic` (a scale per token,
 * max|x_t|/qmax, computed at run time) or `intB:static[:per-tensor|:per-channel][:pNN.N]` (scales
 * fixed from calibration: per tensor, or per input channel; absmax of the calibration activations,
 * or a percentile of |x| for per-tensor ranges). qmax = 2^(B−1) − 1, codes in [−qmax, qmax], round
 * half to even. Calibration (qs_act_calibrate) observes every distinct linear input of the engine as
 * the products see it (after any smoothing division) and keeps per-channel absmax, the tensor's
 * absmax and a log-spaced histogram of |x| (64 bins an octave, so percentiles are within 1.1 %).
 * Smoothing (qs_act_smooth_scales): s_j = max|X_j|^α / max_w max_r |W_rj|^(1−α), x/s goes into the
 * product and W·diag(s) into the weight quantizer, so outlier channels move into the weights. */
#ifndef QS_ACTQ_H
#define QS_ACTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/quant/actquant.h"
#include "core/util/err.h"
#include "core/util/progress.h"

struct qs_llm;

typedef enum qs_act_mode { QS_ACT_NONE, QS_ACT_DYNAMIC, QS_ACT_STATIC } qs_act_mode;

typedef struct qs_act_spec {
    qs_act_mode mode;
    int bits;            /* 2 … 8 */
    bool per_channel;    /* static: a scale per input channel (else one per tensor) */
    double pct;          /* static per-tensor: range = this percentile of |x| (0: absmax) */
} qs_act_spec;

int qs_act_spec_parse(const char *s, qs_act_spec *out, qs_err *err);
void qs_act_spec_format(const qs_act_spec *s, char *buf, size_t n);
#define QS_ACT_HIST_BINS 2560 /* log2|x| from −24 to +16, 64 bins an octave; bin 0 also holds 0 */
typedef struct qs_act_input {
    char names[3][64];   /* the GGUF names of the weights that read this input */
    int n_names;
    int64_t cols, count; /* count: values seen (tokens × cols) */
    float *chan_absmax;  /* [cols] */
    double absmax, sumsq;
    uint64_t *hist;      /* [QS_ACT_HIST_BINS] of |x| */
} qs_act_input;

typedef struct qs_act_stats {
    qs_act_input *in;    /* in the order the model reads them */
    int n;
    int64_t tokens;
} qs_act_stats;

/* Runs nc chunks of n_ctx tokens (toks[nc·n_ctx], first token replaced by bos ≥ 0) through l and
 * collects the statistics of every linear input, as the products see it (divided by a weight's
 * smoothing scales if it has them, before any activation quantization). */
int qs_act_calibrate(struct qs_llm *l, const int32_t *toks, int nc, int n_ctx, int32_t bos, qs_progress *prog,
                     qs_act_stats *out, qs_err *err);
void qs_act_stats_free(qs_act_stats *s);
const qs_act_input *qs_act_stats_find(const qs_act_stats *s, const char *weight);
/* the pct percentile of |x| of one input from its histogram (the upper edge of the bin that holds
 * it, at most absmax) */
double qs_act_percentile(const qs_act_input *in, double pct);
/* the static scales of spec for one input: n_scale 1 or cols values (range / qmax) into scale */
int64_t qs_act_static_scales(const qs_act_spec *spec, const qs_act_input *in, float *scale);

/* Smoothing scales of one input for its weights w[k] (rows[k] × cols floats each):
 * s_j = a_j^α / m_j^(1−α) with a_j = max|X_j|, m_j = max over the weights and rows of |W_rj|;
 * 1 where either is 0. */
void qs_act_smooth_scales(const qs_act_input *in, const float *const *w, const int64_t *rows, int n_w, double alpha,
                          float *s);

/* Smooths every linear input of l that st observed (but the output projection of a tied model):
 * the weights that read it are read from l (so call this before a recipe changes them), scaled by
 * s (qs_act_smooth_scales with alpha) and installed requantized with tab's config for them (the
 * entry is then marked keep, so applying tab afterwards leaves them alone), else with their file
 * type (float types stay floats); the products divide their input by s. GPTQ/AWQ entries: an error. */
struct qs_model;
struct qs_recipe_table;
int qs_act_smooth(struct qs_llm *l, const struct qs_model *m, const qs_act_stats *st, double alpha,
                  struct qs_recipe_table *tab, qs_progress *prog, qs_err *err);

/* Sets spec on every linear product of l (static ranges from st, which must cover each of them). */
int qs_act_apply(struct qs_llm *l, const qs_act_spec *spec, const qs_act_stats *st, qs_err *err);

/* The relative output error of each linear product under spec (static scales from st):
 * ‖Q(x)·Wᵀ − x·Wᵀ‖² and ‖x·Wᵀ‖² summed over the chunks' tokens (x as the product sees it, after
 * smoothing; the weights as l holds them), one entry a weight in the order they run. */
typedef struct qs_act_error {
    char name[64];
    double err2, ref2;
} qs_act_error;
int qs_act_output_errors(struct qs_llm *l, const int32_t *toks, int nc, int n_ctx, int32_t bos, const qs_act_spec *spec,
                         const qs_act_stats *st, qs_progress *prog, qs_act_error **out, int *n_out, qs_err *err);

#endif
