/*
 * http-impl.h — what the HTTP files share: the server, one connection's state, and the helpers
 * that queue responses (JSON, errors with OpenAI's shape, text).
 */
#ifndef RK_SERVER_HTTP_IMPL_H
#define RK_SERVER_HTTP_IMPL_H

#include <microhttpd.h>

#include "server/server.h"

struct rk_server {
    const rk_model *model;
    rk_sched *sched;
    rk_metrics *metrics;
    rk_server_config cfg;
    struct MHD_Daemon *daemon;
    int port;
    pthread_mutex_t id_mu;  /* guards next_id and n_open */
    uint64_t next_id;
    int n_open;             /* requests begun whose completion MHD has not yet reported */
};

/* What the request's log line reports. */
typedef struct rk_http_log {
    char method[8];
    char url[96];
    int status;
    char session[40];
    int64_t n_prompt, n_cached, n_generated;
    double ttft, gen_seconds;
    char finish[16];
    char error[160];
} rk_http_log;

/* One HTTP request being read and answered. */
typedef struct rk_http_conn {
    rk_server *srv;
    struct MHD_Connection *mhd;
    char *body;               /* (body_len) the upload, NUL-terminated */
    size_t body_len, body_cap;
    int too_large;            /* the upload passed the limit: answered 413, rest discarded */
    const char *endpoint;     /* route path, for metrics */
    int key_index;            /* -1: no keys configured */
    const char *key_name;
    uint64_t id;
    double t_start;
    rk_http_log log;
} rk_http_conn;

/* Queue a response and count it in the metrics. Return the MHD result. */
enum MHD_Result rk_http_send(rk_http_conn *c, int status, const char *content_type, char *body, size_t len,
                             int take_body);
enum MHD_Result rk_http_send_json(rk_http_conn *c, int status, char *json); /* takes json (may be NULL: 500) */
enum MHD_Result rk_http_send_error(rk_http_conn *c, const rk_api_error *e);
enum MHD_Result rk_http_error(rk_http_conn *c, int status, const char *type, const char *param, const char *code,
                              const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* 1 when the client closed its side of the connection. */
int rk_http_client_gone(struct MHD_Connection *mhd);

/* Route handlers (http-generate.c, http-routes.c). */
enum MHD_Result rk_http_chat(rk_http_conn *c);
enum MHD_Result rk_http_completions(rk_http_conn *c);
enum MHD_Result rk_http_models(rk_http_conn *c);
enum MHD_Result rk_http_health(rk_http_conn *c);
enum MHD_Result rk_http_metrics(rk_http_conn *c);
enum MHD_Result rk_http_tokenize(rk_http_conn *c);
enum MHD_Result rk_http_detokenize(rk_http_conn *c);
enum MHD_Result rk_http_sessions_create(rk_http_conn *c);
enum MHD_Result rk_http_sessions_list(rk_http_conn *c);
enum MHD_Result rk_http_session_get(rk_http_conn *c, const char *id);
enum MHD_Result rk_http_session_delete(rk_http_conn *c, const char *id);
enum MHD_Result rk_http_index(rk_http_conn *c);

#endif
