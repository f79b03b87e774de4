/*
 * tok-spm.c — SentencePiece-style BPE ("llama" vocabularies), as llama.cpp's
 * llm_tokenizer_spm_session:
 *
 *   1. spaces become U+2581 ("▁"), with one more in front when the caller asks for the prefix;
 *   2. the text is cut into UTF-8 characters (symbols, a doubly linked list);
 *   3. every adjacent pair whose concatenation is a token goes into a max-heap keyed by that
 *      token's score (ties: leftmost first); the best pair is merged, its neighbours re-queued,
 *      and stale entries (a side already merged away) are skipped when popped;
 *   4. each final symbol is its token, or, when it is not in the vocabulary (only possible for
 *      a single character), one <0xXX> byte token per byte (the unknown token if none).
 *
 * Merged symbols are always tokens, so llama.cpp's "resegment" step reduces to (4) for valid
 * UTF-8 input, which is all rk_tok_encode accepts. Cost: O(n log n) in the fragment length.
 */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tok/tok-internal.h"

typedef struct spm_sym {
    size_t start, n;     /* bytes of the escaped text; n = 0 once merged into the left one */
    int64_t prev, next;  /* -1 at the ends */
} spm_sym;

typedef struct spm_bigram {
    float score;
    int64_t left, right;
    size_t size;
} spm_bigram;

typedef struct spm_heap {
    spm_bigram *v;
    size_t n, cap;
} spm_heap;

/* a comes out of the heap before b */
static int bigram_before(const spm_bigram *a, const spm_bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static rk_status heap_push(spm_heap *h, spm_bigram b) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        spm_bigram *p = realloc(h->v, cap * sizeof *p);
        if (!p) return RK_ERR_NO_MEMORY;
        h->v = p;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!bigram_before(&b, &h->v[parent])) break;
        h->v[i] = h->v[parent];
        i = parent;
    }
    h->v[i] = b;
    return RK_OK;
}

static spm_bigram heap_pop(spm_heap *h) {
    spm_bigram top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && bigram_before(&h->v[c + 1], &h->v[c])) c++;
        if (!bigram_before(&h->v[c], &last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) h->v[i] = last;
    return top;
}

static rk_status try_add_bigram(const rk_tok *tok, const char *s, const spm_sym *sym, int64_t left,
                                int64_t right, spm_heap *h) {
    if (left < 0 || right < 0) return RK_OK;
    size_t n = sym[left].n + sym[right].n;
    rk_token id = rk_tok_lookup(tok, s + sym[left].start, n);
    if (id < 0) return RK_OK;
    return heap_push(h, (spm_bigram){tok->score[id], left, right, n});
}

/* Escapes spaces (and adds the prefix) into a new buffer. */
static char *escape_text(const char *text, size_t len, bool add_prefix, size_t *out_len) {
    size_t spaces = add_prefix;
    for (size_t i = 0; i < len; i++) spaces += text[i] == ' ';
    char *s = malloc(len + 2 * spaces + 1);
    if (!s) return NULL;
    size_t k = 0;
    if (add_prefix) { memcpy(s, "\xE2\x96\x81", 3); k = 3; }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') { memcpy(s + k, "\xE2\x96\x81", 3); k += 3; }
        else s[k++] = text[i];
    }
    *out_len = k;
    return s;
}

static rk_status emit(const rk_tok *tok, const char *s, const spm_sym *sym, rk_tok_vec *out) {
    rk_status st = RK_OK;
    for (int64_t i = 0; i != -1 && st == RK_OK; i = sym[i].next) {
        rk_token id = rk_tok_lookup(tok, s + sym[i].start, sym[i].n);
        if (id >= 0) { st = rk_tok_vec_push(out, id); continue; }
        for (size_t j = 0; j < sym[i].n && st == RK_OK; j++) {
            rk_token b = tok->byte_tok[(unsigned char)s[sym[i].start + j]];
            if (b < 0) b = tok->unk;
            if (b >= 0) st = rk_tok_vec_push(out, b);
        }
    }
    return st;
}

rk_status rk_tok_spm_encode(const rk_tok *tok, const char *text, size_t len, bool add_prefix,
                            rk_tok_vec *out, rk_error *err) {
    size_t n_s;
    char *s = escape_text(text, len, add_prefix, &n_s);
    spm_sym *sym = s ? malloc((n_s ? n_s : 1) * sizeof *sym) : NULL;
    spm_heap heap = {0};
    rk_status st = sym ? RK_OK : RK_ERR_NO_MEMORY;
    int64_t n_sym = 0;
    for (size_t off = 0; st == RK_OK && off < n_s; n_sym++) {
        size_t cl = rk_utf8_len((unsigned char)s[off]);
        if (cl > n_s - off) cl = n_s - off;
        sym[n_sym] = (spm_sym){off, cl, n_sym - 1, off + cl == n_s ? -1 : n_sym + 1};
        off += cl;
    }
    for (int64_t i = 1; st == RK_OK && i < n_sym; i++) st = try_add_bigram(tok, s, sym, i - 1, i, &heap);
    while (st == RK_OK && heap.n > 0) {
        spm_bigram b = heap_pop(&heap);
        spm_sym *l = &sym[b.left], *r = &sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = b.left;
        st = try_add_bigram(tok, s, sym, l->prev, b.left, &heap);
        if (st == RK_OK) st = try_add_bigram(tok, s, sym, b.left, l->next, &heap);
    }
    if (st == RK_OK && n_sym > 0) st = emit(tok, s, sym, out);
    free(heap.v);
    free(sym);
    free(s);
    if (st != RK_OK) return rk_error_set(err, st, "tok: out of memory encoding %zu bytes", len);
    return RK_OK;
}
