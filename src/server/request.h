/*
 * request.h — one generation request as it travels between an HTTP thread and the scheduler.
 *
 * The HTTP thread fills the input half (tokens, sampling, limits) and submits the request; from
 * then on the scheduler thread appends output (text that is safe to send, per-token logprobs,
 * the finish reason or an error) under the request's mutex and signals its condition variable,
 * and the HTTP thread drains what is new since its last read. Either side may drop its
 * reference first: the HTTP side cancels a request whose client went away, and the scheduler
 * frees the sequence within one step. Nothing here touches the model.
 */
#ifndef RK_SERVER_REQUEST_H
#define RK_SERVER_REQUEST_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "ringkv.h"
#include "server/api-params.h"

#define RK_SRV_MAX_TOP_LOGPROBS 20
#define RK_SRV_SESSION_ID_LEN 32 /* hex characters: 128 random bits */

/* One generated token's log probability and the most likely alternatives (when asked for). */
typedef struct rk_srv_logprob {
    rk_token token;
    float logprob;
    int n_top;
    rk_token top_token[RK_SRV_MAX_TOP_LOGPROBS];
    float top_logprob[RK_SRV_MAX_TOP_LOGPROBS];
} rk_srv_logprob;

typedef struct rk_srv_request {
    /* ---- input: set before submission, read-only afterwards ---- */
    uint64_t id;                  /* a number for logs */
    int key_index;                /* the API key that sent it (-1: no keys configured) */
    rk_token *prompt;             /* (n_prompt) owned */
    size_t n_prompt;
    rk_token *prompt_cont;        /* (n_prompt_cont) owned: the same request as a continuation of
                                   * a session (no BOS; for chat: its messages alone) */
    size_t n_prompt_cont;
    int64_t max_tokens;           /* tokens to generate at most (>= 1) */
    rk_sampler_params sampling;
    char *stops[4];               /* owned */
    int n_stops;
    int logprobs, top_logprobs;   /* 1 / 0..20: record rk_srv_logprob per token */
    char session[RK_SRV_SESSION_ID_LEN + 1]; /* "" = none */
    double t_arrival;             /* rk_now_seconds() at arrival */

    /* ---- output: under mu ---- */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *text;                   /* (text_len) text safe to send so far; grows */
    size_t text_len, text_cap;
    rk_srv_logprob *lps;          /* (n_lps) one per generated token when logprobs */
    size_t n_lps, lps_cap;
    int64_t n_generated;
    int64_t n_cached;             /* prompt tokens whose KV was reused */
    int started;                  /* admitted to a sequence */
    int finished;                 /* no more output will come */
    const char *finish_reason;    /* "stop" or "length" once finished without error */
    int failed;                   /* finished with `error` */
    rk_api_error error;
    int cancelled;                /* set by the HTTP side: the client went away */
    double t_first_token, t_last_token, t_done;
    int refs;                     /* the HTTP side and the scheduler */
} rk_srv_request;

/* A request with one reference (the caller's) and empty output. NULL when out of memory. */
rk_srv_request *rk_srv_request_new(void);
/* Drops a reference; the last one frees the request. */
void rk_srv_request_release(rk_srv_request *req);
void rk_srv_request_retain(rk_srv_request *req);

/* Scheduler side (take mu inside): append text (is_token: for one more generated token) and a
 * logprob entry, finish, fail. Return
 * RK_ERR_NO_MEMORY when the text cannot grow (the scheduler then fails the request). */
rk_status rk_srv_request_emit(rk_srv_request *req, const char *text, size_t len, const rk_srv_logprob *lp,
                              int is_token);
void rk_srv_request_finish(rk_srv_request *req, const char *finish_reason);
void rk_srv_request_fail(rk_srv_request *req, const rk_api_error *error);

/* HTTP side: marks the request cancelled (the scheduler drops its sequence at the next step). */
void rk_srv_request_cancel(rk_srv_request *req);

#endif
