/*
 * api-keys.c — bearer-token authentication (see api-keys.h).
 *
 * Loading reads the whole file into sodium_malloc'd memory (so the key text sits in locked,
 * guarded pages and is wiped when freed), parses it line by line, and keeps for each key only
 * BLAKE2b(key, hash_key) with a 32-byte hash_key drawn at random per load. Checking hashes the
 * presented key the same way and compares the fixed-length digests with sodium_memcmp against
 * every stored one, folding the result into the index with a mask rather than a branch. The
 * digests then are the only key material kept; they are made read-only after loading.
 */
#include "server/api-keys.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

#define DIGEST_BYTES crypto_generichash_BYTES      /* 32 */
#define HASH_KEY_BYTES crypto_generichash_KEYBYTES /* 32 */

typedef struct key_meta {
    int line; /* 1-based line in the file, for duplicate messages */
    char name[RK_API_KEY_NAME_MAX + 1];
} key_meta;

struct rk_api_keys {
    size_t n;
    unsigned char *secure; /* sodium_malloc: hash key, then n digests of DIGEST_BYTES */
    key_meta *meta;        /* n entries */
};

static unsigned char *digest_of(const rk_api_keys *k, size_t i) {
    return k->secure + HASH_KEY_BYTES + i * DIGEST_BYTES;
}

void rk_api_keys_free(rk_api_keys *keys) {
    if (!keys) return;
    if (keys->secure) sodium_free(keys->secure); /* wipes */
    free(keys->meta);
    free(keys);
}

/* Reads the whole file into sodium_malloc'd memory (NUL-terminated; free with sodium_free).
 * Sets *world_readable from the mode. */
static rk_status read_key_file(const char *path, char **out, size_t *out_len, int *world_readable,
                               rk_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return rk_error_set(err, RK_ERR_IO, "api keys: %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return rk_error_set(err, RK_ERR_IO, "api keys: %s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return rk_error_set(err, RK_ERR_IO, "api keys: %s: not a regular file", path);
    }
    if (st.st_size > RK_API_KEYS_FILE_MAX) {
        close(fd);
        return rk_error_set(err, RK_ERR_FORMAT, "api keys: %s: %lld bytes, more than %d", path,
                            (long long)st.st_size, RK_API_KEYS_FILE_MAX);
    }
    size_t size = (size_t)st.st_size, len = 0;
    char *buf = sodium_malloc(size + 1);
    if (!buf) {
        close(fd);
        return rk_error_set(err, RK_ERR_NO_MEMORY, "api keys: out of memory");
    }
    while (len < size) { /* a file that grows meanwhile is read up to its size at open */
        ssize_t r = read(fd, buf + len, size - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            sodium_free(buf);
            return rk_error_set(err, RK_ERR_IO, "api keys: %s: %s", path, strerror(e));
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    *world_readable = (st.st_mode & (S_IRGRP | S_IROTH)) != 0;
    *out = buf;
    *out_len = len;
    return RK_OK;
}

/* Stores the name part of a line (s[0..len), leading whitespace already skipped) for key i. */
static rk_status parse_name(rk_api_keys *k, const char *s, size_t len, int line, rk_error *err) {
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    key_meta *m = &k->meta[k->n];
    m->line = line;
    if (len == 0) {
        snprintf(m->name, sizeof m->name, "key-%zu", k->n);
        return RK_OK;
    }
    if (len > RK_API_KEY_NAME_MAX)
        return rk_error_set(err, RK_ERR_FORMAT, "line %d: name is %zu bytes, more than %d", line,
                            len, RK_API_KEY_NAME_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7e)
            return rk_error_set(err, RK_ERR_FORMAT,
                                "line %d: name has a byte outside printable ASCII (column %zu)",
                                line, i + 1);
    }
    memcpy(m->name, s, len);
    m->name[len] = '\0';
    return RK_OK;
}

/* Parses one line (without its '\n') and appends its key, if it has one. */
static rk_status parse_line(rk_api_keys *k, const char *s, size_t len, int line, rk_error *err) {
    if (len > 0 && s[len - 1] == '\r') len--;
    size_t i = 0;
    while (i < len && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (i == len || s[i] == '#') return RK_OK;
    size_t start = i;
    for (; i < len && s[i] != ' ' && s[i] != '\t'; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e) /* the message gives the column, never the byte */
            return rk_error_set(err, RK_ERR_FORMAT,
                                "line %d: key has a byte outside printable ASCII (column %zu)",
                                line, i + 1);
    }
    size_t key_len = i - start;
    if (key_len < RK_API_KEY_MIN_LEN)
        return rk_error_set(err, RK_ERR_FORMAT, "line %d: key is %zu bytes, fewer than %d", line,
                            key_len, RK_API_KEY_MIN_LEN);
    while (i < len && (s[i] == ' ' || s[i] == '\t'))
        i++;
    rk_status st = parse_name(k, s + i, len - i, line, err);
    if (st != RK_OK) return st;
    unsigned char *d = digest_of(k, k->n);
    crypto_generichash(d, DIGEST_BYTES, (const unsigned char *)s + start, key_len, k->secure,
                       HASH_KEY_BYTES);
    for (size_t j = 0; j < k->n; j++) /* quadratic, fine for the few keys a file holds */
        if (memcmp(d, digest_of(k, j), DIGEST_BYTES) == 0)
            return rk_error_set(err, RK_ERR_FORMAT, "line %d: same key as line %d", line,
                                k->meta[j].line);
    k->n++;
    return RK_OK;
}

/* Allocates room for up to max_keys keys and draws the hash key. */
static rk_status alloc_keys(size_t max_keys, rk_api_keys **out, rk_error *err) {
    rk_api_keys *k = calloc(1, sizeof *k);
    if (k) {
        k->secure = sodium_malloc(HASH_KEY_BYTES + max_keys * DIGEST_BYTES);
        k->meta = calloc(max_keys, sizeof *k->meta);
    }
    if (!k || !k->secure || !k->meta) {
        rk_api_keys_free(k);
        return rk_error_set(err, RK_ERR_NO_MEMORY, "api keys: out of memory");
    }
    randombytes_buf(k->secure, HASH_KEY_BYTES);
    *out = k;
    return RK_OK;
}

/* Parses buf[0..len) into a new key set. */
static rk_status parse_keys(const char *buf, size_t len, rk_api_keys **out, rk_error *err) {
    size_t lines = 1;
    for (size_t i = 0; i < len; i++)
        lines += buf[i] == '\n';
    rk_api_keys *k = NULL;
    rk_status st = alloc_keys(lines, &k, err);
    if (st != RK_OK) return st;
    int line = 0;
    for (size_t pos = 0; pos < len && st == RK_OK;) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len;
        st = parse_line(k, buf + pos, end - pos, ++line, err);
        pos = end + 1;
    }
    if (st == RK_OK && k->n == 0) st = rk_error_set(err, RK_ERR_FORMAT, "no keys (%d lines)", line);
    if (st != RK_OK) {
        rk_api_keys_free(k);
        return st;
    }
    sodium_mprotect_readonly(k->secure);
    *out = k;
    return RK_OK;
}

