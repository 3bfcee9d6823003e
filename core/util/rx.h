/* core/util/rx.h — the bounded regular-expression engine of recipes, --set and the workbench's
 * filter (PCRE2). A pattern is compiled once (qs_rx_compile) and searched (unanchored, as POSIX
 * regexec is) with match, depth and heap limits, so no pattern can take more than a fraction of
 * a second or more than a few MiB per search: a search that hits a limit is an error
 * ("too complex"), never a silent non-match. The POSIX ERE syntax recipes used (classes,
 * [[:digit:]], alternation, counted repetition, back-references) keeps its meaning. */
#ifndef QS_RX_H
#define QS_RX_H

#include <stdbool.h>

#include "core/util/err.h"

typedef struct qs_rx qs_rx;

#define QS_RX_MAX_PATTERN 1024   /* bytes */

enum { QS_RX_ICASE = 1 };

/* NULL on error: QS_E_INPUT with "'P' is not a valid regular expression (why)" for syntax
 * errors, "'P' is too complex" for patterns beyond the compile limits. */
qs_rx *qs_rx_compile(const char *pattern, unsigned flags, qs_err *err);
/* 1: the pattern is found in s; 0: not; negative (QS_E_INPUT, "too complex") at a limit. */
int qs_rx_search(const qs_rx *rx, const char *s, qs_err *err);
const char *qs_rx_pattern(const qs_rx *rx);
void qs_rx_free(qs_rx *rx);

#endif
