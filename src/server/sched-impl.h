/*
 * sched-impl.h — the scheduler's internal state, shared by scheduler.c (the step loop) and
 * sched-session.c (the session table). Everything below is guarded by rk_sched.mu, except what
 * the scheduler thread alone touches during rk_engine_eval (the contexts of the step).
 */
#ifndef RK_SERVER_SCHED_IMPL_H
#define RK_SERVER_SCHED_IMPL_H

#include <pthread.h>

#include "server/scheduler.h"
#include "server/seal.h"
#include "server/stop-text.h"

typedef struct rk_session rk_session_t;

/* A sequence: a context and the tokens its KV cache holds. */
typedef struct rk_seq {
    rk_context *ctx;
    rk_seal_key *seal_key;    /* seals the pages its context writes to disk */
    rk_token *history;        /* (n_history) tokens in the KV cache, in order (n_history == n_past) */
    size_t n_history, cap;
    int key_index;            /* whose tokens these are (-2: nobody's) */
    rk_session_t *session;    /* the session it belongs to, or NULL for a slot */
    double last_used;
    /* the running request, if any */
    rk_srv_request *req;
    const rk_token *feed;     /* the prompt tokens still to evaluate: feed[n_fed..n_feed) */
    size_t n_feed, n_fed;
    size_t step_n;            /* tokens this step evaluates */
    rk_token next;            /* decode: the token to evaluate next */
    int decoding;
    rk_token prev;            /* the token before the next piece (for SentencePiece's space) */
    rk_sampler *sampler;
    rk_stop_text *stop;
    int ended_by_eog;         /* the last request on it stopped at an end-of-generation token */
    rk_token eog_token;
} rk_seq;

struct rk_session {
    char id[RK_SRV_SESSION_ID_LEN + 1];
    int key_index;
    rk_seq seq;
    double created, ttl;
    int queued;               /* requests waiting or running on it */
    int failed;               /* a disk-tier error broke its KV: requests on it fail */
    char failure[256];
    int delete_requested;
    int deleted;              /* destroyed; the receipt is in `receipt` */
    rk_shred_receipt receipt;
    int refs;                 /* the table, plus HTTP threads waiting for its deletion */
    double saved_used;        /* seq.last_used when its file was last written (or read) */
};

struct rk_sched {
    const rk_model *model;
    rk_sched_config cfg;
    rk_metrics *metrics;
    rk_engine *engine;
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    pthread_cond_t wake;      /* work arrived (requests, deletions, shutdown) */
    pthread_cond_t idle;      /* a step ended (deletions done, drains) */
    int stopping, draining;
    /* slots for requests without a session */
    rk_seq *slots;            /* (cfg.parallel) */
    /* waiting requests, FIFO */
    rk_srv_request **queue;   /* (cfg.queue_max) */
    int n_queue;
    /* running sequences (slots or sessions' sequences) */
    rk_seq **running;         /* (cfg.parallel) */
    int n_running;
    /* sessions */
    rk_session_t **sessions;  /* (cfg.max_sessions) */
    int n_sessions;
    /* the step's items */
    rk_batch_item *items;     /* (cfg.parallel) */
    rk_seq **item_seq;
    double last_gauges;
};

/* sched-session.c */
rk_session_t *rk_sched_find_session(rk_sched *s, int key_index, const char *id);
/* With --session-dir: saves the first session changed and idle for cfg.session_save_idle seconds
 * (the caller holds the lock and runs nothing). Returns 1 when it wrote (or tried) one. */
int rk_sched_autosave(rk_sched *s, double now);
/* Destroys deleted and expired sessions that no step is using (called by the scheduler thread
 * between steps, with mu held). */
void rk_sched_reap_sessions(rk_sched *s, double now);
/* Frees every session (at shutdown, mu held, no step running). */
void rk_sched_free_sessions(rk_sched *s);

/* scheduler.c: a sequence's key (bound to `id`; `key` NULL: a new one, else taken over) and
 * context with the scheduler's settings; frees (the context, then the key is shredded). */
rk_status rk_seq_init(rk_sched *s, rk_seq *q, const char *id, rk_seal_key *key, rk_error *err);
void rk_seq_free(rk_seq *q);
/* Ends the sequence's request: finished with finish_reason, or failed with *error. */
void rk_sched_end_sequence(rk_sched *s, rk_seq *q, const char *finish_reason, const rk_api_error *error);

#endif
