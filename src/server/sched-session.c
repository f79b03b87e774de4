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
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/clock.h"
#include "core/error.h"
#include "server/sched-impl.h"
#include "server/session-file.h"

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
    if (rk_seq_init(s, &ses->seq, ses->id, NULL, &e) != RK_OK) {
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

/* Destroys one session: its request fails, its pages are freed and its page files unlinked;
 * remove_file: also its saved file (a delete or an expiry, not a shutdown). */
static void destroy_session(rk_sched *s, int i, int remove_file) {
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
    if (s->cfg.session_dir && remove_file) rk_session_file_remove(s->cfg.session_dir, ses->id);
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
            destroy_session(s, i, 1); /* moves the last session into i */
        else
            i++;
    }
}

void rk_sched_free_sessions(rk_sched *s) {
    while (s->n_sessions > 0) destroy_session(s, s->n_sessions - 1, 0); /* saved files stay */
}

/* ---- keeping sessions across restarts ---- */

/* Writes one session's file (the caller holds the lock; nothing is running on it). */
static int save_session(rk_sched *s, rk_session_t *ses) {
    rk_session_meta meta = {{0}, ses->ttl};
    snprintf(meta.owner, sizeof meta.owner, "%s",
             ses->key_index >= 0 && s->cfg.keys ? rk_api_keys_name(s->cfg.keys, ses->key_index) : "-");
    rk_error e;
    double t0 = rk_now_seconds();
    if (rk_session_file_save(s->cfg.session_dir, ses->id, ses->seq.seal_key, s->cfg.master, &meta, ses->seq.history,
                             ses->seq.n_history, ses->seq.ctx, &e) != RK_OK) {
        fprintf(stderr, "ringkv: session %s not saved: %s\n", ses->id, e.msg);
        return 0;
    }
    ses->saved_used = ses->seq.last_used;
    fprintf(stderr, "ringkv: session %s saved (%zu tokens, %.2f s)\n", ses->id, ses->seq.n_history,
            rk_now_seconds() - t0);
    return 1;
}

static int can_save(const rk_session_t *ses) { return !ses->failed && !ses->seq.req; }

int rk_sched_save_sessions(rk_sched *s) {
    if (!s->cfg.session_dir) return 0;
    int saved = 0;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->n_sessions; i++)
        if (can_save(s->sessions[i])) saved += save_session(s, s->sessions[i]);
    pthread_mutex_unlock(&s->mu);
    return saved;
}

int rk_sched_autosave(rk_sched *s, double now) {
    if (!s->cfg.session_dir || s->cfg.session_save_idle <= 0) return 0;
    for (int i = 0; i < s->n_sessions; i++) {
        rk_session_t *ses = s->sessions[i];
        if (can_save(ses) && ses->queued == 0 && ses->seq.last_used != ses->saved_used &&
            now - ses->seq.last_used >= s->cfg.session_save_idle) {
            if (!save_session(s, ses)) ses->saved_used = ses->seq.last_used; /* reported; not retried until changed */
            return 1;
        }
    }
    return 0;
}

/* The key index named `owner` ("-": none), or -2 when the key file no longer has it. */
static int owner_index(const rk_sched *s, const char *owner) {
    if (!s->cfg.keys) return strcmp(owner, "-") == 0 ? -1 : -2;
    for (size_t i = 0; i < rk_api_keys_count(s->cfg.keys); i++)
        if (strcmp(rk_api_keys_name(s->cfg.keys, (int)i), owner) == 0) return (int)i;
    return -2;
}

/* Restores one file into a new session; returns 0 or -1 (reported). */
static int restore_one(rk_sched *s, const char *path) {
    rk_session_t *ses = calloc(1, sizeof *ses);
    rk_session_reader *r = NULL;
    rk_seal_key *key = NULL;
    rk_session_meta meta;
    rk_error e;
    double t0 = rk_now_seconds();
    rk_status st = ses ? rk_session_file_open(path, s->cfg.master, &r, ses->id, &key, &e)
                       : rk_error_set(&e, RK_ERR_NO_MEMORY, "out of memory");
    if (!st) st = rk_seq_init(s, &ses->seq, ses->id, key, &e); /* takes the key */
    if (!st) st = rk_session_file_read(r, &meta, &ses->seq.history, &ses->seq.n_history, ses->seq.ctx, &e);
    rk_session_file_close(r);
    int owner = st ? -2 : owner_index(s, meta.owner);
    if (!st && owner == -2) st = rk_error_set(&e, RK_ERR_INVALID_ARG, "its owner '%s' is not in the key file", meta.owner);
    if (!st && s->n_sessions >= s->cfg.max_sessions) st = rk_error_set(&e, RK_ERR_INVALID_ARG, "--max-sessions reached");
    if (st) {
        fprintf(stderr, "ringkv: session file %s not restored: %s\n", path, e.msg);
        if (ses) {
            if (ses->seq.ctx || ses->seq.seal_key) rk_seq_free(&ses->seq);
            else rk_seal_key_shred(key);
            free(ses);
        }
        return -1;
    }
    ses->seq.cap = ses->seq.n_history;
    ses->seq.key_index = ses->key_index = owner;
    ses->seq.session = ses;
    ses->created = ses->seq.last_used = rk_now_seconds();
    ses->saved_used = ses->seq.last_used; /* its file is current */
    ses->ttl = meta.ttl > 0 ? meta.ttl : s->cfg.session_ttl;
    ses->refs = 1;
    s->sessions[s->n_sessions++] = ses;
    fprintf(stderr, "ringkv: session %s restored (%zu tokens, %.2f s)\n", ses->id, ses->seq.n_history,
            rk_now_seconds() - t0);
    return 0;
}

int rk_sched_restore_sessions(rk_sched *s) {
    if (!s->cfg.session_dir) return 0;
    DIR *d = opendir(s->cfg.session_dir);
    if (!d) return 0;
    int restored = 0;
    pthread_mutex_lock(&s->mu);
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        size_t n = strlen(de->d_name);
        if (n != RK_SRV_SESSION_ID_LEN + 8 || strcmp(de->d_name + RK_SRV_SESSION_ID_LEN, ".session") != 0) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", s->cfg.session_dir, de->d_name);
        if (restore_one(s, path) == 0) restored++;
    }
    pthread_mutex_unlock(&s->mu);
    closedir(d);
    return restored;
}
