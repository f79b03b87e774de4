/*
 * test-server-metrics.c — the server's Prometheus metrics (server/metrics.h). Every render is
 * parsed back by a small reader of the text exposition format 0.0.4 written here, which checks
 * the syntax line by line (`# HELP name text`, `# TYPE name type`, `name{l="v",...} value` or
 * `name value`, label values with only the escapes \\ \" \n) and that each sample belongs to a
 * family whose HELP and TYPE came first. On top of that:
 *
 *   1. a fresh object: every family present, all zero, vLLM's bucket bounds;
 *   2. counters, gauges (fractions, NaN, infinities) and request counts by endpoint and status,
 *      with label values that need escaping read back exactly, control and non-ASCII bytes
 *      replaced, long endpoints cut, statuses outside 100..599 as 0;
 *   3. the request table's cap: 300 endpoints give 256 series plus endpoint="other";
 *   4. kv_cache_bytes replaced as a whole table;
 *   5. histograms: buckets cumulative and monotone, +Inf equal to _count, _sum right, a value
 *      on a bound counted in that bucket (le is inclusive), negatives as 0, NaN ignored;
 *   6. 4 threads × 10000 observations, counter adds and request counts, rendered and parsed
 *      concurrently by a fifth thread, give exact totals (and consistent histograms in every
 *      render);
 *   7. a NULL rk_metrics is accepted everywhere.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/metrics.h"
#include "test-util.h"

/* ------------------------------------------------------------------------------------------ */
/* A reader of the text format                                                                */

#define MAX_LABELS 4
#define MAX_FAMILIES 64

typedef struct sample {
    char name[96];
    int n_labels;
    char key[MAX_LABELS][32];
    char val[MAX_LABELS][256]; /* unescaped */
    double value;
} sample;

typedef struct parsed {
    sample *s;
    int n, cap;
    char family[MAX_FAMILIES][96];
    char type[MAX_FAMILIES][16];
    int has_help[MAX_FAMILIES];
    int n_families;
} parsed;

static int is_name_char(char c, int first) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
           (!first && c >= '0' && c <= '9');
}

/* Reads a metric or label name at *p into out; 0 when there is none. */
static int read_name(const char **p, char *out, size_t size) {
    size_t n = 0;
    while (is_name_char((*p)[n], n == 0))
        n++;
    if (n == 0 || n >= size) return 0;
    memcpy(out, *p, n);
    out[n] = '\0';
    *p += n;
    return 1;
}

static int find_family(const parsed *ps, const char *name) {
    for (int i = 0; i < ps->n_families; i++)
        if (strcmp(ps->family[i], name) == 0) return i;
    return -1;
}

/* "# HELP name text" or "# TYPE name type". */
static int parse_comment(parsed *ps, const char *line) {
    const char *p = line + 2;
    int help = strncmp(p, "HELP ", 5) == 0;
    if (!help && strncmp(p, "TYPE ", 5) != 0) return 0;
    p += 5;
    char name[96];
    if (!read_name(&p, name, sizeof name) || *p != ' ') return 0;
    p++;
    int f = find_family(ps, name);
    if (f < 0) {
        if (ps->n_families == MAX_FAMILIES) return 0;
        f = ps->n_families++;
        strcpy(ps->family[f], name);
    }
    if (help) {
        if (ps->has_help[f]++ || !*p) return 0;
        return 1;
    }
    if (ps->type[f][0]) return 0; /* TYPE twice */
    if (strcmp(p, "counter") && strcmp(p, "gauge") && strcmp(p, "histogram")) return 0;
    strcpy(ps->type[f], p);
    return 1;
}

