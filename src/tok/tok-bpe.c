/*
 * tok-bpe.c — byte-level BPE ("gpt2" vocabularies), as llama.cpp's llm_tokenizer_bpe_session:
 *
 *   1. pre-tokenize: each regex of the pre-tokenizer (applied in order) cuts every piece so far
 *      into its matches and the gaps between them (llama.cpp's unicode_regex_split);
 *   2. each piece's bytes are shown in GPT-2's byte alphabet (bytes_to_unicode);
 *   3. with ignore_merges (Llama 3) a piece that is itself a token is emitted whole;
 *   4. otherwise the piece is cut into characters and adjacent pairs merge lowest rank first
 *      (ties: leftmost), stale heap entries skipped; a final symbol that is not a token is
 *      emitted byte by byte (single-byte tokens only, like llama.cpp).
 *
 * Merges are looked up by token-id pair in a hash table built at load time (tok.c), so one
 * merge step is O(1) and a piece of n characters costs O(n log n).
 *
 * Regexes use PCRE2 in UTF + UCP mode (Unicode properties for \p{L}, \p{N}, \s), JIT-compiled
 * when the library supports it. Without PCRE2 (RINGKV_HAVE_PCRE2 undefined), loading a BPE
 * vocabulary fails with RK_ERR_UNSUPPORTED.
 */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tok/tok-internal.h"

#ifdef RINGKV_HAVE_PCRE2
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#endif

/* ---------------------------------------------------------------- GPT-2 byte alphabet */

/* Bytes that are printable stand for themselves; the other 68 map to U+0100.. in order. */
static int byte_is_printable(int b) {
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

/* The non-printable bytes are 0..32 (-> U+0100..U+0120), 127..160 (-> U+0121..U+0142) and
 * 173 (-> U+0143). */
uint32_t rk_bpe_byte_to_cp(uint8_t b) {
    if (b <= 32) return 256u + b;
    if (b >= 127 && b <= 160) return (uint32_t)b + 162u;
    if (b == 173) return 323;
    return b;
}

int rk_bpe_cp_to_byte(uint32_t cp) {
    if (cp < 256) return byte_is_printable((int)cp) ? (int)cp : -1;
    if (cp <= 288) return (int)(cp - 256);
    if (cp <= 322) return (int)(cp - 162);
    if (cp == 323) return 173;
    return -1;
}

/* ---------------------------------------------------------------- pre-tokenizer regexes */

#define RX_CONTRACTIONS "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define RX_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"

static int regex_list(rk_tok_pre pre, const char *out[RK_TOK_MAX_REGEX]) {
    switch (pre) {
    case RK_PRE_LLAMA3:
        out[0] = RX_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
                                 "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
        return 1;
    case RK_PRE_QWEN2:
        out[0] = RX_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
                                 "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
        return 1;
    case RK_PRE_GPT2:
        out[0] = RX_GPT2;
        return 1;
    case RK_PRE_SMOLLM:
        out[0] = "\\p{N}";
        out[1] = RX_GPT2;
        return 2;
    case RK_PRE_DEFAULT:
        break;
    }
    out[0] = "[\\p{P}\\$\\+<=>\\^~\\|]+";
    out[1] = RX_GPT2;
    out[2] = "\\p{N}+";
    out[3] = "[0-9][0-9][0-9]";
    return 4;
}

#ifdef RINGKV_HAVE_PCRE2

rk_status rk_tok_bpe_init(rk_tok *tok, rk_error *err) {
    const char *rx[RK_TOK_MAX_REGEX];
    int n = regex_list(tok->pre, rx);
    for (int i = 0; i < n; i++) {
        int code;
        PCRE2_SIZE at;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)rx[i], PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &code,
                                       &at, NULL);
        if (!re) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(code, msg, sizeof msg);
            return rk_error_set(err, RK_ERR_INTERNAL, "tok: pre-tokenizer regex %d of '%s' at %zu: %s", i,
                                tok->pre_name, (size_t)at, (const char *)msg);
        }
        (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
        tok->regex[tok->n_regex++] = re;
    }
    return RK_OK;
}

void rk_tok_bpe_release(rk_tok *tok) {
    for (int i = 0; i < tok->n_regex; i++) pcre2_code_free(tok->regex[i]);
    tok->n_regex = 0;
}

typedef struct span {
    size_t off, len;
} span;

typedef struct span_vec {
    span *v;
    size_t n, cap;
} span_vec;

static rk_status span_push(span_vec *s, size_t off, size_t len) {
    if (len == 0) return RK_OK;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        span *p = realloc(s->v, cap * sizeof *p);
        if (!p) return RK_ERR_NO_MEMORY;
        s->v = p;
        s->cap = cap;
    }
    s->v[s->n++] = (span){off, len};
    return RK_OK;
}

