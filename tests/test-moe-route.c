/*
 * test-moe-route.c — expert routing (model/moe.h) with hand-set router logits: which experts are
 * chosen and with what weights, for each normalisation mode (softmax then top-k, with and
 * without renormalising the k weights, with a scale), ties, extreme and NaN logits, and random
 * rows against a double-precision softmax. (That a token's experts do not depend on its batch is
 * checked on whole models by tests/python/test_moe_tiny.py.)
 */
#include <math.h>
#include <string.h>

#include "model/moe.h"
#include "test-util.h"

#define N_EXPERT 6

static const float LOGITS[N_EXPERT] = {0.5f, 2.0f, -1.0f, 1.0f, 2.0f - 1e-3f, -3.0f};

/* softmax probability of expert e in double, the test's own arithmetic */
static double softmax_p(const float *logits, int n, int e) {
    double max = logits[0], sum = 0.0;
    for (int i = 1; i < n; i++) max = logits[i] > max ? logits[i] : max;
    for (int i = 0; i < n; i++) sum += exp(logits[i] - max);
    return exp(logits[e] - max) / sum;
}

static void test_top_k_softmax(void) {
    rk_moe_routing r = {N_EXPERT, 3, false, 1.0f};
    int32_t ex[3];
    float w[3];
    rk_moe_route(&r, LOGITS, ex, w);
    /* descending: expert 1 (2.0), expert 4 (1.999), expert 3 (1.0) */
    CHECK_MSG(ex[0] == 1 && ex[1] == 4 && ex[2] == 3, "chose %d %d %d", ex[0], ex[1], ex[2]);
    for (int j = 0; j < 3; j++) {
        double want = softmax_p(LOGITS, N_EXPERT, ex[j]);
        CHECK_MSG(fabs(w[j] - want) < 1e-6, "weight %d: %.9g want %.9g (not renormalised)", j, w[j], want);
    }
    CHECK(w[0] + w[1] + w[2] < 0.95f); /* the other experts keep some mass */
}

static void test_renormalised_and_scaled(void) {
    rk_moe_routing r = {N_EXPERT, 2, true, 1.0f};
    int32_t ex[2];
    float w[2];
    rk_moe_route(&r, LOGITS, ex, w);
    CHECK(ex[0] == 1 && ex[1] == 4);
    double p1 = softmax_p(LOGITS, N_EXPERT, 1), p4 = softmax_p(LOGITS, N_EXPERT, 4);
    CHECK_MSG(fabs(w[0] - p1 / (p1 + p4)) < 1e-6 && fabs(w[1] - p4 / (p1 + p4)) < 1e-6, "%.9g %.9g", w[0], w[1]);
    CHECK(fabsf(w[0] + w[1] - 1.0f) < 1e-6f);
    /* renormalised top-k of the softmax equals the softmax over the top-k logits (Mixtral) */
    double e1 = exp((double)LOGITS[1]), e4 = exp((double)LOGITS[4]);
    CHECK(fabs(w[0] - e1 / (e1 + e4)) < 1e-6);
    r.scale = 2.5f;
    float ws[2];
    rk_moe_route(&r, LOGITS, ex, ws);
    CHECK(fabsf(ws[0] - 2.5f * w[0]) < 1e-6f && fabsf(ws[1] - 2.5f * w[1]) < 1e-6f);
}

static void test_ties_and_extremes(void) {
    const float tied[4] = {1.0f, 3.0f, 3.0f, 3.0f};
    rk_moe_routing r = {4, 2, true, 1.0f};
    int32_t ex[4];
    float w[4];
    rk_moe_route(&r, tied, ex, w);
    CHECK_MSG(ex[0] == 1 && ex[1] == 2, "ties go to the lower index: %d %d", ex[0], ex[1]);
    CHECK(fabsf(w[0] - 0.5f) < 1e-6f && fabsf(w[1] - 0.5f) < 1e-6f);
    /* huge logits do not overflow the softmax */
    const float big[4] = {1e30f, -1e30f, 88.0f, 1e30f};
    rk_moe_route(&r, big, ex, w);
    CHECK(ex[0] == 0 && ex[1] == 3 && isfinite(w[0]) && isfinite(w[1]));
    /* every expert used: each chosen once */
    r.n_expert = N_EXPERT;
    r.n_used = 4;
    rk_moe_route(&r, LOGITS, ex, w);
    int seen[N_EXPERT] = {0};
    for (int j = 0; j < 4; j++) seen[ex[j]]++;
    CHECK(seen[1] == 1 && seen[4] == 1 && seen[3] == 1 && seen[0] == 1);
}

static void test_nan_logits(void) {
    const float bad[5] = {NAN, 1.0f, NAN, 0.0f, 2.0f};
    rk_moe_routing r = {5, 3, false, 1.0f};
    int32_t ex[3];
    float w[3];
    rk_moe_route(&r, bad, ex, w);
    for (int j = 0; j < 3; j++) CHECK_MSG(ex[j] >= 0 && ex[j] < 5, "expert %d out of range", ex[j]);
    CHECK(ex[0] != ex[1] && ex[1] != ex[2] && ex[0] != ex[2]);
}

/* Random logits: the weights come out in decreasing order and equal the double-precision
 * softmax of the chosen experts, which are the k largest logits. */
static void test_random_rows(void) {
    rk_test_rng rng = {0x5eed};
    enum { N = 64, E = 16, K = 4 };
    rk_moe_routing r = {E, K, false, 1.0f};
    for (int i = 0; i < N; i++) {
        float logits[E];
        for (int e = 0; e < E; e++) logits[e] = (float)(6.0 * rk_test_rng_unif(&rng) - 3.0);
        int32_t ex[K];
        float w[K];
        rk_moe_route(&r, logits, ex, w);
        for (int j = 1; j < K; j++) CHECK(w[j] <= w[j - 1]);
        for (int j = 0; j < K; j++) {
            CHECK(fabs(w[j] - softmax_p(logits, E, ex[j])) < 1e-6);
            int larger = 0; /* experts with a larger logit than the j-th chosen */
            for (int e = 0; e < E; e++) larger += logits[e] > logits[ex[j]];
            CHECK_MSG(larger == j, "row %d: choice %d has %d larger logits", i, j, larger);
        }
    }
}

int main(void) {
    test_top_k_softmax();
    test_renormalised_and_scaled();
    test_ties_and_extremes();
    test_nan_logits();
    test_random_rows();
    return rk_test_finish("test-moe-route");
}
