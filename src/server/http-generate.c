/*
 * http-generate.c — POST /v1/chat/completions and /v1/completions.
 *
 * The HTTP thread parses and validates the body, renders the chat template, tokenizes, checks
 * the prompt against the context, and submits the request to the scheduler. A streamed answer
 * is a libmicrohttpd callback response whose reader waits for the scheduler's output and writes
 * server-sent events (chat.completion.chunk / text_completion objects, then `data: [DONE]`;
 * comment pings while it waits; an error after the stream began is a `data: {"error": …}`
 * event). A whole answer waits in the handler. Either way a client that leaves cancels its
 * request.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "core/clock.h"
#include "server/http-impl.h"
#include "server/openai-render.h"
#include "server/stop-text.h"

#define POLL_SECONDS 0.2 /* how often a waiting thread checks that its client is still there */

/* The prompt of a chat request: the template over its messages, tokenized with special tokens. */
static int chat_prompt(rk_http_conn *c, const rk_api_params *p, rk_srv_request *req, rk_api_error *e) {
    rk_chat_message *msgs = calloc(p->n_messages, sizeof *msgs);
    if (!msgs) return rk_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    for (size_t i = 0; i < p->n_messages; i++) {
        msgs[i].role = strcmp(p->messages[i].role, "developer") == 0 ? "system" : p->messages[i].role;
        msgs[i].content = p->messages[i].content;
    }
    char *text = NULL;
    rk_error err;
    rk_status s = rk_chat_format(c->srv->model, msgs, p->n_messages, 1, &text, &err);
    free(msgs);
    if (s == RK_ERR_UNSUPPORTED)
        return rk_api_error_set(e, 400, "invalid_request_error", "messages", NULL,
                                "%s; use /v1/completions with a prompt you format yourself", err.msg);
    if (s) return rk_api_error_set(e, 500, "server_error", NULL, NULL, "%s", err.msg);
    size_t len = strlen(text);
    s = rk_tokenize(c->srv->model, text, len, 1, 1, &req->prompt, &req->n_prompt, &err);
    if (!s) s = rk_tokenize(c->srv->model, text, len, 0, 1, &req->prompt_cont, &req->n_prompt_cont, &err);
    free(text);
    if (s) return rk_api_error_set(e, 400, "invalid_request_error", "messages", NULL, "%s", err.msg);
    return 0;
}

static int completion_prompt(rk_http_conn *c, const rk_api_params *p, rk_srv_request *req, rk_api_error *e) {
    const int32_t V = rk_model_n_vocab(c->srv->model);
    if (p->prompt_tokens) {
        for (size_t i = 0; i < p->n_prompt_tokens; i++)
            if (p->prompt_tokens[i] >= V)
                return rk_api_error_set(e, 400, "invalid_request_error", "prompt", NULL,
                                        "prompt token %d at index %zu is outside the vocabulary (0..%d)",
                                        p->prompt_tokens[i], i, V - 1);
        size_t bytes = p->n_prompt_tokens * sizeof(rk_token);
        req->prompt = malloc(bytes ? bytes : 1);
        req->prompt_cont = malloc(bytes ? bytes : 1);
        if (!req->prompt || !req->prompt_cont) return rk_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
        memcpy(req->prompt, p->prompt_tokens, bytes);
        memcpy(req->prompt_cont, p->prompt_tokens, bytes);
        req->n_prompt = req->n_prompt_cont = p->n_prompt_tokens;
        return 0;
    }
    rk_error err;
    size_t len = strlen(p->prompt);
    rk_status s = rk_tokenize(c->srv->model, p->prompt, len, 1, 1, &req->prompt, &req->n_prompt, &err);
    if (!s) s = rk_tokenize(c->srv->model, p->prompt, len, 0, 1, &req->prompt_cont, &req->n_prompt_cont, &err);
    if (s) return rk_api_error_set(e, 400, "invalid_request_error", "prompt", NULL, "%s", err.msg);
    return 0;
}

