/* session-file.c — see session-file.h. */
#include "server/session-file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "core/error.h"

#define MAGIC "RKSESS01"
#define CHUNK_BYTES (1u << 20)
#define BODY_VERSION 1u

/* ---- master key ---- */

rk_status rk_master_key_load(const char *dir, uint8_t **master, rk_error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/master.key", dir);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return rk_error_set(err, RK_ERR_IO, "session dir: cannot create %s: %s", dir, strerror(errno));
    *master = sodium_malloc(RK_SEAL_MASTER_BYTES);
    if (!*master) return rk_error_set(err, RK_ERR_NO_MEMORY, "session dir: no guarded memory for the master key");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) { /* first use: make one */
        randombytes_buf(*master, RK_SEAL_MASTER_BYTES);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        int ok = fd >= 0 && write(fd, *master, RK_SEAL_MASTER_BYTES) == RK_SEAL_MASTER_BYTES && fsync(fd) == 0;
        if (fd >= 0) close(fd);
        if (ok) return RK_OK;
        rk_master_key_free(*master);
        *master = NULL;
        return rk_error_set(err, RK_ERR_IO, "session dir: cannot create %s: %s", path, strerror(errno));
    }
    struct stat st;
    rk_status s = RK_OK;
    if (fd < 0 || fstat(fd, &st) != 0)
        s = rk_error_set(err, RK_ERR_IO, "session dir: cannot read %s: %s", path, strerror(errno));
    else if (st.st_mode & 077)
        s = rk_error_set(err, RK_ERR_FORMAT, "session dir: %s can be read by other users (mode %03o): chmod 600 it",
                         path, (unsigned)(st.st_mode & 0777));
    else if (st.st_size != RK_SEAL_MASTER_BYTES || read(fd, *master, RK_SEAL_MASTER_BYTES) != RK_SEAL_MASTER_BYTES)
        s = rk_error_set(err, RK_ERR_FORMAT, "session dir: %s is not a %d-byte key", path, RK_SEAL_MASTER_BYTES);
    if (fd >= 0) close(fd);
    if (s) {
        rk_master_key_free(*master);
        *master = NULL;
    }
    return s;
}

void rk_master_key_free(uint8_t *master) { sodium_free(master); }

/* ---- sealed chunked stream ---- */

typedef struct chunk_stream {
    int fd;
    const rk_seal_key *key;
    uint8_t prefix[16];
    uint64_t index;         /* next chunk */
    uint8_t *buf;           /* (CHUNK_BYTES) plain bytes of the chunk being filled / read */
    uint8_t *sealed;        /* (CHUNK_BYTES) */
    size_t len, pos;
    const char *path;
} chunk_stream;

static rk_status write_all(chunk_stream *c, const void *p, size_t n, rk_error *err) {
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(c->fd, b, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return rk_error_set(err, RK_ERR_IO, "session file %s: write failed: %s", c->path, strerror(errno));
        b += w;
        n -= (size_t)w;
    }
    return RK_OK;
}

static rk_status read_all(chunk_stream *c, void *p, size_t n, rk_error *err) {
    uint8_t *b = p;
    while (n > 0) {
        ssize_t r = read(c->fd, b, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0)
            return rk_error_set(err, RK_ERR_FORMAT, "session file %s: %s", c->path,
                                r == 0 ? "cut short" : strerror(errno));
        b += r;
        n -= (size_t)r;
    }
    return RK_OK;
}

/* Seals and writes the filled chunk (len may be 0: the end marker). */
static rk_status flush_chunk(chunk_stream *c, rk_error *err) {
    uint8_t tag[16], hdr[4];
    const uint32_t n = (uint32_t)c->len;
    for (int i = 0; i < 4; i++) hdr[i] = (uint8_t)(n >> (8 * i));
    if (rk_seal_key_seal_chunk(c->key, c->prefix, c->index++, c->buf, c->sealed, c->len, tag) != 0)
        return rk_error_set(err, RK_ERR_INTERNAL, "session file %s: sealing failed", c->path);
    rk_status s = write_all(c, hdr, 4, err);
    if (!s) s = write_all(c, c->sealed, c->len, err);
    if (!s) s = write_all(c, tag, 16, err);
    c->len = 0;
    return s;
}

static rk_status stream_write(void *user, const void *data, size_t len, rk_error *err) {
    chunk_stream *c = user;
    const uint8_t *p = data;
    while (len > 0) {
        size_t n = CHUNK_BYTES - c->len < len ? CHUNK_BYTES - c->len : len;
        memcpy(c->buf + c->len, p, n);
        c->len += n;
        p += n;
        len -= n;
        if (c->len == CHUNK_BYTES) {
            rk_status s = flush_chunk(c, err);
            if (s) return s;
        }
    }
    return RK_OK;
}

