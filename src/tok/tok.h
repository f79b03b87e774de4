/*
 * tok.h — tokenizers built from a GGUF file's `tokenizer.*` metadata.
 *
 * Two algorithms, both matching llama.cpp's llama-vocab.cpp token for token:
 *
 *   - "llama" (SentencePiece BPE): spaces become U+2581, a leading U+2581 is added when
 *     `tokenizer.ggml.add_space_prefix` says so (default true), then adjacent pieces merge by
 *     highest vocabulary score; characters without a token fall back to <0xXX> byte tokens.
 *   - "gpt2" (byte-level BPE): text is split by the pre-tokenizer regexes of
 *     `tokenizer.ggml.pre` (llama-bpe, qwen2, gpt-2, smollm, default; PCRE2 with Unicode
 *     properties), each byte maps to a printable code point (GPT-2's bytes_to_unicode), then
 *     pairs merge by rank from `tokenizer.ggml.merges`. Needs PCRE2 (RINGKV_HAVE_PCRE2);
 *     without it loading such a vocabulary returns RK_ERR_UNSUPPORTED.
 *
 * Special tokens (CONTROL and USER_DEFINED types) are split out of the text first, longest
 * first, like llama.cpp's tokenizer_st_partition: USER_DEFINED tokens always, CONTROL tokens
 * only with `parse_special`.
 *
 * Loading validates everything it uses (array types and lengths, special ids in range, merges
 * naming real tokens), so a hostile file gives RK_ERR_FORMAT and a message, never a crash.
 * An rk_tok copies what it needs: the rk_gguf may be closed after rk_tok_load. A loaded rk_tok
 * is read-only, so any number of threads may encode and decode with it at once.
 *
 * Chat templates: rk_tok_chat_format renders a conversation for the template family found in
 * `tokenizer.chat_template` (ChatML, Llama 3, Gemma) — not a Jinja interpreter; the known
 * families are recognised by their markers and reproduced exactly, including a default system
 * prompt the template inserts (SmolLM2, Qwen2).
 */
#ifndef RK_TOK_H
#define RK_TOK_H

#include <stddef.h>
#include <stdint.h>

#include "gguf/gguf.h"
#include "ringkv.h"

typedef struct rk_tok rk_tok;

typedef enum rk_tok_type {
    RK_TOK_SPM = 1, /* tokenizer.ggml.model = "llama" */
    RK_TOK_BPE = 2  /* tokenizer.ggml.model = "gpt2" */
} rk_tok_type;

/* Token attributes (bit flags), derived from tokenizer.ggml.token_type as llama.cpp does. */
enum {
    RK_TOK_ATTR_UNKNOWN = 1 << 0,      /* token_type 2 */
    RK_TOK_ATTR_UNUSED = 1 << 1,       /* token_type 5 */
    RK_TOK_ATTR_NORMAL = 1 << 2,       /* token_type 1 */
    RK_TOK_ATTR_CONTROL = 1 << 3,      /* token_type 3 (and EOG tokens found by text) */
    RK_TOK_ATTR_USER_DEFINED = 1 << 4, /* token_type 4 */
    RK_TOK_ATTR_BYTE = 1 << 5          /* token_type 6: SentencePiece <0xXX> */
};

/* Builds a tokenizer from `gguf`'s metadata. On success *out belongs to the caller
 * (rk_tok_free). Errors: RK_ERR_INVALID_ARG (no tokenizer keys), RK_ERR_FORMAT (malformed or
 * inconsistent metadata; the message names the key and index), RK_ERR_UNSUPPORTED (unknown
 * tokenizer.ggml.model or .pre, or a BPE vocabulary without PCRE2), RK_ERR_NO_MEMORY. */
rk_status rk_tok_load(const rk_gguf *gguf, rk_tok **out, rk_error *err);

/* Frees a tokenizer; NULL is a no-op. */
void rk_tok_free(rk_tok *tok);

rk_tok_type rk_tok_get_type(const rk_tok *tok);
/* The pre-tokenizer name as given in the file ("default" for SentencePiece). */
const char *rk_tok_pre_name(const rk_tok *tok);
int32_t rk_tok_n_vocab(const rk_tok *tok);

/* Special token ids; -1 when the vocabulary has none. */
rk_token rk_tok_bos(const rk_tok *tok);
rk_token rk_tok_eos(const rk_tok *tok);
rk_token rk_tok_eot(const rk_tok *tok); /* end of turn: <|eot_id|>, <|im_end|>, <end_of_turn>... */
rk_token rk_tok_unk(const rk_tok *tok);
rk_token rk_tok_pad(const rk_tok *tok);
/* 1 when encoding with add_special prepends BOS / appends EOS. */
int rk_tok_add_bos(const rk_tok *tok);
int rk_tok_add_eos(const rk_tok *tok);
/* 1 for SentencePiece vocabularies that add a space prefix: the first piece after BOS (or at
 * the start of a text) carries a space the text did not have, and printers drop it. */
