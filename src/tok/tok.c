/*
 * tok.c — loading a vocabulary from GGUF metadata, the special-token partition, and the
 * public encode / piece / decode entry points (see tok.h). The algorithms themselves live in
 * tok-spm.c and tok-bpe.c; chat templates in tok-chat.c.
 *
 * Behaviour follows llama.cpp's llama-vocab.cpp (defaults per model type, pre-tokenizer
 * names, end-of-generation tokens found by text, special tokens split out longest first), with
 * one deliberate difference: metadata llama.cpp would warn about or crash on (special ids out
 * of range, arrays of the wrong length, merges naming unknown tokens) is an error here.
 */
#include "tok/tok-internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* ---------------------------------------------------------------- small helpers */

rk_status rk_tok_vec_push(rk_tok_vec *v, rk_token t) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        rk_token *p = realloc(v->v, cap * sizeof *p);
        if (!p) return RK_ERR_NO_MEMORY;
        v->v = p;
        v->cap = cap;
    }
    v->v[v->n++] = t;
    return RK_OK;
}

size_t rk_utf8_len(unsigned char c) {
    static const uint8_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup[c >> 4];
}

size_t rk_utf8_validate(const char *str, size_t len) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t n;
        uint32_t cp, min;
        if (c >= 0xC2 && c <= 0xDF) { n = 2; cp = c & 0x1F; min = 0x80; }
        else if (c >= 0xE0 && c <= 0xEF) { n = 3; cp = c & 0x0F; min = 0x800; }
        else if (c >= 0xF0 && c <= 0xF4) { n = 4; cp = c & 0x07; min = 0x10000; }
        else return i;
        if (len - i < n) return i;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
        i += n;
    }
    return len;
}

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a, then a final mix */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    h ^= h >> 29;
    return h * 0xbf58476d1ce4e5b9ull;
}

static uint64_t hash_pair(uint64_t key) {
    key ^= key >> 31;
    key *= 0x9E3779B97F4A7C15ull;
    return key ^ (key >> 29);
}

static size_t table_size(size_t n) {
    size_t size = 16;
    while (size < n * 2) size <<= 1;
    return size;
}

rk_token rk_tok_lookup(const rk_tok *tok, const char *s, size_t n) {
    size_t i = (size_t)hash_bytes(s, n) & tok->map_mask;
    for (;;) {
        uint32_t slot = tok->map[i];
        if (slot == 0) return -1;
        rk_token id = (rk_token)(slot - 1);
        if (tok->len[id] == n && memcmp(tok->pool + tok->off[id], s, n) == 0) return id;
        i = (i + 1) & tok->map_mask;
    }
}

/* Inserts id; a later token with the same text replaces an earlier one (as llama.cpp's
 * token_to_id map does). */
static void map_insert(rk_tok *tok, rk_token id) {
    const char *s = tok->pool + tok->off[id];
    size_t n = tok->len[id];
    size_t i = (size_t)hash_bytes(s, n) & tok->map_mask;
    for (;;) {
        uint32_t slot = tok->map[i];
        if (slot == 0) { tok->map[i] = (uint32_t)id + 1; return; }
        rk_token other = (rk_token)(slot - 1);
        if (tok->len[other] == n && memcmp(tok->pool + tok->off[other], s, n) == 0) {
            tok->map[i] = (uint32_t)id + 1;
            return;
        }
        i = (i + 1) & tok->map_mask;
    }
}

/* ---------------------------------------------------------------- loading: vocabulary */

