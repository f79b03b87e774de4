/*
 * scheduler.c — the step loop of continuous batching (see scheduler.h for the policy).
 *
 * One iteration: (1) under the lock, reap deleted/expired sessions, drop cancelled requests,
 * admit queued ones into free sequences (choosing a slot by longest shared prefix of the same
 * key), and build the step: each running sequence's next chunk or decode token; (2) without the
 * lock, rk_engine_eval over all of them; (3) under the lock again, sample each sequence that
 * finished its prompt or decoded a token, push the text through its stop strings to its
 * request, and end requests at EOG, a stop string, max_tokens or a full context.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/clock.h"
#include "core/error.h"
#include "server/sched-impl.h"

rk_status rk_seq_init(rk_sched *s, rk_seq *q, const char *id, rk_seal_key *key, rk_error *err) {
    memset(q, 0, sizeof *q);
    q->key_index = -2;
    q->seal_key = key;
    rk_status st = key ? RK_OK : rk_seal_key_create(id, &q->seal_key, err);
    if (st) return st;
    rk_context_params cp = s->cfg.ctx;
    cp.engine = s->engine;
    cp.n_ubatch = (int)s->cfg.prefill_chunk;
    cp.kv_sealer = rk_seal_key_sealer(q->seal_key);
    return rk_context_create(s->model, &cp, &q->ctx, err);
}

static void seq_end_request(rk_seq *q) {
    if (q->req) rk_srv_request_release(q->req);
    q->req = NULL;
    rk_sampler_free(q->sampler);
    q->sampler = NULL;
    rk_stop_text_free(q->stop);
    q->stop = NULL;
    q->decoding = 0;
    q->feed = NULL;
    q->n_feed = q->n_fed = 0;
}

void rk_seq_free(rk_seq *q) {
    seq_end_request(q);
    rk_context_free(q->ctx);
    rk_seal_key_shred(q->seal_key);
    free(q->history);
    memset(q, 0, sizeof *q);
}

static int history_push(rk_seq *q, const rk_token *t, size_t n) {
    if (q->n_history + n > q->cap) {
        size_t cap = q->cap ? q->cap : 256;
        while (cap < q->n_history + n) cap *= 2;
        rk_token *h = realloc(q->history, cap * sizeof *h);
        if (!h) return -1;
        q->history = h;
        q->cap = cap;
    }
    memcpy(q->history + q->n_history, t, n * sizeof *t);
    q->n_history += n;
    return 0;
}

static size_t common_prefix(const rk_token *a, size_t na, const rk_token *b, size_t nb) {
    size_t i = 0;
    while (i < na && i < nb && a[i] == b[i]) i++;
    return i;
}

/* Forgets the sequence's tokens from `keep` on (all of them if the cache cannot rewind there). */
static size_t seq_truncate(rk_seq *q, size_t keep) {
    rk_error err;
    if (rk_context_truncate(q->ctx, (int64_t)keep, &err) != RK_OK) {
        keep = 0;
        rk_context_truncate(q->ctx, 0, &err);
    }
    q->n_history = keep;
    return keep;
}

/* ---- admission ---- */

/* The free slot for a request of `key`: the one whose tokens share the longest prefix with the
 * prompt among the key's own, else the least recently used. */
static rk_seq *pick_slot(rk_sched *s, const rk_srv_request *req, size_t *shared) {
    rk_seq *best = NULL, *lru = NULL;
    size_t best_len = 0;
    for (int i = 0; i < s->cfg.parallel; i++) {
        rk_seq *q = &s->slots[i];
        if (q->req) continue;
        if (!lru || q->last_used < lru->last_used) lru = q;
        if (q->key_index != req->key_index) continue;
        size_t len = common_prefix(q->history, q->n_history, req->prompt, req->n_prompt);
        if (len > best_len) {
            best = q;
            best_len = len;
        }
    }
    *shared = best ? best_len : 0;
    return best ? best : lru;
}

static void fail_request(rk_srv_request *req, int status, const char *type, const char *fmt, const char *detail) {
    rk_api_error e;
    rk_api_error_set(&e, status, type, NULL, NULL, fmt, detail);
    rk_srv_request_fail(req, &e);
}

