/*
 * tok-chat.c — chat templates for the model families ringkv runs. Not a Jinja interpreter:
 * the family is recognised from markers in tokenizer.chat_template (or, without a template,
 * from special tokens in the vocabulary), and each family's template is reproduced here:
 *
 *   ChatML (SmolLM2, Qwen):  <|im_start|>{role}\n{content}<|im_end|>\n ... <|im_start|>assistant\n
 *       Templates that open with a fixed system prompt when messages[0] is not "system"
 *       (SmolLM2: "You are a helpful AI assistant named SmolLM, trained by Hugging Face";
 *       Qwen2: "You are a helpful assistant") have it extracted from the template text.
 *   Llama 3:  <|start_header_id|>{role}<|end_header_id|>\n\n{content|trim}<|eot_id|>
 *       ... <|start_header_id|>assistant<|end_header_id|>\n\n
 *   Gemma:    <start_of_turn>{user|model}\n{content|trim}<end_of_turn>\n ... <start_of_turn>model\n
 *       a leading system message becomes "{system}\n\n" in front of the first user turn;
 *       user/assistant must alternate (the template raises otherwise).
 *
 * The BOS token some templates print first ({{ bos_token }}) is left out: callers tokenize
 * the result with add_special, which adds it once.
 */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tok/tok-internal.h"

typedef struct sbuf {
    char *s;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) { b->oom = true; return; }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* Jinja's |trim for ASCII whitespace. */
static void sb_trimmed(sbuf *b, const char *s) {
    size_t n = strlen(s), i = 0;
    while (i < n && is_ws(s[i])) i++;
    while (n > i && is_ws(s[n - 1])) n--;
    sb_add(b, s + i, n - i);
}

rk_chat_kind rk_tok_chat_detect(const rk_tok *tok) {
    const char *t = tok->chat_template;
    if (t) {
        if (strstr(t, "<|im_start|>")) return RK_CHAT_CHATML;
        if (strstr(t, "<|start_header_id|>")) return RK_CHAT_LLAMA3;
        if (strstr(t, "<start_of_turn>")) return RK_CHAT_GEMMA;
    }
    if (rk_tok_lookup(tok, "<start_of_turn>", 15) >= 0) return RK_CHAT_GEMMA;
    if (rk_tok_lookup(tok, "<|im_start|>", 12) >= 0) return RK_CHAT_CHATML;
    if (rk_tok_lookup(tok, "<|start_header_id|>", 19) >= 0) return RK_CHAT_LLAMA3;
    return RK_CHAT_NONE;
}

/* The default system prompt of a ChatML template: the first string literal of the form
 * '<|im_start|>system\n...<|im_end|>' whose middle is plain text (no expression), unescaped.
 * Writes it into b; returns false when the template has none. */
static bool chatml_default_system(const char *tmpl, sbuf *b) {
    static const char open[] = "<|im_start|>system";
    for (const char *p = tmpl ? strstr(tmpl, open) : NULL; p; p = strstr(p + 1, open)) {
        const char *q = p + sizeof open - 1;
        if (q[0] == '\n') q += 1;
        else if (q[0] == '\\' && q[1] == 'n') q += 2;
        else continue;
        const char *end = strstr(q, "<|im_end|>");
        if (!end || end == q) continue;
        bool literal = true;
        for (const char *c = q; c < end && literal; c++) {
            if (*c == '\\' && c + 1 < end) { c++; continue; }
            if (*c == '\'' || *c == '"' || *c == '{' || *c == '}') literal = false;
        }
        if (!literal) continue;
        for (const char *c = q; c < end; c++) {
            if (*c == '\\' && c + 1 < end) {
                c++;
                char e = *c == 'n' ? '\n' : *c == 't' ? '\t' : *c;
                sb_add(b, &e, 1);
            } else {
                sb_add(b, c, 1);
            }
        }
        return true;
    }
    return false;
}

