/*
 * test-kv-policy.c — the placement policy of the tiered KV cache (kv-policy.h) on synthetic
 * access traces:
 *
 *   1. decay: recorded mass halves every mass_half_life steps (1e-6 relative), accumulates,
 *      and does not decay with a non-positive half-life; shares are clamped;
 *   2. pinned: sinks and the recent window are never ranked for demotion and always planned in
 *      RAM; pinned pages over the budget are RK_ERR_NO_MEMORY naming both byte counts;
 *   3. needle: a page with high attention mass stays in RAM under pressure while pages with tiny
 *      mass go first; once it stops receiving mass it cools within ten half-lives;
 *   4. recency: with equal mass the page unused for longest goes first (sparse-mode trace);
 *   5. promote on use: a cold page that is read and gets mass ranks above the others;
 *   6. determinism: ties by id, then position; the same trace gives the same plan;
 *   7. a simulated cache: a 2000-step trace over 200 pages (Zipf heavy hitters, a drifting
 *      locality window, sinks and the recent window) replayed with RAM for 30% of the pages;
 *      misses of this policy vs LRU vs random are printed, and this policy must not miss more
 *      than LRU.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/kv-policy.h"
#include "test-util.h"

#define NP 20 /* pages of the small traces */


/* entries[i] = page i of one layer of n pages, id = i. */
static void layer_entries(rk_kv_policy_entry *e, const rk_kv_page_heat *heat, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        e[i] = (rk_kv_policy_entry){i, i, n, &heat[i], 0.0};
}

static int64_t coldest(const rk_kv_page_heat *heat, int64_t n, int64_t step,
                       const rk_kv_policy_params *p) {
    rk_kv_policy_entry e[NP];
    int64_t order[NP];
    layer_entries(e, heat, n);
    return rk_kv_policy_rank_coldest(e, n, step, p, order) > 0 ? order[0] : -1;
}

static void test_decay(void) {
    rk_kv_policy_params p = rk_kv_policy_default_params();
    p.recency_weight = 0.0;
    rk_kv_page_heat h;
    rk_kv_heat_init(&h);
    CHECK(h.last_use == -1 && h.mass == 0.0f);
    rk_kv_heat_record(&h, 10, 0.8f, &p);
    const double s0 = rk_kv_heat_score(&h, 10, &p);
    const double s1 = rk_kv_heat_score(&h, 10 + 64, &p);
    const double s2 = rk_kv_heat_score(&h, 10 + 128, &p);
    const double s_half = rk_kv_heat_score(&h, 10 + 32, &p);
    CHECK_MSG(fabs(s0 - 0.8) < 1e-6 * 0.8, "%.9g", s0);
    CHECK_MSG(fabs(s1 - 0.4) < 1e-6 * 0.4, "%.9g", s1);
    CHECK_MSG(fabs(s2 - 0.2) < 1e-6 * 0.2, "%.9g", s2);
    CHECK_MSG(fabs(s_half - 0.8 / sqrt(2.0)) < 1e-6 * s_half, "%.9g", s_half);
    /* a second use adds to the decayed mass; an earlier one is decayed before it is added */
    rk_kv_heat_record(&h, 10 + 64, 0.5f, &p);
    CHECK(h.last_use == 74 && h.mass_step == 74);
    CHECK(fabs(rk_kv_heat_score(&h, 74, &p) - 0.9) < 1e-6);
    rk_kv_heat_record(&h, 10, 0.8f, &p);
    CHECK(h.last_use == 74);
    CHECK(fabs(rk_kv_heat_score(&h, 74, &p) - 1.3) < 1e-6);
    /* shares are clamped to [0, 1]; NaN counts as 0 */
    rk_kv_heat_init(&h);
    rk_kv_heat_record(&h, 0, 7.0f, &p);
    rk_kv_heat_record(&h, 0, -3.0f, &p);
    rk_kv_heat_record(&h, 0, NAN, &p);
    CHECK(h.mass == 1.0f);
    /* no half-life: no decay */
    p.mass_half_life = 0.0;
    CHECK(rk_kv_heat_score(&h, 1000000, &p) == 1.0);
    /* the recency term: 0.01 per step of age by default, never-used is one step older */
    p = rk_kv_policy_default_params();
    rk_kv_page_heat never, zero;
    rk_kv_heat_init(&never);
    memset(&zero, 0, sizeof zero);
    CHECK(fabs(rk_kv_heat_score(&never, 100, &p) + 1.01) < 1e-12);
    CHECK(fabs(rk_kv_heat_score(&zero, 100, &p) + 1.00) < 1e-12);
    CHECK(isfinite(rk_kv_heat_score(NULL, 5, &p)));
}