static rk_status load_tokens(rk_tok *tok, const rk_gguf *g, rk_error *err) {
    rk_gguf_array a;
    if (rk_gguf_get_array(g, "tokenizer.ggml.tokens", &a, err) != RK_OK)
        return rk_error_set(err, RK_ERR_FORMAT, "tok: tokenizer.ggml.tokens missing or not an array");
    if (a.elem_type != RK_GGUF_STRING)
        return rk_error_set(err, RK_ERR_FORMAT, "tok: tokenizer.ggml.tokens has elements of type %s, want string",
                            rk_gguf_vtype_name(a.elem_type));
    if (a.n == 0 || a.n >= (uint64_t)INT32_MAX)
        return rk_error_set(err, RK_ERR_FORMAT, "tok: tokenizer.ggml.tokens has %llu entries",
                            (unsigned long long)a.n);
    tok->n_vocab = (int32_t)a.n;
    size_t n = (size_t)a.n, total = 0;
    for (size_t i = 0; i < n; i++) {
        if (a.lens[i] > UINT32_MAX / 2)
            return rk_error_set(err, RK_ERR_FORMAT, "tok: token %zu is %llu bytes long", i,
                                (unsigned long long)a.lens[i]);
        total += (a.lens[i] ? (size_t)a.lens[i] : 24) + 1;
    }
    tok->pool = malloc(total);
    tok->off = malloc(n * sizeof *tok->off);
    tok->len = malloc(n * sizeof *tok->len);
    tok->score = calloc(n, sizeof *tok->score);
    tok->attr = malloc(n);
    tok->map_mask = table_size(n) - 1;
    tok->map = calloc(tok->map_mask + 1, sizeof *tok->map);
    if (!tok->pool || !tok->off || !tok->len || !tok->score || !tok->attr || !tok->map)
        return rk_error_set(err, RK_ERR_NO_MEMORY, "tok: out of memory for %zu tokens", n);
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        tok->off[i] = pos;
        if (a.lens[i] == 0) { /* llama.cpp names empty tokens so they can never match */
            int k = snprintf(tok->pool + pos, 25, "[EMPTY_%zu]", i);
            tok->len[i] = (uint32_t)k;
        } else {
            memcpy(tok->pool + pos, a.strs[i], (size_t)a.lens[i]);
            tok->len[i] = (uint32_t)a.lens[i];
        }
        pos += tok->len[i];
        tok->pool[pos++] = '\0';
        tok->attr[i] = RK_TOK_ATTR_NORMAL;
    }
    for (size_t i = 0; i < n; i++) map_insert(tok, (rk_token)i);

    if (rk_gguf_find_key(g, "tokenizer.ggml.scores") >= 0) {
        if (rk_gguf_get_array(g, "tokenizer.ggml.scores", &a, err) != RK_OK) return RK_ERR_FORMAT;
        if (a.elem_type != RK_GGUF_FLOAT32 || a.n != n)
            return rk_error_set(err, RK_ERR_FORMAT,
                                "tok: tokenizer.ggml.scores is [%llu x %s], want [%zu x f32]",
                                (unsigned long long)a.n, rk_gguf_vtype_name(a.elem_type), n);
        memcpy(tok->score, a.data, n * sizeof(float));
    }
    if (rk_gguf_find_key(g, "tokenizer.ggml.token_type") >= 0) {
        if (rk_gguf_get_array(g, "tokenizer.ggml.token_type", &a, err) != RK_OK) return RK_ERR_FORMAT;
        if (a.elem_type != RK_GGUF_INT32 || a.n != n)
            return rk_error_set(err, RK_ERR_FORMAT,
                                "tok: tokenizer.ggml.token_type is [%llu x %s], want [%zu x i32]",
                                (unsigned long long)a.n, rk_gguf_vtype_name(a.elem_type), n);
        const int32_t *tt = a.data;
        for (size_t i = 0; i < n; i++) {
            switch (tt[i]) {
            case 1: tok->attr[i] = RK_TOK_ATTR_NORMAL; break;
            case 2: tok->attr[i] = RK_TOK_ATTR_UNKNOWN; break;
            case 3: tok->attr[i] = RK_TOK_ATTR_CONTROL; break;
            case 4: tok->attr[i] = RK_TOK_ATTR_USER_DEFINED; break;
            case 5: tok->attr[i] = RK_TOK_ATTR_UNUSED; break;
            case 6: tok->attr[i] = RK_TOK_ATTR_BYTE; break;
            default: tok->attr[i] = 0; break; /* undefined: printed as nothing */
            }
        }
    }
    return RK_OK;
}

/* ---------------------------------------------------------------- loading: merges */

static rk_status merge_insert(rk_tok *tok, rk_token l, rk_token r, int32_t rank, rk_token res) {
    uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
    size_t i = (size_t)hash_pair(key) & tok->merge_mask;
    while (tok->mkey[i] != UINT64_MAX) {
        if (tok->mkey[i] == key) return RK_OK; /* first rank wins, as llama.cpp's emplace */
        i = (i + 1) & tok->merge_mask;
    }
    tok->mkey[i] = key;
    tok->mrank[i] = rank;
    tok->mres[i] = res;
    return RK_OK;
}

