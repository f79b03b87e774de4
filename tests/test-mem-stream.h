/*
 * test-mem-stream.h — a growing memory buffer behind rk_stream_write_fn / rk_stream_read_fn,
 * for tests that save a KV cache or context and load it back (static: one copy per test).
 */
#ifndef RK_TEST_MEM_STREAM_H
#define RK_TEST_MEM_STREAM_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringkv.h"

typedef struct mem_stream {
    uint8_t *data;
    size_t len, cap, pos;
} mem_stream;

static rk_status mem_write(void *user, const void *data, size_t len, rk_error *err) {
    mem_stream *m = user;
    if (m->len + len > m->cap) {
        size_t cap = (m->len + len) * 2;
        uint8_t *d = realloc(m->data, cap);
        if (!d) return (err ? (err->code = RK_ERR_NO_MEMORY) : RK_ERR_NO_MEMORY);
        m->data = d;
        m->cap = cap;
    }
    memcpy(m->data + m->len, data, len);
    m->len += len;
    return RK_OK;
}

static rk_status mem_read(void *user, void *data, size_t len, rk_error *err) {
    mem_stream *m = user;
    if (m->pos + len > m->len) {
        if (err) {
            err->code = RK_ERR_FORMAT;
            snprintf(err->msg, sizeof err->msg, "stream ends after %zu bytes", m->len);
        }
        return RK_ERR_FORMAT;
    }
    memcpy(data, m->data + m->pos, len);
    m->pos += len;
    return RK_OK;
}

#endif