static void format_chatml(const rk_tok *tok, const rk_chat_msg *m, size_t n, int add_ass, sbuf *b) {
    if (n == 0 || strcmp(m[0].role, "system") != 0) {
        sbuf sys = {0};
        if (chatml_default_system(tok->chat_template, &sys) && !sys.oom) {
            sb_str(b, "<|im_start|>system\n");
            sb_add(b, sys.s, sys.n);
            sb_str(b, "<|im_end|>\n");
        }
        b->oom |= sys.oom;
        free(sys.s);
    }
    for (size_t i = 0; i < n; i++) {
        sb_str(b, "<|im_start|>");
        sb_str(b, m[i].role);
        sb_str(b, "\n");
        sb_str(b, m[i].content);
        sb_str(b, "<|im_end|>\n");
    }
    if (add_ass) sb_str(b, "<|im_start|>assistant\n");
}

static void format_llama3(const rk_chat_msg *m, size_t n, int add_ass, sbuf *b) {
    for (size_t i = 0; i < n; i++) {
        sb_str(b, "<|start_header_id|>");
        sb_str(b, m[i].role);
        sb_str(b, "<|end_header_id|>\n\n");
        sb_trimmed(b, m[i].content);
        sb_str(b, "<|eot_id|>");
    }
    if (add_ass) sb_str(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

static rk_status format_gemma(const rk_chat_msg *m, size_t n, int add_ass, sbuf *b, rk_error *err) {
    const char *prefix = NULL;
    size_t first = 0;
    if (n > 0 && strcmp(m[0].role, "system") == 0) {
        prefix = m[0].content;
        first = 1;
    }
    for (size_t i = first; i < n; i++) {
        bool is_user = strcmp(m[i].role, "user") == 0;
        if (is_user != ((i - first) % 2 == 0))
            return rk_error_set(err, RK_ERR_INVALID_ARG,
                                "chat: gemma: conversation roles must alternate user/assistant/user/... "
                                "(message %zu is '%s')", i, m[i].role);
        sb_str(b, "<start_of_turn>");
        sb_str(b, strcmp(m[i].role, "assistant") == 0 ? "model" : m[i].role);
        sb_str(b, "\n");
        if (i == first && prefix) {
            sb_str(b, prefix);
            sb_str(b, "\n\n");
        }
        sb_trimmed(b, m[i].content);
        sb_str(b, "<end_of_turn>\n");
    }
    if (add_ass) sb_str(b, "<start_of_turn>model\n");
    return RK_OK;
}

rk_status rk_tok_chat_format(const rk_tok *tok, const rk_chat_msg *msgs, size_t n,
                             int add_assistant_prompt, char **out, rk_error *err) {
    if (!tok || !out || (!msgs && n)) return rk_error_set(err, RK_ERR_INVALID_ARG, "chat: NULL argument");
    *out = NULL;
    for (size_t i = 0; i < n; i++)
        if (!msgs[i].role || !msgs[i].content)
            return rk_error_set(err, RK_ERR_INVALID_ARG, "chat: message %zu has no role or content", i);
    sbuf b = {0};
    rk_status st = RK_OK;
    switch (tok->chat_kind) {
    case RK_CHAT_CHATML: format_chatml(tok, msgs, n, add_assistant_prompt, &b); break;
    case RK_CHAT_LLAMA3: format_llama3(msgs, n, add_assistant_prompt, &b); break;
    case RK_CHAT_GEMMA: st = format_gemma(msgs, n, add_assistant_prompt, &b, err); break;
    case RK_CHAT_NONE:
        return rk_error_set(err, RK_ERR_UNSUPPORTED, "chat: no chat template (the model has none ringkv knows)");
    }
    if (st == RK_OK && b.oom) st = rk_error_set(err, RK_ERR_NO_MEMORY, "chat: out of memory");
    if (st != RK_OK) {
        free(b.s);
        return st;
    }
    if (!b.s) { /* nothing rendered: an empty string */
        b.s = calloc(1, 1);
        if (!b.s) return rk_error_set(err, RK_ERR_NO_MEMORY, "chat: out of memory");
    }
    *out = b.s;
    return RK_OK;
}
