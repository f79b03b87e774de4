/*
 * http.c — the libmicrohttpd daemon: reading uploads (with the body limit), the route table,
 * authentication, queuing responses, and one log line per request when it completes.
 *
 * libmicrohttpd runs one thread per connection, so a handler may block while the scheduler
 * works on its request (the non-streamed answers) and a stream's reader may block waiting for
 * tokens; both watch the socket so a client that leaves is noticed within a poll period.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/error.h"
#include "server/http-impl.h"

/* ---- responses ---- */

enum MHD_Result rk_http_send(rk_http_conn *c, int status, const char *content_type, char *body, size_t len,
                             int take_body) {
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, body, take_body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_MUST_COPY);
    if (!r) {
        if (take_body) free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", content_type);
    if (status == 429) MHD_add_response_header(r, "Retry-After", "1"); /* a retry can succeed */
    if (status == 401) MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    enum MHD_Result ret = MHD_queue_response(c->mhd, (unsigned)status, r);
    MHD_destroy_response(r);
    rk_metrics_count_request(c->srv->metrics, c->endpoint, status);
    c->log.status = status;
    return ret;
}

enum MHD_Result rk_http_send_json(rk_http_conn *c, int status, char *json) {
    if (!json) {
        static const char oom[] =
            "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,\"code\":null}}";
        return rk_http_send(c, 500, "application/json", (char *)oom, sizeof oom - 1, 0);
    }
    return rk_http_send(c, status, "application/json", json, strlen(json), 1);
}

enum MHD_Result rk_http_send_error(rk_http_conn *c, const rk_api_error *e) {
    snprintf(c->log.error, sizeof c->log.error, "%.150s", e->message);
    return rk_http_send_json(c, e->http_status, rk_api_error_json(e));
}

enum MHD_Result rk_http_error(rk_http_conn *c, int status, const char *type, const char *param, const char *code,
                              const char *fmt, ...) {
    rk_api_error e;
    char msg[sizeof e.message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rk_api_error_set(&e, status, type, param, code, "%s", msg);
    return rk_http_send_error(c, &e);
}

int rk_http_client_gone(struct MHD_Connection *mhd) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return 0;
    struct pollfd p = {ci->connect_fd, POLLRDHUP, 0};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* ---- routes ---- */

typedef struct route {
    const char *method;
    const char *path;          /* exact, or a prefix ending in '/' when `with_id` */
    int with_id;               /* the rest of the path is an id */
    int auth;                  /* needs an API key when keys are configured */
    enum MHD_Result (*handler)(rk_http_conn *c);
    enum MHD_Result (*handler_id)(rk_http_conn *c, const char *id);
} route;

static const route routes[] = {
    {"POST", "/v1/chat/completions", 0, 1, rk_http_chat, NULL},
    {"POST", "/v1/completions", 0, 1, rk_http_completions, NULL},
    {"GET", "/v1/models", 0, 1, rk_http_models, NULL},
    {"POST", "/v1/sessions", 0, 1, rk_http_sessions_create, NULL},
    {"GET", "/v1/sessions", 0, 1, rk_http_sessions_list, NULL},
    {"GET", "/v1/sessions/", 1, 1, NULL, rk_http_session_get},
    {"DELETE", "/v1/sessions/", 1, 1, NULL, rk_http_session_delete},
    {"POST", "/tokenize", 0, 1, rk_http_tokenize, NULL},
    {"POST", "/detokenize", 0, 1, rk_http_detokenize, NULL},
    {"GET", "/health", 0, 0, rk_http_health, NULL},
    {"GET", "/metrics", 0, 0, rk_http_metrics, NULL},
    {"GET", "/", 0, 0, rk_http_index, NULL},
};

static int path_matches(const route *r, const char *url) {
    if (!r->with_id) return strcmp(url, r->path) == 0;
    size_t n = strlen(r->path);
    return strncmp(url, r->path, n) == 0 && url[n] != '\0' && !strchr(url + n, '/');
}

/* Authenticates; returns 1 when the request may go on (else a 401 was queued). */
static int authenticate(rk_http_conn *c) {
    const rk_api_keys *keys = c->srv->cfg.keys;
    c->key_index = -1;
    c->key_name = "-";
    if (!keys) return 1;
    const char *auth = MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, "Authorization");
    int i = rk_api_keys_check(keys, auth);
    if (i < 0) {
        rk_http_error(c, 401, "invalid_request_error", NULL, "invalid_api_key",
                      auth ? "Incorrect API key provided." : "Missing API key: send 'Authorization: Bearer <key>'.");
        return 0;
    }
    c->key_index = i;
    c->key_name = rk_api_keys_name(keys, i);
    return 1;
}

static enum MHD_Result dispatch(rk_http_conn *c, const char *method, const char *url) {
    int path_known = 0;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const route *r = &routes[i];
        if (!path_matches(r, url)) continue;
        path_known = 1;
        if (strcmp(method, r->method) != 0) continue;
        c->endpoint = r->path;
        if (r->auth && !authenticate(c)) return MHD_YES;
        return r->with_id ? r->handler_id(c, url + strlen(r->path)) : r->handler(c);
    }
    c->endpoint = "other";
    if (path_known)
        return rk_http_error(c, 405, "invalid_request_error", NULL, NULL, "method %s is not allowed on %s", method, url);
    return rk_http_error(c, 404, "invalid_request_error", NULL, "unknown_url", "Unknown request URL: %s %s", method, url);
}