/* Fills the request from validated parameters; returns 0 or an HTTP status with *e filled. */
static int build_request(rk_http_conn *c, const rk_api_params *p, rk_srv_request *req, rk_api_error *e) {
    int st = p->kind == RK_API_CHAT ? chat_prompt(c, p, req, e) : completion_prompt(c, p, req, e);
    if (st) return st;
    const int64_t n_ctx = rk_sched_n_ctx(c->srv->sched);
    if (req->n_prompt == 0)
        return rk_api_error_set(e, 400, "invalid_request_error", p->kind == RK_API_CHAT ? "messages" : "prompt", NULL,
                                "the prompt is empty");
    if ((int64_t)req->n_prompt >= n_ctx)
        return rk_api_error_set(e, 400, "invalid_request_error", p->kind == RK_API_CHAT ? "messages" : "prompt",
                                "context_length_exceeded",
                                "This model's maximum context length is %lld tokens. However, your prompt has %zu "
                                "tokens. Please reduce the length of the prompt.",
                                (long long)n_ctx, req->n_prompt);
    req->key_index = c->key_index;
    req->id = c->id;
    req->max_tokens = p->max_tokens > 0 ? p->max_tokens : n_ctx;
    rk_sampler_params sp = rk_sampler_default_params();
    sp.temperature = p->temperature;
    sp.top_p = p->top_p;
    sp.top_k = 0;
    sp.min_p = 0.0f;
    sp.repeat_penalty = 1.0f;
    if (p->has_seed) sp.seed = p->seed;
    else randombytes_buf(&sp.seed, sizeof sp.seed);
    req->sampling = sp;
    rk_stop_text *probe = NULL; /* the scheduler builds its own: this only checks the strings */
    rk_error err;
    if (rk_stop_text_create((const char *const *)p->stop, p->n_stop, &probe, &err) != RK_OK)
        return rk_api_error_set(e, 400, "invalid_request_error", "stop", NULL, "%s", err.msg);
    rk_stop_text_free(probe);
    for (int i = 0; i < p->n_stop; i++) {
        req->stops[i] = strdup(p->stop[i]);
        if (!req->stops[i]) return rk_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
        req->n_stops = i + 1;
    }
    req->logprobs = p->logprobs;
    req->top_logprobs = p->top_logprobs;
    const char *session = p->session ? p->session : MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, "X-Session-Id");
    if (session) {
        if (strlen(session) != RK_SRV_SESSION_ID_LEN)
            return rk_api_error_set(e, 404, "not_found_error", "session", NULL, "no session '%.64s'", session);
        memcpy(req->session, session, RK_SRV_SESSION_ID_LEN + 1);
        snprintf(c->log.session, sizeof c->log.session, "%s", session);
    }
    req->t_arrival = c->t_start;
    c->log.n_prompt = (int64_t)req->n_prompt;
    return 0;
}

/* ---- the answer ---- */

typedef struct answer {
    rk_server *srv;
    rk_http_conn *conn;        /* valid until the response ends */
    struct MHD_Connection *mhd;
    rk_srv_request *req;
    rk_oai_head head;
    char id[48];
    char model[128];
    int want_logprobs, include_usage;
    /* streaming */
    size_t text_sent, lps_sent;
    int role_sent, done;
    char *pending;             /* SSE bytes not yet handed to libmicrohttpd */
    size_t pending_len, pending_off;
} answer;

static void answer_free(answer *a) {
    if (!a) return;
    if (a->req) {
        rk_srv_request_cancel(a->req); /* no effect once it finished */
        rk_srv_request_release(a->req);
    }
    free(a->pending);
    free(a);
}

static void log_result(answer *a) {
    rk_srv_request *r = a->req;
    rk_http_log *l = &a->conn->log;
    l->n_cached = r->n_cached;
    l->n_generated = r->n_generated;
    l->ttft = r->n_generated ? r->t_first_token - r->t_arrival : 0.0;
    l->gen_seconds = r->n_generated > 1 ? r->t_last_token - r->t_first_token : 0.0;
    snprintf(l->finish, sizeof l->finish, "%s", r->finish_reason ? r->finish_reason : "");
    if (r->failed) snprintf(l->error, sizeof l->error, "%.150s", r->error.message);
}

