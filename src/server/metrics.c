/*
 * metrics.c — the server's Prometheus metrics (see metrics.h).
 *
 * State is plain numbers behind one mutex: fixed arrays for the counters, gauges and histogram
 * buckets (per-bucket counts, made cumulative only when rendered), a small growable table of
 * (endpoint, status) request counts, and the kv_cache_bytes table that its setter swaps whole.
 * Rendering formats under the mutex into a growable buffer; at a scrape every few seconds that
 * is cheaper than snapshotting, and it keeps each scrape consistent (a histogram's buckets,
 * _sum and _count always agree).
 */
#include "server/metrics.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#define MAX_BUCKETS 24 /* finite bounds of the largest histogram (+Inf is one more) */

typedef struct metric_desc {
    const char *name;
    const char *help;
} metric_desc;

static const metric_desc counter_desc[RK_M_COUNTER_COUNT] = {
    [RK_M_PROMPT_TOKENS] = {"ringkv:prompt_tokens_total", "Number of prompt tokens."},
    [RK_M_GENERATION_TOKENS] = {"ringkv:generation_tokens_total", "Number of generated tokens."},
    [RK_M_PROMPT_TOKENS_PROCESSED] = {"ringkv:prompt_tokens_processed_total",
                                      "Number of prompt tokens that ran through the model "
                                      "(not reused from a cached prefix)."},
    [RK_M_PREFIX_TOKENS_REUSED] = {"ringkv:prefix_tokens_reused_total",
                                   "Number of prompt tokens whose KV cache was reused."},
    [RK_M_SESSIONS_CREATED] = {"ringkv:sessions_created_total", "Number of sessions created."},
    [RK_M_SESSIONS_SHREDDED] = {"ringkv:sessions_shredded_total",
                                "Number of sessions shredded (KV cache erased)."},
    [RK_M_REQUESTS_CANCELLED] = {"ringkv:requests_cancelled_total",
                                 "Number of requests cancelled before they finished."},
};

static const metric_desc gauge_desc[RK_M_GAUGE_COUNT] = {
    [RK_M_REQUESTS_RUNNING] = {"ringkv:num_requests_running",
                               "Number of requests being generated."},
    [RK_M_REQUESTS_WAITING] = {"ringkv:num_requests_waiting",
                               "Number of requests waiting to be scheduled."},
    [RK_M_SESSIONS_ACTIVE] = {"ringkv:sessions_active", "Number of sessions alive."},
};

#define COUNT_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* vLLM's bucket bounds (vllm/engine/metrics.py). */
static const double ttft_bounds[] = {0.001, 0.005, 0.01, 0.02,  0.04,  0.06,  0.08, 0.1,
                                     0.25,  0.5,   0.75, 1.0,   2.5,   5.0,   7.5,  10.0,
                                     20.0,  40.0,  80.0, 160.0, 640.0, 2560.0};
static const double itl_bounds[] = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,  0.3,  0.4, 0.5,
                                    0.75, 1.0,   2.5,  5.0,   7.5, 10.0, 20.0, 40.0, 80.0};
static const double e2e_bounds[] = {0.3,  0.5,   0.8,   1.0,   1.5,   2.0,    2.5,
                                    5.0,  10.0,  15.0,  20.0,  30.0,  40.0,   50.0,
                                    60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};

_Static_assert(COUNT_OF(ttft_bounds) <= MAX_BUCKETS && COUNT_OF(itl_bounds) <= MAX_BUCKETS &&
                   COUNT_OF(e2e_bounds) <= MAX_BUCKETS,
               "MAX_BUCKETS too small");

typedef struct hist_desc {
    const char *name;
    const char *help;
    const double *bounds;
    int n_bounds;
} hist_desc;

static const hist_desc hist_descs[RK_M_HIST_COUNT] = {
    [RK_M_TTFT] = {"ringkv:time_to_first_token_seconds",
                   "Histogram of time to first token in seconds.", ttft_bounds,
                   COUNT_OF(ttft_bounds)},
    [RK_M_ITL] = {"ringkv:inter_token_latency_seconds",
                  "Histogram of inter-token latency in seconds.", itl_bounds, COUNT_OF(itl_bounds)},
    [RK_M_E2E] = {"ringkv:e2e_request_latency_seconds",
                  "Histogram of end to end request latency in seconds.", e2e_bounds,
                  COUNT_OF(e2e_bounds)},
};