static void test_pinned(void) {
    rk_kv_policy_params p = rk_kv_policy_default_params(); /* 1 sink, 2 recent */
    int pinned[NP];
    for (int i = 0; i < NP; i++)
        pinned[i] = rk_kv_policy_pinned(i, NP, &p);
    CHECK(pinned[0] && pinned[NP - 1] && pinned[NP - 2]);
    for (int i = 1; i < NP - 2; i++)
        CHECK(!pinned[i]);
    CHECK(!rk_kv_policy_pinned(-1, NP, &p) && !rk_kv_policy_pinned(NP, NP, &p));
    CHECK(!rk_kv_policy_pinned(-1, 0, &p));
    p.recent_pages = 0; /* acts as 1 */
    CHECK(rk_kv_policy_pinned(NP - 1, NP, &p) && !rk_kv_policy_pinned(NP - 2, NP, &p));
    p = rk_kv_policy_default_params();

    /* the pinned pages are never used, every other page is hot: still planned in RAM */
    rk_kv_page_heat heat[NP];
    for (int i = 0; i < NP; i++) {
        rk_kv_heat_init(&heat[i]);
        if (!pinned[i])
            for (int s = 0; s < 50; s++)
                rk_kv_heat_record(&heat[i], s, 0.9f, &p);
    }
    rk_kv_policy_entry e[NP];
    size_t bytes[NP];
    uint8_t in_ram[NP];
    int64_t order[NP];
    layer_entries(e, heat, NP);
    for (int i = 0; i < NP; i++)
        bytes[i] = 1000;
    const int64_t m = rk_kv_policy_rank_coldest(e, NP, 50, &p, order);
    CHECK(m == NP - 3);
    for (int64_t k = 0; k < m; k++)
        CHECK(!pinned[order[k]]);
    rk_error err;
    CHECK(rk_kv_policy_plan(e, bytes, NP, 3000, 50, &p, in_ram, order, &err) == RK_OK);
    for (int i = 0; i < NP; i++)
        CHECK(in_ram[i] == pinned[i]);
    CHECK(rk_kv_policy_plan(e, bytes, NP, 5999, 50, &p, in_ram, order, &err) == RK_OK);
    int kept = 0;
    for (int i = 0; i < NP; i++)
        kept += in_ram[i];
    CHECK(kept == 5 && in_ram[0] && in_ram[NP - 1] && in_ram[NP - 2]);

    /* two layers in one plan: each layer's own sinks and recent pages */
    rk_kv_policy_entry two[2 * NP];
    for (int i = 0; i < 2 * NP; i++)
        two[i] = (rk_kv_policy_entry){i, i % 10, 10, &heat[i % NP], 0.0};
    size_t bytes2[2 * NP];
    uint8_t in2[2 * NP];
    int64_t order2[2 * NP];
    for (int i = 0; i < 2 * NP; i++)
        bytes2[i] = 1;
    CHECK(rk_kv_policy_plan(two, bytes2, 2 * NP, 12, 50, &p, in2, order2, NULL) == RK_OK);
    for (int i = 0; i < 2 * NP; i++) {
        const int pin = i % 10 == 0 || i % 10 >= 8;
        CHECK(!pin || in2[i]);
    }

    /* the pinned pages alone exceed the budget: a clear error */
    err.code = RK_OK;
    CHECK(rk_kv_policy_plan(e, bytes, NP, 2999, 50, &p, in_ram, order, &err) == RK_ERR_NO_MEMORY);
    CHECK(err.code == RK_ERR_NO_MEMORY);
    CHECK_MSG(strstr(err.msg, "3000 bytes") && strstr(err.msg, "2999 bytes"), "%s", err.msg);
    printf("over budget: %s\n", err.msg);
    CHECK(rk_kv_policy_plan(e, bytes, -1, 1, 0, &p, in_ram, order, &err) == RK_ERR_INVALID_ARG);
    CHECK(rk_kv_policy_plan(NULL, NULL, 0, 0, 0, &p, NULL, NULL, &err) == RK_OK);
}

/* Exact mode (every page read every step): page 5 takes 0.9 of some head's mass, the others
 * 0.01; then it drops to 0.001 while the others go on. */
