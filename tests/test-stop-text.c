/*
 * test-stop-text.c — stop strings over streamed token pieces (server/stop-text.h):
 *
 *   1. no stops: a pass-through that only completes UTF-8 (also with empty pieces);
 *   2. a stop split over several pieces, and a stop in the first piece (also at offset 0);
 *   3. a false partial match that continues as text ("ab" + "x" with the stop "abc");
 *   4. overlapping stops: one a prefix of the other (either order), one a suffix, one inside
 *      the other (the stop that completes first wins);
 *   5. UTF-8: a 4-byte character split over 4 pieces, stops with multi-byte characters, invalid
 *      bytes replaced by U+FFFD (lone continuation, overlong, surrogate, past U+10FFFF,
 *      truncated sequence followed by ASCII);
 *   6. flush: the held stop prefix and an incomplete character come out (U+FFFD), a stop that
 *      ends with U+FFFD completed by the flush, calls after flush or stop emit nothing;
 *   7. argument checks of rk_stop_text_create;
 *   8. randomized: 20000 texts over a small alphabet (ASCII, 2- and 4-byte characters) split at
 *      random byte positions into pieces of 0..6 bytes, with 0..4 random stops, against a naive
 *      reference: the output is the text before the first stop to complete, push returns 1 at
 *      the first piece that completes it, after every push the text emitted so far is exactly
 *      the complete characters received minus the longest tail that is a proper prefix of a
 *      stop (nothing held longer than needed), and every chunk is valid UTF-8.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/stop-text.h"
#include "test-util.h"

/* Strict UTF-8 check written independently of stop-text.c. */
static int valid_utf8(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i], cp, len;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        } else
            return 0;
        if (i + len > n) return 0;
        for (unsigned k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        static const unsigned min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += len;
    }
    return 1;
}

/* A stream under test: everything emitted so far, concatenated. */
typedef struct stream {
    rk_stop_text *st;
    char out[8192];
    size_t out_len;
    int bad_utf8;
} stream;

static void stream_open(stream *s, const char *const *stops, int n) {
    memset(s, 0, sizeof *s);
    rk_error err;
    CHECK_MSG(rk_stop_text_create(stops, n, &s->st, &err) == RK_OK, "%s", err.msg);
}

static void take(stream *s, const char *emit, size_t len) {
    CHECK(emit != NULL);
    if (!valid_utf8((const unsigned char *)emit, len)) s->bad_utf8 = 1;
    CHECK(s->out_len + len < sizeof s->out);
    memcpy(s->out + s->out_len, emit, len);
    s->out_len += len;
    s->out[s->out_len] = '\0';
}

/* Pushes a NUL-terminated piece; checks the chunk it emits against `want` and the return
 * value against `want_ret`. */
static void push_expect(stream *s, const char *piece, const char *want, int want_ret) {
    const char *e;
    size_t n;
    int r = rk_stop_text_push(s->st, piece, strlen(piece), &e, &n);
    CHECK_MSG(r == want_ret, "push '%s': returned %d, want %d", piece, r, want_ret);
    CHECK_MSG(n == strlen(want) && memcmp(e, want, n) == 0, "push '%s': emitted '%.*s', want '%s'",
              piece, (int)n, e, want);
    take(s, e, n);
}

static void flush_expect(stream *s, const char *want, int want_ret) {
    const char *e;
    size_t n;
    int r = rk_stop_text_flush(s->st, &e, &n);
    CHECK_MSG(r == want_ret, "flush: returned %d, want %d", r, want_ret);
    CHECK_MSG(n == strlen(want) && memcmp(e, want, n) == 0, "flush: emitted '%.*s', want '%s'",
              (int)n, e, want);
    take(s, e, n);
}

static void stream_close(stream *s) {
    CHECK(!s->bad_utf8);
    CHECK(rk_stop_text_emitted(s->st) == s->out_len);
    rk_stop_text_free(s->st);
}

static void test_no_stops(void) {
    stream s;
    stream_open(&s, NULL, 0);
    push_expect(&s, "Hel", "Hel", 0);
    push_expect(&s, "", "", 0);
    push_expect(&s, "lo caf\xC3", "lo caf", 0); /* é split */
    push_expect(&s, "\xA9 ", "\xC3\xA9 ", 0);
    flush_expect(&s, "", 0);
    CHECK(strcmp(s.out, "Hello caf\xC3\xA9 ") == 0);
    stream_close(&s);
}