typedef struct hist {
    uint64_t buckets[MAX_BUCKETS + 1]; /* observations in (bound[i-1], bound[i]]; last: +Inf */
    uint64_t count;
    double sum;
} hist;

typedef struct request_row {
    char *endpoint; /* sanitized copy */
    int status;
    uint64_t count;
} request_row;

typedef struct kv_row {
    char *tier, *codec;
    double bytes;
} kv_row;

struct rk_metrics {
    pthread_mutex_t mu;
    uint64_t counters[RK_M_COUNTER_COUNT];
    double gauges[RK_M_GAUGE_COUNT];
    hist hists[RK_M_HIST_COUNT];
    request_row *requests; /* insertion order */
    size_t n_requests, cap_requests;
    size_t n_regular; /* rows not created by folding into "other" */
    kv_row *kv;
    size_t n_kv;
};

rk_status rk_metrics_create(rk_metrics **out, rk_error *err) {
    *out = NULL;
    rk_metrics *m = calloc(1, sizeof *m);
    if (!m) return rk_error_set(err, RK_ERR_NO_MEMORY, "metrics: out of memory");
    if (pthread_mutex_init(&m->mu, NULL) != 0) {
        free(m);
        return rk_error_set(err, RK_ERR_INTERNAL, "metrics: pthread_mutex_init failed");
    }
    *out = m;
    return RK_OK;
}

static void free_kv_rows(kv_row *rows, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(rows[i].tier);
        free(rows[i].codec);
    }
    free(rows);
}