/* Cuts each piece of `in` into matches of `re` and the gaps between them, into `out`. */
static rk_status split_regex(const pcre2_code *re, const char *text, const span_vec *in, span_vec *out,
                             pcre2_match_data *md, rk_error *err) {
    out->n = 0;
    for (size_t p = 0; p < in->n; p++) {
        const char *subj = text + in->v[p].off;
        size_t n = in->v[p].len, pos = 0, gap = 0;
        while (pos < n) {
            int rc = pcre2_match(re, (PCRE2_SPTR)subj, n, pos, PCRE2_NO_UTF_CHECK, md, NULL);
            if (rc == PCRE2_ERROR_NOMATCH) break;
            if (rc < 0) {
                PCRE2_UCHAR msg[128];
                pcre2_get_error_message(rc, msg, sizeof msg);
                return rk_error_set(err, RK_ERR_INTERNAL, "tok: regex match failed: %s", (const char *)msg);
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t ms = ov[0], me = ov[1];
            if (me <= ms) { /* empty match: none of our patterns has one, but never loop */
                pos = ms + rk_utf8_len((unsigned char)subj[ms]);
                continue;
            }
            if (span_push(out, in->v[p].off + gap, ms - gap) != RK_OK ||
                span_push(out, in->v[p].off + ms, me - ms) != RK_OK)
                return RK_ERR_NO_MEMORY;
            gap = pos = me;
        }
        if (span_push(out, in->v[p].off + gap, n - gap) != RK_OK) return RK_ERR_NO_MEMORY;
    }
    return RK_OK;
}

/* ---------------------------------------------------------------- merging one piece */

typedef struct bpe_sym {
    size_t start, n;    /* bytes of the mapped piece; n = 0 once merged away */
    int64_t prev, next;
    rk_token id;        /* the token of this text, -1 when none */
} bpe_sym;

typedef struct bpe_bigram {
    int32_t rank;
    rk_token res;
    int64_t left, right;
    size_t size;
} bpe_bigram;

typedef struct bpe_work {
    char *mapped;        /* the piece in the byte alphabet */
    size_t mapped_cap;
    bpe_sym *sym;
    size_t sym_cap;
    bpe_bigram *heap;
    size_t heap_n, heap_cap;
} bpe_work;

static int bb_before(const bpe_bigram *a, const bpe_bigram *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static rk_status bb_push(bpe_work *w, bpe_bigram b) {
    if (w->heap_n == w->heap_cap) {
        size_t cap = w->heap_cap ? w->heap_cap * 2 : 64;
        bpe_bigram *p = realloc(w->heap, cap * sizeof *p);
        if (!p) return RK_ERR_NO_MEMORY;
        w->heap = p;
        w->heap_cap = cap;
    }
    size_t i = w->heap_n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!bb_before(&b, &w->heap[parent])) break;
        w->heap[i] = w->heap[parent];
        i = parent;
    }
    w->heap[i] = b;
    return RK_OK;
}

