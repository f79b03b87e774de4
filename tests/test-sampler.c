/*
 * test-sampler.c — the sampler (src/sched/sampler.c): parameter validation, greedy and its
 * ties, top-k = 1 equals greedy, seeded reproducibility, empirical frequencies against a known
 * softmax (with temperature, top-k, top-p, min-p), repetition penalty semantics and window,
 * and a large vocabulary checked against a brute-force reference of the kept set.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ringkv.h"
#include "test-util.h"

static rk_sampler_params plain(float temp) {
    rk_sampler_params p = rk_sampler_default_params();
    p.temperature = temp;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.repeat_penalty = 1.0f;
    return p;
}

static rk_sampler *make(const rk_sampler_params *p, int32_t n_vocab) {
    rk_sampler *s = NULL;
    rk_error err;
    CHECK_MSG(rk_sampler_create(p, n_vocab, &s, &err) == RK_OK, "%s", err.msg);
    return s;
}

/* A tiny deterministic generator for test logits (independent of the sampler's). */
static uint64_t lcg_state = 12345;
static double lcg_uniform(void) {
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(lcg_state >> 11) * 0x1.0p-53;
}
static float lcg_normal(void) {
    double u = lcg_uniform(), v = lcg_uniform();
    return (float)(sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v));
}

static void test_params(void) {
    rk_sampler_params d = rk_sampler_default_params();
    rk_sampler *s = make(&d, 10);
    rk_sampler_free(s);
    rk_sampler_free(NULL);
    struct {
        const char *what;
        rk_sampler_params p;
        int32_t n;
    } bad[] = {
        {"temperature", d, 10},   {"top_p", d, 10},          {"min_p", d, 10},
        {"min_p", d, 10},         {"repeat_penalty", d, 10}, {"repeat_penalty", d, 10},
        {"repeat_last_n", d, 10}, {"n_vocab", d, 0},         {"top_p", d, 10},
        {"temperature", d, 10},
    };
    bad[0].p.temperature = NAN;
    bad[1].p.top_p = -0.1f;
    bad[2].p.min_p = 1.5f;
    bad[3].p.min_p = NAN;
    bad[4].p.repeat_penalty = 0.0f;
    bad[5].p.repeat_penalty = NAN;
    bad[6].p.repeat_last_n = -1;
    bad[8].p.top_p = NAN;
    bad[9].p.temperature = INFINITY;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rk_error err;
        s = (rk_sampler *)&err; /* must be reset to NULL */
        rk_status st = rk_sampler_create(&bad[i].p, bad[i].n, &s, &err);
        CHECK_MSG(st == RK_ERR_INVALID_ARG && s == NULL && strstr(err.msg, bad[i].what),
                  "case %zu (%s): %d '%s'", i, bad[i].what, (int)st, err.msg);
    }
    rk_error err;
    CHECK(rk_sampler_create(NULL, 10, &s, &err) == RK_ERR_INVALID_ARG);
    /* allowed edge values */
    rk_sampler_params ok = d;
    ok.temperature = -1.0f;
    ok.top_k = -5;
    ok.top_p = 3.0f;
    ok.min_p = 1.0f;
    ok.repeat_last_n = 0;
    s = make(&ok, 3);
    rk_sampler_accept(s, 1); /* window 0: nothing recorded, no crash */
    float l[3] = {0, 1, 0};
    CHECK(rk_sampler_sample(s, l) == 1);
    CHECK(rk_sampler_sample(NULL, l) == -1 && rk_sampler_sample(s, NULL) == -1);
    rk_sampler_free(s);
}

