/*
 * api-params.h — request bodies of the OpenAI-compatible server (`ringkv serve`) parsed and
 * validated into plain structs, and errors in the shape the official OpenAI clients read.
 *
 * The HTTP layer hands each POST body to one of the parsers below and either gets a filled
 * struct (every value checked: types, ranges, limits, strings free of NUL) or an rk_api_error
 * it sends back as-is with rk_api_error_json(). Nothing here knows about the model or the
 * scheduler: token ids are checked to be ≥ 0 but not against a vocabulary, and max_tokens is
 * checked against a limit the caller passes (its context size).
 *
 * Error model. Every parser returns 0 on success, else an HTTP status (400 bad request, 413 body
 * too large, 500 out of memory) with *err filled: `message` names the field and the value,
 * `param` is the field's path ("messages[2].content[0].type", "" for none), `code` follows
 * OpenAI's ("missing_required_parameter", "invalid_type", "invalid_value",
 * "unsupported_parameter", "unsupported_value", ...). `err` may be NULL.
 *
 * What is accepted (OpenAI's behaviour, strictness where silence would mislead):
 *   - JSON with a top-level object; at most limits->max_json_depth nested containers (checked by
 *     a byte scan before the parser runs, so a megabyte of "[[[[" cannot recurse); valid UTF-8;
 *     no \u0000 in any string this module returns (the engine uses C strings).
 *   - null for an optional field means "absent" (many clients send nulls for defaults).
 *   - Numbers may be JSON integers or decimals; integer fields also take integral decimals
 *     (2.0). Booleans must be true/false ("true" or 1 is refused).
 *   - Features the engine lacks are refused, never ignored: n/best_of ≠ 1, tools and
 *     functions (empty lists and tool_choice "none"/"auto" pass), response_format other than
 *     text, presence/frequency penalties ≠ 0, a non-empty logit_bias, suffix, echo, prompt
 *     batches. Fields this module does not know are ignored (clients send extras).
 *   - "session" (a ringkv extension naming a KV session) is 1..128 bytes of [A-Za-z0-9._:-]
 *     and does not start with '.', so callers may use it in file names.
 */
#ifndef RK_SERVER_API_PARAMS_H
#define RK_SERVER_API_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "ringkv.h" /* rk_token, rk_status, rk_error */

#if defined(__GNUC__)
#define RK_API_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define RK_API_PRINTF(a, b)
#endif

typedef enum rk_api_kind { RK_API_CHAT = 0, RK_API_COMPLETION = 1 } rk_api_kind;

/* An OpenAI error as the official clients read it:
 * {"error": {"message", "type", "param", "code"}}. */
typedef struct rk_api_error {
    int http_status; /* 400, 401, 404, 413, 429, 503, 500 */
    char message[512];
    /* static: "invalid_request_error", "authentication_error", "not_found_error",
     * "server_error", ... */
    const char *type;
    char param[64];   /* "" = null */
    const char *code; /* static or NULL: e.g. "context_length_exceeded", "invalid_api_key" */
} rk_api_error;

/* Fills *e (printf-style message; `param` and `code` may be NULL for none; `type` NULL means
 * "invalid_request_error"). The message is cut to fit and made valid UTF-8 (bytes that are not
 * become '?'), since it may quote the client's input. Returns http_status (also when e is NULL). */
int rk_api_error_set(rk_api_error *e, int http_status, const char *type, const char *param,
                     const char *code, const char *fmt, ...) RK_API_PRINTF(6, 7);
/* The error as a JSON object string {"error":{"message":...,"type":...,"param":...,"code":...}}
 * with param and code null when empty. Malloc'd, caller frees; NULL if out of memory. */
char *rk_api_error_json(const rk_api_error *e);

typedef struct rk_api_message {
    char *role;    /* "system", "user" or "assistant" ("developer" arrives as "system") */
    char *content; /* text parts concatenated; "" for an assistant message without content */
} rk_api_message;  /* owned */