rk_status rk_api_keys_load(const char *path, rk_api_keys **out, int *world_readable,
                           rk_error *err) {
    *out = NULL;
    if (!path) return rk_error_set(err, RK_ERR_INVALID_ARG, "api keys: no path");
    if (sodium_init() < 0)
        return rk_error_set(err, RK_ERR_INTERNAL, "api keys: libsodium failed to initialize");
    char *buf = NULL;
    size_t len = 0;
    int readable = 0;
    rk_status st = read_key_file(path, &buf, &len, &readable, err);
    if (st != RK_OK) return st;
    st = parse_keys(buf, len, out, err);
    sodium_free(buf); /* wipes the key text */
    if (st != RK_OK) return rk_error_prefix(err, st, "api keys: %s", path);
    if (world_readable) *world_readable = readable;
    return RK_OK;
}

size_t rk_api_keys_count(const rk_api_keys *keys) { return keys ? keys->n : 0; }

const char *rk_api_keys_name(const rk_api_keys *keys, int i) {
    if (!keys || i < 0 || (size_t)i >= keys->n) return NULL;
    return keys->meta[i].name;
}

int rk_api_keys_check(const rk_api_keys *keys, const char *authorization) {
    if (!keys || !authorization) return -1;
    if (strncasecmp(authorization, "bearer", 6) != 0 || authorization[6] != ' ') return -1;
    const char *token = authorization + 7;
    if (token[0] == '\0' || token[0] == ' ') return -1; /* exactly one space */
    unsigned char d[DIGEST_BYTES];
    crypto_generichash(d, sizeof d, (const unsigned char *)token, strlen(token), keys->secure,
                       HASH_KEY_BYTES);
    int found = -1;
    for (size_t i = 0; i < keys->n; i++) {
        /* sodium_memcmp: 0 when equal, -1 otherwise, so ~result is an all-ones mask on a match */
        int mask = ~sodium_memcmp(d, digest_of(keys, i), DIGEST_BYTES);
        found = (found & ~mask) | ((int)i & mask);
    }
    sodium_memzero(d, sizeof d);
    return found;
}