static rk_status load_merges(rk_tok *tok, const rk_gguf *g, rk_error *err) {
    rk_gguf_array a;
    if (rk_gguf_find_key(g, "tokenizer.ggml.merges") < 0)
        return rk_error_set(err, RK_ERR_FORMAT, "tok: BPE vocabulary without tokenizer.ggml.merges");
    if (rk_gguf_get_array(g, "tokenizer.ggml.merges", &a, err) != RK_OK) return RK_ERR_FORMAT;
    if (a.elem_type != RK_GGUF_STRING || a.n >= (uint64_t)INT32_MAX)
        return rk_error_set(err, RK_ERR_FORMAT, "tok: tokenizer.ggml.merges is [%llu x %s], want strings",
                            (unsigned long long)a.n, rk_gguf_vtype_name(a.elem_type));
    size_t n = (size_t)a.n;
    tok->merge_mask = table_size(n) - 1;
    tok->mkey = malloc((tok->merge_mask + 1) * sizeof *tok->mkey);
    tok->mrank = malloc((tok->merge_mask + 1) * sizeof *tok->mrank);
    tok->mres = malloc((tok->merge_mask + 1) * sizeof *tok->mres);
    size_t maxlen = 0;
    for (size_t i = 0; i < n; i++) maxlen = a.lens[i] > maxlen ? (size_t)a.lens[i] : maxlen;
    char *buf = malloc(maxlen + 1);
    if (!tok->mkey || !tok->mrank || !tok->mres || !buf) {
        free(buf);
        return rk_error_set(err, RK_ERR_NO_MEMORY, "tok: out of memory for %zu merges", n);
    }
    memset(tok->mkey, 0xFF, (tok->merge_mask + 1) * sizeof *tok->mkey);
    rk_status st = RK_OK;
    for (size_t i = 0; i < n && st == RK_OK; i++) {
        const char *s = a.strs[i];
        size_t len = (size_t)a.lens[i];
        /* split at the first space after the first byte (llama.cpp: word.find(' ', 1)) */
        const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
        if (!sp) {
            st = rk_error_set(err, RK_ERR_FORMAT, "tok: merge %zu ('%.40s') has no space", i, s);
            break;
        }
        size_t nl = (size_t)(sp - s), nr = len - nl - 1;
        rk_token l = rk_tok_lookup(tok, s, nl), r = rk_tok_lookup(tok, sp + 1, nr);
        memcpy(buf, s, nl);
        memcpy(buf + nl, sp + 1, nr);
        rk_token res = rk_tok_lookup(tok, buf, nl + nr);
        if (l < 0 || r < 0 || res < 0) {
            st = rk_error_set(err, RK_ERR_FORMAT, "tok: merge %zu ('%.40s') names a token not in the vocabulary",
                              i, s);
            break;
        }
        st = merge_insert(tok, l, r, (int32_t)i, res);
    }
    free(buf);
    return st;
}

/* ---------------------------------------------------------------- loading: settings */

static rk_status set_model_defaults(rk_tok *tok, const rk_gguf *g, rk_error *err) {
    const char *model, *pre = NULL;
    size_t model_len;
    if (rk_gguf_find_key(g, "tokenizer.ggml.model") < 0)
        return rk_error_set(err, RK_ERR_INVALID_ARG, "tok: no tokenizer in this file (tokenizer.ggml.model missing)");
    if (rk_gguf_get_str(g, "tokenizer.ggml.model", &model, &model_len, err) != RK_OK) return RK_ERR_FORMAT;
    if (rk_gguf_find_key(g, "tokenizer.ggml.pre") >= 0 &&
        rk_gguf_get_str(g, "tokenizer.ggml.pre", &pre, NULL, err) != RK_OK)
        return RK_ERR_FORMAT;
    tok->bos = tok->eos = tok->eot = tok->eom = tok->unk = tok->pad = -1;
    if (strcmp(model, "llama") == 0) {
        tok->type = RK_TOK_SPM;
        tok->pre = RK_PRE_DEFAULT;
        snprintf(tok->pre_name, sizeof tok->pre_name, "default");
        tok->bos = 1, tok->eos = 2, tok->unk = 0;
        tok->add_space_prefix = true, tok->add_bos = true, tok->add_eos = false;
        return RK_OK;
    }
    if (strcmp(model, "gpt2") != 0)
        return rk_error_set(err, RK_ERR_UNSUPPORTED, "tok: tokenizer model '%.64s' is not supported (want llama or gpt2)",
                            model);
    tok->type = RK_TOK_BPE;
    tok->bos = 11, tok->eos = 11; /* llama.cpp's defaults for gpt2 vocabularies */
    tok->add_space_prefix = false, tok->add_bos = false, tok->add_eos = false;
    if (!pre || !pre[0] || strcmp(pre, "default") == 0) {
        tok->pre = RK_PRE_DEFAULT;
    } else if (!strcmp(pre, "llama3") || !strcmp(pre, "llama-v3") || !strcmp(pre, "llama-bpe") ||
               !strcmp(pre, "falcon3") || !strcmp(pre, "pixtral")) {
        tok->pre = RK_PRE_LLAMA3;
        tok->ignore_merges = true;
        tok->add_bos = true;
    } else if (!strcmp(pre, "qwen2") || !strcmp(pre, "deepseek-r1-qwen")) {
        tok->pre = RK_PRE_QWEN2;
    } else if (!strcmp(pre, "gpt-2") || !strcmp(pre, "phi-2") || !strcmp(pre, "mpt") ||
               !strcmp(pre, "olmo")) {
        tok->pre = RK_PRE_GPT2;
    } else if (!strcmp(pre, "smollm") || !strcmp(pre, "starcoder") || !strcmp(pre, "refact")) {
        tok->pre = RK_PRE_SMOLLM;
    } else {
        return rk_error_set(err, RK_ERR_UNSUPPORTED, "tok: pre-tokenizer '%.64s' is not supported", pre);
    }
    snprintf(tok->pre_name, sizeof tok->pre_name, "%s", pre && pre[0] ? pre : "default");
    return RK_OK;
}