/* Reads and opens the next chunk into buf. */
static rk_status next_chunk(chunk_stream *c, rk_error *err) {
    uint8_t hdr[4], tag[16];
    rk_status s = read_all(c, hdr, 4, err);
    if (s) return s;
    const uint32_t n = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 | (uint32_t)hdr[3] << 24;
    if (n > CHUNK_BYTES) return rk_error_set(err, RK_ERR_FORMAT, "session file %s: bad chunk length %u", c->path, n);
    s = read_all(c, c->buf, n, err);
    if (!s) s = read_all(c, tag, 16, err);
    if (s) return s;
    if (rk_seal_key_open_chunk(c->key, c->prefix, c->index++, c->buf, n, tag) != 0)
        return rk_error_set(err, RK_ERR_FORMAT, "session file %s: chunk %llu does not open (altered or reordered)",
                            c->path, (unsigned long long)(c->index - 1));
    if (n == 0) return rk_error_set(err, RK_ERR_FORMAT, "session file %s: ends early", c->path);
    c->len = n;
    c->pos = 0;
    return RK_OK;
}

static rk_status stream_read(void *user, void *data, size_t len, rk_error *err) {
    chunk_stream *c = user;
    uint8_t *p = data;
    while (len > 0) {
        if (c->pos == c->len) {
            rk_status s = next_chunk(c, err);
            if (s) return s;
        }
        size_t n = c->len - c->pos < len ? c->len - c->pos : len;
        memcpy(p, c->buf + c->pos, n);
        c->pos += n;
        p += n;
        len -= n;
    }
    return RK_OK;
}

static int stream_alloc(chunk_stream *c) {
    c->buf = malloc(CHUNK_BYTES);
    c->sealed = malloc(CHUNK_BYTES);
    return c->buf && c->sealed ? 0 : -1;
}

static void stream_free(chunk_stream *c) {
    if (c->buf) sodium_memzero(c->buf, CHUNK_BYTES);
    free(c->buf);
    free(c->sealed);
    c->buf = c->sealed = NULL;
}

/* ---- save ---- */

static rk_status write_body(chunk_stream *c, const rk_session_meta *meta, const rk_token *history, size_t n,
                            rk_context *ctx, rk_error *err) {
    const uint32_t version = BODY_VERSION;
    const uint64_t count = n;
    rk_status s = stream_write(c, &version, sizeof version, err);
    if (!s) s = stream_write(c, meta, sizeof *meta, err);
    if (!s) s = stream_write(c, &count, sizeof count, err);
    if (!s && n) s = stream_write(c, history, n * sizeof *history, err);
    if (!s) s = rk_context_save(ctx, stream_write, c, err);
    if (!s && c->len) s = flush_chunk(c, err);
    if (!s) s = flush_chunk(c, err); /* the end marker */
    return s;
}

rk_status rk_session_file_save(const char *dir, const char *id, const rk_seal_key *key, const uint8_t *master,
                               const rk_session_meta *meta, const rk_token *history, size_t n_history,
                               rk_context *ctx, rk_error *err) {
    char path[4096], tmp[4120];
    snprintf(path, sizeof path, "%s/%s.session", dir, id);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    chunk_stream c = {.key = key, .path = path};
    c.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (c.fd < 0) return rk_error_set(err, RK_ERR_IO, "session file %s: %s", tmp, strerror(errno));
    rk_status s = stream_alloc(&c) ? rk_error_set(err, RK_ERR_NO_MEMORY, "session file: out of memory") : RK_OK;
    uint8_t head[8 + 32 + RK_SEAL_WRAPPED_BYTES + 16];
    memcpy(head, MAGIC, 8);
    memcpy(head + 8, id, 32);
    rk_seal_key_wrap(key, master, head + 40);
    randombytes_buf(c.prefix, sizeof c.prefix);
    memcpy(head + 40 + RK_SEAL_WRAPPED_BYTES, c.prefix, 16);
    if (!s) s = write_all(&c, head, sizeof head, err);
    if (!s) s = write_body(&c, meta, history, n_history, ctx, err);
    if (!s && fsync(c.fd) != 0) s = rk_error_set(err, RK_ERR_IO, "session file %s: fsync: %s", tmp, strerror(errno));
    close(c.fd);
    stream_free(&c);
    if (!s && rename(tmp, path) != 0) s = rk_error_set(err, RK_ERR_IO, "session file %s: %s", path, strerror(errno));
    if (s) unlink(tmp);
    return s;
}

/* ---- load ---- */

struct rk_session_reader {
    chunk_stream c;
    char path[4096];
};

