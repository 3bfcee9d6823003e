/* tui/cli.h — the scriptable command line: `quantscope COMMAND …`.
 * Exit status 0 on success, 1 on a usage error, 2 on bad input (or i/o, unsupported);
 * errors go to stderr as "quantscope: FILE: what is wrong". */
#ifndef QS_CLI_H
#define QS_CLI_H

#include "core/err.h"

enum { QS_EXIT_OK = 0, QS_EXIT_USAGE = 1, QS_EXIT_INPUT = 2 };

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
struct qs_model;
struct qs_llm;
/* loads, resolves and applies a recipe file to l (errors printed); exit status */
int qs_cli_apply_recipe(const char *path, const struct qs_model *m, struct qs_llm *l);

/* monotonic seconds, for elapsed times and ETAs */
double qs_cli_now(void);
/* Prints "quantscope: WHAT: msg" and returns the exit status for err's code. */
int qs_cli_fail(const char *what, const qs_err *err);
int qs_cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