static rk_status read_special_id(const rk_tok *tok, const rk_gguf *g, const char *key, rk_token *id,
                                 rk_error *err) {
    if (rk_gguf_find_key(g, key) < 0) {
        if (*id >= tok->n_vocab) *id = -1; /* a default that does not exist here */
        return RK_OK;
    }
    int64_t v;
    if (rk_gguf_get_i64(g, key, &v, err) != RK_OK) return RK_ERR_FORMAT;
    if (v < 0 || v >= tok->n_vocab)
        return rk_error_set(err, RK_ERR_FORMAT, "tok: %s = %lld is outside the vocabulary (%d tokens)", key,
                            (long long)v, tok->n_vocab);
    *id = (rk_token)v;
    return RK_OK;
}

static rk_status read_flags(rk_tok *tok, const rk_gguf *g, rk_error *err) {
    static const struct { const char *key; size_t field; } ids[] = {
        {"tokenizer.ggml.bos_token_id", offsetof(rk_tok, bos)},
        {"tokenizer.ggml.eos_token_id", offsetof(rk_tok, eos)},
        {"tokenizer.ggml.eot_token_id", offsetof(rk_tok, eot)},
        {"tokenizer.ggml.eom_token_id", offsetof(rk_tok, eom)},
        {"tokenizer.ggml.unknown_token_id", offsetof(rk_tok, unk)},
        {"tokenizer.ggml.padding_token_id", offsetof(rk_tok, pad)},
    };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        rk_token *id = (rk_token *)((char *)tok + ids[i].field);
        if (read_special_id(tok, g, ids[i].key, id, err) != RK_OK) return RK_ERR_FORMAT;
    }
    bool b;
    if (rk_gguf_get_bool_or(g, "tokenizer.ggml.add_bos_token", tok->add_bos, &b, err) != RK_OK) return RK_ERR_FORMAT;
    tok->add_bos = b;
    if (rk_gguf_get_bool_or(g, "tokenizer.ggml.add_eos_token", tok->add_eos, &b, err) != RK_OK) return RK_ERR_FORMAT;
    tok->add_eos = b;
    if (rk_gguf_get_bool_or(g, "tokenizer.ggml.add_space_prefix", tok->add_space_prefix, &b, err) != RK_OK)
        return RK_ERR_FORMAT;
    tok->add_space_prefix = b;
    if (tok->add_bos && tok->bos < 0)
        return rk_error_set(err, RK_ERR_FORMAT, "tok: add_bos_token is true but the vocabulary has no BOS token");
    if (tok->add_eos && tok->eos < 0)
        return rk_error_set(err, RK_ERR_FORMAT, "tok: add_eos_token is true but the vocabulary has no EOS token");
    return RK_OK;
}

/* End-of-turn / end-of-generation markers llama.cpp recognises by their text. */
static const char *const k_eot_texts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                          "<|endoftext|>", "<EOT>", "_<EOT>", "<｜end▁of▁sentence｜>",
                                          "<end_of_utterance>"};
static const char *const k_eog_texts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                          "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>",
                                          "<|end_of_text|>", "<end_of_utterance>", "<|return|>",
                                          "<|call|>"};