/* Appends an upload fragment; past the limit the request is answered 413 once it is read. */
static void take_upload(rk_http_conn *c, const char *data, size_t size) {
    if (c->too_large) return;
    if (c->body_len + size > c->srv->cfg.limits.max_body_bytes) {
        c->too_large = 1;
        free(c->body);
        c->body = NULL;
        c->body_len = c->body_cap = 0;
        return;
    }
    if (c->body_len + size + 1 > c->body_cap) {
        size_t cap = c->body_cap ? c->body_cap : 4096;
        while (cap < c->body_len + size + 1) cap *= 2;
        char *b = realloc(c->body, cap);
        if (!b) {
            c->too_large = 1; /* answered as too large for this server */
            return;
        }
        c->body = b;
        c->body_cap = cap;
    }
    memcpy(c->body + c->body_len, data, size);
    c->body_len += size;
    c->body[c->body_len] = '\0';
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mhd, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    (void)version;
    rk_server *srv = cls;
    rk_http_conn *c = *con_cls;
    if (!c) { /* headers read: set up, and wait for the body */
        c = calloc(1, sizeof *c);
        if (!c) return MHD_NO;
        c->srv = srv;
        c->mhd = mhd;
        c->endpoint = "other";
        c->key_name = "-";
        c->t_start = rk_now_seconds();
        pthread_mutex_lock(&srv->id_mu);
        c->id = ++srv->next_id;
        srv->n_open++;
        pthread_mutex_unlock(&srv->id_mu);
        snprintf(c->log.method, sizeof c->log.method, "%s", method);
        snprintf(c->log.url, sizeof c->log.url, "%s", url);
        *con_cls = c;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        take_upload(c, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (c->too_large)
        return rk_http_error(c, 413, "invalid_request_error", NULL, "request_too_large",
                             "the request body is larger than this server's limit of %zu bytes",
                             srv->cfg.limits.max_body_bytes);
    return dispatch(c, method, url);
}

/* One line per request on stderr, after it completed (the prompt text only when asked for). */
static void on_completed(void *cls, struct MHD_Connection *mhd, void **con_cls, enum MHD_RequestTerminationCode toe) {
    rk_server *srv = cls;
    (void)mhd;
    rk_http_conn *c = *con_cls;
    if (!c) return;
    const rk_http_log *l = &c->log;
    double secs = rk_now_seconds() - c->t_start;
    fprintf(stderr,
            "ringkv: request id=%llu key=%s %s %s status=%d%s session=%s prompt=%lld cached=%lld generated=%lld "
            "ttft=%.3f tok_s=%.1f total=%.3f%s%s%s%s\n",
            (unsigned long long)c->id, c->key_name, l->method, l->url, l->status,
            toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection closed early)", l->session[0] ? l->session : "-",
            (long long)l->n_prompt, (long long)l->n_cached, (long long)l->n_generated, l->ttft,
            l->gen_seconds > 0 ? (double)l->n_generated / l->gen_seconds : 0.0, secs,
            l->finish[0] ? " finish=" : "", l->finish, l->error[0] ? " error=" : "", l->error);
    free(c->body);
    free(c);
    *con_cls = NULL;
    pthread_mutex_lock(&srv->id_mu);
    srv->n_open--;
    pthread_mutex_unlock(&srv->id_mu);
}

static rk_status resolve(const char *host, int port, struct sockaddr_storage *addr, rk_error *err) {
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
    char port_s[16];
    snprintf(port_s, sizeof port_s, "%d", port);
    int rc = getaddrinfo(host, port_s, &hints, &res);
    if (rc != 0 || !res)
        return rk_error_set(err, RK_ERR_INVALID_ARG, "serve: --host '%s' is not a numeric IPv4 or IPv6 address (%s)",
                            host, gai_strerror(rc));
    memset(addr, 0, sizeof *addr);
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return RK_OK;
}

rk_status rk_server_start(const rk_model *model, rk_sched *sched, rk_metrics *metrics,
                          const rk_server_config *cfg, rk_server **out, rk_error *err) {
    *out = NULL;
    struct sockaddr_storage addr;
    rk_status s = resolve(cfg->host, cfg->port, &addr, err);
    if (s) return s;
    rk_server *srv = calloc(1, sizeof *srv);
    if (!srv) return rk_error_set(err, RK_ERR_NO_MEMORY, "serve: out of memory");
    srv->model = model;
    srv->sched = sched;
    srv->metrics = metrics;
    srv->cfg = *cfg;
    pthread_mutex_init(&srv->id_mu, NULL);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL | MHD_USE_ITC;
    if (addr.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
    srv->daemon = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_request, srv,
                                   MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                                   MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
                                   MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
                                   MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600, MHD_OPTION_END);
    if (!srv->daemon) {
        pthread_mutex_destroy(&srv->id_mu);
        free(srv);
        return rk_error_set(err, RK_ERR_IO, "serve: cannot listen on %s port %d (in use, or not an address of this machine)",
                            cfg->host, cfg->port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = di ? di->port : cfg->port;
    *out = srv;
    return RK_OK;
}

int rk_server_port(const rk_server *srv) { return srv->port; }

void rk_server_quiesce(rk_server *srv) {
    MHD_socket fd = MHD_quiesce_daemon(srv->daemon);
    if (fd != MHD_INVALID_SOCKET) close(fd);
}

int rk_server_wait_answered(rk_server *srv, double timeout_s) {
    double deadline = rk_now_seconds() + timeout_s;
    for (;;) {
        pthread_mutex_lock(&srv->id_mu);
        int open = srv->n_open;
        pthread_mutex_unlock(&srv->id_mu);
        if (open == 0 || rk_now_seconds() >= deadline) return open;
        struct timespec nap = {0, 10 * 1000 * 1000};
        nanosleep(&nap, NULL);
    }
}

void rk_server_stop(rk_server *srv) {
    if (!srv) return;
    MHD_stop_daemon(srv->daemon);
    pthread_mutex_destroy(&srv->id_mu);
    free(srv);
}
