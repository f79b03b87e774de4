/*
 * test-tok-vocab.c — golden tokenizer test against llama.cpp's vocab test files.
 *
 * usage: test-tok-vocab ggml-vocab-NAME.gguf   (looked up under $RINGKV_TESTDATA/tokenizer)
 *
 * NAME.gguf.inp holds test strings separated by "\n__ggml_vocab_test__\n" (the file ends with
 * that separator); line i of NAME.gguf.out holds the expected ids of string i, tokenized
 * without BOS and without parsing special tokens — as llama.cpp's test-tokenizer-0 reads them.
 * Every string must give exactly the expected ids, and decoding the ids must give the string
 * back. Also reports how long loading the vocabulary takes.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gguf/gguf.h"
#include "test-util.h"
#include "tok/tok.h"

static const char k_sep[] = "\n__ggml_vocab_test__\n";

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Parses one line of ids ("1 2 3"); returns the count (at most cap). */
static size_t parse_ids(const char *line, size_t len, rk_token *ids, size_t cap) {
    size_t n = 0, i = 0;
    while (i < len && n < cap) {
        while (i < len && line[i] == ' ') i++;
        if (i >= len) break;
        long v = 0;
        while (i < len && line[i] >= '0' && line[i] <= '9') v = v * 10 + (line[i++] - '0');
        ids[n++] = (rk_token)v;
        while (i < len && line[i] != ' ') i++;
    }
    return n;
}

static void print_ids(const char *what, const rk_token *ids, size_t n) {
    fprintf(stderr, "  %s:", what);
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
    fputc('\n', stderr);
}

/* Checks string `s` against the expected line; returns 1 when the ids and the round trip match. */
static int check_one(const rk_tok *tok, size_t idx, const char *s, size_t n, const char *line, size_t line_len) {
    rk_token expect[4096];
    size_t n_expect = parse_ids(line, line_len, expect, 4096);
    rk_token *ids = NULL;
    size_t n_ids = 0;
    rk_error err;
    if (rk_tok_encode(tok, s, n, 0, 0, &ids, &n_ids, &err) != RK_OK) {
        fprintf(stderr, "string %zu: encode failed: %s\n", idx, err.msg);
        return 0;
    }
    int ok = n_ids == n_expect && (n_ids == 0 || memcmp(ids, expect, n_ids * sizeof *ids) == 0);
    if (!ok) {
        fprintf(stderr, "string %zu ('%.*s'): ids differ\n", idx, (int)(n < 60 ? n : 60), s);
        print_ids("expected", expect, n_expect);
        print_ids("got     ", ids, n_ids);
    }
    char *back = NULL;
    size_t back_len = 0;
    if (rk_tok_decode(tok, ids, n_ids, 0, &back, &back_len, &err) != RK_OK) {
        fprintf(stderr, "string %zu: decode failed: %s\n", idx, err.msg);
        ok = 0;
    } else if (back_len != n || memcmp(back, s, n) != 0) {
        fprintf(stderr, "string %zu: round trip gives '%.*s' for '%.*s'\n", idx, (int)back_len, back, (int)n, s);
        ok = 0;
    }
    free(back);
    free(ids);
    return ok;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s ggml-vocab-NAME.gguf\n", argv[0]);
        return 2;
    }
    char rel[512], path[1024], inp_path[1100], out_path[1100];
    snprintf(rel, sizeof rel, "tokenizer/%s", argv[1]);
    rk_test_data_path(path, sizeof path, rel);
    snprintf(inp_path, sizeof inp_path, "%s.inp", path);
    snprintf(out_path, sizeof out_path, "%s.out", path);

    size_t inp_len = 0, out_len = 0;
    char *inp = rk_test_read_file(inp_path, &inp_len);
    char *out = rk_test_read_file(out_path, &out_len);
    if (!inp || !out) {
        fprintf(stderr, "cannot read %s / %s\n", inp_path, out_path);
        return 1;
    }
    rk_error err;
    rk_gguf *g = NULL;
    rk_tok *tok = NULL;
    double t0 = now_s();
    if (rk_gguf_open(path, &g, &err) != RK_OK || rk_tok_load(g, &tok, &err) != RK_OK) {
        fprintf(stderr, "%s: %s\n", path, err.msg);
#ifndef RINGKV_TEST_HAVE_PCRE2
        if (err.code == RK_ERR_UNSUPPORTED) return RK_TEST_SKIP; /* BPE without PCRE2 */
#endif
        return 1;
    }
    double t1 = now_s();
    rk_gguf_close(g);
    fprintf(stderr, "%s: %d tokens, pre '%s', loaded in %.1f ms\n", argv[1], rk_tok_n_vocab(tok),
            rk_tok_pre_name(tok), 1e3 * (t1 - t0));

    size_t pos = 0, opos = 0, idx = 0, pass = 0;
    while (pos < inp_len) {
        const char *sep = memmem(inp + pos, inp_len - pos, k_sep, sizeof k_sep - 1);
        size_t end = sep ? (size_t)(sep - inp) : inp_len;
        const char *nl = memchr(out + opos, '\n', out_len - opos);
        size_t oend = nl ? (size_t)(nl - out) : out_len;
        if (opos >= out_len) {
            fprintf(stderr, "string %zu has no expected line\n", idx);
            rk_test_failures++;
            break;
        }
        pass += (size_t)check_one(tok, idx, inp + pos, end - pos, out + opos, oend - opos);
        idx++;
        opos = oend + 1;
        pos = sep ? end + sizeof k_sep - 1 : inp_len;
    }
    fprintf(stderr, "%s: %zu/%zu strings give the expected ids and round-trip\n", argv[1], pass, idx);
    CHECK(idx > 0 && pass == idx);
    CHECK(opos >= out_len); /* every expected line was used */
    rk_tok_free(tok);
    free(inp);
    free(out);
    return rk_test_finish(argv[1]);
}