static void test_needle(void) {
    const rk_kv_policy_params p = rk_kv_policy_default_params();
    rk_kv_page_heat heat[NP];
    for (int i = 0; i < NP; i++)
        rk_kv_heat_init(&heat[i]);
    rk_kv_policy_entry e[NP];
    size_t bytes[NP];
    uint8_t in_ram[NP];
    int64_t order[NP];
    layer_entries(e, heat, NP);
    for (int i = 0; i < NP; i++)
        bytes[i] = 100;
    int64_t step = 0;
    for (; step < 200; step++)
        for (int i = 0; i < NP; i++)
            rk_kv_heat_record(&heat[i], step, i == 5 ? 0.9f : 0.01f, &p);
    /* room for the 3 pinned pages and 2 more: the needle and the hottest tiny one (ties: id) */
    CHECK(rk_kv_policy_plan(e, bytes, NP, 500, step, &p, in_ram, order, NULL) == RK_OK);
    CHECK(in_ram[5] && order[NP - 4] == 5);
    CHECK(order[0] == 1); /* tiny-mass pages go first, lowest id first */
    const int64_t cooled = step;
    int64_t needle_in_ram_until = -1;
    for (; step < cooled + 640; step++) {
        for (int i = 0; i < NP; i++)
            rk_kv_heat_record(&heat[i], step, i == 5 ? 0.001f : 0.01f, &p);
        CHECK(rk_kv_policy_plan(e, bytes, NP, 400, step + 1, &p, in_ram, order, NULL) == RK_OK);
        if (in_ram[5]) needle_in_ram_until = step;
    }
    /* 0.9 · 92 ≈ 83 of mass has to fall below the others' 0.92: about 6.5 half-lives */
    printf("needle: stays in RAM for %lld steps (%.1f half-lives) after its mass stops\n",
           (long long)(needle_in_ram_until - cooled + 1),
           (double)(needle_in_ram_until - cooled + 1) / p.mass_half_life);
    CHECK(needle_in_ram_until >= cooled + 3 * 64); /* it survives three half-lives */
    CHECK(needle_in_ram_until < cooled + 10 * 64); /* and cools within ten */
    CHECK(coldest(heat, NP, step, &p) == 5);       /* now demoted before the pages still used */
}

/* Sparse mode: page i of 1..16 is read (share 0.2 or 0) only at step 3·i; the later read wins.
 * Then equal mass and different last use: recency alone decides. */
static void test_recency(void) {
    const rk_kv_policy_params p = rk_kv_policy_default_params();
    for (int variant = 0; variant < 2; variant++) {
        rk_kv_page_heat heat[NP];
        for (int i = 0; i < NP; i++)
            rk_kv_heat_init(&heat[i]);
        const int perm[] = {9, 3, 14, 1, 12, 7, 16, 5, 10, 2, 15, 8, 4, 13, 11, 6};
        for (int k = 0; k < 16; k++)
            rk_kv_heat_record(&heat[perm[k]], 3 * k, variant ? 0.0f : 0.2f, &p);
        rk_kv_policy_entry e[NP];
        int64_t order[NP];
        layer_entries(e, heat, NP);
        const int64_t m = rk_kv_policy_rank_coldest(e, NP, 60, &p, order);
        CHECK(m == 17 && order[0] == 17); /* never used */
        for (int k = 0; k < 16; k++)
            CHECK_MSG(order[k + 1] == perm[k], "variant %d k %d", variant, k);
    }
    rk_kv_page_heat a = {10, 0.5f, 40}, b = {40, 0.5f, 40};
    CHECK(rk_kv_heat_score(&a, 50, &p) < rk_kv_heat_score(&b, 50, &p));
}

/* All pages were used with some mass in steps 0 .. 20; page 3 only at step 0. */
static void test_promote(void) {
    const rk_kv_policy_params p = rk_kv_policy_default_params();
    rk_kv_page_heat heat[NP];
    for (int i = 0; i < NP; i++) {
        rk_kv_heat_init(&heat[i]);
        for (int s = 0; s <= (i == 3 ? 0 : 20); s++)
            rk_kv_heat_record(&heat[i], s, 0.1f, &p);
    }
    CHECK(coldest(heat, NP, 101, &p) == 3);
    rk_kv_policy_entry e[NP];
    size_t bytes[NP];
    uint8_t in_ram[NP];
    int64_t order[NP];
    layer_entries(e, heat, NP);
    for (int i = 0; i < NP; i++)
        bytes[i] = 1;
    CHECK(rk_kv_policy_plan(e, bytes, NP, 6, 101, &p, in_ram, order, NULL) == RK_OK);
    CHECK(!in_ram[3]);
    rk_kv_heat_record(&heat[3], 101, 0.6f, &p); /* used again, with mass */
    const int64_t m = rk_kv_policy_rank_coldest(e, NP, 101, &p, order);
    CHECK(order[m - 1] == 3);
    CHECK(rk_kv_policy_plan(e, bytes, NP, 4, 101, &p, in_ram, order, NULL) == RK_OK);
    CHECK(in_ram[3]);
    /* a read without mass still promotes past pages not read for long */
    rk_kv_page_heat old = {0, 0.0f, 0}, fresh = {0, 0.0f, 0};
    rk_kv_heat_record(&fresh, 500, 0.0f, &p);
    CHECK(rk_kv_heat_score(&fresh, 501, &p) > rk_kv_heat_score(&old, 501, &p));
}

