/*
 * scheduler.h — continuous batching: the one thread that owns the engine.
 *
 * HTTP threads submit requests (request.h) and manage sessions through this interface; the
 * scheduler thread runs iteration-level steps. Each step takes every running sequence's next
 * work — one decode token, or the next chunk of its prompt — and evaluates all of them in one
 * rk_engine_eval, so the weights are read once per step for every stream. Prompt chunks have a
 * fixed size (prefill_chunk) and a per-step token budget, shortest remaining prompt first, so a
 * long prompt never stalls the running streams for more than one chunk. Because the engine's
 * results do not depend on the batch, a greedy request gives the same tokens alone or beside
 * others.
 *
 * Sequences: `parallel` slots for requests without a session (each keeps the KV of its last
 * request and reuses the longest common prefix with a new request of the same API key — never
 * across keys), plus one per session. A session's sequence keeps its KV between requests; a
 * request on it reuses the part of the session's tokens its prompt starts with (the rest of the
 * session is dropped, as for an edited conversation), or, when the prompt shares less than half
 * of the session's tokens (a client that sends only its new messages), appends its continuation
 * prompt after them.
 */
#ifndef RK_SERVER_SCHEDULER_H
#define RK_SERVER_SCHEDULER_H

#include "ringkv.h"
#include "server/api-keys.h"
#include "server/metrics.h"
#include "server/request.h"

typedef struct rk_sched rk_sched;

typedef struct rk_sched_config {
    int parallel;              /* sequences running at once */
    int queue_max;             /* requests waiting at most; more get 429 */
    int64_t prefill_chunk;     /* prompt tokens per sequence per step (the contexts' n_ubatch) */
    int max_sessions;          /* sessions alive at most; more get 429 */
    double session_ttl;        /* default idle expiry of a session, seconds */
    rk_context_params ctx;     /* n_ctx, threads, KV codecs and tiers of every sequence */
    const char *session_dir;   /* NULL: sessions live in memory only; else kept there across
                                * restarts (session-file.h) */
    const uint8_t *master;     /* the session dir's master key (with session_dir) */
    const rk_api_keys *keys;   /* owners by name in session files; NULL: no keys */
    double session_save_idle;  /* with session_dir: a changed session is saved once it has been
                                * idle this many seconds and nothing is running (0: only at
                                * shutdown) */
} rk_sched_config;

/* A session as GET /v1/sessions/ID reports it. */
typedef struct rk_session_info {
    char id[RK_SRV_SESSION_ID_LEN + 1];
    int64_t tokens;            /* tokens in its KV cache */
    size_t kv_bytes;           /* KV bytes held in RAM (hot + warm, whole pages) */
    rk_kv_tier_stats tiers;    /* pages and bytes per tier */
    const char *codec_k, *codec_v;
    double created, last_used, ttl; /* seconds (epoch-free monotonic clock), ttl: idle expiry */
    int busy;                  /* a request is running or waiting on it */
} rk_session_info;

/* What a delete or an expiry destroyed. */
typedef struct rk_shred_receipt {
    char id[RK_SRV_SESSION_ID_LEN + 1];
    int64_t tokens;
    int64_t pages;             /* sealed KV pages (all tiers) */
    uint64_t bytes;            /* KV bytes freed in RAM plus page-file bytes unlinked */
    int key_shredded;          /* the session's key was wiped */
} rk_shred_receipt;

/* Creates the engine, the slot contexts and starts the scheduler thread. `model` and `metrics`
 * are borrowed and must outlive the scheduler. */
rk_status rk_sched_create(const rk_model *model, const rk_sched_config *cfg, rk_metrics *metrics,
                          rk_sched **out, rk_error *err);
/* Stops the thread (in-flight requests fail with 503) and frees everything. */
void rk_sched_free(rk_sched *s);

/* Queues a request (the scheduler takes its own reference). Returns 0, or the HTTP status with
 * *err filled: 429 (queue full; a retry can succeed), 503 (shutting down), 404 (the session does
 * not exist or belongs to another key), 400 (the prompt does not fit the context). */
int rk_sched_submit(rk_sched *s, rk_srv_request *req, rk_api_error *err);

/* Stops admitting requests (new ones get 503), waits up to `deadline` seconds for the running
 * and queued ones to finish, then cancels what is left. */
void rk_sched_drain(rk_sched *s, double deadline);

/* Sessions: each belongs to the key that made it; any other key gets 404. ttl <= 0: default. */
int rk_sched_session_create(rk_sched *s, int key_index, double ttl, rk_session_info *out, rk_api_error *err);
int rk_sched_session_get(rk_sched *s, int key_index, const char *id, rk_session_info *out, rk_api_error *err);
/* Destroys a session now (a request running on it fails): its pages are freed and its files
 * unlinked. Returns 0 with the receipt, or 404. */
int rk_sched_session_delete(rk_sched *s, int key_index, const char *id, rk_shred_receipt *out, rk_api_error *err);
/* Up to max sessions of the key; returns how many were written. */
size_t rk_sched_session_list(rk_sched *s, int key_index, rk_session_info *out, size_t max);

/* With a session dir: writes every session to it (call after rk_sched_drain). Returns how
 * many were saved; failures are reported on stderr and leave the previous file. */
int rk_sched_save_sessions(rk_sched *s);
/* With a session dir: restores the sessions saved there (at start). Returns how many; files
 * that cannot be restored are reported on stderr and left alone. */
int rk_sched_restore_sessions(rk_sched *s);

/* Context size of every sequence. */
int64_t rk_sched_n_ctx(const rk_sched *s);

#endif
