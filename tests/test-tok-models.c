/*
 * test-tok-models.c — the tokenizers of cached real models:
 *   SmolLM2-135M-Instruct (byte-level BPE, pre "smollm"): fixed strings against ids from the
 *     Hugging Face tokenizer, special tokens, EOG ids, its chat template;
 *   Gemma 3 270M (SentencePiece, 262144 tokens, no space prefix): load time, fixed strings,
 *     special tokens, chat template found by vocabulary;
 * and for both, decode(encode(s)) == s on random UTF-8 strings.
 * Skipped (77) when neither model is cached.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gguf/gguf.h"
#include "test-util.h"
#include "tok/tok.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e3 * (double)ts.tv_sec + 1e-6 * (double)ts.tv_nsec;
}

static rk_tok *load_model(const char *file) {
    char path[1024];
    if (!rk_test_model_path(path, sizeof path, file)) return NULL;
    rk_gguf *g = NULL;
    rk_tok *tok = NULL;
    rk_error err;
    double t0 = now_ms();
    if (rk_gguf_open(path, &g, &err) != RK_OK) {
        fprintf(stderr, "%s: %s\n", path, err.msg);
        rk_test_failures++;
        return NULL;
    }
    double t1 = now_ms();
    rk_status st = rk_tok_load(g, &tok, &err);
#ifndef RINGKV_TEST_HAVE_PCRE2
    if (st == RK_ERR_UNSUPPORTED) fprintf(stderr, "%s: %s (skipped)\n", file, err.msg);
    else
#endif
        CHECK_MSG(st == RK_OK, "%s: %s", file, err.msg);
    double t2 = now_ms();
    fprintf(stderr, "%s: gguf open %.1f ms, tokenizer load %.1f ms (%d tokens)\n", file, t1 - t0, t2 - t1,
            tok ? rk_tok_n_vocab(tok) : 0);
    rk_gguf_close(g);
    return tok;
}

static void expect(const rk_tok *tok, const char *text, int add, int special, const rk_token *want, size_t n_want) {
    rk_token *ids = NULL;
    size_t n = 0;
    rk_error err;
    rk_status st = rk_tok_encode(tok, text, strlen(text), add, special, &ids, &n, &err);
    int ok = st == RK_OK && n == n_want && (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
    CHECK_MSG(ok, "'%s': got %zu ids (want %zu):", text, n, n_want);
    if (!ok) {
        for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
        fputc('\n', stderr);
    }
    free(ids);
}

/* Appends one random code point (weighted towards ASCII and spaces) as UTF-8. */
static size_t random_char(uint64_t *rng, char *out) {
    *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
    uint32_t r = (uint32_t)(*rng >> 33), cp;
    switch (r % 8) {
    case 0: cp = ' '; break;
    case 1: cp = "\n\t\r "[r / 8 % 4]; break;
    case 2: case 3: cp = 32 + r / 8 % 95; break;
    case 4: cp = 0xA0 + r / 8 % 0x500; break;
    case 5: cp = 0x3000 + r / 8 % 0x6000; break;
    case 6: cp = 0x1F300 + r / 8 % 0x300; break;
    /* planes 0-3 only: SmolLM2's byte alphabet lacks the lead bytes F1-F4 of planes 4-16 (no
     * text it was trained on used them), so those characters cannot round-trip there */
    default: cp = 1 + r / 8 % 0x3FFFF; break;
    }
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = 'x';
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xC0 | cp >> 6); out[1] = (char)(0x80 | (cp & 63)); return 2; }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12), out[1] = (char)(0x80 | (cp >> 6 & 63)), out[2] = (char)(0x80 | (cp & 63));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18), out[1] = (char)(0x80 | (cp >> 12 & 63));
    out[2] = (char)(0x80 | (cp >> 6 & 63)), out[3] = (char)(0x80 | (cp & 63));
    return 4;
}

/* decode(encode(s)) == s for random strings (no special parsing, no BOS). */
static void round_trips(const rk_tok *tok, const char *name, int count) {
    uint64_t rng = 42;
    char text[1024];
    int ok = 0, shown = 0;
    for (int i = 0; i < count; i++) {
        size_t n = 0, len = 1 + (size_t)(i % 60);
        for (size_t k = 0; k < len; k++) n += random_char(&rng, text + n);
        rk_token *ids = NULL;
        size_t n_ids = 0;
        char *back = NULL;
        size_t back_len = 0;
        rk_error err;
        if (rk_tok_encode(tok, text, n, 0, 0, &ids, &n_ids, &err) == RK_OK &&
            rk_tok_decode(tok, ids, n_ids, 0, &back, &back_len, &err) == RK_OK && back_len == n &&
            memcmp(back, text, n) == 0)
            ok++;
        else if (shown++ < 3)
            fprintf(stderr, "%s: round trip failed for '%.*s' -> '%.*s'\n", name, (int)n, text, (int)back_len,
                    back ? back : "");
        free(ids);
        free(back);
    }
    fprintf(stderr, "%s: %d/%d random strings round-trip\n", name, ok, count);
    CHECK(ok == count);
}