static int cmp_token(const void *a, const void *b) {
    rk_token x = *(const rk_token *)a, y = *(const rk_token *)b;
    return (x > y) - (x < y);
}

static rk_status find_eog(rk_tok *tok, rk_error *err) {
    if (tok->eot < 0) {
        for (size_t i = 0; i < sizeof k_eot_texts / sizeof k_eot_texts[0] && tok->eot < 0; i++)
            tok->eot = rk_tok_lookup(tok, k_eot_texts[i], strlen(k_eot_texts[i]));
        if (tok->eot >= 0) tok->attr[tok->eot] = RK_TOK_ATTR_CONTROL;
    }
    if (tok->eom < 0) {
        tok->eom = rk_tok_lookup(tok, "<|eom_id|>", 10);
        if (tok->eom >= 0) tok->attr[tok->eom] = RK_TOK_ATTR_CONTROL;
    }
    size_t cap = 3 + sizeof k_eog_texts / sizeof k_eog_texts[0];
    tok->eog = malloc(cap * sizeof *tok->eog);
    if (!tok->eog) return rk_error_set(err, RK_ERR_NO_MEMORY, "tok: out of memory");
    rk_token fixed[3] = {tok->eos, tok->eot, tok->eom};
    for (int i = 0; i < 3; i++)
        if (fixed[i] >= 0) tok->eog[tok->n_eog++] = fixed[i];
    for (size_t i = 0; i < sizeof k_eog_texts / sizeof k_eog_texts[0]; i++) {
        rk_token id = rk_tok_lookup(tok, k_eog_texts[i], strlen(k_eog_texts[i]));
        if (id < 0) continue;
        tok->eog[tok->n_eog++] = id;
        tok->attr[id] = RK_TOK_ATTR_CONTROL; /* as llama.cpp: EOG texts are control tokens */
    }
    qsort(tok->eog, tok->n_eog, sizeof *tok->eog, cmp_token);
    return RK_OK;
}

/* Orders special tokens longest text first (ties by id, so the order is reproducible). */
static int cmp_special(const void *a, const void *b, void *ctx) {
    const rk_tok *tok = ctx;
    rk_token x = *(const rk_token *)a, y = *(const rk_token *)b;
    if (tok->len[x] != tok->len[y]) return tok->len[x] > tok->len[y] ? -1 : 1;
    return (x > y) - (x < y);
}

static rk_status collect_specials(rk_tok *tok, rk_error *err) {
    const unsigned mask = RK_TOK_ATTR_CONTROL | RK_TOK_ATTR_USER_DEFINED | RK_TOK_ATTR_UNKNOWN;
    size_t n = 0;
    for (int32_t i = 0; i < tok->n_vocab; i++) n += (tok->attr[i] & mask) != 0;
    tok->special = malloc((n ? n : 1) * sizeof *tok->special);
    if (!tok->special) return rk_error_set(err, RK_ERR_NO_MEMORY, "tok: out of memory");
    for (int32_t i = 0; i < tok->n_vocab; i++)
        if (tok->attr[i] & mask) tok->special[tok->n_special++] = i;
    qsort_r(tok->special, tok->n_special, sizeof *tok->special, cmp_special, tok);
    return RK_OK;
}

static void find_byte_tokens(rk_tok *tok) {
    for (int b = 0; b < 256; b++) {
        char buf[8];
        snprintf(buf, sizeof buf, "<0x%02X>", b);
        rk_token id = rk_tok_lookup(tok, buf, 6);
        if (id < 0) {
            char c = (char)b;
            id = rk_tok_lookup(tok, &c, 1);
        }
        tok->byte_tok[b] = id;
    }
}

static rk_status load_chat_template(rk_tok *tok, const rk_gguf *g, rk_error *err) {
    if (rk_gguf_find_key(g, "tokenizer.chat_template") >= 0) {
        const char *s;
        size_t n;
        if (rk_gguf_get_str(g, "tokenizer.chat_template", &s, &n, err) != RK_OK) return RK_ERR_FORMAT;
        tok->chat_template = malloc(n + 1);
        if (!tok->chat_template) return rk_error_set(err, RK_ERR_NO_MEMORY, "tok: out of memory");
        memcpy(tok->chat_template, s, n);
        tok->chat_template[n] = '\0';
    }
    tok->chat_kind = rk_tok_chat_detect(tok);
    return RK_OK;
}

