/*
 * error.h — filling an rk_error. Every fallible function in ringkv returns rk_status and
 * reports why through rk_error_set(), which formats the message (printf-style) into the
 * caller's buffer when there is one and returns the code, so a failure reads:
 *
 *     return rk_error_set(err, RK_ERR_FORMAT, "gguf: tensor '%s' offset %llu past end", ...);
 */
#ifndef RK_CORE_ERROR_H
#define RK_CORE_ERROR_H

#include "ringkv.h"

#if defined(__GNUC__)
#define RK_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define RK_PRINTF(a, b)
#endif

/* Writes code and the formatted message into *err (if err is not NULL); returns code. */
rk_status rk_error_set(rk_error *err, rk_status code, const char *fmt, ...) RK_PRINTF(3, 4);

/* Clears *err to RK_OK with an empty message (NULL is fine). */
void rk_error_clear(rk_error *err);

/* Prepends "prefix: " to an error message already in *err (for adding context on the way up).
 * Returns err->code (or `code` when err is NULL). */
rk_status rk_error_prefix(rk_error *err, rk_status code, const char *fmt, ...) RK_PRINTF(3, 4);

#endif