static void test_smollm(rk_tok *tok) {
    CHECK(rk_tok_get_type(tok) == RK_TOK_BPE && strcmp(rk_tok_pre_name(tok), "smollm") == 0);
    CHECK(rk_tok_n_vocab(tok) == 49152 && rk_tok_bos(tok) == 1 && rk_tok_eos(tok) == 2 && !rk_tok_add_bos(tok));
    /* ids from the Hugging Face tokenizer (tokenizer.json, add_special_tokens=False) */
    expect(tok, "Hello, world! 123", 0, 1, (rk_token[]){19556, 28, 905, 17, 216, 33, 34, 35}, 8);
    expect(tok, "<|im_start|>user\nHi there<|im_end|>\n", 0, 1, (rk_token[]){1, 4093, 198, 26843, 665, 2, 198}, 7);
    expect(tok, "  multiple   spaces\t\ttabs", 0, 1, (rk_token[]){216, 2701, 256, 5600, 197, 197, 100, 7366}, 8);
    expect(tok, "\xC3\x87" "a va? \xE6\x9D\xB1\xE4\xBA\xAC \xF0\x9F\xA6\x99", 0, 1,
           (rk_token[]){142, 225, 81, 46316, 47, 17097, 247, 126, 16736, 122, 15107, 116, 243}, 13);
    CHECK(rk_tok_is_eog(tok, 2) && rk_tok_is_eog(tok, 0) && !rk_tok_is_eog(tok, 1));
    CHECK(rk_tok_chat_kind(tok) == RK_CHAT_CHATML);
    rk_chat_msg m[] = {{"user", "What is 2+2?"}};
    char *s = NULL;
    rk_error err;
    CHECK(rk_tok_chat_format(tok, m, 1, 1, &s, &err) == RK_OK && s &&
          strcmp(s, "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
                    "<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n") == 0);
    free(s);
    round_trips(tok, "smollm2", 2000);
}

static void test_gemma(rk_tok *tok) {
    CHECK(rk_tok_get_type(tok) == RK_TOK_SPM && rk_tok_n_vocab(tok) == 262144);
    CHECK(rk_tok_bos(tok) == 2 && rk_tok_eos(tok) == 1 && rk_tok_add_bos(tok));
    expect(tok, "Hello world", 1, 1, (rk_token[]){2, 9259, 1902}, 3);
    expect(tok, "The quick brown fox jumps over the lazy dog.", 0, 0,
           (rk_token[]){818, 3823, 8864, 37423, 38167, 1024, 506, 31770, 4799, 236761}, 10);
    /* user-defined whitespace tokens are split out first, as llama.cpp does */
    expect(tok, "line1\nline2\n\n  indented", 0, 0,
           (rk_token[]){1257, 236770, 107, 1257, 236778, 108, 138, 724, 16764}, 9);
    expect(tok, "<start_of_turn>user\nHi<end_of_turn>", 0, 1, (rk_token[]){105, 2364, 107, 10979, 106}, 5);
    rk_token ctl = rk_tok_find(tok, "<end_of_turn>", 13);
    CHECK(ctl == 106 && rk_tok_is_eog(tok, ctl) && rk_tok_eot(tok) == ctl);
    CHECK(rk_tok_chat_kind(tok) == RK_CHAT_GEMMA);
    round_trips(tok, "gemma3", 2000);
}

int main(void) {
    int ran = 0;
    rk_tok *smol = load_model("SmolLM2-135M-Instruct.Q4_1.gguf");
    if (smol) { test_smollm(smol); ran++; }
    rk_tok_free(smol);
    rk_tok *gemma = load_model("gemma-3-270m-q4_k_m.gguf");
    if (gemma) { test_gemma(gemma); ran++; }
    rk_tok_free(gemma);
    if (!ran && !rk_test_failures) return RK_TEST_SKIP;
    return rk_test_finish("test-tok-models");
}
