/*
 * http-routes.c — the small routes: /v1/models, /health, /metrics, /tokenize, /detokenize, the
 * session routes (/v1/sessions[/ID]) and the web page at /.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "core/clock.h"
#include "server/http-impl.h"
#include "server/webui.h"

/* Sends a JSON object (taken; NULL: out of memory) with status 200. */
static enum MHD_Result send_object(rk_http_conn *c, json_t *j) {
    char *out = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return rk_http_send_json(c, 200, out);
}

enum MHD_Result rk_http_models(rk_http_conn *c) {
    json_t *j = json_pack("{s:s, s:[{s:s, s:s, s:I, s:s, s:I}]}", "object", "list", "data", "id",
                          c->srv->cfg.model_name, "object", "model", "created", (json_int_t)0, "owned_by", "ringkv",
                          "context_length", (json_int_t)rk_sched_n_ctx(c->srv->sched));
    return send_object(c, j);
}

enum MHD_Result rk_http_health(rk_http_conn *c) {
    static const char ok[] = "{\"status\":\"ok\"}";
    return rk_http_send(c, 200, "application/json", (char *)ok, sizeof ok - 1, 0);
}

enum MHD_Result rk_http_metrics(rk_http_conn *c) {
    char *text = rk_metrics_render(c->srv->metrics);
    if (!text) return rk_http_error(c, 500, "server_error", NULL, NULL, "out of memory");
    return rk_http_send(c, 200, "text/plain; version=0.0.4", text, strlen(text), 1);
}

enum MHD_Result rk_http_tokenize(rk_http_conn *c) {
    char *text = NULL;
    int add_special = 0;
    rk_api_error e;
    if (rk_api_parse_tokenize(c->body ? c->body : "", c->body_len, &c->srv->cfg.limits, &text, &add_special, &e))
        return rk_http_send_error(c, &e);
    rk_token *tokens = NULL;
    size_t n = 0;
    rk_error err;
    rk_status s = rk_tokenize(c->srv->model, text, strlen(text), add_special, 1, &tokens, &n, &err);
    free(text);
    if (s) return rk_http_error(c, 400, "invalid_request_error", "content", NULL, "%s", err.msg);
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) json_array_append_new(arr, json_integer(tokens[i]));
    free(tokens);
    json_t *j = json_pack("{s:o}", "tokens", arr);
    return send_object(c, j);
}

enum MHD_Result rk_http_detokenize(rk_http_conn *c) {
    rk_token *tokens = NULL;
    size_t n = 0;
    rk_api_error e;
    if (rk_api_parse_detokenize(c->body ? c->body : "", c->body_len, &c->srv->cfg.limits, &tokens, &n, &e))
        return rk_http_send_error(c, &e);
    const int32_t V = rk_model_n_vocab(c->srv->model);
    size_t cap = 64 + n * 16, len = 0;
    char *text = malloc(cap);
    for (size_t i = 0; text && i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= V) {
            free(text);
            free(tokens);
            return rk_http_error(c, 400, "invalid_request_error", "tokens", NULL,
                                 "token %d at index %zu is outside the vocabulary (0..%d)", tokens[i], i, V - 1);
        }
        int32_t need = rk_token_to_piece(c->srv->model, tokens[i], 0, NULL, 0);
        if (need < 0) need = 0;
        if (len + (size_t)need + 1 > cap) {
            cap = (len + (size_t)need + 1) * 2;
            char *t = realloc(text, cap);
            if (!t) { free(text); text = NULL; break; }
            text = t;
        }
        len += (size_t)rk_token_to_piece(c->srv->model, tokens[i], 0, text + len, (int32_t)(cap - len));
    }
    free(tokens);
    if (!text) return rk_http_error(c, 500, "server_error", NULL, NULL, "out of memory");
    json_t *j = json_pack("{s:s%}", "content", text, len);
    free(text);
    if (!j) /* the pieces do not form valid UTF-8 (a character cut between tokens) */
        return rk_http_error(c, 400, "invalid_request_error", "tokens", NULL,
                             "these tokens do not decode to valid UTF-8 (a character is cut at the end?)");
    return send_object(c, j);
}

/* ---- sessions ---- */

