/* core/util/rx.c — bounded regular expressions (PCRE2, 8-bit, no JIT so the limits always apply). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "core/util/rx.h"

#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

/* ~ tens of milliseconds of backtracking at most per search, a few MiB of heap */
#define RX_MATCH_LIMIT 200000u
#define RX_DEPTH_LIMIT 2000u
#define RX_HEAP_LIMIT_KIB 4096u
#define RX_PARENS_NEST 64u

struct qs_rx {
    pcre2_code *code;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    char *pattern;
};

static int too_complex(qs_err *err, const char *pattern)
{
    return qs_err_set(err, QS_E_INPUT, "'%.80s%s' is too complex", pattern, strlen(pattern) > 80 ? "…" : "");
}

qs_rx *qs_rx_compile(const char *pattern, unsigned flags, qs_err *err)
{
    size_t len = strlen(pattern);
    if (len > QS_RX_MAX_PATTERN) {
        too_complex(err, pattern);
        return NULL;
    }
    qs_rx *rx = calloc(1, sizeof *rx);
    pcre2_compile_context *cctx = pcre2_compile_context_create(NULL);
    if (!rx || !cctx || !(rx->pattern = strdup(pattern)) || !(rx->mctx = pcre2_match_context_create(NULL))) {
        pcre2_compile_context_free(cctx);
        qs_rx_free(rx);
        qs_err_set(err, QS_E_OOM, "out of memory");
        return NULL;
    }
    pcre2_set_parens_nest_limit(cctx, RX_PARENS_NEST);
    pcre2_set_max_pattern_length(cctx, QS_RX_MAX_PATTERN);
    int ec;
    PCRE2_SIZE off;
    /* POSIX ERE on a tensor name: no newline or UTF subtleties; $ only at the very end */
    uint32_t opts = PCRE2_DOLLAR_ENDONLY | PCRE2_NEVER_UTF | PCRE2_NEVER_UCP | PCRE2_NEVER_BACKSLASH_C |
                    (flags & QS_RX_ICASE ? PCRE2_CASELESS : 0);
    rx->code = pcre2_compile((PCRE2_SPTR)pattern, len, opts, &ec, &off, cctx);
    pcre2_compile_context_free(cctx);
    if (!rx->code) {
        PCRE2_UCHAR why[128];
        if (pcre2_get_error_message(ec, why, sizeof why) < 0) strcpy((char *)why, "syntax error");
        /* size and nesting limits: the pattern is valid but too big to run safely */
        bool big = ec == PCRE2_ERROR_PATTERN_TOO_LARGE || ec == PCRE2_ERROR_PARENTHESES_NEST_TOO_DEEP ||
                   ec == PCRE2_ERROR_PATTERN_TOO_COMPLICATED || ec == PCRE2_ERROR_PATTERN_STRING_TOO_LONG ||
                   ec == PCRE2_ERROR_HEAP_FAILED;
        if (big) too_complex(err, pattern);
        else qs_err_set(err, QS_E_INPUT, "'%.80s' is not a valid regular expression (%s)", pattern, (char *)why);
        qs_rx_free(rx);
        return NULL;
    }
    rx->md = pcre2_match_data_create(1, NULL);
    if (!rx->md) {
        qs_rx_free(rx);
        qs_err_set(err, QS_E_OOM, "out of memory");
        return NULL;
    }
    pcre2_set_match_limit(rx->mctx, RX_MATCH_LIMIT);
    pcre2_set_depth_limit(rx->mctx, RX_DEPTH_LIMIT);
    pcre2_set_heap_limit(rx->mctx, RX_HEAP_LIMIT_KIB);
    return rx;
}

int qs_rx_search(const qs_rx *rx, const char *s, qs_err *err)
{
    int rc = pcre2_match(rx->code, (PCRE2_SPTR)s, strlen(s), 0, 0, rx->md, rx->mctx);
    if (rc >= 0) return 1;
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT || rc == PCRE2_ERROR_HEAPLIMIT)
        return too_complex(err, rx->pattern);
    if (rc == PCRE2_ERROR_NOMEMORY) return qs_err_set(err, QS_E_OOM, "out of memory matching '%.80s'", rx->pattern);
    return qs_err_set(err, QS_E_INPUT, "'%.80s': matching failed (PCRE2 error %d)", rx->pattern, rc);
}

const char *qs_rx_pattern(const qs_rx *rx) { return rx->pattern; }

void qs_rx_free(qs_rx *rx)
{
    if (!rx) return;
    pcre2_match_data_free(rx->md);
    pcre2_match_context_free(rx->mctx);
    pcre2_code_free(rx->code);
    free(rx->pattern);
    free(rx);
}