static void test_determinism(void) {
    const rk_kv_policy_params p = rk_kv_policy_default_params();
    /* equal heat: ids (not positions) order the ranking; equal ids fall back to positions */
    rk_kv_page_heat same;
    rk_kv_heat_init(&same);
    rk_kv_policy_entry e[8];
    const int64_t ids[8] = {70, 20, 50, 20, 10, 60, 30, 40};
    for (int i = 0; i < 8; i++)
        e[i] = (rk_kv_policy_entry){ids[i], -1, 0, &same, 0.0};
    int64_t order[8];
    CHECK(rk_kv_policy_rank_coldest(e, 8, 9, &p, order) == 8);
    const int64_t want[8] = {4, 1, 3, 6, 7, 2, 5, 0};
    for (int i = 0; i < 8; i++)
        CHECK_MSG(order[i] == want[i], "rank %d: %lld", i, (long long)order[i]);

    /* the same random trace twice: identical plans at every step */
    uint8_t plans[2][50][NP];
    for (int run = 0; run < 2; run++) {
        rk_test_rng r = {0x9E3779B97F4A7C15ULL};
        rk_kv_page_heat heat[NP];
        for (int i = 0; i < NP; i++)
            rk_kv_heat_init(&heat[i]);
        rk_kv_policy_entry en[NP];
        size_t bytes[NP];
        int64_t ord[NP];
        layer_entries(en, heat, NP);
        for (int i = 0; i < NP; i++)
            bytes[i] = 1 + rk_test_rng_next(&r) % 3;
        for (int s = 0; s < 50; s++) {
            for (int k = 0; k < 4; k++)
                rk_kv_heat_record(&heat[rk_test_rng_next(&r) % NP], s, (float)(rk_test_rng_unif(&r) < 0.5 ? 0.25 : 0.0),
                                  &p);
            CHECK(rk_kv_policy_plan(en, bytes, NP, 15, s, &p, plans[run][s], ord, NULL) == RK_OK);
        }
    }
    CHECK(memcmp(plans[0], plans[1], sizeof plans[0]) == 0);
}

/* --- the simulated cache ---------------------------------------------------------------- */

#define SIM_PAGES 200
#define SIM_STEPS 2000
#define SIM_RAM 60 /* 30% of the pages */
#define SIM_MAX_READS 24
#define SIM_ZIPF_DRAWS 6 /* heavy hitters read per step */
#define SIM_WINDOW 6     /* pages of the drifting locality window */
#define SIM_DRIFT 25     /* steps per page the window moves */

typedef struct sim_trace {
    int n[SIM_STEPS];
    int page[SIM_STEPS][SIM_MAX_READS];
    float share[SIM_STEPS][SIM_MAX_READS];
} sim_trace;

static void trace_read(sim_trace *t, int s, int page, float share) {
    for (int k = 0; k < t->n[s]; k++)
        if (t->page[s][k] == page) {
            if (share > t->share[s][k]) t->share[s][k] = share;
            return;
        }
    t->page[s][t->n[s]] = page;
    t->share[s][t->n[s]++] = share;
}

/* Each step reads the sink page, the two newest pages, SIM_ZIPF_DRAWS pages drawn from a Zipf
 * (s = 1) law over a fixed random permutation of the middle pages, and a window of SIM_WINDOW
 * pages that drifts one page every SIM_DRIFT steps. Heavy hitters get shares in [0.1, 0.6],
 * window pages [0.05, 0.3]: real but not oracle-like, so frequency has to be learnt. */
