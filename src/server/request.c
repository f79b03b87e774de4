/* request.c — see request.h. */
#include "server/request.h"

#include <stdlib.h>
#include <string.h>

#include "core/clock.h"

rk_srv_request *rk_srv_request_new(void) {
    rk_srv_request *req = calloc(1, sizeof *req);
    if (!req) return NULL;
    pthread_mutex_init(&req->mu, NULL);
    pthread_cond_init(&req->cv, NULL);
    req->refs = 1;
    req->max_tokens = 1;
    req->sampling = rk_sampler_default_params();
    return req;
}

static void request_free(rk_srv_request *req) {
    free(req->prompt);
    free(req->prompt_cont);
    for (int i = 0; i < req->n_stops; i++) free(req->stops[i]);
    free(req->text);
    free(req->lps);
    pthread_mutex_destroy(&req->mu);
    pthread_cond_destroy(&req->cv);
    free(req);
}

void rk_srv_request_retain(rk_srv_request *req) {
    pthread_mutex_lock(&req->mu);
    req->refs++;
    pthread_mutex_unlock(&req->mu);
}

void rk_srv_request_release(rk_srv_request *req) {
    if (!req) return;
    pthread_mutex_lock(&req->mu);
    int last = --req->refs == 0;
    pthread_mutex_unlock(&req->mu);
    if (last) request_free(req);
}

static int grow(void **buf, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap : 64;
    while (n < need) n *= 2;
    void *p = realloc(*buf, n * elem);
    if (!p) return -1;
    *buf = p;
    *cap = n;
    return 0;
}

rk_status rk_srv_request_emit(rk_srv_request *req, const char *text, size_t len, const rk_srv_logprob *lp,
                              int is_token) {
    rk_status s = RK_OK;
    double now = rk_now_seconds();
    pthread_mutex_lock(&req->mu);
    if (grow((void **)&req->text, &req->text_cap, req->text_len + len + 1, 1) != 0 ||
        (lp && grow((void **)&req->lps, &req->lps_cap, req->n_lps + 1, sizeof *req->lps) != 0)) {
        s = RK_ERR_NO_MEMORY;
    } else {
        memcpy(req->text + req->text_len, text, len);
        req->text_len += len;
        req->text[req->text_len] = '\0';
        if (lp) req->lps[req->n_lps++] = *lp;
        if (is_token) {
            if (req->n_generated == 0) req->t_first_token = now;
            req->t_last_token = now;
            req->n_generated++;
        }
    }
    pthread_cond_broadcast(&req->cv);
    pthread_mutex_unlock(&req->mu);
    return s;
}

void rk_srv_request_finish(rk_srv_request *req, const char *finish_reason) {
    pthread_mutex_lock(&req->mu);
    req->finished = 1;
    req->finish_reason = finish_reason;
    req->t_done = rk_now_seconds();
    pthread_cond_broadcast(&req->cv);
    pthread_mutex_unlock(&req->mu);
}

void rk_srv_request_fail(rk_srv_request *req, const rk_api_error *error) {
    pthread_mutex_lock(&req->mu);
    req->finished = 1;
    req->failed = 1;
    req->error = *error;
    req->t_done = rk_now_seconds();
    pthread_cond_broadcast(&req->cv);
    pthread_mutex_unlock(&req->mu);
}

void rk_srv_request_cancel(rk_srv_request *req) {
    pthread_mutex_lock(&req->mu);
    req->cancelled = 1;
    pthread_mutex_unlock(&req->mu);
}