/* Starts `req` on sequence q: reuses what it can of q's KV, sets up sampling and stop strings.
 * Returns 0, or -1 after failing the request. */
static int start_request(rk_sched *s, rk_seq *q, rk_srv_request *req) {
    /* another key's tokens are never reused (their timing would tell what they were) */
    size_t keep = q->key_index != req->key_index ? 0 : common_prefix(q->history, q->n_history, req->prompt, req->n_prompt);
    const rk_token *feed = req->prompt;
    size_t n_feed = req->n_prompt;
    if (q->session && q->n_history > 0 && 2 * keep < q->n_history && req->n_prompt_cont > 0) {
        /* the prompt shares less than half of the session: it is a continuation (a client that
         * sends only its new messages), appended after the session's tokens */
        keep = q->n_history;
        feed = req->prompt_cont;
        n_feed = req->n_prompt_cont;
    } else {
        if (keep == req->n_prompt) keep--; /* evaluate at least the last token for its logits */
        keep = seq_truncate(q, keep);
        feed += keep;
        n_feed -= keep;
    }
    if (q->n_history + n_feed > (size_t)rk_context_n_ctx(q->ctx)) {
        fail_request(req, 400, "invalid_request_error", "%s",
                     "the session's tokens and this prompt do not fit the context");
        return -1;
    }
    rk_sampler_params sp = req->sampling;
    rk_error err;
    if (rk_sampler_create(&sp, rk_model_n_vocab(s->model), &q->sampler, &err) != RK_OK ||
        rk_stop_text_create((const char *const *)req->stops, req->n_stops, &q->stop, &err) != RK_OK) {
        seq_end_request(q);
        fail_request(req, 500, "server_error", "%s", err.msg);
        return -1;
    }
    for (size_t i = 0; i < q->n_history; i++) rk_sampler_accept(q->sampler, q->history[i]);
    rk_srv_request_retain(req);
    q->req = req;
    q->feed = feed;
    q->n_feed = n_feed;
    q->n_fed = 0;
    q->key_index = req->key_index;
    q->ended_by_eog = 0;
    pthread_mutex_lock(&req->mu);
    req->started = 1;
    req->n_cached = (int64_t)keep;
    pthread_mutex_unlock(&req->mu);
    rk_metrics_add(s->metrics, RK_M_PREFIX_TOKENS_REUSED, keep);
    rk_metrics_add(s->metrics, RK_M_PROMPT_TOKENS, req->n_prompt);
    s->running[s->n_running++] = q;
    return 0;
}

static void queue_remove(rk_sched *s, int i) {
    memmove(&s->queue[i], &s->queue[i + 1], (size_t)(s->n_queue - i - 1) * sizeof *s->queue);
    s->n_queue--;
}

/* Admits waiting requests in order while sequences are free; a request on a busy session waits
 * without holding back the ones behind it. */
static void admit(rk_sched *s) {
    for (int i = 0; i < s->n_queue && s->n_running < s->cfg.parallel;) {
        rk_srv_request *req = s->queue[i];
        rk_seq *q = NULL;
        if (req->cancelled) {
            queue_remove(s, i);
            rk_metrics_add(s->metrics, RK_M_REQUESTS_CANCELLED, 1);
            if (req->session[0]) {
                rk_session_t *ses = rk_sched_find_session(s, req->key_index, req->session);
                if (ses) ses->queued--;
            }
            rk_srv_request_release(req);
            continue;
        }
        if (req->session[0]) {
            rk_session_t *ses = rk_sched_find_session(s, req->key_index, req->session);
            if (!ses) { /* deleted while waiting */
                queue_remove(s, i);
                fail_request(req, 404, "not_found_error", "session '%s' was deleted", req->session);
                rk_srv_request_release(req);
                continue;
            }
            if (ses->seq.req) { i++; continue; } /* busy: wait */
            if (ses->failed) {
                queue_remove(s, i);
                ses->queued--;
                fail_request(req, 500, "server_error", "%s", ses->failure);
                rk_srv_request_release(req);
                continue;
            }
            q = &ses->seq;
        } else {
            size_t shared;
            q = pick_slot(s, req, &shared);
            if (!q) { i++; continue; }
        }
        queue_remove(s, i);
        if (start_request(s, q, req) != 0 && q->session) q->session->queued--;
        rk_srv_request_release(req); /* the queue's reference; the sequence took its own */
    }
}