static bpe_bigram bb_pop(bpe_work *w) {
    bpe_bigram top = w->heap[0], last = w->heap[--w->heap_n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= w->heap_n) break;
        if (c + 1 < w->heap_n && bb_before(&w->heap[c + 1], &w->heap[c])) c++;
        if (!bb_before(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (w->heap_n) w->heap[i] = last;
    return top;
}

static rk_status add_bigram(const rk_tok *tok, bpe_work *w, int64_t left, int64_t right) {
    if (left < 0 || right < 0) return RK_OK;
    rk_token l = w->sym[left].id, r = w->sym[right].id;
    if (l < 0 || r < 0) return RK_OK;
    uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
    uint64_t h = key;
    h ^= h >> 31;
    h *= 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
    for (size_t i = (size_t)h & tok->merge_mask;; i = (i + 1) & tok->merge_mask) {
        if (tok->mkey[i] == UINT64_MAX) return RK_OK;
        if (tok->mkey[i] == key)
            return bb_push(w, (bpe_bigram){tok->mrank[i], tok->mres[i], left, right,
                                           w->sym[left].n + w->sym[right].n});
    }
}

static rk_status reserve(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return RK_OK;
    size_t cap2 = *cap ? *cap : 64;
    while (cap2 < need) cap2 *= 2;
    void *q = realloc(*p, cap2 * elem);
    if (!q) return RK_ERR_NO_MEMORY;
    *p = q;
    *cap = cap2;
    return RK_OK;
}

static rk_status emit_symbols(const rk_tok *tok, const bpe_work *w, int64_t n_sym, rk_tok_vec *out) {
    rk_status st = RK_OK;
    for (int64_t i = 0; i < n_sym && st == RK_OK; i++) {
        const bpe_sym *s = &w->sym[i];
        if (s->n == 0) continue;
        if (s->id >= 0) { st = rk_tok_vec_push(out, s->id); continue; }
        for (size_t j = 0; j < s->n && st == RK_OK; j++) {
            rk_token b = rk_tok_lookup(tok, w->mapped + s->start + j, 1);
            if (b >= 0) st = rk_tok_vec_push(out, b);
        }
    }
    return st;
}

static rk_status bpe_piece(const rk_tok *tok, const char *text, size_t len, bpe_work *w, rk_tok_vec *out) {
    if (reserve((void **)&w->mapped, &w->mapped_cap, 2 * len + 1, 1) != RK_OK) return RK_ERR_NO_MEMORY;
    size_t m = 0;
    for (size_t i = 0; i < len; i++) {
        uint32_t cp = rk_bpe_byte_to_cp((uint8_t)text[i]);
        if (cp < 0x80) w->mapped[m++] = (char)cp;
        else {
            w->mapped[m++] = (char)(0xC0 | (cp >> 6));
            w->mapped[m++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    if (tok->ignore_merges) {
        rk_token id = rk_tok_lookup(tok, w->mapped, m);
        if (id >= 0) return rk_tok_vec_push(out, id);
    }
    if (reserve((void **)&w->sym, &w->sym_cap, m, sizeof *w->sym) != RK_OK) return RK_ERR_NO_MEMORY;
    int64_t n_sym = 0;
    for (size_t off = 0; off < m; n_sym++) {
        size_t cl = rk_utf8_len((unsigned char)w->mapped[off]);
        if (cl > m - off) cl = m - off;
        w->sym[n_sym] = (bpe_sym){off, cl, n_sym - 1, off + cl == m ? -1 : n_sym + 1,
                                  rk_tok_lookup(tok, w->mapped + off, cl)};
        off += cl;
    }
    w->heap_n = 0;
    rk_status st = RK_OK;
    for (int64_t i = 1; i < n_sym && st == RK_OK; i++) st = add_bigram(tok, w, i - 1, i);
    while (st == RK_OK && w->heap_n > 0) {
        bpe_bigram b = bb_pop(w);
        bpe_sym *l = &w->sym[b.left], *r = &w->sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size || l->next != b.right) continue; /* stale */
        l->n += r->n;
        l->id = b.res;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) w->sym[r->next].prev = b.left;
        st = add_bigram(tok, w, l->prev, b.left);
        if (st == RK_OK) st = add_bigram(tok, w, b.left, l->next);
    }
    if (st == RK_OK) st = emit_symbols(tok, w, n_sym, out);
    return st;
}

rk_status rk_tok_bpe_encode(const rk_tok *tok, const char *text, size_t len, rk_tok_vec *out,
                            rk_error *err) {
    span_vec a = {0}, b = {0};
    bpe_work w = {0};
    pcre2_match_data *md = NULL;
    rk_status st = span_push(&a, 0, len);
    for (int i = 0; i < tok->n_regex && st == RK_OK; i++) {
        if (!md) md = pcre2_match_data_create(4, NULL);
        if (!md) { st = RK_ERR_NO_MEMORY; break; }
        st = split_regex(tok->regex[i], text, &a, &b, md, err);
        span_vec t = a;
        a = b;
        b = t;
    }
    for (size_t p = 0; p < a.n && st == RK_OK; p++) st = bpe_piece(tok, text + a.v[p].off, a.v[p].len, &w, out);
    pcre2_match_data_free(md);
    free(a.v);
    free(b.v);
    free(w.mapped);
    free(w.sym);
    free(w.heap);
    if (st == RK_ERR_NO_MEMORY) return rk_error_set(err, st, "tok: out of memory encoding %zu bytes", len);
    return st;
}

#else /* no PCRE2 */

rk_status rk_tok_bpe_init(rk_tok *tok, rk_error *err) {
    const char *rx[RK_TOK_MAX_REGEX];
    (void)regex_list(tok->pre, rx);
    return rk_error_set(err, RK_ERR_UNSUPPORTED,
                        "tok: byte-level BPE vocabularies (pre-tokenizer '%s') need PCRE2; rebuild ringkv "
                        "with libpcre2-8 installed",
                        tok->pre_name);
}

void rk_tok_bpe_release(rk_tok *tok) { (void)tok; }

rk_status rk_tok_bpe_encode(const rk_tok *tok, const char *text, size_t len, rk_tok_vec *out,
                            rk_error *err) {
    (void)tok, (void)text, (void)len, (void)out;
    return rk_error_set(err, RK_ERR_UNSUPPORTED, "tok: built without PCRE2");
}

#endif
