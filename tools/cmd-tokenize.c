/* cmd-tokenize.c — `ringkv tokenize` (see cmd-tokenize.h): a thin tool over the tokenizer
 * module, used by tests outside this repository to compare ids with other implementations. */
#include "tools/cmd-tokenize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "tok/tok.h"

typedef struct tokenize_opts {
    const char *model;
    int add_bos, parse_special, batch, pieces;
} tokenize_opts;

static void usage(FILE *f) {
    fprintf(f, "usage: ringkv tokenize -m FILE.gguf [--no-bos] [--no-special] [--batch] [--pieces] < text\n"
               "  prints the token ids of the UTF-8 text on stdin, space-separated on one line\n"
               "  --no-bos      do not add BOS/EOS even when the vocabulary asks for them\n"
               "  --no-special  treat special-token texts such as <|im_start|> as plain text\n"
               "  --batch       stdin holds texts separated by NUL bytes; one line per text\n"
               "  --pieces      print id:'piece' instead of bare ids\n");
}

static char *read_all(FILE *f, size_t *out_n) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) {
            if (ferror(f)) { free(buf); return NULL; }
            break;
        }
        char *p = realloc(buf, cap * 2);
        if (!p) { free(buf); return NULL; }
        buf = p;
        cap *= 2;
    }
    if (buf) *out_n = n;
    return buf;
}

static void print_ids(const rk_tok *tok, const rk_token *ids, size_t n, int pieces) {
    char piece[256];
    for (size_t i = 0; i < n; i++) {
        if (!pieces) { printf(i ? " %d" : "%d", ids[i]); continue; }
        int32_t k = rk_tok_piece(tok, ids[i], 1, piece, sizeof piece);
        if (k > (int32_t)sizeof piece) k = sizeof piece;
        printf("%s%d:'%.*s'", i ? " " : "", ids[i], k < 0 ? 0 : k, piece);
    }
    putchar('\n');
}

static int parse_args(int argc, char **argv, tokenize_opts *o) {
    *o = (tokenize_opts){NULL, 1, 1, 0, 0};
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) && i + 1 < argc) o->model = argv[++i];
        else if (!strcmp(argv[i], "--no-bos")) o->add_bos = 0;
        else if (!strcmp(argv[i], "--no-special")) o->parse_special = 0;
        else if (!strcmp(argv[i], "--batch")) o->batch = 1;
        else if (!strcmp(argv[i], "--pieces")) o->pieces = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { usage(stdout); return 0; }
        else {
            fprintf(stderr, "ringkv tokenize: unknown or incomplete option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!o->model) {
        fprintf(stderr, "ringkv tokenize: -m FILE.gguf is required\n");
        usage(stderr);
        return 2;
    }
    return -1;
}

/* Tokenizes each text (one, or NUL-separated ones with --batch) and prints its line. */
static int run(const rk_tok *tok, const tokenize_opts *o, const char *text, size_t n) {
    size_t start = 0;
    do {
        size_t end = n;
        if (o->batch) {
            const char *z = memchr(text + start, '\0', n - start);
            end = z ? (size_t)(z - text) : n;
        }
        rk_token *ids;
        size_t n_ids;
        rk_error err;
        if (rk_tok_encode(tok, text + start, end - start, o->add_bos, o->parse_special, &ids, &n_ids, &err) != RK_OK) {
            fprintf(stderr, "ringkv tokenize: %s\n", err.msg);
            return 1;
        }
        print_ids(tok, ids, n_ids, o->pieces);
        free(ids);
        start = end + 1;
    } while (o->batch && start < n);
    return 0;
}

int rk_cmd_tokenize(int argc, char **argv) {
    tokenize_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0) return rc;
    rk_error err;
    rk_gguf *g = NULL;
    rk_tok *tok = NULL;
    if (rk_gguf_open(o.model, &g, &err) != RK_OK || rk_tok_load(g, &tok, &err) != RK_OK) {
        fprintf(stderr, "ringkv tokenize: %s: %s\n", o.model, err.msg);
        rk_gguf_close(g);
        return 1;
    }
    rk_gguf_close(g);
    size_t n = 0;
    char *text = read_all(stdin, &n);
    if (!text) {
        fprintf(stderr, "ringkv tokenize: cannot read stdin\n");
        rk_tok_free(tok);
        return 1;
    }
    rc = run(tok, &o, text, n);
    free(text);
    rk_tok_free(tok);
    if (fflush(stdout) != 0) return 1;
    return rc;
}