/* ---- one step ---- */

/* The step's items: prompt chunks (shortest remaining first, within a budget of one chunk's
 * tokens; a chunk's size never depends on the others) and every decode token. */
static int build_step(rk_sched *s) {
    int n = 0;
    for (int i = 0; i < s->n_running; i++) {
        rk_seq *q = s->running[i];
        q->step_n = 0;
        if (q->decoding) {
            q->step_n = 1;
            s->items[n] = (rk_batch_item){q->ctx, &q->next, 1, RK_OK, {0}};
            s->item_seq[n++] = q;
        }
    }
    int64_t budget = s->cfg.prefill_chunk;
    for (;;) {
        rk_seq *best = NULL;
        for (int i = 0; i < s->n_running; i++) {
            rk_seq *q = s->running[i];
            if (q->decoding || q->step_n || q->n_fed >= q->n_feed) continue;
            if (!best || q->n_feed - q->n_fed < best->n_feed - best->n_fed) best = q;
        }
        if (!best) break;
        size_t chunk = best->n_feed - best->n_fed;
        if (chunk > (size_t)s->cfg.prefill_chunk) chunk = (size_t)s->cfg.prefill_chunk;
        if ((int64_t)chunk > budget && budget < s->cfg.prefill_chunk) break; /* next step */
        budget -= (int64_t)chunk;
        best->step_n = chunk;
        s->items[n] = (rk_batch_item){best->ctx, best->feed + best->n_fed, chunk, RK_OK, {0}};
        s->item_seq[n++] = best;
    }
    return n;
}

/* log p of the token and the top alternatives, from raw logits (temperature 1). */
static void fill_logprob(const float *logits, int32_t V, rk_token t, int n_top, rk_srv_logprob *lp) {
    float max = logits[0];
    for (int32_t i = 1; i < V; i++)
        if (logits[i] > max) max = logits[i];
    double sum = 0.0;
    for (int32_t i = 0; i < V; i++) sum += exp((double)(logits[i] - max));
    const float lse = max + (float)log(sum);
    lp->token = t;
    lp->logprob = logits[t] - lse;
    lp->n_top = 0;
    for (int k = 0; k < n_top; k++) { /* n_top <= 20: selection by repeated scans */
        rk_token best = -1;
        for (int32_t i = 0; i < V; i++) {
            int taken = 0;
            for (int j = 0; j < k && !taken; j++) taken = lp->top_token[j] == i;
            if (!taken && (best < 0 || logits[i] > logits[best])) best = i;
        }
        lp->top_token[k] = best;
        lp->top_logprob[k] = logits[best] - lse;
        lp->n_top++;
    }
}

void rk_sched_end_sequence(rk_sched *s, rk_seq *q, const char *finish_reason, const rk_api_error *error) {
    rk_srv_request *req = q->req;
    if (error) {
        rk_srv_request_fail(req, error);
    } else {
        const char *tail;
        size_t tail_len;
        rk_stop_text_flush(q->stop, &tail, &tail_len);
        if (tail_len) rk_srv_request_emit(req, tail, tail_len, NULL, 0);
        rk_srv_request_finish(req, finish_reason);
    }
    rk_metrics_observe(s->metrics, RK_M_E2E, rk_now_seconds() - req->t_arrival);
    if (q->session) q->session->queued--;
    q->last_used = rk_now_seconds();
    seq_end_request(q);
    for (int i = 0; i < s->n_running; i++)
        if (s->running[i] == q) {
            s->running[i] = s->running[--s->n_running];
            break;
        }
}

