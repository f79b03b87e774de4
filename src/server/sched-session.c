/*
 * sched-session.c — the session table: long-lived sequences that keep a document's KV between
 * requests (see scheduler.h).
 *
 * Ids are 128 random bits from libsodium, printed as 32 hex characters, and are looked up
 * together with the API key that made them (a session of another key is "not found", and ids
 * are compared in constant time). HTTP threads create sessions directly (a context is only
 * memory until a step uses it); deletion and expiry are done by the scheduler thread between
 * steps, so a context is never freed under a running step: DELETE marks the session and waits
 * for the scheduler's receipt.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/clock.h"
#include "server/sched-impl.h"

rk_session_t *rk_sched_find_session(rk_sched *s, int key_index, const char *id) {
    if (!id || strlen(id) != RK_SRV_SESSION_ID_LEN) return NULL;
    rk_session_t *found = NULL;
    for (int i = 0; i < s->n_sessions; i++) {
        rk_session_t *ses = s->sessions[i];
        int same = sodium_memcmp(ses->id, id, RK_SRV_SESSION_ID_LEN) == 0;
        if (same && ses->key_index == key_index && !ses->delete_requested) found = ses;
    }
    return found;
}

static void session_release(rk_session_t *ses) {
    if (--ses->refs > 0) return;
    rk_seq_free(&ses->seq);
    free(ses);
}

static void fill_info(const rk_session_t *ses, rk_session_info *out) {
    memset(out, 0, sizeof *out);
    memcpy(out->id, ses->id, sizeof out->id);
    out->tokens = rk_context_n_past(ses->seq.ctx);
    out->kv_bytes = rk_context_kv_bytes_in_use(ses->seq.ctx);
    rk_context_kv_tiers(ses->seq.ctx, &out->tiers);
    out->codec_k = rk_context_kv_codec_k(ses->seq.ctx);
    out->codec_v = rk_context_kv_codec_v(ses->seq.ctx);
    out->created = ses->created;
    out->last_used = ses->seq.last_used;
    out->ttl = ses->ttl;
    out->busy = ses->queued > 0;
}

int rk_sched_session_create(rk_sched *s, int key_index, double ttl, rk_session_info *out, rk_api_error *err) {
    rk_session_t *ses = calloc(1, sizeof *ses);
    if (!ses) return rk_api_error_set(err, 500, "server_error", NULL, NULL, "out of memory for a session");
    unsigned char raw[RK_SRV_SESSION_ID_LEN / 2];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(ses->id, sizeof ses->id, raw, sizeof raw);
    rk_error e;
    if (rk_seq_init(s, &ses->seq, ses->id, &e) != RK_OK) {
        rk_seq_free(&ses->seq);
        free(ses);
        return rk_api_error_set(err, 503, "server_error", NULL, NULL, "cannot create a session: %s", e.msg);
    }
    ses->key_index = key_index;
    ses->seq.session = ses;
    ses->created = ses->seq.last_used = rk_now_seconds();
    ses->ttl = ttl > 0 ? ttl : s->cfg.session_ttl;
    ses->refs = 1;
    int status = 0;
    pthread_mutex_lock(&s->mu);
    if (s->draining) {
        status = rk_api_error_set(err, 503, "server_error", NULL, NULL, "the server is shutting down");
    } else if (s->n_sessions >= s->cfg.max_sessions) {
        status = rk_api_error_set(err, 429, "rate_limit_error", NULL, NULL,
                                  "%d sessions are open, the most this server keeps; delete one or wait for one to expire",
                                  s->n_sessions);
    } else {
        s->sessions[s->n_sessions++] = ses;
        rk_metrics_add(s->metrics, RK_M_SESSIONS_CREATED, 1);
        fill_info(ses, out);
    }
    pthread_mutex_unlock(&s->mu);
    if (status) session_release(ses);
    return status;
}

int rk_sched_session_get(rk_sched *s, int key_index, const char *id, rk_session_info *out, rk_api_error *err) {
    pthread_mutex_lock(&s->mu);
    rk_session_t *ses = rk_sched_find_session(s, key_index, id);
    if (ses) fill_info(ses, out);
    pthread_mutex_unlock(&s->mu);
    return ses ? 0 : rk_api_error_set(err, 404, "not_found_error", "session", NULL, "no session '%.64s'", id);
}

size_t rk_sched_session_list(rk_sched *s, int key_index, rk_session_info *out, size_t max) {
    size_t n = 0;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->n_sessions && n < max; i++)
        if (s->sessions[i]->key_index == key_index && !s->sessions[i]->delete_requested)
            fill_info(s->sessions[i], &out[n++]);
    pthread_mutex_unlock(&s->mu);
    return n;
}

int rk_sched_session_delete(rk_sched *s, int key_index, const char *id, rk_shred_receipt *out, rk_api_error *err) {
    pthread_mutex_lock(&s->mu);
    rk_session_t *ses = rk_sched_find_session(s, key_index, id);
    if (!ses) {
        pthread_mutex_unlock(&s->mu);
        return rk_api_error_set(err, 404, "not_found_error", "session", NULL, "no session '%.64s'", id);
    }
    ses->delete_requested = 1;
    ses->refs++;
    pthread_cond_broadcast(&s->wake);
    while (!ses->deleted) pthread_cond_wait(&s->idle, &s->mu);
    *out = ses->receipt;
    session_release(ses);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* Destroys one session: its request fails, its pages are freed and its page files unlinked. */
static void destroy_session(rk_sched *s, int i) {
    rk_session_t *ses = s->sessions[i];
    rk_seq *q = &ses->seq;
    if (q->req) {
        rk_api_error e;
        rk_api_error_set(&e, 404, "not_found_error", "session", NULL, "the session was deleted");
        rk_sched_end_sequence(s, q, NULL, &e);
    }
    rk_kv_tier_stats t;
    rk_context_kv_tiers(q->ctx, &t);
    rk_shred_receipt *r = &ses->receipt;
    memcpy(r->id, ses->id, sizeof r->id);
    r->tokens = rk_context_n_past(q->ctx);
    r->pages = (r->tokens + 255) / 256;
    r->bytes = rk_context_kv_bytes_in_use(q->ctx) + t.disk_bytes;
    rk_context_free(q->ctx); /* frees the pages and closes the page files (unlinked at open) */
    q->ctx = NULL;
    rk_seal_key_shred(q->seal_key); /* any copy of a sealed page is noise from here on */
    q->seal_key = NULL;
    r->key_shredded = 1;
    ses->deleted = 1;
    s->sessions[i] = s->sessions[--s->n_sessions];
    rk_metrics_add(s->metrics, RK_M_SESSIONS_SHREDDED, 1);
    session_release(ses);
}

void rk_sched_reap_sessions(rk_sched *s, double now) {
    for (int i = 0; i < s->n_sessions;) {
        rk_session_t *ses = s->sessions[i];
        int expired = ses->queued == 0 && now - ses->seq.last_used > ses->ttl;
        if (ses->delete_requested || expired)
            destroy_session(s, i); /* moves the last session into i */
        else
            i++;
    }
}

void rk_sched_free_sessions(rk_sched *s) {
    while (s->n_sessions > 0) destroy_session(s, s->n_sessions - 1);
}