static void test_split_and_first_piece(void) {
    const char *stops[] = {"</s>"};
    stream s;
    stream_open(&s, stops, 1);
    push_expect(&s, "Hello <", "Hello ", 0);
    push_expect(&s, "/", "", 0);
    push_expect(&s, "s", "", 0);
    push_expect(&s, ">more", "", 1);
    push_expect(&s, "after", "", 1); /* stays stopped */
    flush_expect(&s, "", 1);
    CHECK(strcmp(s.out, "Hello ") == 0 && rk_stop_text_emitted(s.st) == 6);
    stream_close(&s);

    const char *stop2[] = {"STOP"};
    stream_open(&s, stop2, 1);
    push_expect(&s, "helloSTOPworld", "hello", 1);
    push_expect(&s, "x", "", 1);
    stream_close(&s);
    stream_open(&s, stop2, 1);
    push_expect(&s, "STOP", "", 1);
    CHECK(rk_stop_text_emitted(s.st) == 0);
    stream_close(&s);
    /* a stop that was held as a prefix and then shows up again further on */
    stream_open(&s, stop2, 1);
    push_expect(&s, "ST", "", 0);
    push_expect(&s, "STO", "ST", 0);
    push_expect(&s, "P!", "", 1);
    CHECK(strcmp(s.out, "ST") == 0);
    stream_close(&s);
}

static void test_false_partial(void) {
    const char *stops[] = {"abc"};
    stream s;
    stream_open(&s, stops, 1);
    push_expect(&s, "ab", "", 0);
    push_expect(&s, "x", "abx", 0);
    push_expect(&s, "aab", "a", 0); /* "ab" may still start "abc" */
    push_expect(&s, "ab", "ab", 0);
    push_expect(&s, "c", "", 1);
    CHECK(strcmp(s.out, "abxaab") == 0);
    stream_close(&s);
}

static void test_overlapping_stops(void) {
    stream s;
    const char *prefix_a[] = {"ab", "abc"}, *prefix_b[] = {"abc", "ab"};
    for (int order = 0; order < 2; order++) {
        stream_open(&s, order ? prefix_b : prefix_a, 2);
        push_expect(&s, "xa", "x", 0);
        push_expect(&s, "b", "", 1);
        stream_close(&s);
    }
    /* one a suffix of the other: both complete with the same byte; the longer cuts earlier */
    const char *suffix[] = {"bc", "abc"};
    stream_open(&s, suffix, 2);
    push_expect(&s, "xab", "x", 0);
    push_expect(&s, "c", "", 1);
    stream_close(&s);
    /* one inside the other: "bc" completes first, so "abcd" never gets the chance */
    const char *inside[] = {"abcd", "bc"};
    stream_open(&s, inside, 2);
    push_expect(&s, "abcd", "a", 1);
    stream_close(&s);
    /* a held prefix of one stop, then another stop completes inside it */
    const char *cross[] = {"abcd", "cx"};
    stream_open(&s, cross, 2);
    push_expect(&s, "zab", "z", 0);
    push_expect(&s, "c", "", 0);
    push_expect(&s, "x", "ab", 1);
    CHECK(strcmp(s.out, "zab") == 0);
    stream_close(&s);
}

static void test_utf8(void) {
    stream s;
    stream_open(&s, NULL, 0);
    push_expect(&s, "a\xF0", "a", 0); /* U+1F600 in 4 pieces */
    push_expect(&s, "\x9F", "", 0);
    push_expect(&s, "\x98", "", 0);
    push_expect(&s, "\200b", "\xF0\x9F\x98\200b", 0); /* octal: "\x80b" would be one escape */
    stream_close(&s);

    const char *stops[] = {"\xC3\xA9!", "\xF0\x9F\x98\x80x"}; /* "é!", "😀x" */
    stream_open(&s, stops, 2);
    push_expect(&s, "caf\xC3", "caf", 0);
    push_expect(&s, "\xA9", "", 0); /* é could start "é!" */
    push_expect(&s, "?", "\xC3\xA9?", 0);
    push_expect(&s, "\xF0\x9F", "", 0);
    push_expect(&s, "\x98\x80", "", 0);
    push_expect(&s, "y\xC3\xA9", "\xF0\x9F\x98\x80y", 0);
    push_expect(&s, "!tail", "", 1);
    CHECK(strcmp(s.out, "caf\xC3\xA9?\xF0\x9F\x98\x80y") == 0);
    stream_close(&s);

    /* invalid bytes: one U+FFFD per maximal invalid subpart */
#define FFFD "\xEF\xBF\xBD"
    stream_open(&s, NULL, 0);
    push_expect(&s, "\xFF", FFFD, 0);
    push_expect(&s, "a\200b", "a" FFFD "b", 0);
    push_expect(&s, "\xC0\x80", FFFD FFFD, 0);                   /* overlong NUL */
    push_expect(&s, "\xED\xA0\x80", FFFD FFFD FFFD, 0);          /* surrogate D800 */
    push_expect(&s, "\xF4\x90\x80\x80", FFFD FFFD FFFD FFFD, 0); /* past U+10FFFF */
    push_expect(&s, "\xE2\x82", "", 0);                          /* could still be € */
    push_expect(&s, "A", FFFD "A", 0);
    push_expect(&s, "\xE2\x82\xAC", "\xE2\x82\xAC", 0); /* € itself */
    stream_close(&s);
}