static void sim_make_trace(sim_trace *t, uint64_t seed) {
    rk_test_rng r = {seed};
    const int mid = SIM_PAGES - 3; /* pages 1 .. SIM_PAGES-3 */
    int perm[SIM_PAGES];
    double cdf[SIM_PAGES];
    for (int i = 0; i < mid; i++)
        perm[i] = 1 + i;
    for (int i = mid - 1; i > 0; i--) {
        const int j = (int)(rk_test_rng_next(&r) % (uint64_t)(i + 1)), x = perm[i];
        perm[i] = perm[j];
        perm[j] = x;
    }
    double sum = 0.0;
    for (int i = 0; i < mid; i++)
        cdf[i] = (sum += 1.0 / (i + 1));
    for (int s = 0; s < SIM_STEPS; s++) {
        t->n[s] = 0;
        trace_read(t, s, 0, 0.5f);
        trace_read(t, s, SIM_PAGES - 1, 0.3f);
        trace_read(t, s, SIM_PAGES - 2, 0.2f);
        for (int k = 0; k < SIM_ZIPF_DRAWS; k++) {
            const double u = rk_test_rng_unif(&r) * sum;
            int lo = 0, hi = mid - 1;
            while (lo < hi) {
                const int c = (lo + hi) / 2;
                if (cdf[c] < u)
                    lo = c + 1;
                else
                    hi = c;
            }
            trace_read(t, s, perm[lo], (float)(0.1 + 0.5 * rk_test_rng_unif(&r)));
        }
        const int start = s / SIM_DRIFT;
        for (int k = 0; k < SIM_WINDOW; k++)
            trace_read(t, s, 1 + (start + k) % mid, (float)(0.05 + 0.25 * rk_test_rng_unif(&r)));
    }
}

typedef enum { SIM_POLICY, SIM_LRU, SIM_RANDOM } sim_kind;

/* Replays the trace: a read of a page not in RAM is a miss and loads it; after each step RAM is
 * cut back to SIM_RAM pages (the policy's plan, least recently used first, or at random). */
static long sim_misses(const sim_trace *t, sim_kind kind, const rk_kv_policy_params *p) {
    static rk_kv_page_heat heat[SIM_PAGES];
    static rk_kv_policy_entry e[SIM_PAGES];
    static size_t bytes[SIM_PAGES];
    static int64_t order[SIM_PAGES], last[SIM_PAGES];
    static uint8_t in_ram[SIM_PAGES];
    rk_test_rng r = {0xC0FFEEULL};
    long misses = 0;
    int64_t clock = 0, resident = 0;
    for (int i = 0; i < SIM_PAGES; i++) {
        rk_kv_heat_init(&heat[i]);
        e[i] = (rk_kv_policy_entry){i, i, SIM_PAGES, &heat[i], 0.0};
        bytes[i] = 1;
        last[i] = -1;
        in_ram[i] = 0;
    }
    for (int s = 0; s < SIM_STEPS; s++) {
        for (int k = 0; k < t->n[s]; k++) {
            const int pg = t->page[s][k];
            if (!in_ram[pg]) misses++, resident++;
            in_ram[pg] = 1;
            last[pg] = clock++;
            rk_kv_heat_record(&heat[pg], s, t->share[s][k], p);
        }
        if (kind == SIM_POLICY) {
            rk_status st =
                rk_kv_policy_plan(e, bytes, SIM_PAGES, SIM_RAM, s + 1, p, in_ram, order, NULL);
            CHECK(st == RK_OK);
            continue;
        }
        for (; resident > SIM_RAM; resident--) {
            int victim = -1;
            if (kind == SIM_LRU) {
                for (int i = 0; i < SIM_PAGES; i++)
                    if (in_ram[i] && (victim < 0 || last[i] < last[victim])) victim = i;
            } else {
                int64_t pick = (int64_t)(rk_test_rng_next(&r) % (uint64_t)resident);
                for (victim = 0; !in_ram[victim] || pick-- > 0; victim++) {
                }
            }
            in_ram[victim] = 0;
        }
    }
    return misses;
}

static void test_simulated_cache(void) {
    static sim_trace t;
    sim_make_trace(&t, 0x2545F4914F6CDD1DULL);
    long reads = 0;
    for (int s = 0; s < SIM_STEPS; s++)
        reads += t.n[s];
    const rk_kv_policy_params p = rk_kv_policy_default_params();
    const long ours = sim_misses(&t, SIM_POLICY, &p);
    const long lru = sim_misses(&t, SIM_LRU, &p);
    const long rnd = sim_misses(&t, SIM_RANDOM, &p);
    printf("simulated cache (%d pages, %d in RAM, %d steps, %ld reads): misses policy %ld, "
           "LRU %ld, random %ld\n",
           SIM_PAGES, SIM_RAM, SIM_STEPS, reads, ours, lru, rnd);
    CHECK_MSG(ours <= lru, "policy %ld vs LRU %ld", ours, lru);
    CHECK(ours == sim_misses(&t, SIM_POLICY, &p)); /* reproducible */
}

int main(void) {
    test_decay();
    test_pinned();
    test_needle();
    test_recency();
    test_promote();
    test_determinism();
    test_simulated_cache();
    return rk_test_finish("test-kv-policy");
}
