/*
 * test-tok-unit.c — tokenizer behaviour on small vocabularies built as GGUF images in memory:
 * hostile metadata (ids out of range, wrong array types and lengths, merges naming unknown
 * tokens, unknown models and pre-tokenizers), invalid UTF-8, empty text, special tokens,
 * byte fallback, chat templates, and random corruption of a valid image (must never crash).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "test-util.h"
#include "tok/tok.h"

/* ---------------------------------------------------------------- a tiny GGUF writer */

typedef struct gbuf {
    uint8_t *p;
    size_t n, cap;
    uint64_t n_kv;
} gbuf;

static void put(gbuf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 256;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void put_u32(gbuf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(gbuf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(gbuf *b, const char *s) { put_u64(b, strlen(s)); put(b, s, strlen(s)); }
static void key(gbuf *b, const char *k, uint32_t type) { put_str(b, k); put_u32(b, type); b->n_kv++; }

static void kv_str(gbuf *b, const char *k, const char *v) { key(b, k, RK_GGUF_STRING); put_str(b, v); }
static void kv_u32(gbuf *b, const char *k, uint32_t v) { key(b, k, RK_GGUF_UINT32); put_u32(b, v); }
static void kv_bool(gbuf *b, const char *k, int v) { key(b, k, RK_GGUF_BOOL); uint8_t x = (uint8_t)v; put(b, &x, 1); }
static void kv_strs(gbuf *b, const char *k, const char *const *v, size_t n) {
    key(b, k, RK_GGUF_ARRAY);
    put_u32(b, RK_GGUF_STRING);
    put_u64(b, n);
    for (size_t i = 0; i < n; i++) put_str(b, v[i]);
}
static void kv_i32s(gbuf *b, const char *k, const int32_t *v, size_t n) {
    key(b, k, RK_GGUF_ARRAY);
    put_u32(b, RK_GGUF_INT32);
    put_u64(b, n);
    put(b, v, n * 4);
}
static void kv_f32s(gbuf *b, const char *k, const float *v, size_t n) {
    key(b, k, RK_GGUF_ARRAY);
    put_u32(b, RK_GGUF_FLOAT32);
    put_u64(b, n);
    put(b, v, n * 4);
}

/* Wraps the kvs written into `body` as a complete GGUF v3 image without tensors. */
static gbuf finish(gbuf *body) {
    gbuf img = {0};
    put(&img, "GGUF", 4);
    put_u32(&img, 3);
    put_u64(&img, 0);
    put_u64(&img, body->n_kv);
    put(&img, body->p, body->n);
    while (img.n % 32) put(&img, "", 1);
    free(body->p);
    return img;
}

/* Loads a tokenizer from an image; returns the status (and *out on success). */
static rk_status load(gbuf *img, rk_tok **out, rk_error *err) {
    rk_gguf *g = NULL;
    *out = NULL;
    rk_status st = rk_gguf_open_memory(img->p, img->n, &g, err);
    if (st == RK_OK) st = rk_tok_load(g, out, err);
    rk_gguf_close(g);
    return st;
}

/* ---------------------------------------------------------------- vocabularies */

/* SentencePiece: <unk> <s> </s> <0x00>..<0xFF> then pieces. */
enum { SPM_BYTES = 3, SPM_N = 3 + 256 + 8 };
static const char *const spm_pieces[8] = {"\xE2\x96\x81", "a", "b", "\xE2\x96\x81" "a", "ab",
                                          "\xE2\x96\x81" "ab", "<ctl>", "<user>"};

typedef struct spm_opts {
    int64_t bos;       /* -1: key absent */
    int n_types;       /* token_type length (SPM_N normally) */
    const char *model;
    const char *tmpl;  /* chat template or NULL */
} spm_opts;

static gbuf spm_image(spm_opts o) {
    static char bytes[256][8];
    const char *toks[SPM_N];
    int32_t types[SPM_N];
    float scores[SPM_N];
    toks[0] = "<unk>", toks[1] = "<s>", toks[2] = "</s>";
    types[0] = 2, types[1] = 3, types[2] = 3;
    for (int i = 0; i < 256; i++) {
        snprintf(bytes[i], sizeof bytes[i], "<0x%02X>", i);
        toks[SPM_BYTES + i] = bytes[i];
        types[SPM_BYTES + i] = 6;
    }
    for (int i = 0; i < 8; i++) {
        toks[SPM_BYTES + 256 + i] = spm_pieces[i];
        types[SPM_BYTES + 256 + i] = 1;
    }
    types[SPM_N - 2] = 3; /* <ctl> */
    types[SPM_N - 1] = 4; /* <user> */
    for (int i = 0; i < SPM_N; i++) scores[i] = -(float)i;
    gbuf b = {0};
    kv_str(&b, "tokenizer.ggml.model", o.model ? o.model : "llama");
    kv_strs(&b, "tokenizer.ggml.tokens", toks, SPM_N);
    kv_f32s(&b, "tokenizer.ggml.scores", scores, SPM_N);
    kv_i32s(&b, "tokenizer.ggml.token_type", types, (size_t)o.n_types);
    if (o.bos >= 0) kv_u32(&b, "tokenizer.ggml.bos_token_id", (uint32_t)o.bos);
    kv_u32(&b, "tokenizer.ggml.eos_token_id", 2);
    kv_bool(&b, "tokenizer.ggml.add_bos_token", 1);
    if (o.tmpl) kv_str(&b, "tokenizer.chat_template", o.tmpl);
    return finish(&b);
}

static const spm_opts spm_default = {1, SPM_N, NULL, NULL};

/* Byte-level BPE over a handful of tokens. */
static gbuf bpe_image(const char *pre, const char *const *merges, size_t n_merges) {
    static const char *const toks[] = {"a", "b", "c", "\xC4\xA0", "ab", "abc", "\xC4\xA0" "a",
                                       "1", "2", "<|im_start|>", "<|im_end|>"};
    int32_t types[11] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3};
    gbuf b = {0};
    kv_str(&b, "tokenizer.ggml.model", "gpt2");
    if (pre) kv_str(&b, "tokenizer.ggml.pre", pre);
    kv_strs(&b, "tokenizer.ggml.tokens", toks, 11);
    kv_i32s(&b, "tokenizer.ggml.token_type", types, 11);
    kv_strs(&b, "tokenizer.ggml.merges", merges, n_merges);
    kv_u32(&b, "tokenizer.ggml.eos_token_id", 10);
    return finish(&b);
}

static const char *const good_merges[] = {"a b", "ab c", "\xC4\xA0 a"};

/* ---------------------------------------------------------------- tests */

static int ids_equal(const rk_token *a, size_t na, const rk_token *b, size_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

static void expect_ids(const rk_tok *tok, const char *text, int add, int special, const rk_token *want,
                       size_t n_want) {
    rk_token *ids = NULL;
    size_t n = 0;
    rk_error err;
    rk_status st = rk_tok_encode(tok, text, strlen(text), add, special, &ids, &n, &err);
    CHECK_MSG(st == RK_OK, "'%s': %s", text, err.msg);
    int ok = ids_equal(ids, n, want, n_want);
    CHECK_MSG(ok, "'%s' (add %d special %d): got %zu ids, first %d", text, add, special, n, n ? ids[0] : -1);
    free(ids);
}

static void test_spm(void) {
    gbuf img = spm_image(spm_default);
    rk_tok *tok;
    rk_error err;
    CHECK_MSG(load(&img, &tok, &err) == RK_OK, "%s", err.msg);
    if (!tok) { free(img.p); return; }
    const rk_token U = SPM_BYTES + 256; /* first piece id */
    CHECK(rk_tok_get_type(tok) == RK_TOK_SPM);
    CHECK(rk_tok_bos(tok) == 1 && rk_tok_eos(tok) == 2 && rk_tok_add_bos(tok));
    /* "ab" -> "▁ab" merges to one token; " a" -> "▁▁a" -> ▁ + ▁a */
    expect_ids(tok, "ab", 0, 0, (rk_token[]){U + 5}, 1);
    expect_ids(tok, "ab", 1, 0, (rk_token[]){1, U + 5}, 2);
    expect_ids(tok, " a", 0, 0, (rk_token[]){U + 0, U + 3}, 2);
    /* byte fallback: 'z' is not a piece; "é" is two bytes */
    expect_ids(tok, "z", 0, 0, (rk_token[]){U + 0, SPM_BYTES + 'z'}, 2);
    expect_ids(tok, "\xC3\xA9", 0, 0, (rk_token[]){U + 0, SPM_BYTES + 0xC3, SPM_BYTES + 0xA9}, 3);
    /* empty text: nothing, or BOS alone */
    expect_ids(tok, "", 0, 0, NULL, 0);
    expect_ids(tok, "", 1, 1, (rk_token[]){1}, 1);
    /* control tokens only with parse_special; user-defined ones always */
    expect_ids(tok, "<ctl>a", 0, 1, (rk_token[]){U + 6, U + 3}, 2);
    expect_ids(tok, "<user>", 0, 0, (rk_token[]){U + 7}, 1);
    /* NUL bytes are text like any other */
    rk_token *ids;
    size_t n;
    CHECK(rk_tok_encode(tok, "a\0b", 3, 0, 0, &ids, &n, &err) == RK_OK && n > 0);
    free(ids);
    /* invalid UTF-8: the message names the offset */
    static const char *const bad[] = {"ab\xFF", "ab\xC3", "\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80",
                                      "ok\xE2\x82"};
    static const size_t bad_at[] = {2, 2, 0, 0, 0, 2};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ids = NULL;
        rk_status st = rk_tok_encode(tok, bad[i], strlen(bad[i]), 0, 0, &ids, &n, &err);
        char want[64];
        snprintf(want, sizeof want, "offset %zu", bad_at[i]);
        CHECK_MSG(st == RK_ERR_FORMAT && strstr(err.msg, want), "bad utf-8 %zu: %s", i, err.msg);
        CHECK(ids == NULL);
    }
    /* pieces and decode */
    char buf[16];
    CHECK(rk_tok_piece(tok, U + 3, 0, buf, sizeof buf) == 2 && memcmp(buf, " a", 2) == 0);
    CHECK(rk_tok_piece(tok, SPM_BYTES + 'z', 0, buf, sizeof buf) == 1 && buf[0] == 'z');
    CHECK(rk_tok_piece(tok, 1, 0, buf, sizeof buf) == 0);
    CHECK(rk_tok_piece(tok, 1, 1, buf, sizeof buf) == 3);
    CHECK(rk_tok_piece(tok, U + 5, 0, buf, 1) == 3); /* needs 3, wrote 1 */
    CHECK(rk_tok_piece(tok, -1, 0, buf, sizeof buf) == -1);
    CHECK(rk_tok_piece(tok, SPM_N, 0, buf, sizeof buf) == -1);
    rk_token seq[] = {1, U + 3, U + 0, SPM_BYTES + 0xC3, SPM_BYTES + 0xA9};
    char *s = NULL;
    CHECK(rk_tok_decode(tok, seq, 5, 0, &s, NULL, &err) == RK_OK && s && strcmp(s, "a \xC3\xA9") == 0);
    free(s);
    rk_token badseq[] = {U, 99999};
    CHECK(rk_tok_decode(tok, badseq, 2, 0, &s, NULL, &err) == RK_ERR_INVALID_ARG);
    CHECK(rk_tok_is_eog(tok, 2) && !rk_tok_is_eog(tok, 1));
    CHECK(rk_tok_chat_kind(tok) == RK_CHAT_NONE);
    char *chat = NULL;
    rk_chat_msg m = {"user", "hi"};
    CHECK(rk_tok_chat_format(tok, &m, 1, 1, &chat, &err) == RK_ERR_UNSUPPORTED && strstr(err.msg, "no chat template"));
    rk_tok_free(tok);
    rk_tok_free(NULL);
    free(img.p);
}

static void expect_load_error(gbuf img, rk_status want, const char *needle) {
    rk_tok *tok;
    rk_error err = {0};
    rk_status st = load(&img, &tok, &err);
    CHECK_MSG(st == want && tok == NULL && strstr(err.msg, needle), "want %d '%s', got %d '%s'", want, needle, st,
              err.msg);
    rk_tok_free(tok);
    free(img.p);
}

static void test_hostile(void) {
    spm_opts o = spm_default;
    o.bos = SPM_N; /* out of range */
    expect_load_error(spm_image(o), RK_ERR_FORMAT, "bos_token_id");
    o = spm_default;
    o.n_types = SPM_N - 1; /* token_type shorter than tokens */
    expect_load_error(spm_image(o), RK_ERR_FORMAT, "token_type");
    o = spm_default;
    o.model = "bert";
    expect_load_error(spm_image(o), RK_ERR_UNSUPPORTED, "bert");
    expect_load_error(bpe_image("no-such-pre", good_merges, 3), RK_ERR_UNSUPPORTED, "no-such-pre");
    static const char *const unknown[] = {"a b", "x y"};
    expect_load_error(bpe_image("gpt-2", unknown, 2), RK_ERR_FORMAT, "merge 1");
    static const char *const nospace[] = {"ab"};
    expect_load_error(bpe_image("gpt-2", nospace, 1), RK_ERR_FORMAT, "no space");
    static const char *const noresult[] = {"b c"}; /* "bc" is not a token */
    expect_load_error(bpe_image("gpt-2", noresult, 1), RK_ERR_FORMAT, "merge 0");

    gbuf b = {0}; /* no tokenizer at all */
    kv_str(&b, "general.name", "x");
    expect_load_error(finish(&b), RK_ERR_INVALID_ARG, "tokenizer.ggml.model");
    b = (gbuf){0}; /* tokens of the wrong type */
    kv_str(&b, "tokenizer.ggml.model", "llama");
    kv_i32s(&b, "tokenizer.ggml.tokens", (int32_t[]){1, 2}, 2);
    expect_load_error(finish(&b), RK_ERR_FORMAT, "tokenizer.ggml.tokens");
    b = (gbuf){0}; /* empty vocabulary */
    kv_str(&b, "tokenizer.ggml.model", "llama");
    kv_strs(&b, "tokenizer.ggml.tokens", NULL, 0);
    expect_load_error(finish(&b), RK_ERR_FORMAT, "tokenizer.ggml.tokens");
    b = (gbuf){0}; /* scores of the wrong length */
    kv_str(&b, "tokenizer.ggml.model", "llama");
    kv_strs(&b, "tokenizer.ggml.tokens", (const char *const[]){"<unk>", "<s>", "</s>"}, 3);
    kv_f32s(&b, "tokenizer.ggml.scores", (float[]){0, 0}, 2);
    expect_load_error(finish(&b), RK_ERR_FORMAT, "scores");
    b = (gbuf){0}; /* add_bos without a BOS token (the default id 1 does not exist) */
    kv_str(&b, "tokenizer.ggml.model", "llama");
    kv_strs(&b, "tokenizer.ggml.tokens", (const char *const[]){"a"}, 1);
    expect_load_error(finish(&b), RK_ERR_FORMAT, "BOS");
}

static void test_bpe(void) {
    gbuf img = bpe_image("gpt-2", good_merges, 3);
    rk_tok *tok;
    rk_error err;
    rk_status st = load(&img, &tok, &err);
#ifdef RINGKV_TEST_HAVE_PCRE2
    CHECK_MSG(st == RK_OK, "%s", err.msg);
#endif
    if (st != RK_OK) {
        CHECK(st == RK_ERR_UNSUPPORTED);
        free(img.p);
        return;
    }
    expect_ids(tok, "abc", 0, 0, (rk_token[]){5}, 1);
    expect_ids(tok, "abc a", 0, 0, (rk_token[]){5, 6}, 2);
    expect_ids(tok, "12", 0, 0, (rk_token[]){7, 8}, 2);
    expect_ids(tok, "<|im_start|>a", 0, 1, (rk_token[]){9, 0}, 2);
    expect_ids(tok, "", 1, 1, NULL, 0); /* gpt-2: no BOS */
    CHECK(rk_tok_is_eog(tok, 10));      /* <|im_end|> by id and by text */
    char buf[8];
    CHECK(rk_tok_piece(tok, 6, 0, buf, sizeof buf) == 2 && memcmp(buf, " a", 2) == 0);
    CHECK(rk_tok_chat_kind(tok) == RK_CHAT_CHATML); /* from the vocabulary */
    rk_tok_free(tok);
    free(img.p);
}

static const char k_smol_tmpl[] =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
    "'<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' "
    "}}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% "
    "endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

static void expect_chat(const char *tmpl, const rk_chat_msg *m, size_t n, int add, const char *want) {
    spm_opts o = spm_default;
    o.tmpl = tmpl;
    gbuf img = spm_image(o);
    rk_tok *tok;
    rk_error err;
    CHECK_MSG(load(&img, &tok, &err) == RK_OK, "%s", err.msg);
    char *out = NULL;
    if (tok) {
        rk_status st = rk_tok_chat_format(tok, m, n, add, &out, &err);
        if (want) CHECK_MSG(st == RK_OK && out && strcmp(out, want) == 0, "got '%s' (%s)", out ? out : "", err.msg);
        else CHECK_MSG(st == RK_ERR_INVALID_ARG, "want an error, got '%s'", out ? out : "");
    }
    free(out);
    rk_tok_free(tok);
    free(img.p);
}

static void test_chat(void) {
    rk_chat_msg user[] = {{"user", "Hi"}, {"assistant", " Hello! "}, {"user", "How?"}};
    expect_chat(k_smol_tmpl, user, 1, 1,
                "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
                "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    rk_chat_msg sys[] = {{"system", "Be brief."}, {"user", "Hi"}};
    expect_chat(k_smol_tmpl, sys, 2, 0, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
    /* Qwen2.5 style: the default prompt is an escaped literal in an else-branch */
    expect_chat("{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + "
                "'<|im_end|>\\n' }}{%- else %}{{- '<|im_start|>system\\nYou are Qwen.<|im_end|>\\n' }}{%- endif %}",
                user, 1, 0, "<|im_start|>system\nYou are Qwen.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
    expect_chat("{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}", user, 3, 1,
                "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
                "<|start_header_id|>user<|end_header_id|>\n\nHow?<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n");
    const char *gemma = "{{ bos_token }}<start_of_turn>";
    expect_chat(gemma, user, 3, 1,
                "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
                "<start_of_turn>user\nHow?<end_of_turn>\n<start_of_turn>model\n");
    expect_chat(gemma, sys, 2, 1, "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n");
    rk_chat_msg twice[] = {{"user", "a"}, {"user", "b"}};
    expect_chat(gemma, twice, 2, 1, NULL);
    rk_chat_msg null_content[] = {{"user", NULL}};
    expect_chat(gemma, null_content, 1, 1, NULL);
}

/* Flips random bytes of valid images; whatever loads must encode without crashing. */
static void test_corruption(void) {
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    for (int kind = 0; kind < 2; kind++) {
        gbuf img = kind ? bpe_image("qwen2", good_merges, 3) : spm_image(spm_default);
        uint8_t *copy = malloc(img.n);
        int loaded = 0;
        for (int iter = 0; iter < 3000; iter++) {
            memcpy(copy, img.p, img.n);
            int flips = 1 + iter % 4;
            for (int f = 0; f < flips; f++) {
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                copy[(rng >> 33) % img.n] ^= (uint8_t)(1u << ((rng >> 20) & 7));
            }
            rk_gguf *g = NULL;
            rk_tok *tok = NULL;
            rk_error err;
            if (rk_gguf_open_memory(copy, img.n, &g, &err) == RK_OK && rk_tok_load(g, &tok, &err) == RK_OK) {
                loaded++;
                rk_token *ids = NULL;
                size_t n = 0;
                if (rk_tok_encode(tok, "ab c <ctl>\xC3\xA9 12", 16, 1, 1, &ids, &n, &err) == RK_OK) {
                    char *s = NULL;
                    CHECK(rk_tok_decode(tok, ids, n, 1, &s, NULL, &err) == RK_OK);
                    free(s);
                }
                free(ids);
            }
            rk_tok_free(tok);
            rk_gguf_close(g);
        }
        fprintf(stderr, "corruption %s: %d/3000 corrupted images still loaded\n", kind ? "bpe" : "spm", loaded);
        free(copy);
        free(img.p);
    }
}

int main(void) {
    test_spm();
    test_hostile();
    test_bpe();
    test_chat();
    test_corruption();
    return rk_test_finish("test-tok-unit");
}
