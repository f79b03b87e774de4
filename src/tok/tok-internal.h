/*
 * tok-internal.h — the rk_tok structure and the helpers the tokenizer files share
 * (tok.c: loading, specials, pieces; tok-spm.c; tok-bpe.c; tok-chat.c). Not for other modules.
 */
#ifndef RK_TOK_INTERNAL_H
#define RK_TOK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tok/tok.h"

/* Pre-tokenizer families (which regex list splits the text before BPE). */
typedef enum rk_tok_pre {
    RK_PRE_DEFAULT = 0,
    RK_PRE_LLAMA3,
    RK_PRE_QWEN2,
    RK_PRE_GPT2,
    RK_PRE_SMOLLM
} rk_tok_pre;

#define RK_TOK_MAX_REGEX 4

/* A growable token list. */
typedef struct rk_tok_vec {
    rk_token *v;
    size_t n, cap;
} rk_tok_vec;

struct rk_tok {
    rk_tok_type type;
    rk_tok_pre pre;
    char pre_name[64];
    int32_t n_vocab;

    /* vocabulary: text of token i is pool[off[i] .. off[i]+len[i]) followed by a NUL */
    char *pool;       /* (sum of lengths + n_vocab) bytes */
    size_t *off;      /* (n_vocab) */
    uint32_t *len;    /* (n_vocab) */
    float *score;     /* (n_vocab) SentencePiece merge priorities; 0 when absent */
    uint8_t *attr;    /* (n_vocab) RK_TOK_ATTR_* */

    /* text -> id: open addressing, linear probing; slots hold id+1 (0 = empty) */
    uint32_t *map;    /* (map_mask + 1) */
    size_t map_mask;

    /* BPE merges: (left id, right id) -> rank and merged id; open addressing on the key */
    uint64_t *mkey;   /* (merge_mask + 1) key = left<<32 | right, UINT64_MAX = empty */
    int32_t *mrank;   /* (merge_mask + 1) */
    int32_t *mres;    /* (merge_mask + 1) id of the merged text */
    size_t merge_mask;

    rk_token bos, eos, eot, eom, unk, pad;
    bool add_bos, add_eos, add_space_prefix, ignore_merges;

    rk_token *special;  /* (n_special) CONTROL/USER_DEFINED/UNKNOWN ids, longest text first */
    size_t n_special;
    rk_token *eog;      /* (n_eog) end-of-generation ids, sorted */
    size_t n_eog;

    rk_token byte_tok[256]; /* SentencePiece byte fallback (<0xXX>, else the 1-byte text) */

    char *chat_template;    /* NULL when absent */
    rk_chat_kind chat_kind;

    void *regex[RK_TOK_MAX_REGEX]; /* pcre2_code_8 *, compiled per pre-tokenizer */
    int n_regex;
};

/* ---- shared helpers (tok.c) ---- */
rk_status rk_tok_vec_push(rk_tok_vec *v, rk_token t);
rk_token rk_tok_lookup(const rk_tok *tok, const char *s, size_t n);
/* Length of the UTF-8 sequence starting with byte c (1 for stray bytes), as llama.cpp. */
size_t rk_utf8_len(unsigned char c);

/* ---- per-algorithm encoders: append the tokens of one raw text fragment ---- */
rk_status rk_tok_spm_encode(const rk_tok *tok, const char *text, size_t len, bool add_prefix,
                            rk_tok_vec *out, rk_error *err);
rk_status rk_tok_bpe_init(rk_tok *tok, rk_error *err);      /* compiles the regexes */
void rk_tok_bpe_release(rk_tok *tok);
rk_status rk_tok_bpe_encode(const rk_tok *tok, const char *text, size_t len, rk_tok_vec *out,
                            rk_error *err);
/* GPT-2 byte alphabet: the code point byte b is shown as, and back (-1 when not a byte). */
uint32_t rk_bpe_byte_to_cp(uint8_t b);
int rk_bpe_cp_to_byte(uint32_t cp);

/* ---- chat (tok-chat.c) ---- */
rk_chat_kind rk_tok_chat_detect(const rk_tok *tok);

#endif