rk_status rk_tok_load(const rk_gguf *gguf, rk_tok **out, rk_error *err) {
    if (!gguf || !out) return rk_error_set(err, RK_ERR_INVALID_ARG, "tok: NULL argument");
    *out = NULL;
    rk_tok *tok = calloc(1, sizeof *tok);
    if (!tok) return rk_error_set(err, RK_ERR_NO_MEMORY, "tok: out of memory");
    rk_status st = set_model_defaults(tok, gguf, err);
    if (st == RK_OK) st = load_tokens(tok, gguf, err);
    if (st == RK_OK) st = read_flags(tok, gguf, err);
    if (st == RK_OK && tok->type == RK_TOK_BPE) st = load_merges(tok, gguf, err);
    if (st == RK_OK) st = find_eog(tok, err);
    if (st == RK_OK) st = collect_specials(tok, err);
    if (st == RK_OK && tok->type == RK_TOK_SPM) find_byte_tokens(tok);
    if (st == RK_OK) st = load_chat_template(tok, gguf, err);
    if (st == RK_OK && tok->type == RK_TOK_BPE) st = rk_tok_bpe_init(tok, err);
    if (st != RK_OK) {
        rk_tok_free(tok);
        return err ? err->code : st;
    }
    *out = tok;
    return RK_OK;
}

void rk_tok_free(rk_tok *tok) {
    if (!tok) return;
    rk_tok_bpe_release(tok);
    free(tok->pool);
    free(tok->off);
    free(tok->len);
    free(tok->score);
    free(tok->attr);
    free(tok->map);
    free(tok->mkey);
    free(tok->mrank);
    free(tok->mres);
    free(tok->special);
    free(tok->eog);
    free(tok->chat_template);
    free(tok);
}

/* ---------------------------------------------------------------- accessors */

rk_tok_type rk_tok_get_type(const rk_tok *tok) { return tok->type; }
const char *rk_tok_pre_name(const rk_tok *tok) { return tok->pre_name; }
int32_t rk_tok_n_vocab(const rk_tok *tok) { return tok->n_vocab; }
rk_token rk_tok_bos(const rk_tok *tok) { return tok->bos; }
rk_token rk_tok_eos(const rk_tok *tok) { return tok->eos; }
rk_token rk_tok_eot(const rk_tok *tok) { return tok->eot; }
rk_token rk_tok_unk(const rk_tok *tok) { return tok->unk; }
rk_token rk_tok_pad(const rk_tok *tok) { return tok->pad; }
int rk_tok_add_bos(const rk_tok *tok) { return tok->add_bos; }
int rk_tok_add_eos(const rk_tok *tok) { return tok->add_eos; }
const char *rk_tok_chat_template(const rk_tok *tok) { return tok->chat_template; }
rk_chat_kind rk_tok_chat_kind(const rk_tok *tok) { return tok->chat_kind; }

int rk_tok_is_eog(const rk_tok *tok, rk_token id) {
    return bsearch(&id, tok->eog, tok->n_eog, sizeof id, cmp_token) != NULL;
}

int rk_tok_strips_leading_space(const rk_tok *tok) {
    return tok->type == RK_TOK_SPM && tok->add_space_prefix;
}

unsigned rk_tok_attr(const rk_tok *tok, rk_token id) {
    return (id >= 0 && id < tok->n_vocab) ? tok->attr[id] : 0;
}

const char *rk_tok_text(const rk_tok *tok, rk_token id, size_t *len) {
    if (id < 0 || id >= tok->n_vocab) return NULL;
    if (len) *len = tok->len[id];
    return tok->pool + tok->off[id];
}

rk_token rk_tok_find(const rk_tok *tok, const char *text, size_t len) {
    return text ? rk_tok_lookup(tok, text, len) : -1;
}

/* ---------------------------------------------------------------- special-token partition */

typedef struct fragment {
    rk_token token; /* -1: raw text [off, off+len) */
    size_t off, len;
} fragment;

typedef struct frag_vec {
    fragment *v;
    size_t n, cap;
} frag_vec;

static rk_status frag_push(frag_vec *f, rk_token t, size_t off, size_t len) {
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        fragment *p = realloc(f->v, cap * sizeof *p);
        if (!p) return RK_ERR_NO_MEMORY;
        f->v = p;
        f->cap = cap;
    }
    f->v[f->n++] = (fragment){t, off, len};
    return RK_OK;
}

/* Marks which special tokens occur anywhere in the text, so the partition below (which, like
 * llama.cpp, scans the text once per special token) only runs for those: a vocabulary with
 * thousands of special tokens (Gemma) would otherwise cost thousands of passes per call.
 * tok->special is sorted by length (descending) then id, so each length is one run. */
