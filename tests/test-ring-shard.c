/*
 * test-ring-shard.c — the page-to-rank map of ring attention (src/dist/ring-shard.c), against
 * brute-force answers computed here from the owner of each page:
 *   - rank counts outside 1..RK_RING_MAX_RANKS are refused;
 *   - prefill rounds: every page is placed once, in order, on one rank; the first round puts
 *     page 0 on rank 0; a round of at least 2N pages gives every rank the same number of pages
 *     within two, and about the same causal work; a round of one page goes to the rank holding
 *     the fewest pages, like a decode page;
 *   - rk_ring_shard_round_most is the most tokens a rank then evaluates;
 *   - positions -> local slots, slots from a position, tokens held, for sequences ending
 *     anywhere (inside the last page too);
 *   - unplacing (a failed step, a truncation) restores the earlier map;
 *   - over random mixes of rounds and decode pages no rank holds more than one page beyond its
 *     share (what rk_ring_shard_capacity sizes a rank's cache for).
 */
#include <stdbool.h>
#include <string.h>

#include "dist/ring-shard.h"
#include "kv/kv-cache.h"
#include "test-util.h"

#define P RK_KV_PAGE_TOKENS
#define MAX_PAGES 96

/* Local pages of rank q, in the order it holds them: global pages whose owner is q. */
static int64_t brute_pages(const rk_ring_shard *s, int q, int64_t *pages) {
    int64_t n = 0;
    for (int64_t g = 0; g < s->n_placed; g++)
        if (s->owner[g] == q) pages[n++] = g;
    return n;
}

/* Positions of rank q in a sequence of n_tokens (its slots hold them in this order). */
static int64_t brute_tokens(const rk_ring_shard *s, int q, int64_t n_tokens) {
    int64_t n = 0;
    for (int64_t pos = 0; pos < n_tokens; pos++) n += s->owner[pos / P] == q;
    return n;
}

/* The map's own tables agree with the owners, and its answers with brute force. */
static void check_map(const rk_ring_shard *s, int64_t n_tokens) {
    int64_t pages[MAX_PAGES];
    for (int q = 0; q < s->n_ranks; q++) {
        int64_t n = brute_pages(s, q, pages);
        CHECK_MSG(n == s->n_held[q], "rank %d holds %lld pages, the map says %lld", q, (long long)n,
                  (long long)s->n_held[q]);
        for (int64_t j = 0; j < n && j < s->n_held[q]; j++) {
            CHECK(s->global_of_local[(int64_t)q * s->max_pages + j] == pages[j]);
            CHECK(s->local_index[pages[j]] == j);
        }
        CHECK_MSG(rk_ring_shard_tokens(s, q, n_tokens) == brute_tokens(s, q, n_tokens),
                  "rank %d of %d, %lld tokens: %lld held, brute force %lld", q, s->n_ranks, (long long)n_tokens,
                  (long long)rk_ring_shard_tokens(s, q, n_tokens), (long long)brute_tokens(s, q, n_tokens));
    }
    for (int64_t pos = 0; pos < n_tokens; pos += 37) { /* the slot of pos: its owner's positions before it */
        const int q = s->owner[pos / P];
        CHECK(rk_ring_shard_slot(s, pos) == brute_tokens(s, q, pos));
        for (int r = 0; r < s->n_ranks; r++) { /* first slot at or after pos: r's positions before pos */
            int64_t want = brute_tokens(s, r, pos);
            CHECK_MSG(rk_ring_shard_first_slot_from(s, r, pos, n_tokens) == want, "rank %d, from %lld: %lld, want %lld",
                      r, (long long)pos, (long long)rk_ring_shard_first_slot_from(s, r, pos, n_tokens),
                      (long long)want);
        }
    }
}

static void test_limits(void) {
    rk_ring_shard s;
    rk_error err;
    CHECK(rk_ring_shard_init(&s, 0, 0, 8, &err) == RK_ERR_UNSUPPORTED);
    CHECK(rk_ring_shard_init(&s, RK_RING_MAX_RANKS + 1, 0, 8, &err) == RK_ERR_UNSUPPORTED && strstr(err.msg, "ranks"));
    CHECK(rk_ring_shard_init(&s, RK_RING_MAX_RANKS, 3, 8, &err) == RK_OK);
    rk_ring_shard_free(&s);
}

