/* cli/cli.h — the scriptable command line: `quantscope COMMAND …`.
 * Exit status 0 on success, 1 on a usage error, 2 on bad input (or i/o, unsupported);
 * errors go to stderr as "quantscope: FILE: what is wrong". */
#ifndef QS_CLI_H
#define QS_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "core/recipe/actq.h"
#include "core/data/calib.h"
#include "core/util/err.h"
#include "core/util/escape.h"
#include "tui/tui.h"

/* a string from a file (or the command line) as it may reach the terminal (core/escape.h); the
 * buffer lives until the end of the enclosing block */
#define QS_ESC(s) qs_escape((s), (char[1024]){0}, 1024)


int qs_cli_main(int argc, char **argv);
int qs_cli_info(int argc, char **argv);
int qs_cli_dump(int argc, char **argv);
int qs_cli_devices(int argc, char **argv);
int qs_cli_quant(int argc, char **argv);
int qs_cli_methods(int argc, char **argv);
int qs_cli_tokenize(int argc, char **argv);
int qs_cli_generate(int argc, char **argv);
int qs_cli_ppl(int argc, char **argv);
int qs_cli_recipe(int argc, char **argv);
int qs_cli_export(int argc, char **argv);
int qs_cli_vocab(int argc, char **argv);
int qs_cli_train(int argc, char **argv);
int qs_cli_qat(int argc, char **argv);
int qs_cli_synth(int argc, char **argv);
int qs_cli_imatrix(int argc, char **argv);
int qs_cli_scan(int argc, char **argv);
int qs_cli_suggest(int argc, char **argv);
int qs_cli_acts(int argc, char **argv);
struct qs_scan_row;
/* a scan CSV (all rows of one config, which goes to config); exit status */
int qs_cli_read_scan(const char *path, struct qs_scan_row **rows, int *n, char *config, size_t cn);
struct qs_model;
struct qs_llm;
struct qs_vocab;
/* calibration for gptq/awq entries: --calib TEXT [--calib-chunks N] [--calib-ctx N]
 * [--calib-rows N] [--one-shot] */
typedef struct qs_cli_calib {
    const char *text;
    int chunks, ctx, rows;
    bool one_shot;       /* GPTQ on the original activations instead of block by block */
} qs_cli_calib;
void qs_cli_calib_init(qs_cli_calib *c);
/* consumes argv[*i] (and its value) when it is a calibration option: 1, else 0 (-1: no value) */
int qs_cli_calib_arg(int argc, char **argv, int *i, qs_cli_calib *c);
struct qs_recipe_table;
struct qs_progress;
struct qs_calib_opts qs_cli_calib_opts(const qs_cli_calib *c);
/* the vocabulary of m (read from GGUF files only) and an inference context of ctx tokens; both
 * NULL and the error printed (naming path) on failure; exit status */
int qs_cli_vocab_llm(const char *path, const struct qs_model *m, int ctx, struct qs_vocab **v, struct qs_llm **l);
struct qs_gguf;
/* the same with the vocabulary of tok (NULL: m's own GGUF), for HF checkpoints */
int qs_cli_vocab_llm_from(const char *path, const struct qs_model *m, const struct qs_gguf *tok, int ctx,
                          struct qs_vocab **v, struct qs_llm **l);
/* collects calibration statistics on c's text (prefix, hessians: as qs_calib_opts); exit status */
int qs_cli_collect(struct qs_llm *l, const struct qs_vocab *v, const qs_cli_calib *c, const char *prefix, bool hessians,
                   struct qs_calib_set **out);
struct qs_recipe_sink;
/* calibrates on c's text and applies t (errors printed; sink may be NULL); exit status */
int qs_cli_apply_calibrated(const char *path, const struct qs_recipe_table *t, struct qs_llm *l, const struct qs_vocab *v,
                            const qs_cli_calib *c, const struct qs_recipe_sink *sink, struct qs_progress *prog);
/* loads and resolves a recipe file against m (warnings printed); errors printed; exit status */
int qs_cli_recipe_table(const char *path, const struct qs_model *m, struct qs_recipe_table *t);
/* applies a resolved table to l (gptq/awq entries calibrated on calib's text); exit status */
int qs_cli_apply_table(const char *path, const struct qs_recipe_table *t, struct qs_llm *l, const struct qs_vocab *v,
                       const qs_cli_calib *calib);
/* loads, resolves and applies a recipe file to l (errors printed); calib (may be NULL or have
 * no text) calibrates gptq/awq entries on its text; exit status */
int qs_cli_apply_recipe(const char *path, const struct qs_model *m, struct qs_llm *l, const struct qs_vocab *v,
                        const qs_cli_calib *calib);

/* activation quantization: --act SPEC (core/actq.h) [--smooth α], with a recipe's weights */
typedef struct qs_cli_act {
    qs_act_spec spec;    /* mode QS_ACT_NONE: weights only */
    double smooth;       /* SmoothQuant α, < 0: none */
    const char *recipe;  /* applied after smoothing (NULL: the file's weights) */
} qs_cli_act;
/* consumes argv[*i] (and its value) when it is --act or --smooth: 1, else 0 (-1: no value,
 * -2: a bad value, the usage error printed) */
int qs_cli_act_arg(int argc, char **argv, int *i, qs_cli_act *a);
/* smoothing (calibrated on c's text), the recipe, then the activation spec (static ranges
 * calibrated on c's text with the final weights); errors printed; exit status */
int qs_cli_apply_act(const qs_cli_act *a, const struct qs_model *m, struct qs_llm *l, const struct qs_vocab *v,
                     const qs_cli_calib *c);

/* a text file as one token stream (the vocabulary adds its BOS); errors printed; exit status */
int qs_cli_tokenize_file(const struct qs_vocab *v, const char *path, int32_t **ids, int64_t *n);

/* monotonic seconds, for elapsed times and ETAs */
double qs_cli_now(void);
/* the one-line progress display on stderr: "WHAT done/total, elapsed, ETA"; a qs_progress report
 * callback whose ctx is a qs_cli_prog (qs_cli_prog_start sets the clock) */
typedef struct qs_cli_prog {
    const char *what;    /* "perplexity: chunk" */
    double t0;
} qs_cli_prog;
qs_cli_prog qs_cli_prog_start(const char *what);
void qs_cli_progress(void *ctx, int64_t done, int64_t total);
/* Prints "quantscope: WHAT: msg" and returns the exit status for err's code. */
int qs_cli_fail(const char *what, const qs_err *err);
int qs_cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