void rk_metrics_free(rk_metrics *m) {
    if (!m) return;
    for (size_t i = 0; i < m->n_requests; i++)
        free(m->requests[i].endpoint);
    free(m->requests);
    free_kv_rows(m->kv, m->n_kv);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

/* The mutex of a metrics object the caller passed as const (reads lock too). The object itself
 * is never defined const (rk_metrics_create allocates it), so writing the mutex is defined. */
static pthread_mutex_t *mutex_of(const rk_metrics *m) { return (pthread_mutex_t *)&m->mu; }

/* ------------------------------------------------------------------------------------------ */
/* Updates                                                                                    */

/* Copies an endpoint into out (RK_METRICS_MAX_ENDPOINT + 1 bytes): ASCII only, no controls
 * except newline, so what is rendered is valid UTF-8 after escaping. */
static void sanitize_endpoint(const char *endpoint, char *out) {
    if (!endpoint) endpoint = "other";
    size_t i = 0;
    for (; i < RK_METRICS_MAX_ENDPOINT && endpoint[i]; i++) {
        unsigned char c = (unsigned char)endpoint[i];
        out[i] = (c == '\n' || (c >= 0x20 && c < 0x7f)) ? (char)c : '?';
    }
    out[i] = '\0';
}

static request_row *find_request(rk_metrics *m, const char *endpoint, int status) {
    for (size_t i = 0; i < m->n_requests; i++) {
        request_row *r = &m->requests[i];
        if (r->status == status && strcmp(r->endpoint, endpoint) == 0) return r;
    }
    return NULL;
}

/* Appends a zero row; NULL when out of memory. Caller holds the mutex. */
static request_row *append_request(rk_metrics *m, const char *endpoint, int status) {
    if (m->n_requests == m->cap_requests) {
        size_t cap = m->cap_requests ? 2 * m->cap_requests : 16;
        request_row *p = realloc(m->requests, cap * sizeof *p);
        if (!p) return NULL;
        m->requests = p;
        m->cap_requests = cap;
    }
    char *copy = strdup(endpoint);
    if (!copy) return NULL;
    request_row *r = &m->requests[m->n_requests++];
    *r = (request_row){copy, status, 0};
    return r;
}

void rk_metrics_count_request(rk_metrics *m, const char *endpoint, int http_status) {
    if (!m) return;
    char ep[RK_METRICS_MAX_ENDPOINT + 1];
    sanitize_endpoint(endpoint, ep);
    /* bounds the "other" rows too: at most one per status 100..599 plus 0 */
    int status = (http_status >= 100 && http_status <= 599) ? http_status : 0;
    pthread_mutex_lock(&m->mu);
    request_row *r = find_request(m, ep, status);
    if (!r && m->n_regular >= RK_METRICS_MAX_REQUEST_SERIES) {
        r = find_request(m, "other", status);
        if (!r) r = append_request(m, "other", status);
    } else if (!r) {
        r = append_request(m, ep, status);
        if (r) m->n_regular++;
    }
    if (r) r->count++;
    pthread_mutex_unlock(&m->mu);
}

void rk_metrics_add(rk_metrics *m, rk_metric_counter c, uint64_t n) {
    if (!m || (unsigned)c >= RK_M_COUNTER_COUNT) return;
    pthread_mutex_lock(&m->mu);
    m->counters[c] += n;
    pthread_mutex_unlock(&m->mu);
}

void rk_metrics_set(rk_metrics *m, rk_metric_gauge g, double v) {
    if (!m || (unsigned)g >= RK_M_GAUGE_COUNT) return;
    pthread_mutex_lock(&m->mu);
    m->gauges[g] = v;
    pthread_mutex_unlock(&m->mu);
}

void rk_metrics_observe(rk_metrics *m, rk_metric_hist h, double seconds) {
    if (!m || (unsigned)h >= RK_M_HIST_COUNT || isnan(seconds)) return;
    if (seconds < 0) seconds = 0;
    const hist_desc *d = &hist_descs[h];
    int b = 0;
    while (b < d->n_bounds && seconds > d->bounds[b])
        b++; /* le: bound inclusive */
    pthread_mutex_lock(&m->mu);
    hist *s = &m->hists[h];
    s->buckets[b]++;
    s->count++;
    s->sum += seconds;
    pthread_mutex_unlock(&m->mu);
}

rk_status rk_metrics_set_kv_bytes(rk_metrics *m, const rk_metric_kv_bytes *rows, size_t n) {
    if (!m) return RK_OK;
    kv_row *copy = n ? calloc(n, sizeof *copy) : NULL;
    if (n && !copy) return RK_ERR_NO_MEMORY;
    for (size_t i = 0; i < n; i++) {
        copy[i].tier = strdup(rows[i].tier ? rows[i].tier : "");
        copy[i].codec = strdup(rows[i].codec ? rows[i].codec : "");
        copy[i].bytes = rows[i].bytes;
        if (!copy[i].tier || !copy[i].codec) {
            free_kv_rows(copy, i + 1);
            return RK_ERR_NO_MEMORY;
        }
    }
    pthread_mutex_lock(&m->mu);
    kv_row *old = m->kv;
    size_t n_old = m->n_kv;
    m->kv = copy;
    m->n_kv = n;
    pthread_mutex_unlock(&m->mu);
    free_kv_rows(old, n_old);
    return RK_OK;
}

uint64_t rk_metrics_counter(const rk_metrics *m, rk_metric_counter c) {
    if (!m || (unsigned)c >= RK_M_COUNTER_COUNT) return 0;
    pthread_mutex_lock(mutex_of(m));
    uint64_t v = m->counters[c];
    pthread_mutex_unlock(mutex_of(m));
    return v;
}

double rk_metrics_gauge(const rk_metrics *m, rk_metric_gauge g) {
    if (!m || (unsigned)g >= RK_M_GAUGE_COUNT) return 0;
    pthread_mutex_lock(mutex_of(m));
    double v = m->gauges[g];
    pthread_mutex_unlock(mutex_of(m));
    return v;
}

/* ------------------------------------------------------------------------------------------ */
/* Rendering                                                                                  */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom; /* an allocation failed: the text is incomplete and will be dropped */
} sbuf;

static int sb_reserve(sbuf *b, size_t extra) {
    if (b->oom) return 0;
    if (b->len + extra + 1 <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return 0;
    }
    b->p = p;
    b->cap = cap;
    return 1;
}