static void test_first_round(void) {
    for (int N = 1; N <= 5; N++) {
        for (int64_t pages = 1; pages <= 40; pages++) {
            rk_ring_shard s;
            rk_error err;
            CHECK(rk_ring_shard_init(&s, N, 0, MAX_PAGES, &err) == RK_OK);
            const int64_t n_tokens = pages * P - (pages % 3) * 50; /* ends inside the last page, or not */
            const int64_t most = rk_ring_shard_round_most(&s, pages, n_tokens);
            rk_ring_shard_place_round(&s, pages, n_tokens);
            CHECK(s.n_placed == pages && s.owner[0] == 0);
            check_map(&s, n_tokens);
            int64_t most_seen = 0, fewest = pages, largest = 0;
            double work_min = 1e30, work_max = 0.0;
            for (int q = 0; q < N; q++) {
                int64_t t = brute_tokens(&s, q, n_tokens);
                most_seen = t > most_seen ? t : most_seen;
                fewest = s.n_held[q] < fewest ? s.n_held[q] : fewest;
                largest = s.n_held[q] > largest ? s.n_held[q] : largest;
                double work = 0.0; /* causal attention: a page's queries see the pages up to it */
                for (int64_t g = 0; g < pages; g++)
                    if (s.owner[g] == q) work += (double)(g + 1);
                work_min = work < work_min ? work : work_min;
                work_max = work > work_max ? work : work_max;
            }
            CHECK_MSG(most == most_seen, "N %d, %lld pages: round_most %lld, placed %lld", N, (long long)pages,
                      (long long)most, (long long)most_seen);
            if (pages >= 2 * N) {
                CHECK_MSG(largest - fewest <= 2, "N %d, %lld pages: %lld to %lld pages per rank", N, (long long)pages,
                          (long long)fewest, (long long)largest);
                /* zig-zag: each rank's chunks sum to about the same work; one chunk of slack */
                const double chunk = (double)(pages + 2 * N - 1) / (2 * N);
                CHECK_MSG(work_max - work_min <= 2.0 * chunk * (double)pages / N + chunk * chunk,
                          "N %d, %lld pages: causal work %.0f to %.0f", N, (long long)pages, work_min, work_max);
            }
            rk_ring_shard_free(&s);
        }
    }
}

static void test_later_rounds(void) {
    rk_ring_shard s;
    rk_error err;
    const int N = 3;
    CHECK(rk_ring_shard_init(&s, N, 1, MAX_PAGES, &err) == RK_OK);
    rk_ring_shard_place_round(&s, 7, 7 * P); /* 3, 2, 2 or so */
    check_map(&s, 7 * P);
    for (int i = 0; i < 12; i++) { /* one-page rounds and decode pages go to the emptiest rank */
        int emptiest = 0;
        for (int q = 1; q < N; q++)
            if (s.n_held[q] < s.n_held[emptiest]) emptiest = q;
        const int64_t g = s.n_placed;
        if (i % 2)
            rk_ring_shard_place_round(&s, 1, (s.n_placed + 1) * P);
        else
            CHECK(rk_ring_shard_place_next(&s) == emptiest);
        CHECK_MSG(s.owner[g] == emptiest, "page %lld on rank %d, the emptiest is %d", (long long)g, s.owner[g],
                  emptiest);
    }
    check_map(&s, s.n_placed * P - 10);
    const int64_t before = s.n_placed;
    int64_t held[3];
    for (int q = 0; q < N; q++) held[q] = s.n_held[q];
    rk_ring_shard_place_round(&s, 9, (s.n_placed + 9) * P);
    check_map(&s, s.n_placed * P);
    for (int q = 0; q < N; q++) CHECK(s.n_held[q] - held[q] == 3); /* 9 pages, 6 chunks: 2+1 each */
    rk_ring_shard_unplace_from(&s, before);
    CHECK(s.n_placed == before);
    for (int q = 0; q < N; q++) CHECK(s.n_held[q] == held[q]);
    check_map(&s, before * P);
    rk_ring_shard_clear(&s);
    CHECK(s.n_placed == 0 && s.n_held[0] == 0);
    rk_ring_shard_free(&s);
}

/* Random mixes of prefill rounds (1 .. 4N pages) and decode pages: no rank ever holds more than
 * one page beyond ceil(placed / N), within the slack rk_ring_shard_capacity allows. */
static void test_balance(void) {
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    for (int N = 1; N <= 8; N++) {
        for (int trial = 0; trial < 40; trial++) {
            rk_ring_shard s;
            rk_error err;
            CHECK(rk_ring_shard_init(&s, N, 0, 4096, &err) == RK_OK);
            int64_t worst = 0;
            while (s.n_placed < 3000) {
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                if ((rng >> 33) % 2)
                {
                    const int64_t pages = 1 + (int64_t)((rng >> 40) % (uint64_t)(4 * N));
                    rk_ring_shard_place_round(&s, pages, (s.n_placed + pages) * P - (int64_t)((rng >> 20) % P));
                }
                else
                    rk_ring_shard_place_next(&s);
                for (int q = 0; q < N; q++) {
                    int64_t over = s.n_held[q] - (s.n_placed + N - 1) / N;
                    worst = over > worst ? over : worst;
                }
            }
            CHECK_MSG(worst <= 1, "N %d: a rank held %lld pages beyond its share", N, (long long)worst);
            CHECK(worst < RK_RING_SHARD_SLACK_PAGES + 1);
            CHECK(rk_ring_shard_capacity(N, 3000 * (int64_t)P) >=
                  ((3000 + N - 1) / N + worst) * (int64_t)P || N == 1);
            rk_ring_shard_free(&s);
        }
    }
    CHECK(rk_ring_shard_capacity(1, 1000) == 1000);
    CHECK(rk_ring_shard_capacity(4, 64 * (int64_t)P) == (16 + RK_RING_SHARD_SLACK_PAGES) * (int64_t)P);
    CHECK(rk_ring_shard_capacity(4, 3 * (int64_t)P) == 3 * (int64_t)P); /* never beyond the context */
}

int main(void) {
    test_limits();
    test_first_round();
    test_later_rounds();
    test_balance();
    return rk_test_finish("test-ring-shard");
}
