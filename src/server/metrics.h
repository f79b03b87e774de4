/*
 * metrics.h — the server's Prometheus metrics (`GET /metrics`, text exposition format 0.0.4).
 *
 * One rk_metrics object per server. The HTTP layer counts requests by endpoint and status; the
 * scheduler adds token counts, sets the queue gauges and observes latencies; the KV cache
 * publishes its bytes per (tier, codec). rk_metrics_render() turns the whole state into the text
 * Prometheus scrapes. Series follow vLLM's names with the prefix `ringkv:` instead of `vllm:`:
 *
 *   counters    ringkv:http_requests_total{endpoint,status}, ringkv:prompt_tokens_total,
 *               ringkv:generation_tokens_total, ringkv:prompt_tokens_processed_total,
 *               ringkv:prefix_tokens_reused_total, ringkv:sessions_created_total,
 *               ringkv:sessions_shredded_total, ringkv:requests_cancelled_total
 *   gauges      ringkv:num_requests_running, ringkv:num_requests_waiting, ringkv:sessions_active,
 *               ringkv:kv_cache_bytes{tier,codec}
 *   histograms  ringkv:time_to_first_token_seconds, ringkv:inter_token_latency_seconds,
 *               ringkv:e2e_request_latency_seconds (vLLM's bucket bounds)
 *
 * Threading: every function may be called from any thread at any time; one mutex inside guards
 * the state (each call holds it for a few hundred nanoseconds; a render for the time it takes to
 * format the text, tens of microseconds). Every function except rk_metrics_create accepts a NULL
 * rk_metrics and then does nothing (so a server may run without metrics).
 *
 * Memory: the request table holds at most RK_METRICS_MAX_REQUEST_SERIES (endpoint, status)
 * pairs; later new pairs are counted under endpoint="other", so a client that probes random
 * paths cannot grow it without bound.
 */
#ifndef RK_SERVER_METRICS_H
#define RK_SERVER_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "ringkv.h"

#define RK_METRICS_MAX_REQUEST_SERIES 256 /* distinct (endpoint, status) pairs before "other" */
#define RK_METRICS_MAX_ENDPOINT 128       /* endpoint bytes kept; longer ones are cut */

typedef struct rk_metrics rk_metrics;

/* Monotonic counters (rendered with the suffix _total). */
typedef enum rk_metric_counter {
    RK_M_PROMPT_TOKENS,           /* prompt tokens of finished or running requests */
    RK_M_GENERATION_TOKENS,       /* tokens generated */
    RK_M_PROMPT_TOKENS_PROCESSED, /* prompt tokens that ran through the model (not reused) */
    RK_M_PREFIX_TOKENS_REUSED,    /* prompt tokens whose KV came from a cached prefix/session */
    RK_M_SESSIONS_CREATED,
    RK_M_SESSIONS_SHREDDED,
    RK_M_REQUESTS_CANCELLED,
    RK_M_COUNTER_COUNT
} rk_metric_counter;

/* Gauges: values set as a whole. */
typedef enum rk_metric_gauge {
    RK_M_REQUESTS_RUNNING,
    RK_M_REQUESTS_WAITING,
    RK_M_SESSIONS_ACTIVE,
    RK_M_GAUGE_COUNT
} rk_metric_gauge;

/* Latency histograms, in seconds. */
typedef enum rk_metric_hist {
    RK_M_TTFT, /* request arrival to first generated token */
    RK_M_ITL,  /* between consecutive generated tokens of one request */
    RK_M_E2E,  /* request arrival to its last token */
    RK_M_HIST_COUNT
} rk_metric_hist;

/* One row of ringkv:kv_cache_bytes. */
typedef struct rk_metric_kv_bytes {
    const char *tier;  /* "hot", "warm", "disk" */
    const char *codec; /* "f16", "tq3.5", ... */
    double bytes;
} rk_metric_kv_bytes;

/* Creates an empty set of metrics (all zero). *out belongs to the caller (rk_metrics_free).
 * RK_ERR_NO_MEMORY or RK_ERR_INTERNAL (the mutex could not be created). */
rk_status rk_metrics_create(rk_metrics **out, rk_error *err);

/* Frees the metrics; no other thread may be using them. NULL is a no-op. */
void rk_metrics_free(rk_metrics *m);

/* Adds 1 to ringkv:http_requests_total{endpoint, status}. `endpoint` (a URL path such as
 * "/v1/chat/completions"; NULL counts as "other") is copied: its first RK_METRICS_MAX_ENDPOINT
 * bytes, with control characters and bytes outside ASCII replaced by '?' (newline is kept:
 * it is escaped when rendered). A status outside 100..599 is recorded as 0. When the table
 * already holds RK_METRICS_MAX_REQUEST_SERIES pairs, a new pair is counted as
 * ("other", status). If memory for a new pair cannot be had, the request is not counted. */
void rk_metrics_count_request(rk_metrics *m, const char *endpoint, int http_status);

/* Adds n to counter c (an out-of-range c is ignored). */
void rk_metrics_add(rk_metrics *m, rk_metric_counter c, uint64_t n);

/* Sets gauge g to v (an out-of-range g is ignored). */
void rk_metrics_set(rk_metrics *m, rk_metric_gauge g, double v);

/* Records one observation of `seconds` in histogram h. Negative values count as 0 (a clock
 * that stepped); NaN and an out-of-range h are ignored. */
void rk_metrics_observe(rk_metrics *m, rk_metric_hist h, double seconds);

/* Replaces the whole table of ringkv:kv_cache_bytes with rows[0..n) (strings copied; NULL
 * strings render as ""). Rows that are no longer given disappear. RK_ERR_NO_MEMORY leaves the
 * previous table in place. */
rk_status rk_metrics_set_kv_bytes(rk_metrics *m, const rk_metric_kv_bytes *rows, size_t n);

/* Current value of counter c (0 for NULL m or an out-of-range c), for tests and logs. */
uint64_t rk_metrics_counter(const rk_metrics *m, rk_metric_counter c);

/* Current value of gauge g (0 for NULL m or an out-of-range g). */
double rk_metrics_gauge(const rk_metrics *m, rk_metric_gauge g);

/* Renders every series in the text exposition format 0.0.4 (Content-Type
 * "text/plain; version=0.0.4; charset=utf-8"). Returns a malloc'd NUL-terminated string the
 * caller frees, or NULL when out of memory (or m is NULL). */
char *rk_metrics_render(rk_metrics *m);

#endif