static rk_oai_usage usage_of(const rk_srv_request *r) {
    return (rk_oai_usage){(int64_t)r->n_prompt, r->n_generated, r->n_cached};
}

/* Appends an SSE event ("data: <json>\n\n", or a raw line) to the pending bytes; takes json. */
static int pend(answer *a, const char *prefix, char *json, const char *suffix) {
    if (!json && prefix && strcmp(prefix, "data: ") == 0) return -1;
    size_t n = strlen(prefix) + (json ? strlen(json) : 0) + strlen(suffix);
    char *p = realloc(a->pending, a->pending_len + n + 1);
    if (!p) {
        free(json);
        return -1;
    }
    a->pending = p;
    a->pending_len += (size_t)snprintf(p + a->pending_len, n + 1, "%s%s%s", prefix, json ? json : "", suffix);
    free(json);
    return 0;
}

/* Queues the events for what the scheduler produced since the last call (mu held). */
static int pend_progress(answer *a) {
    rk_srv_request *r = a->req;
    int rc = 0;
    if (a->head.kind == RK_API_CHAT && !a->role_sent) {
        rk_oai_delta d = {"", 0, NULL, 0, 0, 1, NULL};
        rc |= pend(a, "data: ", rk_oai_render_chunk(a->srv->model, &a->head, &d, a->want_logprobs, a->include_usage), "\n\n");
        a->role_sent = 1;
    }
    if (r->text_len > a->text_sent || r->n_lps > a->lps_sent) {
        rk_oai_delta d = {r->text + a->text_sent, r->text_len - a->text_sent, r->lps + a->lps_sent,
                          r->n_lps - a->lps_sent, a->text_sent, 0, NULL};
        rc |= pend(a, "data: ", rk_oai_render_chunk(a->srv->model, &a->head, &d, a->want_logprobs, a->include_usage), "\n\n");
        a->text_sent = r->text_len;
        a->lps_sent = r->n_lps;
    }
    if (!r->finished) return rc;
    if (r->failed) {
        char *err = rk_api_error_json(&r->error);
        rc |= pend(a, "data: ", err, "\n\n");
    } else {
        rk_oai_delta d = {"", 0, NULL, 0, a->text_sent, 0, r->finish_reason};
        rc |= pend(a, "data: ", rk_oai_render_chunk(a->srv->model, &a->head, &d, a->want_logprobs, a->include_usage), "\n\n");
        rk_oai_usage u = usage_of(r);
        if (a->include_usage) rc |= pend(a, "data: ", rk_oai_render_usage_chunk(&a->head, &u), "\n\n");
    }
    rc |= pend(a, "data: [DONE]", NULL, "\n\n");
    log_result(a);
    a->done = 1;
    return rc;
}