/* Samples the next token of a sequence whose logits are ready, and sends its text. */
static void next_token(rk_sched *s, rk_seq *q) {
    rk_srv_request *req = q->req;
    const float *logits = rk_context_logits(q->ctx, -1);
    const rk_token t = rk_sampler_sample(q->sampler, logits);
    rk_sampler_accept(q->sampler, t);
    double now = rk_now_seconds();
    if (req->n_generated == 0) rk_metrics_observe(s->metrics, RK_M_TTFT, now - req->t_arrival);
    else rk_metrics_observe(s->metrics, RK_M_ITL, now - req->t_last_token);
    if (rk_model_token_is_eog(s->model, t)) {
        q->ended_by_eog = 1;
        q->eog_token = t;
        rk_sched_end_sequence(s, q, "stop", NULL);
        return;
    }
    rk_metrics_add(s->metrics, RK_M_GENERATION_TOKENS, 1);
    char piece[256];
    int32_t len = rk_token_to_piece(s->model, t, 0, piece, sizeof piece);
    const char *p = piece;
    if (len < 0) len = 0;
    if (len > (int32_t)sizeof piece) len = sizeof piece;
    if (q->prev == rk_model_token_bos(s->model) && rk_model_strips_leading_space(s->model) && len > 0 && *p == ' ') {
        p++;
        len--;
    }
    q->prev = t;
    const char *emit;
    size_t emit_len;
    int stopped = rk_stop_text_push(q->stop, p, (size_t)len, &emit, &emit_len);
    rk_srv_logprob lp;
    if (req->logprobs) fill_logprob(logits, rk_model_n_vocab(s->model), t, req->top_logprobs, &lp);
    if (stopped < 0 || rk_srv_request_emit(req, emit, emit_len, req->logprobs ? &lp : NULL, 1) != RK_OK) {
        rk_api_error e;
        rk_api_error_set(&e, 500, "server_error", NULL, NULL, "out of memory for the generated text");
        rk_sched_end_sequence(s, q, NULL, &e);
        return;
    }
    if (stopped) rk_sched_end_sequence(s, q, "stop", NULL);
    else if (req->n_generated >= req->max_tokens) rk_sched_end_sequence(s, q, "length", NULL);
    else if (rk_context_n_past(q->ctx) >= rk_context_n_ctx(q->ctx)) rk_sched_end_sequence(s, q, "length", NULL);
    else {
        q->next = t;
        q->decoding = 1;
    }
}

/* After the step: record what each sequence evaluated; sample those with fresh logits. */
static void finish_step(rk_sched *s, int n_items) {
    for (int i = 0; i < n_items; i++) {
        rk_seq *q = s->item_seq[i];
        const rk_batch_item *it = &s->items[i];
        if (it->status != RK_OK) {
            seq_truncate(q, (size_t)rk_context_n_past(q->ctx)); /* the engine undid the item */
            if (q->session && it->status == RK_ERR_IO) { /* its pages cannot be trusted any more */
                q->session->failed = 1;
                snprintf(q->session->failure, sizeof q->session->failure,
                         "session %s failed and can only be deleted: %.180s", q->session->id, it->err.msg);
            } else if (!q->session && it->status == RK_ERR_IO) {
                seq_truncate(q, 0); /* a slot starts over */
            }
            rk_api_error e;
            int status = it->status == RK_ERR_CONTEXT_FULL ? 400 : 500;
            rk_api_error_set(&e, status, status == 400 ? "invalid_request_error" : "server_error", NULL, NULL,
                             "%s", it->err.msg);
            rk_sched_end_sequence(s, q, NULL, &e);
            continue;
        }
        if (history_push(q, it->tokens, it->n) != 0) {
            rk_api_error e;
            rk_api_error_set(&e, 500, "server_error", NULL, NULL, "out of memory for the token history");
            seq_truncate(q, 0);
            rk_sched_end_sequence(s, q, NULL, &e);
            continue;
        }
        if (!q->decoding) {
            q->n_fed += it->n;
            rk_metrics_add(s->metrics, RK_M_PROMPT_TOKENS_PROCESSED, it->n);
            if (q->n_fed < q->n_feed) continue;
            q->prev = q->history[q->n_history - 1];
        }
        if (q->req->cancelled) continue; /* dropped below */
        next_token(s, q);
    }
}