static void test_flush(void) {
    const char *stops[] = {"abc"};
    stream s;
    stream_open(&s, stops, 1);
    push_expect(&s, "xab", "x", 0);
    flush_expect(&s, "ab", 0);
    flush_expect(&s, "", 0);
    push_expect(&s, "more", "", 0); /* finished */
    CHECK(strcmp(s.out, "xab") == 0);
    stream_close(&s);

    stream_open(&s, stops, 1);
    push_expect(&s, "ab\xC3", "", 0);
    flush_expect(&s, "ab" FFFD, 0);
    stream_close(&s);

    stream_open(&s, NULL, 0);
    push_expect(&s, "a\xE2\x82", "a", 0);
    flush_expect(&s, FFFD, 0);
    stream_close(&s);

    /* a stop ending with U+FFFD is completed by the replacement of an incomplete tail */
    const char *odd[] = {"x" FFFD};
    stream_open(&s, odd, 1);
    push_expect(&s, "yx\xE2", "y", 0);
    flush_expect(&s, "", 1);
    stream_close(&s);
#undef FFFD
}

static void test_create_errors(void) {
    rk_stop_text *st = (rk_stop_text *)1;
    rk_error err;
    const char *five[] = {"a", "b", "c", "d", "e"};
    CHECK(rk_stop_text_create(five, 5, &st, &err) == RK_ERR_INVALID_ARG && st == NULL);
    CHECK(rk_stop_text_create(five, -1, &st, &err) == RK_ERR_INVALID_ARG);
    CHECK(rk_stop_text_create(NULL, 1, &st, &err) == RK_ERR_INVALID_ARG);
    const char *empty[] = {"a", ""};
    CHECK(rk_stop_text_create(empty, 2, &st, &err) == RK_ERR_INVALID_ARG);
    CHECK_MSG(strstr(err.msg, "stop 1") != NULL, "%s", err.msg);
    const char *null_stop[] = {NULL};
    CHECK(rk_stop_text_create(null_stop, 1, &st, &err) == RK_ERR_INVALID_ARG);
    const char *bad[] = {"\xC3"};
    CHECK(rk_stop_text_create(bad, 1, &st, &err) == RK_ERR_INVALID_ARG);
    char *longs = malloc(RK_STOP_TEXT_MAX_LEN + 2);
    memset(longs, 'x', RK_STOP_TEXT_MAX_LEN + 1);
    longs[RK_STOP_TEXT_MAX_LEN + 1] = '\0';
    const char *too_long[] = {longs};
    CHECK(rk_stop_text_create(too_long, 1, &st, &err) == RK_ERR_INVALID_ARG);
    longs[RK_STOP_TEXT_MAX_LEN] = '\0';
    CHECK(rk_stop_text_create(too_long, 1, &st, &err) == RK_OK);
    rk_stop_text_free(st);
    free(longs);
    CHECK(rk_stop_text_create(five, 4, &st, &err) == RK_OK);
    rk_stop_text_free(st);
    rk_stop_text_free(NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* Randomized against a naive reference                                                       */

static const char *const alphabet[] = {"a", "b", "c", "\n", "\xC3\xA9", "\xF0\x9F\x98\x80"};
#define N_ALPHA ((int)(sizeof alphabet / sizeof alphabet[0]))

/* Appends n random characters to buf; returns the length. */
static size_t random_text(rk_test_rng *rng, char *buf, int n) {
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        const char *c = alphabet[rk_test_rng_next(rng) % N_ALPHA];
        memcpy(buf + len, c, strlen(c));
        len += strlen(c);
    }
    buf[len] = '\0';
    return len;
}

/* Where the output ends: the first end position at which some stop occurs, minus the longest
 * stop ending there. *end_at: that end position (0 when no stop occurs; returns n then). */
static size_t ref_cut(const char *t, size_t n, char stops[][32], int n_stops, size_t *end_at) {
    for (size_t e = 1; e <= n; e++) {
        size_t best = SIZE_MAX;
        for (int k = 0; k < n_stops; k++) {
            size_t l = strlen(stops[k]);
            if (l <= e && memcmp(t + e - l, stops[k], l) == 0 && e - l < best) best = e - l;
        }
        if (best != SIZE_MAX) {
            *end_at = e;
            return best;
        }
    }
    *end_at = 0;
    return n;
}

/* Bytes that may be emitted once r bytes of t have arrived (no stop completed yet). */
static size_t ref_safe(const char *t, size_t r, char stops[][32], int n_stops) {
    size_t c = r; /* back to a character boundary: t is valid UTF-8 */
    while (c > 0 && c < strlen(t) && ((unsigned char)t[c] & 0xC0) == 0x80)
        c--;
    size_t held = 0;
    for (int k = 0; k < n_stops; k++) {
        size_t l = strlen(stops[k]);
        for (size_t h = l - 1; h > held; h--)
            if (h <= c && memcmp(t + c - h, stops[k], h) == 0) {
                held = h;
                break;
            }
    }
    return c - held;
}

static void random_case(rk_test_rng *rng, int *fails) {
    char stops[RK_STOP_TEXT_MAX_STOPS][32];
    const char *sp[RK_STOP_TEXT_MAX_STOPS];
    int n_stops = (int)(rk_test_rng_next(rng) % 5);
    for (int k = 0; k < n_stops; k++) {
        random_text(rng, stops[k], 1 + (int)(rk_test_rng_next(rng) % 4));
        sp[k] = stops[k];
    }
    char text[512];
    size_t n = random_text(rng, text, (int)(rk_test_rng_next(rng) % 60));
    size_t end_at, cut = ref_cut(text, n, stops, n_stops, &end_at);
    stream s;
    stream_open(&s, sp, n_stops);
    size_t pos = 0;
    int stopped = 0, bad = 0;
    while (pos < n && !stopped) {
        size_t len = rk_test_rng_next(rng) % 7;
        len = len > n - pos ? n - pos : len;
        const char *e;
        size_t elen;
        stopped = rk_stop_text_push(s.st, text + pos, len, &e, &elen);
        take(&s, e, elen);
        pos += len;
        if (stopped)
            bad |= end_at == 0 || pos < end_at || s.out_len != cut;
        else
            bad |= s.out_len != ref_safe(text, pos, stops, n_stops) || (end_at && pos >= end_at);
    }
    if (!stopped) {
        const char *e;
        size_t elen;
        stopped = rk_stop_text_flush(s.st, &e, &elen);
        take(&s, e, elen);
    }
    bad |= stopped != (end_at != 0) || s.out_len != cut || memcmp(s.out, text, cut) != 0;
    bad |= s.bad_utf8 || rk_stop_text_emitted(s.st) != s.out_len;
    if (bad && ++*fails <= 5) {
        fprintf(stderr, "random case failed: text '%s', %d stops:", text, n_stops);
        for (int k = 0; k < n_stops; k++)
            fprintf(stderr, " '%s'", stops[k]);
        fprintf(stderr, "; output '%s', want %zu bytes\n", s.out, cut);
    }
    rk_stop_text_free(s.st);
}

static void test_random(void) {
    rk_test_rng rng = {0x5eed1234abcdULL};
    int fails = 0;
    for (int i = 0; i < 20000; i++)
        random_case(&rng, &fails);
    CHECK_MSG(fails == 0, "%d of 20000 random cases failed", fails);
}

int main(void) {
    test_no_stops();
    test_split_and_first_piece();
    test_false_partial();
    test_overlapping_stops();
    test_utf8();
    test_flush();
    test_create_errors();
    test_random();
    return rk_test_finish("test-stop-text");
}