/* Waits up to `seconds` for output; returns with mu held. */
static void wait_output(rk_srv_request *r, size_t text_seen, size_t lps_seen, double seconds) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long ns = ts.tv_nsec + (long)(seconds * 1e9);
    ts.tv_sec += ns / 1000000000L;
    ts.tv_nsec = ns % 1000000000L;
    pthread_mutex_lock(&r->mu);
    while (!r->finished && r->text_len == text_seen && r->n_lps == lps_seen)
        if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) != 0) break;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    answer *a = cls;
    double waited = 0.0;
    while (a->pending_off == a->pending_len) {
        a->pending_off = a->pending_len = 0;
        if (a->done) return MHD_CONTENT_READER_END_OF_STREAM;
        if (rk_http_client_gone(a->mhd)) {
            rk_srv_request_cancel(a->req);
            pthread_mutex_lock(&a->req->mu);
            log_result(a);
            pthread_mutex_unlock(&a->req->mu);
            snprintf(a->conn->log.error, sizeof a->conn->log.error, "the client closed the connection");
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        wait_output(a->req, a->text_sent, a->lps_sent, POLL_SECONDS);
        int rc = pend_progress(a);
        pthread_mutex_unlock(&a->req->mu);
        if (rc) return MHD_CONTENT_READER_END_WITH_ERROR; /* out of memory */
        waited += POLL_SECONDS;
        if (a->pending_len == 0 && waited >= a->srv->cfg.ping_seconds) {
            if (pend(a, ": ping", NULL, "\n\n")) return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
    size_t n = a->pending_len - a->pending_off;
    if (n > max) n = max;
    memcpy(buf, a->pending + a->pending_off, n);
    a->pending_off += n;
    return (ssize_t)n;
}

static void stream_free(void *cls) { answer_free(cls); }

static enum MHD_Result send_stream(rk_http_conn *c, answer *a) {
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, a, stream_free);
    if (!r) {
        answer_free(a);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    enum MHD_Result ret = MHD_queue_response(c->mhd, 200, r);
    MHD_destroy_response(r);
    rk_metrics_count_request(c->srv->metrics, c->endpoint, 200);
    c->log.status = 200;
    return ret;
}

/* Waits for the whole answer (watching the client) and sends it. */
static enum MHD_Result send_whole(rk_http_conn *c, answer *a) {
    rk_srv_request *r = a->req;
    for (;;) {
        wait_output(r, r->text_len, r->n_lps, POLL_SECONDS); /* any change, or the period */
        int finished = r->finished;
        pthread_mutex_unlock(&r->mu);
        if (finished) break;
        if (rk_http_client_gone(c->mhd)) {
            answer_free(a); /* cancels */
            c->log.status = 499;
            return MHD_NO;
        }
    }
    log_result(a);
    enum MHD_Result ret;
    if (r->failed) {
        ret = rk_http_send_error(c, &r->error);
    } else {
        rk_oai_delta d = {r->text ? r->text : "", r->text_len, r->lps, r->n_lps, 0, 0, r->finish_reason};
        rk_oai_usage u = usage_of(r);
        ret = rk_http_send_json(c, 200, rk_oai_render_full(c->srv->model, &a->head, &d, a->want_logprobs, &u));
    }
    answer_free(a);
    return ret;
}

static enum MHD_Result generate(rk_http_conn *c, rk_api_kind kind) {
    rk_api_params p;
    rk_api_error e;
    rk_api_limits lim = c->srv->cfg.limits;
    lim.max_tokens_limit = rk_sched_n_ctx(c->srv->sched);
    if (rk_api_parse_request(kind, c->body ? c->body : "", c->body_len, &lim, &p, &e) != 0)
        return rk_http_send_error(c, &e);
    answer *a = calloc(1, sizeof *a);
    rk_srv_request *req = rk_srv_request_new();
    if (!a || !req) {
        free(a);
        rk_srv_request_release(req);
        rk_api_params_free(&p);
        return rk_http_error(c, 500, "server_error", NULL, NULL, "out of memory");
    }
    int st = build_request(c, &p, req, &e);
    if (!st) st = rk_sched_submit(c->srv->sched, req, &e);
    if (st) {
        rk_api_params_free(&p);
        rk_srv_request_release(req);
        free(a);
        return rk_http_send_error(c, &e);
    }
    a->srv = c->srv;
    a->conn = c;
    a->mhd = c->mhd;
    a->req = req;
    snprintf(a->id, sizeof a->id, "%s-%llu", kind == RK_API_CHAT ? "chatcmpl" : "cmpl", (unsigned long long)c->id);
    snprintf(a->model, sizeof a->model, "%s", p.model ? p.model : c->srv->cfg.model_name);
    a->head = (rk_oai_head){kind, a->id, (int64_t)time(NULL), a->model};
    a->want_logprobs = p.logprobs;
    a->include_usage = p.include_usage;
    int stream = p.stream;
    rk_api_params_free(&p);
    return stream ? send_stream(c, a) : send_whole(c, a);
}

enum MHD_Result rk_http_chat(rk_http_conn *c) { return generate(c, RK_API_CHAT); }
enum MHD_Result rk_http_completions(rk_http_conn *c) { return generate(c, RK_API_COMPLETION); }
