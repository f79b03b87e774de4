/*
 * openai-render.h — the JSON objects of OpenAI's API as the official clients parse them:
 * chat.completion and its stream chunks, text_completion (whole and streamed), usage and
 * logprobs. Pure functions from plain structs to malloc'd JSON text (jansson); no I/O.
 */
#ifndef RK_SERVER_OPENAI_RENDER_H
#define RK_SERVER_OPENAI_RENDER_H

#include <stddef.h>
#include <stdint.h>

#include "ringkv.h"
#include "server/api-params.h"
#include "server/request.h"

/* What every object of one response shares. */
typedef struct rk_oai_head {
    rk_api_kind kind;
    const char *id;            /* "chatcmpl-…" / "cmpl-…" */
    int64_t created;           /* Unix seconds */
    const char *model;
} rk_oai_head;

typedef struct rk_oai_usage {
    int64_t prompt_tokens, completion_tokens, cached_tokens;
} rk_oai_usage;

/* A piece of output: text and the logprob entries of the tokens it came from. */
typedef struct rk_oai_delta {
    const char *text;          /* UTF-8 */
    size_t len;
    const rk_srv_logprob *lps; /* (n_lps) or NULL */
    size_t n_lps;
    size_t text_offset;        /* completions' logprobs: offset of this text in the whole output */
    int first;                 /* chat stream: the chunk that carries role "assistant" */
    const char *finish_reason; /* NULL while generating */
} rk_oai_delta;

/* The whole non-streamed response (chat.completion or text_completion). want_logprobs: emit a
 * logprobs object (else null). NULL when out of memory. */
char *rk_oai_render_full(const rk_model *model, const rk_oai_head *h, const rk_oai_delta *d, int want_logprobs,
                         const rk_oai_usage *usage);

/* One stream chunk; `usage_null`: add "usage": null (stream_options.include_usage). */
char *rk_oai_render_chunk(const rk_model *model, const rk_oai_head *h, const rk_oai_delta *d, int want_logprobs,
                          int usage_null);

/* The last chunk of a stream with include_usage: empty choices and the usage. */
char *rk_oai_render_usage_chunk(const rk_oai_head *h, const rk_oai_usage *usage);

#endif