/* {k="v",...} at *p into s. */
static int parse_labels(const char **p, sample *s) {
    if (**p != '{') return 1;
    (*p)++;
    while (**p != '}') {
        if (s->n_labels == MAX_LABELS) return 0;
        int l = s->n_labels++;
        if (!read_name(p, s->key[l], sizeof s->key[l]) || (*p)[0] != '=' || (*p)[1] != '"')
            return 0;
        *p += 2;
        size_t n = 0;
        for (; **p != '"'; (*p)++) {
            char c = **p;
            if (c == '\0' || c == '\n') return 0;
            if (c == '\\') {
                c = *++*p;
                if (c == 'n')
                    c = '\n';
                else if (c != '\\' && c != '"')
                    return 0;
            }
            if (n + 1 >= sizeof s->val[l]) return 0;
            s->val[l][n++] = c;
        }
        s->val[l][n] = '\0';
        (*p)++;
        if (**p == ',')
            (*p)++;
        else if (**p != '}')
            return 0;
    }
    (*p)++;
    return 1;
}

/* The family a sample name belongs to, given the declared types. */
static int family_of(const parsed *ps, const char *name) {
    int f = find_family(ps, name);
    if (f >= 0 && strcmp(ps->type[f], "histogram") != 0) return f;
    static const char *suffix[] = {"_bucket", "_sum", "_count"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(name), k = strlen(suffix[i]);
        if (n <= k || strcmp(name + n - k, suffix[i]) != 0) continue;
        char base[96];
        memcpy(base, name, n - k);
        base[n - k] = '\0';
        f = find_family(ps, base);
        if (f >= 0 && strcmp(ps->type[f], "histogram") == 0) return f;
    }
    return -1;
}

static int parse_sample(parsed *ps, const char *line) {
    sample s;
    memset(&s, 0, sizeof s);
    const char *p = line;
    if (!read_name(&p, s.name, sizeof s.name) || !parse_labels(&p, &s) || *p != ' ') return 0;
    p++;
    char *end;
    s.value = strtod(p, &end);
    if (end == p || *end != '\0') return 0;
    int f = family_of(ps, s.name);
    if (f < 0 || !ps->has_help[f] || !ps->type[f][0]) return 0;
    if (ps->n == ps->cap) {
        ps->cap = ps->cap ? 2 * ps->cap : 256;
        ps->s = realloc(ps->s, (size_t)ps->cap * sizeof *ps->s);
    }
    ps->s[ps->n++] = s;
    return 1;
}

/* Parses a whole render; on a bad line prints it and returns 0. */
static int parse_text(const char *text, parsed *ps) {
    memset(ps, 0, sizeof *ps);
    size_t len = strlen(text);
    if (len == 0 || text[len - 1] != '\n') return 0;
    char line[1024];
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = (size_t)(nl - p);
        if (n >= sizeof line) return 0;
        memcpy(line, p, n);
        line[n] = '\0';
        int ok = line[0] == '#' ? parse_comment(ps, line) : parse_sample(ps, line);
        if (!ok) {
            fprintf(stderr, "bad exposition line: %s\n", line);
            return 0;
        }
        p = nl + 1;
    }
    return 1;
}

/* The value of the sample with this name whose labels include (k1, v1) and (k2, v2) when those
 * are not NULL; NAN when there is none. */
static double value_of(const parsed *ps, const char *name, const char *k1, const char *v1,
                       const char *k2, const char *v2) {
    for (int i = 0; i < ps->n; i++) {
        const sample *s = &ps->s[i];
        if (strcmp(s->name, name) != 0) continue;
        int hits = 0, want = (k1 != NULL) + (k2 != NULL);
        for (int l = 0; l < s->n_labels; l++) {
            hits += k1 && strcmp(s->key[l], k1) == 0 && strcmp(s->val[l], v1) == 0;
            hits += k2 && strcmp(s->key[l], k2) == 0 && strcmp(s->val[l], v2) == 0;
        }
        if (hits == want && s->n_labels == want) return s->value;
    }
    return NAN;
}

static int count_samples(const parsed *ps, const char *name) {
    int n = 0;
    for (int i = 0; i < ps->n; i++)
        n += strcmp(ps->s[i].name, name) == 0;
    return n;
}

