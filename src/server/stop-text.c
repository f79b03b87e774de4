/*
 * stop-text.c — stop strings over streamed token pieces (see stop-text.h).
 *
 * Two stages per push:
 *
 *   1. UTF-8: the incomplete sequence kept from the last push (at most 3 bytes) and the new
 *      piece are decoded into `pend` as valid UTF-8 (invalid bytes become U+FFFD); a trailing
 *      sequence that is valid so far but incomplete is kept for the next push.
 *   2. Stops: each stop string has a KMP matcher whose state is the length of the longest
 *      suffix of the text that is a prefix of it. The new bytes of `pend` advance every
 *      matcher; a state reaching the stop's length is a match. Otherwise the largest state is
 *      the tail to hold back, and everything before it is emitted.
 *
 * `pend` thus holds, between calls, only the held tail (plus, at its front, the bytes handed
 * out by the last call, dropped when the next call starts: that keeps *emit valid until then).
 * Stops are valid UTF-8, so a held tail starts with a stop's first byte, a character boundary,
 * and the emitted text is always whole characters.
 */
#include "server/stop-text.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

typedef struct stop_matcher {
    unsigned char *s; /* the stop string */
    size_t len;
    size_t *fail; /* (len) KMP failure function: fail[i] = longest proper border of s[0..i] */
    size_t state; /* bytes of s matched by the end of the text */
} stop_matcher;

struct rk_stop_text {
    int n_stops;
    stop_matcher stops[RK_STOP_TEXT_MAX_STOPS];
    unsigned char tail[4]; /* incomplete UTF-8 sequence from the last push */
    size_t tail_len;
    unsigned char *in; /* scratch: tail + piece */
    size_t in_cap;
    unsigned char *pend; /* sanitized text not emitted (after pend_sent) */
    size_t pend_len, pend_cap;
    size_t pend_sent; /* bytes at the front of pend handed out by the last call */
    size_t emitted;
    int stopped;  /* a stop string completed */
    int finished; /* flushed */
};

/* ------------------------------------------------------------------------------------------ */
/* UTF-8                                                                                      */

static size_t put_replacement(unsigned char *out, size_t o) {
    out[o] = 0xEF;
    out[o + 1] = 0xBF;
    out[o + 2] = 0xBD;
    return o + 3;
}

/* Decodes in[0..n) into out as valid UTF-8 (each maximal invalid subpart becomes U+FFFD, so out
 * needs 3n bytes). Stops before a trailing sequence that is valid so far but incomplete and
 * returns the bytes consumed (n minus that tail, which is at most 3 bytes). *out_n: bytes
 * written. */
static size_t utf8_sanitize(const unsigned char *in, size_t n, unsigned char *out, size_t *out_n) {
    size_t i = 0, o = 0;
    while (i < n) {
        unsigned c = in[i];
        if (c < 0x80) {
            out[o++] = (unsigned char)c;
            i++;
            continue;
        }
        size_t need;                   /* continuation bytes */
        unsigned lo = 0x80, hi = 0xBF; /* range of the next byte (narrower after E0 ED F0 F4) */
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            lo = c == 0xE0 ? 0xA0 : lo; /* no overlongs */
            hi = c == 0xED ? 0x9F : hi; /* no surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            lo = c == 0xF0 ? 0x90 : lo; /* no overlongs */
            hi = c == 0xF4 ? 0x8F : hi; /* nothing past U+10FFFF */
        } else {
            o = put_replacement(out, o);
            i++;
            continue;
        }
        size_t j = 1;
        while (j <= need && i + j < n && in[i + j] >= lo && in[i + j] <= hi) {
            lo = 0x80;
            hi = 0xBF;
            j++;
        }
        if (j > need) {
            memcpy(out + o, in + i, j);
            o += j;
        } else if (i + j == n) {
            break; /* incomplete so far: keep for the next piece */
        } else {
            o = put_replacement(out, o);
        }
        i += j;
    }
    *out_n = o;
    return i;
}

static int utf8_valid(const unsigned char *s, size_t len) {
    unsigned char *tmp = malloc(3 * len + 1);
    if (!tmp) return 0;
    size_t out_n;
    size_t used = utf8_sanitize(s, len, tmp, &out_n);
    int ok = used == len && out_n == len && memcmp(tmp, s, len) == 0;
    free(tmp);
    return ok;
}

/* ------------------------------------------------------------------------------------------ */
/* Lifetime                                                                                   */

void rk_stop_text_free(rk_stop_text *st) {
    if (!st) return;
    for (int i = 0; i < st->n_stops; i++) {
        free(st->stops[i].s);
        free(st->stops[i].fail);
    }
    free(st->in);
    free(st->pend);
    free(st);
}

/* Copies a stop and computes its failure function. */
static int matcher_init(stop_matcher *m, const char *stop, size_t len) {
    m->s = malloc(len);
    m->fail = malloc(len * sizeof *m->fail);
    if (!m->s || !m->fail) return 0;
    memcpy(m->s, stop, len);
    m->len = len;
    m->fail[0] = 0;
    for (size_t i = 1, k = 0; i < len; i++) {
        while (k > 0 && m->s[i] != m->s[k])
            k = m->fail[k - 1];
        if (m->s[i] == m->s[k]) k++;
        m->fail[i] = k;
    }
    return 1;
}

static rk_status check_stop(const char *stop, int i, rk_error *err) {
    if (!stop || !stop[0])
        return rk_error_set(err, RK_ERR_INVALID_ARG, "stop text: stop %d is empty", i);
    size_t len = strnlen(stop, RK_STOP_TEXT_MAX_LEN + 1);
    if (len > RK_STOP_TEXT_MAX_LEN)
        return rk_error_set(err, RK_ERR_INVALID_ARG, "stop text: stop %d longer than %d bytes", i,
                            RK_STOP_TEXT_MAX_LEN);
    if (!utf8_valid((const unsigned char *)stop, len))
        return rk_error_set(err, RK_ERR_INVALID_ARG, "stop text: stop %d is not valid UTF-8", i);
    return RK_OK;
}