static void test_greedy(void) {
    rk_sampler_params p = plain(0.0f);
    p.top_k = 40; /* filters cannot change the argmax */
    p.top_p = 0.5f;
    p.min_p = 0.1f;
    enum { N = 1000 };
    rk_sampler *s = make(&p, N);
    float l[N];
    for (int round = 0; round < 50; round++) {
        int best = 0;
        for (int i = 0; i < N; i++) {
            l[i] = lcg_normal();
            if (l[i] > l[best]) best = i;
        }
        CHECK(rk_sampler_sample(s, l) == best);
    }
    /* ties: the lowest id */
    for (int i = 0; i < N; i++)
        l[i] = (i == 7 || i == 3 || i == 900) ? 5.0f : 1.0f;
    CHECK(rk_sampler_sample(s, l) == 3);
    /* NaN is never chosen; +inf is */
    for (int i = 0; i < N; i++)
        l[i] = NAN;
    l[500] = -3.0f;
    CHECK(rk_sampler_sample(s, l) == 500);
    l[600] = INFINITY;
    CHECK(rk_sampler_sample(s, l) == 600);
    rk_sampler_free(s);
    /* sampling with an +inf and NaNs stays defined */
    p = plain(1.0f);
    s = make(&p, N);
    CHECK(rk_sampler_sample(s, l) == 600);
    for (int i = 0; i < N; i++)
        l[i] = -INFINITY;
    CHECK(rk_sampler_sample(s, l) == 0);
    rk_sampler_free(s);
}

static void test_top_k_1_is_greedy(void) {
    rk_sampler_params p = plain(1.5f);
    p.top_k = 1;
    enum { N = 300 };
    rk_sampler *s = make(&p, N);
    float l[N];
    for (int round = 0; round < 200; round++) {
        int best = 0;
        for (int i = 0; i < N; i++) {
            l[i] = (float)(int)(lcg_normal() * 4); /* many ties */
            if (l[i] > l[best]) best = i;
        }
        CHECK(rk_sampler_sample(s, l) == best);
    }
    rk_sampler_free(s);
}

static void test_reproducible(void) {
    rk_sampler_params p = rk_sampler_default_params();
    p.top_k = 0;
    p.repeat_penalty = 1.1f;
    enum { N = 200, STEPS = 500 };
    rk_sampler *a = make(&p, N), *b = make(&p, N);
    p.seed = 43;
    rk_sampler *c = make(&p, N);
    float l[N];
    int differ = 0;
    for (int t = 0; t < STEPS; t++) {
        for (int i = 0; i < N; i++)
            l[i] = lcg_normal();
        rk_token x = rk_sampler_sample(a, l), y = rk_sampler_sample(b, l),
                 z = rk_sampler_sample(c, l);
        CHECK(x == y && x >= 0 && x < N);
        differ += x != z;
        rk_sampler_accept(a, x);
        rk_sampler_accept(b, y);
        rk_sampler_accept(c, z);
    }
    CHECK_MSG(differ > STEPS / 10, "another seed gave nearly the same tokens (%d differ)", differ);
    rk_sampler_free(a);
    rk_sampler_free(b);
    rk_sampler_free(c);
}

/* Draws `draws` tokens and compares frequencies with `want` (n entries), within `tol`. */
static void check_freq(const char *what, const rk_sampler_params *p, const float *logits,
                       const double *want, int n, int draws, double tol) {
    rk_sampler *s = make(p, n);
    int count[16] = {0};
    for (int i = 0; i < draws; i++) {
        rk_token t = rk_sampler_sample(s, logits);
        CHECK(t >= 0 && t < n);
        if (t >= 0 && t < n) count[t]++;
    }
    for (int i = 0; i < n; i++) {
        double f = (double)count[i] / draws;
        CHECK_MSG(fabs(f - want[i]) <= tol && (want[i] > 0 || count[i] == 0),
                  "%s: token %d frequency %.4f, expected %.4f", what, i, f, want[i]);
    }
    rk_sampler_free(s);
}