int rk_tok_strips_leading_space(const rk_tok *tok);
/* 1 when `id` ends generation: EOS, EOT, EOM, or a token whose text is one of the known
 * end-of-turn markers (<|im_end|>, <end_of_turn>, <|eot_id|>, <|endoftext|>, ...). */
int rk_tok_is_eog(const rk_tok *tok, rk_token id);
/* RK_TOK_ATTR_* bits of `id`; 0 for an id outside the vocabulary. */
unsigned rk_tok_attr(const rk_tok *tok, rk_token id);
/* The raw vocabulary text of `id` (NUL-terminated, owned by tok; *len may be NULL), or NULL
 * for an id outside the vocabulary. */
const char *rk_tok_text(const rk_tok *tok, rk_token id, size_t *len);
/* The id whose vocabulary text is exactly text[0..len), or -1. */
rk_token rk_tok_find(const rk_tok *tok, const char *text, size_t len);

/* Tokenizes UTF-8 text[0..len) (NUL bytes allowed). `add_special`: prepend BOS / append EOS
 * when the vocabulary asks for them (rk_tok_add_bos/add_eos). `parse_special`: CONTROL token
 * texts such as "<|im_start|>" become those tokens (USER_DEFINED ones always do).
 * On success *out (malloc'd, caller frees; NULL when *n_out is 0) holds *n_out ids.
 * Errors: RK_ERR_FORMAT for invalid UTF-8 (message gives the byte offset),
 * RK_ERR_INVALID_ARG, RK_ERR_NO_MEMORY, RK_ERR_INTERNAL (regex engine failure). */
rk_status rk_tok_encode(const rk_tok *tok, const char *text, size_t len, int add_special,
                        int parse_special, rk_token **out, size_t *n_out, rk_error *err);

/* The bytes token `id` stands for when printed (SentencePiece: U+2581 -> space, <0xXX> -> the
 * byte; BPE: GPT-2 byte alphabet mapped back to bytes). CONTROL and UNKNOWN tokens give ""
 * unless `render_special`. Writes min(needed, size) bytes, no NUL; returns the number of bytes
 * needed (call again with a larger buffer if that exceeds size), or -1 for an id outside the
 * vocabulary. Pieces are raw bytes: one piece may hold part of a UTF-8 character. */
int32_t rk_tok_piece(const rk_tok *tok, rk_token id, int render_special, char *buf,
                     int32_t size);

/* Concatenates the pieces of ids[0..n) into a malloc'd NUL-terminated string (*out, caller
 * frees; *out_len excludes the NUL, may be NULL). For SentencePiece vocabularies with a space
 * prefix, the leading space of the first piece is removed, so that
 * decode(encode(text)) == text for text the vocabulary can represent.
 * Errors: RK_ERR_INVALID_ARG (an id outside the vocabulary), RK_ERR_NO_MEMORY. */
rk_status rk_tok_decode(const rk_tok *tok, const rk_token *ids, size_t n, int render_special,
                        char **out, size_t *out_len, rk_error *err);

/* ---- chat templates ---- */

/* A message (role, content) of a conversation: the public rk_chat_message. */
typedef rk_chat_message rk_chat_msg;

typedef enum rk_chat_kind {
    RK_CHAT_NONE = 0,
    RK_CHAT_CHATML = 1, /* <|im_start|>role\n...<|im_end|>\n (SmolLM2, Qwen) */
    RK_CHAT_LLAMA3 = 2, /* <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|> */
    RK_CHAT_GEMMA = 3   /* <start_of_turn>user\n...<end_of_turn>\n, assistant -> model */
} rk_chat_kind;

/* The template family: from tokenizer.chat_template's markers when present, else from the
 * vocabulary (a <start_of_turn> token -> Gemma, <|im_start|> -> ChatML,
 * <|start_header_id|> -> Llama 3); RK_CHAT_NONE when neither tells. */
rk_chat_kind rk_tok_chat_kind(const rk_tok *tok);
/* tokenizer.chat_template as stored (NULL when absent). */
const char *rk_tok_chat_template(const rk_tok *tok);

/* Renders msgs[0..n) as the model's chat template does, ending with the assistant prompt
 * when `add_assistant_prompt`. The result never contains BOS: tokenize it with add_special
 * and parse_special. *out is malloc'd (caller frees).
 * Errors: RK_ERR_UNSUPPORTED ("no chat template"), RK_ERR_INVALID_ARG (NULL role/content, or
 * roles the template rejects, e.g. Gemma's non-alternating turns), RK_ERR_NO_MEMORY. */
rk_status rk_tok_chat_format(const rk_tok *tok, const rk_chat_msg *msgs, size_t n,
                             int add_assistant_prompt, char **out, rk_error *err);

/* ---- helpers shared with callers that stream text ---- */

/* Checks that s[0..len) is well-formed UTF-8 (no overlongs, surrogates or code points above
 * U+10FFFF). Returns len when it is, else the offset of the first bad byte. */
size_t rk_utf8_validate(const char *s, size_t len);

#endif
