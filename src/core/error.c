/* error.c — status names and rk_error formatting (see error.h). */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *rk_status_name(rk_status status) {
    switch (status) {
    case RK_OK: return "ok";
    case RK_ERR_INVALID_ARG: return "invalid argument";
    case RK_ERR_IO: return "i/o error";
    case RK_ERR_FORMAT: return "malformed input";
    case RK_ERR_UNSUPPORTED: return "unsupported";
    case RK_ERR_NO_MEMORY: return "out of memory";
    case RK_ERR_CONTEXT_FULL: return "context full";
    case RK_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

const char *rk_version(void) { return "0.1.0"; }

rk_status rk_error_set(rk_error *err, rk_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

void rk_error_clear(rk_error *err) {
    if (err) {
        err->code = RK_OK;
        err->msg[0] = '\0';
    }
}

rk_status rk_error_prefix(rk_error *err, rk_status code, const char *fmt, ...) {
    if (!err) return code;
    char prefix[RK_ERROR_MSG_MAX];
    char old[RK_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    /* Build "prefix: old" by hand: the result is cut at the buffer size on purpose. */
    size_t n = strnlen(prefix, sizeof err->msg - 1);
    memcpy(err->msg, prefix, n);
    size_t room = sizeof err->msg - 1 - n;
    const char *rest[2] = {": ", old};
    for (int i = 0; i < 2; i++) {
        size_t len = strnlen(rest[i], room);
        memcpy(err->msg + n, rest[i], len);
        n += len;
        room -= len;
    }
    err->msg[n] = '\0';
    if (err->code == RK_OK) err->code = code;
    return err->code;
}