static void test_distributions(void) {
    const float l4[4] = {logf(0.1f), logf(0.2f), logf(0.3f), logf(0.4f)};
    const int draws = 200000;
    const double tol = 0.006; /* > 5 standard deviations at 200k draws */
    rk_sampler_params p = plain(1.0f);
    check_freq("softmax", &p, l4, (const double[]){0.1, 0.2, 0.3, 0.4}, 4, draws, tol);

    p = plain(2.0f); /* p_i ∝ sqrt(q_i) */
    double r[4], sum = 0;
    const double q[4] = {0.1, 0.2, 0.3, 0.4};
    for (int i = 0; i < 4; i++)
        sum += (r[i] = sqrt(q[i]));
    for (int i = 0; i < 4; i++)
        r[i] /= sum;
    check_freq("temperature 2", &p, l4, r, 4, draws, tol);

    p = plain(1.0f);
    p.top_k = 2;
    check_freq("top-k 2", &p, l4, (const double[]){0, 0, 3.0 / 7, 4.0 / 7}, 4, draws, tol);

    const float l5[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    p = plain(1.0f);
    p.top_p = 0.75f; /* 0.5 < 0.75 <= 0.8: keeps {0, 1} */
    check_freq("top-p 0.75", &p, l5, (const double[]){5.0 / 8, 3.0 / 8, 0, 0}, 4, draws, tol);
    p.top_p = 0.0f;
    check_freq("top-p 0", &p, l5, (const double[]){1, 0, 0, 0}, 4, 1000, 0);
    p.top_p = 0.97f; /* 0.95 < 0.97: all four */
    check_freq("top-p 0.97", &p, l5, (const double[]){0.5, 0.3, 0.15, 0.05}, 4, draws, tol);

    p = plain(1.0f);
    p.min_p = 0.2f; /* threshold 0.1: keeps {0, 1, 2} */
    check_freq("min-p 0.2", &p, l5, (const double[]){0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0}, 4,
               draws, tol);

    /* top-p normalises over what top-k kept: top-k 3 → {0.5, 0.3, 0.15}/0.95; top-p 0.8 needs
     * 0.5/0.95 = 0.526, then 0.842 >= 0.8 → {0, 1} */
    p = plain(1.0f);
    p.top_k = 3;
    p.top_p = 0.8f;
    check_freq("top-k 3 + top-p 0.8", &p, l5, (const double[]){5.0 / 8, 3.0 / 8, 0, 0}, 4, draws,
               tol);
}

static void test_penalties(void) {
    rk_sampler_params p = plain(0.0f);
    p.repeat_penalty = 1.5f;
    p.repeat_last_n = 2;
    rk_sampler *s = make(&p, 4);
    const float pos[4] = {2.0f, 1.9f, -1.0f, -1.05f};
    CHECK(rk_sampler_sample(s, pos) == 0);
    rk_sampler_accept(s, 0); /* 2.0 / 1.5 = 1.33 < 1.9 */
    CHECK(rk_sampler_sample(s, pos) == 1);
    rk_sampler_accept(s, 2);
    rk_sampler_accept(s, 3); /* 0 left the window of 2 */
    CHECK(rk_sampler_sample(s, pos) == 0);
    rk_sampler_free(s);

    /* negative logits are multiplied */
    s = make(&p, 4);
    const float neg[4] = {-1.0f, -1.2f, -5.0f, -6.0f};
    rk_sampler_accept(s, 0); /* -1.5 < -1.2 */
    CHECK(rk_sampler_sample(s, neg) == 1);
    rk_sampler_free(s);

    /* a token repeated in the window is penalised once (2.0/1.5 = 1.33 > 1.0, not 0.89) */
    p.repeat_last_n = 8;
    s = make(&p, 4);
    const float once[4] = {2.0f, 1.0f, 0.0f, 0.0f};
    rk_sampler_accept(s, 0);
    rk_sampler_accept(s, 0);
    rk_sampler_accept(s, 0);
    rk_sampler_accept(s, -3); /* out of range ids are ignored */
    rk_sampler_accept(s, 1000);
    CHECK(rk_sampler_sample(s, once) == 0);
    /* the input logits are not modified */
    CHECK(once[0] == 2.0f);
    rk_sampler_free(s);

    /* penalty 1 is off */
    p.repeat_penalty = 1.0f;
    s = make(&p, 4);
    rk_sampler_accept(s, 0);
    CHECK(rk_sampler_sample(s, pos) == 0);
    rk_sampler_free(s);
}

static int cmp_desc(const void *a, const void *b, const float *l) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (l[x] != l[y]) return l[x] > l[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}
static const float *g_sort_logits;
static int cmp_desc_g(const void *a, const void *b) { return cmp_desc(a, b, g_sort_logits); }

/* A big vocabulary with a wide nucleus exercises the quickselects of top-k and top-p: every
 * draw must lie in the set a brute-force implementation (full sort) keeps, and draws must
 * reach deep into a large kept set. */
static void test_large_vocab(void) {
    enum { N = 20000 };
    float *l = malloc(N * sizeof *l);
    int32_t *order = malloc(N * sizeof *order);
    char *allowed = calloc(N, 1);
    int *rank = malloc(N * sizeof *rank);
    if (!l || !order || !allowed || !rank) {
        CHECK(0);
        goto done;
    }
    const struct {
        int top_k;
        float top_p, min_p;
    } cfg[] = {
        {0, 0.9f, 0.0f}, {5000, 0.5f, 0.0f}, {0, 0.95f, 0.02f}, {100, 1.0f, 0.0f}, {0, 1.0f, 0.3f},
    };
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
        for (int i = 0; i < N; i++)
            l[i] = 0.7f * lcg_normal();
        for (int i = 0; i < N; i++)
            order[i] = i;
        g_sort_logits = l;
        qsort(order, N, sizeof *order, cmp_desc_g);
        for (int i = 0; i < N; i++)
            rank[order[i]] = i;
        /* reference: top-k, then top-p over the renormalised set, then min-p */
        int n = cfg[c].top_k > 0 && cfg[c].top_k < N ? cfg[c].top_k : N;
        double z = 0, max = l[order[0]], cum = 0;
        for (int i = 0; i < n; i++)
            z += exp(l[order[i]] - max);
        if (cfg[c].top_p < 1)
            for (int i = 0; i < n; i++) {
                cum += exp(l[order[i]] - max) / z;
                if (cum >= cfg[c].top_p) {
                    n = i + 1;
                    break;
                }
            }
        if (cfg[c].min_p > 0) {
            int m = 0;
            while (m < n && l[order[m]] >= (float)max + logf(cfg[c].min_p))
                m++;
            n = m;
        }
        memset(allowed, 0, N);
        for (int i = 0; i < n; i++)
            allowed[order[i]] = 1;

        rk_sampler_params p = plain(1.0f);
        p.top_k = cfg[c].top_k;
        p.top_p = cfg[c].top_p;
        p.min_p = cfg[c].min_p;
        p.seed = c;
        rk_sampler *s = make(&p, N);
        int bad = 0, max_rank = 0;
        for (int d = 0; d < 1000; d++) {
            rk_token t = rk_sampler_sample(s, l);
            if (t < 0 || t >= N || !allowed[t]) {
                bad++;
                continue;
            }
            if (rank[t] > max_rank) max_rank = rank[t];
        }
        CHECK_MSG(bad == 0, "config %zu: %d draws outside the kept set of %d", c, bad, n);
        CHECK_MSG(n < 64 || max_rank >= 64, "config %zu: kept %d but never drew past rank %d", c, n,
                  max_rank);
        rk_sampler_free(s);
    }
done:
    free(l);
    free(order);
    free(allowed);
    free(rank);
}

int main(void) {
    test_params();
    test_greedy();
    test_top_k_1_is_greedy();
    test_reproducible();
    test_distributions();
    test_penalties();
    test_large_vocab();
    return rk_test_finish("test-sampler");
}
