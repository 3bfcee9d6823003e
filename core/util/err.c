#include "core/util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int qs_err_set(qs_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return -code;
}

int qs_err_prefix(qs_err *err, const char *fmt, ...)
{
    if (!err)
        return -QS_E_INPUT;
    char ctx[128], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    size_t n = strlen(ctx);
    if (n + 2 < sizeof err->msg) {
        memcpy(err->msg, ctx, n);
        memcpy(err->msg + n, ": ", 2);
        size_t room = sizeof err->msg - n - 3, ol = strlen(old);
        if (ol > room) ol = room;
        memcpy(err->msg + n + 2, old, ol);
        err->msg[n + 2 + ol] = '\0';
    }
    if (err->code == QS_OK)
        err->code = QS_E_INPUT;
    return -err->code;
}

void qs_err_clear(qs_err *err)
{
    if (err) {
        err->code = QS_OK;
        err->msg[0] = '\0';
    }
}

const char *qs_err_code_name(int code)
{
    switch (code) {
    case QS_OK: return "ok";
    case QS_E_USAGE: return "usage";
    case QS_E_INPUT: return "bad input";
    case QS_E_IO: return "i/o";
    case QS_E_UNSUPPORTED: return "unsupported";
    case QS_E_CANCELLED: return "cancelled";
    case QS_E_OOM: return "out of memory";
    }
    return "unknown";
}