static int render_parse(rk_metrics *m, parsed *ps) {
    char *text = rk_metrics_render(m);
    CHECK(text != NULL);
    ps->s = NULL;
    int ok = text && parse_text(text, ps);
    CHECK(ok);
    if (!ok) free(ps->s);
    free(text);
    return ok;
}

/* ------------------------------------------------------------------------------------------ */

static const char *const counter_names[] = {
    "ringkv:prompt_tokens_total",           "ringkv:generation_tokens_total",
    "ringkv:prompt_tokens_processed_total", "ringkv:prefix_tokens_reused_total",
    "ringkv:sessions_created_total",        "ringkv:sessions_shredded_total",
    "ringkv:requests_cancelled_total"};
static const char *const gauge_names[] = {"ringkv:num_requests_running",
                                          "ringkv:num_requests_waiting", "ringkv:sessions_active"};
static const char *const hist_names[] = {"ringkv:time_to_first_token_seconds",
                                         "ringkv:inter_token_latency_seconds",
                                         "ringkv:e2e_request_latency_seconds"};
static const double ttft_le[] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
                                 1,     2.5,   5,    7.5,  10,   20,   40,   80,  160,  640, 2560};
static const double itl_le[] = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5,
                                0.75, 1,     2.5,  5,     7.5, 10,   20,  40,  80};
static const double e2e_le[] = {0.3, 0.5, 0.8, 1,  1.5, 2,   2.5, 5,   10,   15,  20,
                                30,  40,  50,  60, 120, 240, 480, 960, 1920, 7680};
static const double *const hist_le[] = {ttft_le, itl_le, e2e_le};
static const int hist_n_le[] = {22, 19, 21};

/* Checks one histogram: bounds, cumulative monotone buckets, +Inf == _count; returns _count.
 * *sum receives _sum. */
static double check_hist(const parsed *ps, int h, double *sum) {
    char bucket[128], name_sum[128], name_count[128];
    snprintf(bucket, sizeof bucket, "%s_bucket", hist_names[h]);
    snprintf(name_sum, sizeof name_sum, "%s_sum", hist_names[h]);
    snprintf(name_count, sizeof name_count, "%s_count", hist_names[h]);
    CHECK(count_samples(ps, bucket) == hist_n_le[h] + 1);
    double prev = 0, prev_le = -1;
    int k = 0;
    for (int i = 0; i < ps->n; i++) {
        const sample *s = &ps->s[i];
        if (strcmp(s->name, bucket) != 0) continue;
        CHECK(s->n_labels == 1 && strcmp(s->key[0], "le") == 0);
        double le = strtod(s->val[0], NULL);
        CHECK(le > prev_le);
        if (k < hist_n_le[h])
            CHECK_MSG(le == hist_le[h][k], "%s bucket %d le %s", bucket, k, s->val[0]);
        else
            CHECK(strcmp(s->val[0], "+Inf") == 0);
        CHECK_MSG(s->value >= prev, "%s: bucket le=%s below the one before", bucket, s->val[0]);
        prev = s->value;
        prev_le = le;
        k++;
    }
    double count = value_of(ps, name_count, NULL, NULL, NULL, NULL);
    CHECK_MSG(prev == count, "%s: +Inf %g, _count %g", hist_names[h], prev, count);
    *sum = value_of(ps, name_sum, NULL, NULL, NULL, NULL);
    return count;
}

static double bucket_value(const parsed *ps, int h, const char *le) {
    char bucket[128];
    snprintf(bucket, sizeof bucket, "%s_bucket", hist_names[h]);
    return value_of(ps, bucket, "le", le, NULL, NULL);
}

