/* core/util/err.h — the one error convention of core/.
 *
 * Functions return int (0 ok, negative on error) or a pointer (NULL on error) and fill a
 * caller-provided qs_err. The message is one line without the file name; the CLI prints
 * "quantscope: FILE: msg". core/ never prints, never exits. */
#ifndef QS_ERR_H
#define QS_ERR_H

enum qs_err_code {
    QS_OK = 0,
    QS_E_USAGE = 1,     /* the caller asked for something impossible */
    QS_E_INPUT = 2,     /* the input file or data is malformed */
    QS_E_IO = 3,        /* the operating system refused (open, read, write, rename) */
    QS_E_UNSUPPORTED = 4, /* valid but not handled (e.g. big-endian GGUF) */
    QS_E_CANCELLED = 5,
    QS_E_OOM = 6,
};

typedef struct qs_err {
    int code;
    char msg[256];
} qs_err;

/* Sets err (if not NULL) and returns -code, so `return qs_err_set(...)` reads naturally. */
int qs_err_set(qs_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prepends "context: " to the message already in err; returns -err->code (or -QS_E_INPUT). */
int qs_err_prefix(qs_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void qs_err_clear(qs_err *err);
const char *qs_err_code_name(int code);

#endif