/* Drops running requests whose clients went away. */
static void drop_cancelled(rk_sched *s) {
    for (int i = 0; i < s->n_running;) {
        rk_seq *q = s->running[i];
        if (!q->req->cancelled) { i++; continue; }
        rk_metrics_add(s->metrics, RK_M_REQUESTS_CANCELLED, 1);
        rk_api_error e;
        rk_api_error_set(&e, 499, "invalid_request_error", NULL, NULL, "the client closed the connection");
        rk_sched_end_sequence(s, q, NULL, &e); /* swaps the last running sequence into i */
    }
}

static void publish_gauges(rk_sched *s) {
    double now = rk_now_seconds();
    rk_metrics_set(s->metrics, RK_M_REQUESTS_RUNNING, s->n_running);
    rk_metrics_set(s->metrics, RK_M_REQUESTS_WAITING, s->n_queue);
    rk_metrics_set(s->metrics, RK_M_SESSIONS_ACTIVE, s->n_sessions);
    if (now - s->last_gauges < 1.0) return;
    s->last_gauges = now;
    double hot = 0, warm = 0, disk = 0;
    const char *codec = NULL;
    for (int i = 0; i < s->cfg.parallel + s->n_sessions; i++) {
        const rk_seq *q = i < s->cfg.parallel ? &s->slots[i] : &s->sessions[i - s->cfg.parallel]->seq;
        rk_kv_tier_stats t;
        rk_context_kv_tiers(q->ctx, &t);
        codec = rk_context_kv_codec_k(q->ctx);
        if (t.enabled) {
            hot += (double)t.hot_bytes;
            warm += (double)t.warm_bytes;
            disk += (double)t.disk_bytes;
        } else {
            hot += (double)rk_context_kv_bytes_in_use(q->ctx);
        }
    }
    rk_metric_kv_bytes rows[3] = {{"hot", codec, hot}, {"warm", codec, warm}, {"disk", codec, disk}};
    rk_metrics_set_kv_bytes(s->metrics, rows, codec ? 3 : 0);
}

static void *scheduler_main(void *arg) {
    rk_sched *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        double now = rk_now_seconds();
        rk_sched_reap_sessions(s, now);
        drop_cancelled(s);
        admit(s); /* while draining too: queued requests were accepted and are served */
        publish_gauges(s);
        pthread_cond_broadcast(&s->idle);
        if (s->stopping && s->n_running == 0 && s->n_queue == 0) break;
        int n = build_step(s);
        if (n == 0 && rk_sched_autosave(s, now)) continue; /* idle: one changed session saved */
        if (n == 0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1; /* wake now and then for session expiry */
            pthread_cond_timedwait(&s->wake, &s->mu, &ts);
            continue;
        }
        pthread_mutex_unlock(&s->mu);
        rk_error err;
        rk_engine_eval(s->engine, s->items, (size_t)n, &err); /* per-item statuses */
        pthread_mutex_lock(&s->mu);
        finish_step(s, n);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- public ---- */

rk_status rk_sched_create(const rk_model *model, const rk_sched_config *cfg, rk_metrics *metrics,
                          rk_sched **out, rk_error *err) {
    *out = NULL;
    if (cfg->parallel < 1 || cfg->queue_max < 0 || cfg->prefill_chunk < 1 || cfg->max_sessions < 0)
        return rk_error_set(err, RK_ERR_INVALID_ARG, "scheduler: bad configuration");
    if (sodium_init() < 0) return rk_error_set(err, RK_ERR_INTERNAL, "scheduler: libsodium failed to initialise");
    rk_sched *s = calloc(1, sizeof *s);
    if (!s) return rk_error_set(err, RK_ERR_NO_MEMORY, "scheduler: out of memory");
    s->model = model;
    s->cfg = *cfg;
    s->metrics = metrics;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->wake, NULL);
    pthread_cond_init(&s->idle, NULL);
    s->slots = calloc((size_t)cfg->parallel, sizeof *s->slots);
    s->running = calloc((size_t)cfg->parallel, sizeof *s->running);
    s->items = calloc((size_t)cfg->parallel, sizeof *s->items);
    s->item_seq = calloc((size_t)cfg->parallel, sizeof *s->item_seq);
    s->queue = calloc((size_t)cfg->queue_max + 1, sizeof *s->queue);
    s->sessions = calloc((size_t)cfg->max_sessions + 1, sizeof *s->sessions);
    rk_status st = RK_OK;
    if (!s->slots || !s->running || !s->items || !s->item_seq || !s->queue || !s->sessions)
        st = rk_error_set(err, RK_ERR_NO_MEMORY, "scheduler: out of memory");
    if (!st) st = rk_engine_create(model, cfg->ctx.n_threads, &s->engine, err);
    for (int i = 0; !st && i < cfg->parallel; i++) {
        char id[32];
        snprintf(id, sizeof id, "slot-%d", i);
        st = rk_seq_init(s, &s->slots[i], id, NULL, err);
    }
    if (!st && pthread_create(&s->thread, NULL, scheduler_main, s) != 0)
        st = rk_error_set(err, RK_ERR_INTERNAL, "scheduler: cannot start its thread");
    if (st) {
        rk_sched_free(s);
        return st;
    }
    s->thread_started = 1;
    *out = s;
    return RK_OK;
}