rk_status rk_session_file_open(const char *path, const uint8_t *master, rk_session_reader **out, char *id,
                               rk_seal_key **key, rk_error *err) {
    *out = NULL;
    *key = NULL;
    rk_session_reader *r = calloc(1, sizeof *r);
    if (!r) return rk_error_set(err, RK_ERR_NO_MEMORY, "session file: out of memory");
    snprintf(r->path, sizeof r->path, "%s", path);
    r->c.path = r->path;
    r->c.fd = open(path, O_RDONLY | O_CLOEXEC);
    rk_status s = r->c.fd < 0 ? rk_error_set(err, RK_ERR_IO, "session file %s: %s", path, strerror(errno)) : RK_OK;
    uint8_t head[8 + 32 + RK_SEAL_WRAPPED_BYTES + 16];
    if (!s) s = read_all(&r->c, head, sizeof head, err);
    if (!s && memcmp(head, MAGIC, 8) != 0) s = rk_error_set(err, RK_ERR_FORMAT, "session file %s: not a session file", path);
    if (!s) {
        memcpy(id, head + 8, 32);
        id[32] = '\0';
        for (int i = 0; i < 32 && !s; i++)
            if (!strchr("0123456789abcdef", id[i]) || !id[i])
                s = rk_error_set(err, RK_ERR_FORMAT, "session file %s: bad session id", path);
    }
    if (!s) s = rk_seal_key_unwrap(id, master, head + 40, key, err);
    if (!s && stream_alloc(&r->c)) s = rk_error_set(err, RK_ERR_NO_MEMORY, "session file: out of memory");
    if (s) {
        rk_session_file_close(r);
        return s;
    }
    memcpy(r->c.prefix, head + 40 + RK_SEAL_WRAPPED_BYTES, 16);
    r->c.key = *key;
    *out = r;
    return RK_OK;
}

rk_status rk_session_file_read(rk_session_reader *r, rk_session_meta *meta, rk_token **history, size_t *n_history,
                               rk_context *ctx, rk_error *err) {
    *history = NULL;
    uint32_t version = 0;
    uint64_t count = 0;
    rk_status s = stream_read(&r->c, &version, sizeof version, err);
    if (!s && version != BODY_VERSION)
        s = rk_error_set(err, RK_ERR_FORMAT, "session file %s: version %u (this ringkv reads %u)", r->path, version,
                         BODY_VERSION);
    if (!s) s = stream_read(&r->c, meta, sizeof *meta, err);
    if (!s) s = stream_read(&r->c, &count, sizeof count, err);
    meta->owner[sizeof meta->owner - 1] = '\0';
    if (!s && count > (uint64_t)rk_context_n_ctx(ctx))
        s = rk_error_set(err, RK_ERR_FORMAT, "session file %s: %llu tokens do not fit the context", r->path,
                         (unsigned long long)count);
    if (!s && (*history = malloc((count ? count : 1) * sizeof **history)) == NULL)
        s = rk_error_set(err, RK_ERR_NO_MEMORY, "session file: out of memory");
    if (!s && count) s = stream_read(&r->c, *history, count * sizeof **history, err);
    if (!s) s = rk_context_load(ctx, stream_read, &r->c, err);
    if (!s && rk_context_n_past(ctx) != (int64_t)count)
        s = rk_error_set(err, RK_ERR_FORMAT, "session file %s: %llu tokens of history but %lld in the KV cache",
                         r->path, (unsigned long long)count, (long long)rk_context_n_past(ctx));
    if (!s && r->c.pos != r->c.len) s = rk_error_set(err, RK_ERR_FORMAT, "session file %s: bytes after the cache", r->path);
    if (!s) { /* the end marker must follow: a file cut at a chunk boundary is refused */
        uint8_t hdr[4], tag[16];
        s = read_all(&r->c, hdr, 4, err);
        if (!s) s = read_all(&r->c, tag, 16, err);
        if (!s && (hdr[0] | hdr[1] | hdr[2] | hdr[3] ||
                   rk_seal_key_open_chunk(r->c.key, r->c.prefix, r->c.index, r->c.buf, 0, tag) != 0))
            s = rk_error_set(err, RK_ERR_FORMAT, "session file %s: no valid end marker", r->path);
    }
    if (s) {
        free(*history);
        *history = NULL;
        return s;
    }
    *n_history = (size_t)count;
    return RK_OK;
}

void rk_session_file_close(rk_session_reader *r) {
    if (!r) return;
    if (r->c.fd >= 0) close(r->c.fd);
    stream_free(&r->c);
    free(r);
}

void rk_session_file_remove(const char *dir, const char *id) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.session", dir, id);
    unlink(path);
}
