/*
 * server.h — `ringkv serve`'s HTTP front: libmicrohttpd with one thread per connection.
 *
 * HTTP threads read and validate a request (api-params.h), authenticate it (api-keys.h),
 * tokenize its prompt, and submit it to the scheduler; then they stream what the scheduler
 * produces (server-sent events) or wait for the whole answer. Nothing here runs the model. A
 * client that goes away has its request cancelled; the scheduler frees its sequence at the
 * next step. Routes are one table in http.c.
 */
#ifndef RK_SERVER_SERVER_H
#define RK_SERVER_SERVER_H

#include "ringkv.h"
#include "server/api-keys.h"
#include "server/api-params.h"
#include "server/metrics.h"
#include "server/scheduler.h"

typedef struct rk_server_config {
    const char *host;          /* address to bind, e.g. "127.0.0.1" or "::1" */
    int port;                  /* 0: any free port (rk_server_port says which) */
    const char *model_name;    /* the id /v1/models lists and responses echo */
    const rk_api_keys *keys;   /* NULL: no authentication */
    rk_api_limits limits;
    int max_connections;
    double ping_seconds;       /* SSE comment pings while a stream waits for tokens */
    int log_prompts;           /* put prompt text in the request log lines */
} rk_server_config;

typedef struct rk_server rk_server;

/* Binds and starts serving. Everything passed is borrowed and must outlive the server.
 * RK_ERR_IO when the address cannot be bound (the message names it). */
rk_status rk_server_start(const rk_model *model, rk_sched *sched, rk_metrics *metrics,
                          const rk_server_config *cfg, rk_server **out, rk_error *err);
/* The port it listens on. */
int rk_server_port(const rk_server *srv);
/* Stops accepting connections (the listening socket closes; open connections go on). */
void rk_server_quiesce(rk_server *srv);
/* Waits until every request begun has been answered (its last byte handed to the socket) or
 * timeout_s passed; returns the number still open. Call after rk_server_quiesce and once the
 * scheduler is drained, so that stopping does not cut off answers still being written. */
int rk_server_wait_answered(rk_server *srv, double timeout_s);
/* Closes every connection and frees the server. */
void rk_server_stop(rk_server *srv);

#endif
