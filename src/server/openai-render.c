/* openai-render.c — see openai-render.h. */
#include "server/openai-render.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>


/* Bytes of a UTF-8 sequence starting with byte c (0: not a valid lead byte). */
static int utf8_len(unsigned char c) {
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return 2;
    if (c >= 0xE0 && c <= 0xEF) return 3;
    if (c >= 0xF0 && c <= 0xF4) return 4;
    return 0;
}

/* A JSON string of bytes that may not be valid UTF-8 (a token can be part of a character):
 * invalid or cut sequences become U+FFFD, as OpenAI shows them (the exact bytes go in "bytes"). */
static json_t *lossy_string(const char *s, size_t len) {
    json_t *j = json_stringn(s, len);
    if (j) return j;
    char *out = malloc(len * 3 + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        int n = utf8_len((unsigned char)s[i]);
        json_t *probe = n && i + (size_t)n <= len ? json_stringn(s + i, (size_t)n) : NULL;
        if (probe) {
            memcpy(out + o, s + i, (size_t)n);
            o += (size_t)n;
            i += (size_t)n;
            json_decref(probe);
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    j = json_stringn(out, o);
    free(out);
    return j;
}

static json_t *token_bytes(const char *s, size_t len) {
    json_t *a = json_array();
    for (size_t i = 0; a && i < len; i++) json_array_append_new(a, json_integer((unsigned char)s[i]));
    return a;
}

static size_t piece_of(const rk_model *model, rk_token t, char *buf, size_t size) {
    int32_t n = rk_token_to_piece(model, t, 1, buf, (int32_t)size);
    if (n < 0) return 0;
    return (size_t)n < size ? (size_t)n : size;
}

/* chat: {"token", "logprob", "bytes"[, "top_logprobs": [...]]} */
static json_t *chat_logprob_entry(const rk_model *model, rk_token t, float lp, const rk_srv_logprob *top) {
    char buf[256];
    size_t n = piece_of(model, t, buf, sizeof buf);
    json_t *e = json_pack("{s:o, s:f, s:o}", "token", lossy_string(buf, n), "logprob", (double)lp, "bytes",
                          token_bytes(buf, n));
    if (e && top) {
        json_t *arr = json_array();
        for (int k = 0; k < top->n_top; k++)
            json_array_append_new(arr, chat_logprob_entry(model, top->top_token[k], top->top_logprob[k], NULL));
        json_object_set_new(e, "top_logprobs", arr);
    }
    return e;
}

static json_t *chat_logprobs(const rk_model *model, const rk_oai_delta *d) {
    json_t *content = json_array();
    for (size_t i = 0; i < d->n_lps; i++)
        json_array_append_new(content, chat_logprob_entry(model, d->lps[i].token, d->lps[i].logprob, &d->lps[i]));
    return json_pack("{s:o, s:n}", "content", content, "refusal");
}

/* completions: {"tokens", "token_logprobs", "top_logprobs": [{token: lp}], "text_offset"} */
static json_t *completion_logprobs(const rk_model *model, const rk_oai_delta *d) {
    json_t *tokens = json_array(), *lps = json_array(), *tops = json_array(), *offs = json_array();
    size_t off = d->text_offset;
    for (size_t i = 0; i < d->n_lps; i++) {
        char buf[256];
        size_t n = piece_of(model, d->lps[i].token, buf, sizeof buf);
        json_array_append_new(tokens, lossy_string(buf, n));
        json_array_append_new(lps, json_real(d->lps[i].logprob));
        json_array_append_new(offs, json_integer((json_int_t)off));
        off += n;
        json_t *top = json_object();
        for (int k = 0; k < d->lps[i].n_top; k++) {
            char tb[256];
            size_t tn = piece_of(model, d->lps[i].top_token[k], tb, sizeof tb);
            json_t *key = lossy_string(tb, tn);
            if (key) json_object_set_new(top, json_string_value(key), json_real(d->lps[i].top_logprob[k]));
            json_decref(key);
        }
        json_array_append_new(tops, top);
    }
    return json_pack("{s:o, s:o, s:o, s:o}", "tokens", tokens, "token_logprobs", lps, "top_logprobs", tops,
                     "text_offset", offs);
}

static json_t *usage_object(const rk_oai_usage *u) {
    return json_pack("{s:I, s:I, s:I, s:{s:I}}", "prompt_tokens", (json_int_t)u->prompt_tokens, "completion_tokens",
                     (json_int_t)u->completion_tokens, "total_tokens",
                     (json_int_t)(u->prompt_tokens + u->completion_tokens), "prompt_tokens_details", "cached_tokens",
                     (json_int_t)u->cached_tokens);
}

static json_t *head_object(const rk_oai_head *h, const char *object) {
    char fingerprint[64];
    snprintf(fingerprint, sizeof fingerprint, "ringkv-%s", rk_version());
    return json_pack("{s:s, s:s, s:I, s:s, s:s}", "id", h->id, "object", object, "created", (json_int_t)h->created,
                     "model", h->model, "system_fingerprint", fingerprint);
}

static json_t *finish_value(const char *reason) { return reason ? json_string(reason) : json_null(); }

static char *dump(json_t *j) {
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

/* A text_completion choice (takes lp). */
static json_t *text_choice(const rk_oai_delta *d, json_t *lp) {
    return json_pack("{s:o, s:i, s:o, s:o}", "text", lossy_string(d->text, d->len), "index", 0, "logprobs", lp,
                     "finish_reason", finish_value(d->finish_reason));
}

/* Sets root's "choices" to [choice]; returns root, or NULL (both freed) when either is missing. */
static json_t *with_choice(json_t *root, json_t *choice) {
    if (!root || !choice) {
        json_decref(root);
        json_decref(choice);
        return NULL;
    }
    json_object_set_new(root, "choices", json_pack("[o]", choice));
    return root;
}

char *rk_oai_render_full(const rk_model *model, const rk_oai_head *h, const rk_oai_delta *d, int want_logprobs,
                         const rk_oai_usage *usage) {
    const int chat = h->kind == RK_API_CHAT;
    json_t *root = head_object(h, chat ? "chat.completion" : "text_completion");
    json_t *lp = !want_logprobs ? json_null() : chat ? chat_logprobs(model, d) : completion_logprobs(model, d);
    json_t *choice;
    if (chat)
        choice = json_pack("{s:i, s:{s:s, s:o, s:n}, s:o, s:o}", "index", 0, "message", "role", "assistant", "content",
                           lossy_string(d->text, d->len), "refusal", "logprobs", lp, "finish_reason",
                           finish_value(d->finish_reason));
    else
        choice = text_choice(d, lp);
    if (!with_choice(root, choice)) return NULL;
    json_object_set_new(root, "usage", usage_object(usage));
    return dump(root);
}

char *rk_oai_render_chunk(const rk_model *model, const rk_oai_head *h, const rk_oai_delta *d, int want_logprobs,
                          int usage_null) {
    const int chat = h->kind == RK_API_CHAT;
    json_t *root = head_object(h, chat ? "chat.completion.chunk" : "text_completion");
    json_t *lp = !want_logprobs || (d->n_lps == 0 && !chat) ? json_null()
                 : chat                                    ? (d->n_lps ? chat_logprobs(model, d) : json_null())
                                                           : completion_logprobs(model, d);
    json_t *choice;
    if (chat) {
        json_t *delta = json_object();
        if (d->first) json_object_set_new(delta, "role", json_string("assistant"));
        if (d->len || d->first) json_object_set_new(delta, "content", lossy_string(d->text, d->len));
        choice = json_pack("{s:i, s:o, s:o, s:o}", "index", 0, "delta", delta, "logprobs", lp, "finish_reason",
                           finish_value(d->finish_reason));
    } else {
        choice = text_choice(d, lp);
    }
    if (!with_choice(root, choice)) return NULL;
    if (usage_null) json_object_set_new(root, "usage", json_null());
    return dump(root);
}

char *rk_oai_render_usage_chunk(const rk_oai_head *h, const rk_oai_usage *usage) {
    json_t *root = head_object(h, h->kind == RK_API_CHAT ? "chat.completion.chunk" : "text_completion");
    if (!root) return NULL;
    json_object_set_new(root, "choices", json_array());
    json_object_set_new(root, "usage", usage_object(usage));
    return dump(root);
}