static void specials_present(const rk_tok *tok, const char *text, size_t len, uint8_t *present) {
    bool first[256] = {false};
    for (size_t i = 0; i < tok->n_special; i++)
        first[(unsigned char)tok->pool[tok->off[tok->special[i]]]] = true;
    for (size_t i = 0; i < tok->n_special;) {
        size_t L = tok->len[tok->special[i]], j = i;
        while (j < tok->n_special && tok->len[tok->special[j]] == L) j++;
        for (size_t p = 0; L <= len && p + L <= len; p++) {
            if (!first[(unsigned char)text[p]]) continue;
            rk_token id = rk_tok_lookup(tok, text + p, L);
            if (id < 0) continue;
            const rk_token *hit = bsearch(&id, tok->special + i, j - i, sizeof id, cmp_token);
            if (hit) present[hit - tok->special] = 1;
        }
        i = j;
    }
}

static rk_status partition(const rk_tok *tok, const char *text, size_t len, int parse_special,
                           frag_vec *frags) {
    frags->n = 0;
    if (frag_push(frags, -1, 0, len) != RK_OK) return RK_ERR_NO_MEMORY;
    if (tok->n_special == 0) return RK_OK;
    uint8_t *present = calloc(tok->n_special, 1);
    if (!present) return RK_ERR_NO_MEMORY;
    specials_present(tok, text, len, present);
    frag_vec next = {0};
    rk_status st = RK_OK;
    for (size_t s = 0; s < tok->n_special && st == RK_OK; s++) {
        if (!present[s]) continue;
        rk_token id = tok->special[s];
        if (!parse_special && (tok->attr[id] & (RK_TOK_ATTR_CONTROL | RK_TOK_ATTR_UNKNOWN))) continue;
        const char *stext = tok->pool + tok->off[id];
        size_t slen = tok->len[id];
        next.n = 0;
        for (size_t f = 0; f < frags->n && st == RK_OK; f++) {
            fragment fr = frags->v[f];
            if (fr.token >= 0) { st = frag_push(&next, fr.token, 0, 0); continue; }
            size_t pos = fr.off, end = fr.off + fr.len;
            for (;;) {
                const char *m = end - pos >= slen ? memmem(text + pos, end - pos, stext, slen) : NULL;
                if (!m) break;
                size_t at = (size_t)(m - text);
                if (at > pos) st |= frag_push(&next, -1, pos, at - pos);
                st |= frag_push(&next, id, 0, 0);
                pos = at + slen;
            }
            if (pos < end) st |= frag_push(&next, -1, pos, end - pos);
        }
        frag_vec t = *frags;
        *frags = next;
        next = t;
    }
    free(next.v);
    free(present);
    return st ? RK_ERR_NO_MEMORY : RK_OK;
}

/* ---------------------------------------------------------------- encode / decode */

rk_status rk_tok_encode(const rk_tok *tok, const char *text, size_t len, int add_special,
                        int parse_special, rk_token **out, size_t *n_out, rk_error *err) {
    if (!tok || !out || !n_out || (!text && len))
        return rk_error_set(err, RK_ERR_INVALID_ARG, "tok: NULL argument");
    *out = NULL;
    *n_out = 0;
    size_t bad = rk_utf8_validate(text, len);
    if (bad != len)
        return rk_error_set(err, RK_ERR_FORMAT, "tok: invalid UTF-8 at byte offset %zu (byte 0x%02X)", bad,
                            (unsigned char)text[bad]);
    rk_tok_vec v = {0};
    frag_vec frags = {0};
    rk_status st = RK_OK;
    if (add_special && tok->add_bos) st = rk_tok_vec_push(&v, tok->bos);
    if (st == RK_OK && len > 0) st = partition(tok, text, len, parse_special, &frags);
    bool prev_special = true; /* SentencePiece: a space prefix at the start and after specials */
    for (size_t i = 0; i < frags.n && st == RK_OK && len > 0; i++) {
        const fragment *f = &frags.v[i];
        if (f->token >= 0) {
            st = rk_tok_vec_push(&v, f->token);
            prev_special = true;
        } else if (tok->type == RK_TOK_SPM) {
            st = rk_tok_spm_encode(tok, text + f->off, f->len, tok->add_space_prefix && prev_special, &v, err);
            prev_special = false;
        } else {
            st = rk_tok_bpe_encode(tok, text + f->off, f->len, &v, err);
        }
    }
    if (st == RK_OK && add_special && tok->add_eos) st = rk_tok_vec_push(&v, tok->eos);
    free(frags.v);
    if (st != RK_OK) {
        free(v.v);
        if (st == RK_ERR_NO_MEMORY && (!err || err->code != RK_ERR_NO_MEMORY))
            return rk_error_set(err, RK_ERR_NO_MEMORY, "tok: out of memory encoding %zu bytes", len);
        return st;
    }
    if (v.n == 0) {
        free(v.v);
        v.v = NULL;
    }
    *out = v.v;
    *n_out = v.n;
    return RK_OK;
}