typedef struct rk_api_limits {
    size_t max_body_bytes; /* bodies longer get 413; 0 = no limit */
    /* nesting deeper gets 400 (checked BEFORE calling the parser, by a scan that skips strings);
     * ≤ 0 = 32 */
    int max_json_depth;
    /* max_tokens above this gets 400 (the server passes its context size); ≤ 0 = no limit */
    int64_t max_tokens_limit;
} rk_api_limits;
rk_api_limits rk_api_default_limits(void); /* 4 MiB, 32, 1<<20 */

typedef struct rk_api_params {
    rk_api_kind kind;
    /* "model" (may be NULL when absent; the server ignores its value but echoes it) */
    char *model;
    /* chat: "messages" (≥ 1 required); content is a string or an array of
     * {"type":"text","text":...} parts, concatenated; a null content is "" (assistant messages) */
    rk_api_message *messages;
    size_t n_messages;
    /* completions: "prompt" as a string, or an array with exactly one string */
    char *prompt;
    /* completions: "prompt" as an array of token ids (ints ≥ 0), or one such array inside an
     * array; NULL otherwise */
    rk_token *prompt_tokens;
    size_t n_prompt_tokens;
    int stream; /* "stream" */
    /* "stream_options": {"include_usage": true} (stream_options without stream → 400 as
     * OpenAI does) */
    int include_usage;
    /* "max_completion_tokens" or (deprecated) "max_tokens"; -1 = absent. Both present and
     * different → 400. Must be ≥ 1 (0 or negative → 400) and ≤ limits->max_tokens_limit. */
    int64_t max_tokens;
    float temperature; /* default 1.0; 0..2 else 400 */
    float top_p;       /* default 1.0; (0,1] else 400 */
    int has_seed;
    uint64_t seed; /* "seed": integer (a negative one is mapped two's-complement to uint64) */
    char *stop[4]; /* "stop": string or array of ≤ 4 non-empty strings; more → 400 */
    int n_stop;
    /* chat: "logprobs": bool; completions: "logprobs": integer 0..5 meaning top count (then
     * logprobs=1, top_logprobs=N) */
    int logprobs;
    int top_logprobs; /* chat: "top_logprobs" 0..20, requires logprobs=true else 400 */
    char *session;    /* ringkv extension: "session": string id (may be NULL) */
    char *user;       /* "user" (ignored but accepted) */
    int echo;         /* completions "echo": only false accepted (true → 400 unsupported) */
} rk_api_params;

/* Parses and validates a request body (`len` bytes, need not be NUL-terminated) of the given
 * kind; `limits` NULL means rk_api_default_limits(). On success fills *out (the caller frees it
 * with rk_api_params_free) and returns 0; on failure returns the HTTP status (400 or 413; 500
 * when out of memory) with *err filled and *out zeroed. Never crashes on any input (fuzzed). */
int rk_api_parse_request(rk_api_kind kind, const char *body, size_t len,
                         const rk_api_limits *limits, rk_api_params *out, rk_api_error *err);
/* Frees what *p owns and zeroes it; NULL is a no-op. */
void rk_api_params_free(rk_api_params *p);

/* Parses {"content": "...", "add_special": bool, "with_pieces": bool} (POST /tokenize; both
 * flags default to false) and {"tokens": [ids]} (POST /detokenize; [] is allowed). Same return
 * convention. On success the caller frees *text / *tokens; on failure they are NULL. */
int rk_api_parse_tokenize(const char *body, size_t len, const rk_api_limits *limits, char **text,
                          int *add_special, rk_api_error *err);
/* As rk_api_parse_tokenize, also returning "with_pieces" (with_pieces may be NULL). */
int rk_api_parse_tokenize_ex(const char *body, size_t len, const rk_api_limits *limits, char **text,
                             int *add_special, int *with_pieces, rk_api_error *err);
int rk_api_parse_detokenize(const char *body, size_t len, const rk_api_limits *limits,
                            rk_token **tokens, size_t *n, rk_api_error *err);

#endif