rk_status rk_stop_text_create(const char *const *stops, int n_stops, rk_stop_text **out,
                              rk_error *err) {
    *out = NULL;
    if (n_stops < 0 || n_stops > RK_STOP_TEXT_MAX_STOPS || (n_stops > 0 && !stops))
        return rk_error_set(err, RK_ERR_INVALID_ARG, "stop text: %d stops (0..%d allowed)", n_stops,
                            RK_STOP_TEXT_MAX_STOPS);
    size_t max_len = 0;
    for (int i = 0; i < n_stops; i++) {
        rk_status s = check_stop(stops[i], i, err);
        if (s != RK_OK) return s;
        size_t len = strlen(stops[i]);
        max_len = len > max_len ? len : max_len;
    }
    rk_stop_text *st = calloc(1, sizeof *st);
    if (!st) return rk_error_set(err, RK_ERR_NO_MEMORY, "stop text: out of memory");
    /* room for the held tail plus a flush's U+FFFD, so flushing never allocates */
    st->pend_cap = 4 * max_len + 64;
    st->pend = malloc(st->pend_cap);
    int ok = st->pend != NULL;
    for (int i = 0; ok && i < n_stops; i++, st->n_stops++) /* counts a half-built one too */
        ok = matcher_init(&st->stops[i], stops[i], strlen(stops[i]));
    if (!ok) {
        rk_stop_text_free(st);
        return rk_error_set(err, RK_ERR_NO_MEMORY, "stop text: out of memory");
    }
    *out = st;
    return RK_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Streaming                                                                                  */

/* Forgets the bytes the last call handed out. */
static void drop_sent(rk_stop_text *st) {
    if (st->pend_sent == 0) return;
    st->pend_len -= st->pend_sent;
    memmove(st->pend, st->pend + st->pend_sent, st->pend_len);
    st->pend_sent = 0;
}

static int grow(unsigned char **buf, size_t *cap, size_t need) {
    if (need <= *cap) return 1;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    unsigned char *p = realloc(*buf, c);
    if (!p) return 0;
    *buf = p;
    *cap = c;
    return 1;
}

/* Advances a matcher by one byte; returns 1 when the whole stop has matched. */
static int matcher_step(stop_matcher *m, unsigned char c) {
    size_t k = m->state;
    while (k > 0 && m->s[k] != c)
        k = m->fail[k - 1];
    if (m->s[k] == c) k++;
    m->state = k;
    return k == m->len;
}

/* Runs the matchers over pend[from..pend_len) and emits what is safe. Returns 1 on a stop. */
static int scan(rk_stop_text *st, size_t from, const char **emit, size_t *emit_len) {
    size_t cut = SIZE_MAX; /* start of the stop that completed, in pend */
    for (size_t i = from; i < st->pend_len && cut == SIZE_MAX; i++) {
        for (int k = 0; k < st->n_stops; k++) {
            stop_matcher *m = &st->stops[k];
            if (matcher_step(m, st->pend[i]) && i + 1 - m->len < cut) cut = i + 1 - m->len;
        }
    }
    size_t n = st->pend_len;
    if (cut != SIZE_MAX) {
        st->stopped = 1;
        n = cut;
    } else {
        size_t held = 0;
        for (int k = 0; k < st->n_stops; k++)
            held = st->stops[k].state > held ? st->stops[k].state : held;
        n -= held;
    }
    *emit = (const char *)st->pend;
    *emit_len = n;
    st->pend_sent = n;
    st->emitted += n;
    return st->stopped;
}

int rk_stop_text_push(rk_stop_text *st, const char *piece, size_t len, const char **emit,
                      size_t *emit_len) {
    *emit = "";
    *emit_len = 0;
    if (st->stopped || st->finished) return st->stopped;
    size_t n_in = st->tail_len + len;
    size_t kept = st->pend_len - st->pend_sent;
    if (!grow(&st->in, &st->in_cap, n_in) ||
        !grow(&st->pend, &st->pend_cap, st->pend_len + 3 * n_in + 3))
        return -1;
    drop_sent(st);
    size_t out_n = 0, used = 0;
    if (n_in > 0) { /* st->in is still NULL when nothing was ever pushed */
        memcpy(st->in, st->tail, st->tail_len);
        if (len) memcpy(st->in + st->tail_len, piece, len);
        used = utf8_sanitize(st->in, n_in, st->pend + kept, &out_n);
        memcpy(st->tail, st->in + used, n_in - used);
    }
    st->pend_len = kept + out_n;
    st->tail_len = n_in - used;
    return scan(st, kept, emit, emit_len);
}

int rk_stop_text_flush(rk_stop_text *st, const char **emit, size_t *emit_len) {
    *emit = "";
    *emit_len = 0;
    if (st->stopped || st->finished) return st->stopped;
    st->finished = 1;
    drop_sent(st);
    size_t from = st->pend_len;
    if (st->tail_len > 0) { /* fits: pend_cap >= held tail + 3, see rk_stop_text_create */
        st->pend_len = put_replacement(st->pend, st->pend_len);
        st->tail_len = 0;
    }
    if (scan(st, from, emit, emit_len)) return 1;
    /* no more text can come: the held prefix of a stop is just text */
    *emit = (const char *)st->pend;
    *emit_len = st->pend_len;
    st->emitted += st->pend_len - st->pend_sent;
    st->pend_sent = st->pend_len;
    return 0;
}

size_t rk_stop_text_emitted(const rk_stop_text *st) { return st->emitted; }