static json_t *session_json(const rk_session_info *s) {
    const double now = rk_now_seconds();
    return json_pack("{s:s, s:s, s:I, s:{s:I, s:I, s:I}, s:{s:I, s:I, s:I, s:I}, s:{s:s, s:s}, s:f, s:f, s:f, s:b}",
                     "id", s->id, "object", "session", "tokens", (json_int_t)s->tokens,
                     "kv_bytes", "hot", (json_int_t)(s->tiers.enabled ? s->tiers.hot_bytes : s->kv_bytes),
                     "warm", (json_int_t)s->tiers.warm_bytes, "disk", (json_int_t)s->tiers.disk_bytes,
                     "kv_pages", "hot", (json_int_t)s->tiers.pages_hot, "warm", (json_int_t)s->tiers.pages_warm,
                     "disk", (json_int_t)s->tiers.pages_cold,
                     "warm_sealed", (json_int_t)s->tiers.pages_warm_sealed,
                     "codec", "k", s->codec_k, "v", s->codec_v,
                     "age_seconds", now - s->created, "idle_seconds", now - s->last_used,
                     "ttl_seconds", s->ttl, "busy", s->busy);
}

enum MHD_Result rk_http_sessions_create(rk_http_conn *c) {
    double ttl = 0.0;
    if (c->body_len > 0) {
        json_error_t jerr;
        json_t *j = json_loadb(c->body, c->body_len, 0, &jerr);
        if (!j || !json_is_object(j)) {
            json_decref(j);
            return rk_http_error(c, 400, "invalid_request_error", NULL, NULL,
                                 "the body must be a JSON object like {\"ttl\": 3600}");
        }
        json_t *t = json_object_get(j, "ttl");
        if (t && (!json_is_number(t) || json_number_value(t) <= 0 || json_number_value(t) > 1e9)) {
            json_decref(j);
            return rk_http_error(c, 400, "invalid_request_error", "ttl", NULL, "'ttl' must be a number of seconds > 0");
        }
        ttl = t ? json_number_value(t) : 0.0;
        json_decref(j);
    }
    rk_session_info info;
    rk_api_error e;
    if (rk_sched_session_create(c->srv->sched, c->key_index, ttl, &info, &e)) return rk_http_send_error(c, &e);
    snprintf(c->log.session, sizeof c->log.session, "%s", info.id);
    json_t *j = session_json(&info);
    return send_object(c, j);
}

enum MHD_Result rk_http_sessions_list(rk_http_conn *c) {
    enum { MAX_LIST = 256 };
    rk_session_info *infos = calloc(MAX_LIST, sizeof *infos);
    if (!infos) return rk_http_error(c, 500, "server_error", NULL, NULL, "out of memory");
    size_t n = rk_sched_session_list(c->srv->sched, c->key_index, infos, MAX_LIST);
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) json_array_append_new(arr, session_json(&infos[i]));
    free(infos);
    json_t *j = json_pack("{s:s, s:o}", "object", "list", "data", arr);
    return send_object(c, j);
}

enum MHD_Result rk_http_session_get(rk_http_conn *c, const char *id) {
    rk_session_info info;
    rk_api_error e;
    snprintf(c->log.session, sizeof c->log.session, "%.32s", id);
    if (rk_sched_session_get(c->srv->sched, c->key_index, id, &info, &e)) return rk_http_send_error(c, &e);
    json_t *j = session_json(&info);
    return send_object(c, j);
}

enum MHD_Result rk_http_session_delete(rk_http_conn *c, const char *id) {
    rk_shred_receipt r;
    rk_api_error e;
    snprintf(c->log.session, sizeof c->log.session, "%.32s", id);
    if (rk_sched_session_delete(c->srv->sched, c->key_index, id, &r, &e)) return rk_http_send_error(c, &e);
    json_t *j = json_pack("{s:s, s:s, s:b, s:{s:I, s:I, s:I, s:b}}", "id", r.id, "object", "session.deleted",
                          "deleted", 1, "receipt", "tokens", (json_int_t)r.tokens, "pages", (json_int_t)r.pages,
                          "bytes", (json_int_t)r.bytes, "key_shredded", r.key_shredded);
    return send_object(c, j);
}

enum MHD_Result rk_http_index(rk_http_conn *c) {
    return rk_http_send(c, 200, "text/html; charset=utf-8", (char *)rk_webui_html, rk_webui_html_len, 0);
}