static void test_fresh(void) {
    rk_metrics *m;
    rk_error err;
    CHECK(rk_metrics_create(&m, &err) == RK_OK);
    parsed ps;
    if (!render_parse(m, &ps)) return;
    for (int c = 0; c < RK_M_COUNTER_COUNT; c++) {
        CHECK(value_of(&ps, counter_names[c], NULL, NULL, NULL, NULL) == 0);
        CHECK(strcmp(ps.type[find_family(&ps, counter_names[c])], "counter") == 0);
    }
    for (int g = 0; g < RK_M_GAUGE_COUNT; g++)
        CHECK(value_of(&ps, gauge_names[g], NULL, NULL, NULL, NULL) == 0);
    for (int h = 0; h < RK_M_HIST_COUNT; h++) {
        double sum, count = check_hist(&ps, h, &sum);
        CHECK(count == 0 && sum == 0);
        CHECK(strcmp(ps.type[find_family(&ps, hist_names[h])], "histogram") == 0);
    }
    /* label families have their HELP and TYPE even with no series yet */
    CHECK(find_family(&ps, "ringkv:http_requests_total") >= 0);
    CHECK(find_family(&ps, "ringkv:kv_cache_bytes") >= 0);
    CHECK(ps.n_families == RK_M_COUNTER_COUNT + RK_M_GAUGE_COUNT + RK_M_HIST_COUNT + 2);
    free(ps.s);
    rk_metrics_free(m);
}

