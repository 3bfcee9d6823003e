/* core/recipe/scan.h — sensitivity scan: quantize one tensor (or one block) alone with a config, measure
 * the KL divergence and perplexity change against the original model on an eval text (the base
 * records computed once), restore it, next; then rank by mean KLD. A scan can resume: the units
 * already measured are passed in and skipped; units the config cannot take (a shape without a
 * fallback) are left out. */
#ifndef QS_SCAN_H
#define QS_SCAN_H

#include <stdbool.h>
#include <stdint.h>

#include "core/util/err.h"
#include "core/model/infer.h"
#include "core/data/kld.h"
#include "core/model/model.h"
#include "core/util/progress.h"
#include "core/quant/quant.h"
#include "core/model/tokenizer.h"

typedef struct qs_scan_row {
    char unit[256];       /* a tensor name, or "blk.N" */
    int block;           /* -1 outside the blocks */
    int64_t params;
    double bpw;          /* of the config on this unit (after fallbacks) */
    double kld, kld_unc, ppl, dppl, same_top;
} qs_scan_row;

typedef struct qs_scan_opts {
    qs_qconfig cfg;      /* a config that needs no calibration */
    bool per_block;
    int n_ctx, n_chunks; /* of the eval text */
} qs_scan_opts;

typedef void (*qs_scan_row_fn)(void *ctx, const qs_scan_row *row);

/* The units of a scan in model order: every quantizable tensor, or every block. */
int qs_scan_units(const qs_model *m, bool per_block, char (**names)[256], int *n, qs_err *err);
/* Runs the scan; rows[0 … n_done) are already measured (resume). Each new row goes to on_row as it
 * is measured (may be NULL). out: every row (given and new), sorted by descending KLD, *n_out
 * of them; ppl_base: the base model's perplexity on the same chunks. */
int qs_scan_run(qs_llm *l, const qs_model *m, const qs_vocab *v, const char *text, size_t len, const qs_scan_opts *o,
                const qs_scan_row *done, int n_done, qs_scan_row_fn on_row, void *ctx, qs_progress *prog,
                qs_scan_row **out, int *n_out, double *ppl_base, qs_err *err);

#endif