static size_t put_bytes(char *buf, int32_t size, size_t at, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (at + i < (size_t)size) buf[at + i] = s[i];
    return at + n;
}

int32_t rk_tok_piece(const rk_tok *tok, rk_token id, int render_special, char *buf, int32_t size) {
    if (!tok || id < 0 || id >= tok->n_vocab) return -1;
    if (size < 0 || !buf) size = 0;
    unsigned a = tok->attr[id];
    const char *t = tok->pool + tok->off[id];
    size_t n = tok->len[id], k = 0;
    if (a & (RK_TOK_ATTR_CONTROL | RK_TOK_ATTR_UNKNOWN)) {
        if (!render_special) return 0;
        return (int32_t)put_bytes(buf, size, 0, t, n);
    }
    if (a & RK_TOK_ATTR_USER_DEFINED) return (int32_t)put_bytes(buf, size, 0, t, n);
    if (tok->type == RK_TOK_SPM) {
        if (a & RK_TOK_ATTR_BYTE) {
            if (n == 6 && t[0] == '<' && t[1] == '0' && t[2] == 'x' && t[5] == '>') {
                char c = (char)strtol(t + 3, NULL, 16);
                return (int32_t)put_bytes(buf, size, 0, &c, 1);
            }
            return 0;
        }
        if (!(a & RK_TOK_ATTR_NORMAL)) return 0;
        for (size_t i = 0; i < n;) { /* U+2581 -> space */
            if (i + 3 <= n && memcmp(t + i, "\xE2\x96\x81", 3) == 0) {
                k = put_bytes(buf, size, k, " ", 1);
                i += 3;
            } else {
                k = put_bytes(buf, size, k, t + i, 1);
                i++;
            }
        }
        return (int32_t)k;
    }
    if (!(a & RK_TOK_ATTR_NORMAL)) return 0;
    for (size_t i = 0; i < n;) { /* GPT-2 byte alphabet back to bytes */
        size_t cl = rk_utf8_len((unsigned char)t[i]);
        if (cl > n - i) cl = n - i;
        uint32_t cp = (unsigned char)t[i];
        if (cl == 2) cp = ((cp & 0x1F) << 6) | ((unsigned char)t[i + 1] & 0x3F);
        int b = cl <= 2 ? rk_bpe_cp_to_byte(cp) : -1;
        if (b >= 0) {
            char c = (char)b;
            k = put_bytes(buf, size, k, &c, 1);
        } else {
            k = put_bytes(buf, size, k, t + i, cl); /* not in the alphabet: pass through */
        }
        i += cl;
    }
    return (int32_t)k;
}

rk_status rk_tok_decode(const rk_tok *tok, const rk_token *ids, size_t n, int render_special,
                        char **out, size_t *out_len, rk_error *err) {
    if (!tok || !out || (!ids && n)) return rk_error_set(err, RK_ERR_INVALID_ARG, "tok: NULL argument");
    *out = NULL;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t k = rk_tok_piece(tok, ids[i], render_special, NULL, 0);
        if (k < 0)
            return rk_error_set(err, RK_ERR_INVALID_ARG, "tok: token %d at position %zu is outside the vocabulary (%d)",
                                ids[i], i, tok->n_vocab);
        total += (size_t)k;
    }
    char *s = malloc(total + 1);
    if (!s) return rk_error_set(err, RK_ERR_NO_MEMORY, "tok: out of memory decoding %zu tokens", n);
    size_t at = 0;
    bool strip = tok->type == RK_TOK_SPM && tok->add_space_prefix;
    for (size_t i = 0; i < n; i++) {
        int32_t k = rk_tok_piece(tok, ids[i], render_special, s + at, (int32_t)(total - at));
        if (strip && k > 0) {
            if (s[at] == ' ') {
                memmove(s + at, s + at + 1, (size_t)k - 1);
                k--;
            }
            strip = false;
        }
        at += (size_t)k;
    }
    s[at] = '\0';
    *out = s;
    if (out_len) *out_len = at;
    return RK_OK;
}