void rk_sched_free(rk_sched *s) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    s->draining = 1;
    for (int i = 0; i < s->n_running; i++) rk_srv_request_cancel(s->running[i]->req);
    for (int i = 0; i < s->n_queue; i++) rk_srv_request_cancel(s->queue[i]);
    pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->mu);
    if (s->thread_started) pthread_join(s->thread, NULL);
    for (int i = 0; s->slots && i < s->cfg.parallel; i++) rk_seq_free(&s->slots[i]);
    if (s->sessions) rk_sched_free_sessions(s);
    rk_engine_free(s->engine);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->wake);
    pthread_cond_destroy(&s->idle);
    free(s->slots);
    free(s->running);
    free(s->items);
    free(s->item_seq);
    free(s->queue);
    free(s->sessions);
    free(s);
}

int rk_sched_submit(rk_sched *s, rk_srv_request *req, rk_api_error *err) {
    int status = 0;
    pthread_mutex_lock(&s->mu);
    if (s->draining) {
        status = rk_api_error_set(err, 503, "server_error", NULL, NULL, "the server is shutting down");
    } else if (s->n_queue >= s->cfg.queue_max) {
        status = rk_api_error_set(err, 429, "rate_limit_error", NULL, NULL,
                                  "%d requests are already waiting; retry shortly", s->n_queue);
    } else if (req->session[0]) {
        rk_session_t *ses = rk_sched_find_session(s, req->key_index, req->session);
        if (!ses) status = rk_api_error_set(err, 404, "not_found_error", "session", NULL, "no session '%s'", req->session);
        else ses->queued++;
    }
    if (status == 0) {
        rk_srv_request_retain(req);
        s->queue[s->n_queue++] = req;
        pthread_cond_broadcast(&s->wake);
    }
    pthread_mutex_unlock(&s->mu);
    return status;
}

void rk_sched_drain(rk_sched *s, double deadline) {
    double until = rk_now_seconds() + deadline;
    pthread_mutex_lock(&s->mu);
    s->draining = 1;
    pthread_cond_broadcast(&s->wake);
    while ((s->n_running > 0 || s->n_queue > 0) && rk_now_seconds() < until) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
        pthread_cond_timedwait(&s->idle, &s->mu, &ts);
    }
    for (int i = 0; i < s->n_running; i++) rk_srv_request_cancel(s->running[i]->req);
    for (int i = 0; i < s->n_queue; i++) rk_srv_request_cancel(s->queue[i]);
    pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->mu);
}

int64_t rk_sched_n_ctx(const rk_sched *s) { return rk_context_n_ctx(s->slots[0].ctx); }