static void test_values_and_labels(void) {
    rk_metrics *m;
    rk_error err;
    CHECK(rk_metrics_create(&m, &err) == RK_OK);
    for (int c = 0; c < RK_M_COUNTER_COUNT; c++)
        rk_metrics_add(m, c, 1000 + (uint64_t)c);
    rk_metrics_add(m, RK_M_PROMPT_TOKENS, 5);
    rk_metrics_add(m, RK_M_COUNTER_COUNT, 5); /* ignored */
    rk_metrics_set(m, RK_M_REQUESTS_RUNNING, 3);
    rk_metrics_set(m, RK_M_REQUESTS_WAITING, 0.5);
    rk_metrics_set(m, RK_M_SESSIONS_ACTIVE, 1e20);
    CHECK(rk_metrics_counter(m, RK_M_PROMPT_TOKENS) == 1005);
    CHECK(rk_metrics_counter(m, RK_M_COUNTER_COUNT) == 0);
    CHECK(rk_metrics_gauge(m, RK_M_REQUESTS_WAITING) == 0.5);
    rk_metrics_count_request(m, "/v1/chat/completions", 200);
    rk_metrics_count_request(m, "/v1/chat/completions", 200);
    rk_metrics_count_request(m, "/v1/chat/completions", 401);
    rk_metrics_count_request(m, "/v1/a\"b\\c\nd", 404);
    rk_metrics_count_request(m, "/caf\xC3\xA9\t", 404);
    rk_metrics_count_request(m, "/x", 42);
    rk_metrics_count_request(m, NULL, 500);
    char longp[300];
    memset(longp, 'p', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    rk_metrics_count_request(m, longp, 200);
    parsed ps;
    if (!render_parse(m, &ps)) return;
    CHECK(value_of(&ps, "ringkv:prompt_tokens_total", NULL, NULL, NULL, NULL) == 1005);
    for (int c = 1; c < RK_M_COUNTER_COUNT; c++)
        CHECK(value_of(&ps, counter_names[c], NULL, NULL, NULL, NULL) == 1000 + c);
    CHECK(value_of(&ps, gauge_names[0], NULL, NULL, NULL, NULL) == 3);
    CHECK(value_of(&ps, gauge_names[1], NULL, NULL, NULL, NULL) == 0.5);
    CHECK(value_of(&ps, gauge_names[2], NULL, NULL, NULL, NULL) == 1e20);
    const char *req = "ringkv:http_requests_total";
    CHECK(value_of(&ps, req, "endpoint", "/v1/chat/completions", "status", "200") == 2);
    CHECK(value_of(&ps, req, "endpoint", "/v1/chat/completions", "status", "401") == 1);
    CHECK(value_of(&ps, req, "endpoint", "/v1/a\"b\\c\nd", "status", "404") == 1);
    CHECK(value_of(&ps, req, "endpoint", "/caf???", "status", "404") == 1);
    CHECK(value_of(&ps, req, "endpoint", "/x", "status", "0") == 1);
    CHECK(value_of(&ps, req, "endpoint", "other", "status", "500") == 1);
    longp[RK_METRICS_MAX_ENDPOINT] = '\0';
    CHECK(value_of(&ps, req, "endpoint", longp, "status", "200") == 1);
    CHECK(count_samples(&ps, req) == 7);
    free(ps.s);

    /* special gauge values render as the format spells them */
    rk_metrics_set(m, RK_M_REQUESTS_RUNNING, NAN);
    rk_metrics_set(m, RK_M_REQUESTS_WAITING, INFINITY);
    rk_metrics_set(m, RK_M_SESSIONS_ACTIVE, -INFINITY);
    char *text = rk_metrics_render(m);
    CHECK(strstr(text, "\nringkv:num_requests_running NaN\n") != NULL);
    CHECK(strstr(text, "\nringkv:num_requests_waiting +Inf\n") != NULL);
    CHECK(strstr(text, "\nringkv:sessions_active -Inf\n") != NULL);
    CHECK(strstr(text, "endpoint=\"/v1/a\\\"b\\\\c\\nd\"") != NULL); /* escaped on the wire */
    free(text);
    rk_metrics_free(m);
}

static void test_request_cap(void) {
    rk_metrics *m;
    rk_error err;
    CHECK(rk_metrics_create(&m, &err) == RK_OK);
    char ep[32];
    for (int i = 0; i < 300; i++) {
        snprintf(ep, sizeof ep, "/probe/%d", i);
        rk_metrics_count_request(m, ep, 404);
        rk_metrics_count_request(m, ep, 404);
    }
    rk_metrics_count_request(m, "/probe/7", 404); /* an existing pair still counts */
    rk_metrics_count_request(m, "/probe/7", 200); /* a new pair folds */
    rk_metrics_count_request(m, "/probe/299", 404);
    parsed ps;
    if (!render_parse(m, &ps)) return;
    const char *req = "ringkv:http_requests_total";
    CHECK(count_samples(&ps, req) == RK_METRICS_MAX_REQUEST_SERIES + 2);
    CHECK(value_of(&ps, req, "endpoint", "/probe/7", "status", "404") == 3);
    CHECK(value_of(&ps, req, "endpoint", "/probe/255", "status", "404") == 2);
    CHECK(isnan(value_of(&ps, req, "endpoint", "/probe/256", "status", "404")));
    CHECK(value_of(&ps, req, "endpoint", "other", "status", "404") == 2 * 44 + 1);
    CHECK(value_of(&ps, req, "endpoint", "other", "status", "200") == 1);
    double total = 0;
    for (int i = 0; i < ps.n; i++)
        if (strcmp(ps.s[i].name, req) == 0) total += ps.s[i].value;
    CHECK(total == 603);
    free(ps.s);
    rk_metrics_free(m);
}

static void test_kv_bytes(void) {
    rk_metrics *m;
    rk_error err;
    CHECK(rk_metrics_create(&m, &err) == RK_OK);
    rk_metric_kv_bytes rows[] = {
        {"hot", "f16", 1048576}, {"warm", "tq3.5", 2.5e9}, {"disk", "we\"ird\\", 7}};
    CHECK(rk_metrics_set_kv_bytes(m, rows, 3) == RK_OK);
    parsed ps;
    if (!render_parse(m, &ps)) return;
    const char *kv = "ringkv:kv_cache_bytes";
    CHECK(value_of(&ps, kv, "tier", "hot", "codec", "f16") == 1048576);
    CHECK(value_of(&ps, kv, "tier", "warm", "codec", "tq3.5") == 2.5e9);
    CHECK(value_of(&ps, kv, "tier", "disk", "codec", "we\"ird\\") == 7);
    free(ps.s);
    rk_metric_kv_bytes next[] = {{"hot", "tq3.5", 10}, {NULL, NULL, 1}};
    CHECK(rk_metrics_set_kv_bytes(m, next, 2) == RK_OK);
    if (!render_parse(m, &ps)) return;
    CHECK(count_samples(&ps, kv) == 2);
    CHECK(value_of(&ps, kv, "tier", "hot", "codec", "tq3.5") == 10);
    CHECK(value_of(&ps, kv, "tier", "", "codec", "") == 1);
    free(ps.s);
    CHECK(rk_metrics_set_kv_bytes(m, NULL, 0) == RK_OK);
    if (!render_parse(m, &ps)) return;
    CHECK(count_samples(&ps, kv) == 0);
    free(ps.s);
    rk_metrics_free(m);
}

static void test_histograms(void) {
    rk_metrics *m;
    rk_error err;
    CHECK(rk_metrics_create(&m, &err) == RK_OK);
    static const double obs[] = {0.0005, 0.001, 0.0011, 0.1, 0.3, 2.5, 3000, -1, 0.05};
    double want_sum = 0;
    for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++) {
        rk_metrics_observe(m, RK_M_TTFT, obs[i]);
        want_sum += obs[i] > 0 ? obs[i] : 0;
    }
    rk_metrics_observe(m, RK_M_TTFT, NAN);       /* ignored */
    rk_metrics_observe(m, RK_M_HIST_COUNT, 1.0); /* ignored */
    rk_metrics_observe(m, RK_M_ITL, 0.02);
    rk_metrics_observe(m, RK_M_E2E, 1e6);
    parsed ps;
    if (!render_parse(m, &ps)) return;
    double sum, count = check_hist(&ps, RK_M_TTFT, &sum);
    CHECK(count == 9);
    CHECK_MSG(fabs(sum - want_sum) < 1e-9, "sum %.17g, want %.17g", sum, want_sum);
    CHECK(bucket_value(&ps, RK_M_TTFT, "0.001") == 3); /* -1 (as 0), 0.0005, 0.001 */
    CHECK(bucket_value(&ps, RK_M_TTFT, "0.005") == 4);
    CHECK(bucket_value(&ps, RK_M_TTFT, "0.06") == 5);
    CHECK(bucket_value(&ps, RK_M_TTFT, "0.1") == 6);
    CHECK(bucket_value(&ps, RK_M_TTFT, "0.25") == 6);
    CHECK(bucket_value(&ps, RK_M_TTFT, "0.5") == 7);
    CHECK(bucket_value(&ps, RK_M_TTFT, "2.5") == 8);
    CHECK(bucket_value(&ps, RK_M_TTFT, "2560") == 8);
    CHECK(bucket_value(&ps, RK_M_TTFT, "+Inf") == 9);
    count = check_hist(&ps, RK_M_ITL, &sum);
    CHECK(count == 1 && sum == 0.02 && bucket_value(&ps, RK_M_ITL, "0.01") == 0 &&
          bucket_value(&ps, RK_M_ITL, "0.025") == 1);
    count = check_hist(&ps, RK_M_E2E, &sum);
    CHECK(count == 1 && sum == 1e6 && bucket_value(&ps, RK_M_E2E, "7680") == 0);
    free(ps.s);
    rk_metrics_free(m);
}