static void sb_printf(sbuf *b, const char *fmt, ...) RK_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !sb_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Appends a label value escaped as the format asks: \\, \" and \n. */
static void sb_label_value(sbuf *b, const char *s) {
    size_t n = strlen(s);
    if (!sb_reserve(b, 2 * n)) return;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\' || c == '"' || c == '\n') {
            b->p[b->len++] = '\\';
            c = c == '\n' ? 'n' : c;
        }
        b->p[b->len++] = c;
    }
    b->p[b->len] = '\0';
}

/* Formats a float value as Prometheus reads it: "+Inf", "-Inf", "NaN", integers without an
 * exponent up to 2^53, otherwise the shortest of %.15g / %.17g that reads back exactly. */
static void format_value(char buf[40], double v) {
    if (isnan(v)) {
        strcpy(buf, "NaN");
    } else if (isinf(v)) {
        strcpy(buf, v > 0 ? "+Inf" : "-Inf");
    } else if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        snprintf(buf, 40, "%.0f", v == 0 ? 0.0 : v);
    } else {
        snprintf(buf, 40, "%.15g", v);
        if (strtod(buf, NULL) != v) snprintf(buf, 40, "%.17g", v);
    }
}

static void render_header(sbuf *b, const char *name, const char *help, const char *type) {
    sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render_requests(sbuf *b, const rk_metrics *m) {
    static const char name[] = "ringkv:http_requests_total";
    render_header(b, name, "Number of HTTP requests by endpoint and status.", "counter");
    for (size_t i = 0; i < m->n_requests; i++) {
        const request_row *r = &m->requests[i];
        sb_printf(b, "%s{endpoint=\"", name);
        sb_label_value(b, r->endpoint);
        sb_printf(b, "\",status=\"%d\"} %" PRIu64 "\n", r->status, r->count);
    }
}

static void render_scalars(sbuf *b, const rk_metrics *m) {
    char v[40];
    for (int c = 0; c < RK_M_COUNTER_COUNT; c++) {
        render_header(b, counter_desc[c].name, counter_desc[c].help, "counter");
        sb_printf(b, "%s %" PRIu64 "\n", counter_desc[c].name, m->counters[c]);
    }
    for (int g = 0; g < RK_M_GAUGE_COUNT; g++) {
        render_header(b, gauge_desc[g].name, gauge_desc[g].help, "gauge");
        format_value(v, m->gauges[g]);
        sb_printf(b, "%s %s\n", gauge_desc[g].name, v);
    }
    static const char kv_name[] = "ringkv:kv_cache_bytes";
    render_header(b, kv_name, "Bytes of KV cache held by tier and codec.", "gauge");
    for (size_t i = 0; i < m->n_kv; i++) {
        sb_printf(b, "%s{tier=\"", kv_name);
        sb_label_value(b, m->kv[i].tier);
        sb_printf(b, "\",codec=\"");
        sb_label_value(b, m->kv[i].codec);
        format_value(v, m->kv[i].bytes);
        sb_printf(b, "\"} %s\n", v);
    }
}

static void render_hist(sbuf *b, const hist_desc *d, const hist *s) {
    char v[40];
    render_header(b, d->name, d->help, "histogram");
    uint64_t cum = 0;
    for (int i = 0; i < d->n_bounds; i++) {
        cum += s->buckets[i];
        format_value(v, d->bounds[i]);
        sb_printf(b, "%s_bucket{le=\"%s\"} %" PRIu64 "\n", d->name, v, cum);
    }
    cum += s->buckets[d->n_bounds];
    sb_printf(b, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", d->name, cum);
    format_value(v, s->sum);
    sb_printf(b, "%s_sum %s\n%s_count %" PRIu64 "\n", d->name, v, d->name, s->count);
}

char *rk_metrics_render(rk_metrics *m) {
    if (!m) return NULL;
    sbuf b = {0};
    pthread_mutex_lock(&m->mu);
    render_requests(&b, m);
    render_scalars(&b, m);
    for (int h = 0; h < RK_M_HIST_COUNT; h++)
        render_hist(&b, &hist_descs[h], &m->hists[h]);
    pthread_mutex_unlock(&m->mu);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
