/*
 * cmd-serve.c — `ringkv serve`: the OpenAI-compatible server (src/server/). Loads the model,
 * starts the scheduler and the HTTP daemon, and runs until SIGINT or SIGTERM; then it stops
 * accepting connections, lets in-flight requests finish (up to --shutdown-timeout seconds,
 * then cancels them) and exits 0.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/commands.h"
#include "tools/opts.h"
#include "tools/run-opts.h"

#ifndef RINGKV_HAVE_SERVER
int rk_cmd_serve(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "serve: this ringkv was built without the server (it needs libmicrohttpd, jansson and "
                    "libsodium: apt install libmicrohttpd-dev libjansson-dev libsodium-dev, then rebuild)\n");
    return 1;
}
#else
#include <arpa/inet.h>

#include "core/clock.h"
#include "server/server.h"
#include "server/session-file.h"

typedef struct serve_opts {
    rk_run_opts run;
    const char *host;
    int64_t port, parallel, queue, prefill_chunk, max_sessions, max_connections;
    double session_ttl, shutdown_timeout, ping, session_save_idle;
    uint64_t max_body;
    const char *key_file, *session_dir;
    int insecure, log_prompts;
} serve_opts;

static void usage(FILE *out) {
    fprintf(out,
            "usage: ringkv serve [-m MODEL] [--host ADDR] [--port N] [--parallel N] [-c CTX] [options]\n"
            "  --host ADDR            address to listen on (default 127.0.0.1; IPv6 too)\n"
            "  --port N               TCP port (default 8080; 0 = any free port, printed at start)\n"
            "  --parallel N           sequences running at once (default 8)\n"
            "  --queue N              requests waiting at most, then 429 (default 64)\n"
            "  --prefill-chunk N      prompt tokens per sequence per step (default 512)\n"
            "  --api-key-file F       API keys, one per line (\"KEY [NAME]\"); without it no key is asked\n"
            "  --insecure             allow a non-loopback --host without API keys\n"
            "  --session-dir DIR      keep sessions across restarts: saved there (sealed) at shutdown\n"
            "                         and when idle, restored at start; DIR/master.key (0600) wraps\n"
            "                         their keys\n"
            "  --session-save-idle S  save a changed session once idle S seconds while nothing runs,\n"
            "                         so it survives a crash (default 5; 0 = only at shutdown)\n"
            "  --max-sessions N       sessions kept at most (default 64)\n"
            "  --session-ttl S        idle seconds before a session expires (default 3600)\n"
            "  --max-body SIZE        largest request body (default 4M)\n"
            "  --max-connections N    open connections at most (default 256)\n"
            "  --shutdown-timeout S   on SIGTERM, seconds to let requests finish (default 30)\n"
            "  --log-prompts          put prompt text in the request log (default: never)\n"
            "  -m, -t, -c (default: the model's trained context), --kv-* as for `ringkv run`;\n"
            "  sampling is per request (temperature, top_p, seed in the request body).\n");
}

static int is_loopback(const char *host) {
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
    return 0;
}

/* Parses argv; returns 0, 1 (help printed) or 2 (bad usage, printed). */
static int parse(serve_opts *o, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int used = rk_run_opts_parse(&o->run, "serve", argc, argv, i);
        if (used < 0) return 2;
        if (used > 0) { i += used - 1; continue; }
        int ok = 1;
        if (rk_opt_is(a, NULL, "--host") && v) o->host = v;
        else if (rk_opt_is(a, NULL, "--port")) ok = rk_opt_int("serve", a, v, 0, 65535, &o->port);
        else if (rk_opt_is(a, "-np", "--parallel")) ok = rk_opt_int("serve", a, v, 1, 256, &o->parallel);
        else if (rk_opt_is(a, NULL, "--queue")) ok = rk_opt_int("serve", a, v, 0, 1 << 20, &o->queue);
        else if (rk_opt_is(a, NULL, "--prefill-chunk")) ok = rk_opt_int("serve", a, v, 1, 65536, &o->prefill_chunk);
        else if (rk_opt_is(a, NULL, "--max-sessions")) ok = rk_opt_int("serve", a, v, 0, 1 << 16, &o->max_sessions);
        else if (rk_opt_is(a, NULL, "--max-connections")) ok = rk_opt_int("serve", a, v, 1, 1 << 16, &o->max_connections);
        else if (rk_opt_is(a, NULL, "--session-ttl")) ok = rk_opt_float("serve", a, v, 1, 1e9, &o->session_ttl);
        else if (rk_opt_is(a, NULL, "--session-save-idle"))
            ok = rk_opt_float("serve", a, v, 0, 1e9, &o->session_save_idle);
        else if (rk_opt_is(a, NULL, "--shutdown-timeout")) ok = rk_opt_float("serve", a, v, 0, 1e6, &o->shutdown_timeout);
        else if (rk_opt_is(a, NULL, "--ping")) ok = rk_opt_float("serve", a, v, 0.2, 3600, &o->ping);
        else if (rk_opt_is(a, NULL, "--max-body")) ok = rk_opt_size("serve", a, v, &o->max_body);
        else if (rk_opt_is(a, NULL, "--api-key-file") && v) o->key_file = v;
        else if (rk_opt_is(a, NULL, "--session-dir") && v) o->session_dir = v;
        else if (rk_opt_is(a, NULL, "--insecure")) { o->insecure = 1; continue; }
        else if (rk_opt_is(a, NULL, "--log-prompts")) { o->log_prompts = 1; continue; }
        else if (rk_opt_is(a, "-h", "--help")) { usage(stdout); return 1; }
        else {
            fprintf(stderr, "serve: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (!ok) return 2;
        i++;
    }
    if (!is_loopback(o->host) && !o->key_file && !o->insecure) {
        fprintf(stderr, "serve: --host %s is reachable from other machines; give --api-key-file (or --insecure to "
                        "serve without keys anyway)\n", o->host);
        return 2;
    }
    return 0;
}

/* Everything the server holds, so one function can tear it down in order. */
typedef struct serve_state {
    rk_model *model;
    rk_api_keys *keys;
    uint8_t *master;
    rk_metrics *metrics;
    rk_sched *sched;
    rk_server *server;
} serve_state;

static void serve_close(serve_state *st) {
    rk_server_stop(st->server); /* no HTTP thread waits on the scheduler after this */
    rk_sched_free(st->sched);
    rk_metrics_free(st->metrics);
    rk_api_keys_free(st->keys);
    if (st->master) rk_master_key_free(st->master);
    rk_model_free(st->model);
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static int serve_open(serve_state *st, const serve_opts *o, char *model_name, size_t name_size) {
    rk_error err;
    rk_model_params mp = rk_model_default_params();
    const char *path = o->run.model_path ? o->run.model_path : rk_opt_default_model();
    if (rk_model_load(path, &mp, &st->model, &err) != RK_OK) return fprintf(stderr, "serve: %s\n", err.msg), 1;
    snprintf(model_name, name_size, "%s", base_name(path));
    char *dot = strstr(model_name, ".gguf");
    if (dot) *dot = '\0';
    int world_readable = 0;
    if (o->key_file && rk_api_keys_load(o->key_file, &st->keys, &world_readable, &err) != RK_OK)
        return fprintf(stderr, "serve: %s\n", err.msg), 1;
    if (world_readable)
        fprintf(stderr, "serve: warning: %s can be read by other users (chmod 600 it)\n", o->key_file);
    if (rk_metrics_create(&st->metrics, &err) != RK_OK) return fprintf(stderr, "serve: %s\n", err.msg), 1;
    if (o->session_dir && rk_master_key_load(o->session_dir, &st->master, &err) != RK_OK)
        return fprintf(stderr, "serve: %s\n", err.msg), 1;
    rk_sched_config sc = {(int)o->parallel, (int)o->queue, o->prefill_chunk, (int)o->max_sessions, o->session_ttl,
                          o->run.ctx, o->session_dir, st->master, st->keys, o->session_save_idle};
    if (sc.ctx.n_ctx == 0 || sc.ctx.n_ctx > rk_model_n_ctx_train(st->model)) sc.ctx.n_ctx = rk_model_n_ctx_train(st->model);
    if (rk_sched_create(st->model, &sc, st->metrics, &st->sched, &err) != RK_OK)
        return fprintf(stderr, "serve: %s\n", err.msg), 1;
    if (o->session_dir) {
        double t0 = rk_now_seconds();
        int n = rk_sched_restore_sessions(st->sched);
        fprintf(stderr, "ringkv: %d session(s) restored from %s in %.2f s\n", n, o->session_dir, rk_now_seconds() - t0);
    }
    rk_server_config hc = {o->host, (int)o->port, model_name, st->keys, rk_api_default_limits(),
                           (int)o->max_connections, o->ping, o->log_prompts};
    hc.limits.max_body_bytes = (size_t)o->max_body;
    if (rk_server_start(st->model, st->sched, st->metrics, &hc, &st->server, &err) != RK_OK)
        return fprintf(stderr, "serve: %s\n", err.msg), 1;
    return 0;
}

int rk_cmd_serve(int argc, char **argv) {
    serve_opts o = {.host = "127.0.0.1", .port = 8080, .parallel = 8, .queue = 64, .prefill_chunk = 512,
                    .max_sessions = 64, .max_connections = 256, .session_ttl = 3600, .shutdown_timeout = 30,
                    .session_save_idle = 5,
                    .ping = 5, .max_body = 4u << 20};
    rk_run_opts_init(&o.run);
    o.run.ctx.n_ctx = 0;
    int rc = parse(&o, argc, argv);
    if (rc) return rc == 1 ? 0 : 2;
    o.run.ctx.n_ubatch = (int)o.prefill_chunk;
    /* every thread started from here on inherits the mask; the main thread waits for the signal */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    serve_state st = {0};
    char model_name[256];
    if (serve_open(&st, &o, model_name, sizeof model_name) != 0) {
        serve_close(&st);
        return 1;
    }
    fprintf(stderr, "ringkv: serving %s on http://%s%s%s:%d/ (parallel %lld, context %lld, KV %s/%s, %s)\n",
            model_name, strchr(o.host, ':') ? "[" : "", o.host, strchr(o.host, ':') ? "]" : "",
            rk_server_port(st.server), (long long)o.parallel, (long long)rk_sched_n_ctx(st.sched),
            o.run.ctx.kv_codec_k ? o.run.ctx.kv_codec_k : "f16", o.run.ctx.kv_codec_v ? o.run.ctx.kv_codec_v : "f16",
            st.keys ? "API keys required" : "no API keys");
    int sig = 0;
    sigwait(&stop, &sig);
    fprintf(stderr, "ringkv: %s: no new connections; letting requests finish (up to %.0f s)\n",
            sig == SIGTERM ? "SIGTERM" : "SIGINT", o.shutdown_timeout);
    rk_server_quiesce(st.server);
    double drain_start = rk_now_seconds();
    rk_sched_drain(st.sched, o.shutdown_timeout);
    double left = o.shutdown_timeout - (rk_now_seconds() - drain_start);
    int unanswered = rk_server_wait_answered(st.server, left > 5 ? left : 5);
    if (unanswered) fprintf(stderr, "ringkv: %d answer(s) still being written at shutdown; closing them\n", unanswered);
    if (o.session_dir) fprintf(stderr, "ringkv: %d session(s) saved to %s\n", rk_sched_save_sessions(st.sched), o.session_dir);
    serve_close(&st);
    fprintf(stderr, "ringkv: stopped\n");
    return 0;
}
#endif