#define N_THREADS 4
#define N_OBS 10000

static void *observer(void *p) {
    rk_metrics *m = p;
    for (int i = 0; i < N_OBS; i++) {
        rk_metrics_observe(m, RK_M_ITL, (i % 100) / 1000.0);
        rk_metrics_observe(m, RK_M_TTFT, 0.5);
        rk_metrics_add(m, RK_M_GENERATION_TOKENS, 1);
        rk_metrics_count_request(m, i % 2 ? "/v1/completions" : "/v1/chat/completions", 200);
        rk_metrics_set(m, RK_M_REQUESTS_RUNNING, i);
    }
    return NULL;
}

typedef struct scraper_arg {
    rk_metrics *m;
    atomic_int stop;
    int renders, bad;
} scraper_arg;

static void *scraper(void *p) {
    scraper_arg *a = p;
    while (!atomic_load(&a->stop)) {
        parsed ps;
        ps.s = NULL;
        char *text = rk_metrics_render(a->m);
        if (!text || !parse_text(text, &ps)) {
            a->bad++;
        } else {
            double sum;
            double c0 =
                value_of(&ps, "ringkv:time_to_first_token_seconds_count", NULL, NULL, NULL, NULL);
            a->bad += check_hist(&ps, RK_M_TTFT, &sum) != c0 || sum != 0.5 * c0;
            a->renders++;
        }
        free(ps.s);
        free(text);
    }
    return NULL;
}

static void test_concurrency(void) {
    rk_metrics *m;
    rk_error err;
    CHECK(rk_metrics_create(&m, &err) == RK_OK);
    pthread_t t[N_THREADS], s;
    scraper_arg sa = {.m = m, .renders = 0, .bad = 0};
    atomic_init(&sa.stop, 0);
    pthread_create(&s, NULL, scraper, &sa);
    for (int i = 0; i < N_THREADS; i++)
        pthread_create(&t[i], NULL, observer, m);
    for (int i = 0; i < N_THREADS; i++)
        pthread_join(t[i], NULL);
    atomic_store(&sa.stop, 1);
    pthread_join(s, NULL);
    CHECK_MSG(sa.bad == 0, "%d of %d concurrent renders inconsistent", sa.bad, sa.renders);
    CHECK(rk_metrics_counter(m, RK_M_GENERATION_TOKENS) == N_THREADS * N_OBS);
    parsed ps;
    if (!render_parse(m, &ps)) return;
    double sum, count = check_hist(&ps, RK_M_ITL, &sum);
    CHECK(count == N_THREADS * N_OBS);
    CHECK(bucket_value(&ps, RK_M_ITL, "0.01") == N_THREADS * (N_OBS / 100) * 11); /* 0..0.010 */
    double want = N_THREADS * (N_OBS / 100) * (99 * 100 / 2) / 1000.0;
    CHECK_MSG(fabs(sum - want) < 1e-6, "sum %.17g want %.17g", sum, want);
    count = check_hist(&ps, RK_M_TTFT, &sum);
    CHECK(count == N_THREADS * N_OBS && sum == 0.5 * N_THREADS * N_OBS);
    const char *req = "ringkv:http_requests_total";
    CHECK(value_of(&ps, req, "endpoint", "/v1/completions", "status", "200") ==
          N_THREADS * N_OBS / 2);
    CHECK(value_of(&ps, req, "endpoint", "/v1/chat/completions", "status", "200") ==
          N_THREADS * N_OBS / 2);
    free(ps.s);
    rk_metrics_free(m);
}

static void test_null(void) {
    rk_metrics_free(NULL);
    rk_metrics_count_request(NULL, "/x", 200);
    rk_metrics_add(NULL, RK_M_PROMPT_TOKENS, 1);
    rk_metrics_set(NULL, RK_M_SESSIONS_ACTIVE, 1);
    rk_metrics_observe(NULL, RK_M_E2E, 1);
    CHECK(rk_metrics_set_kv_bytes(NULL, NULL, 0) == RK_OK);
    CHECK(rk_metrics_counter(NULL, RK_M_PROMPT_TOKENS) == 0);
    CHECK(rk_metrics_gauge(NULL, RK_M_SESSIONS_ACTIVE) == 0);
    CHECK(rk_metrics_render(NULL) == NULL);
}

int main(void) {
    test_fresh();
    test_values_and_labels();
    test_request_cap();
    test_kv_bytes();
    test_histograms();
    test_concurrency();
    test_null();
    return rk_test_finish("test-server-metrics");
}
