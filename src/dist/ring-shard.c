/*
 * ring-shard.c — the page-to-rank map of a ring (see ring-shard.h).
 */
#include "dist/ring-shard.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "kv/kv-cache.h"

rk_status rk_ring_shard_init(rk_ring_shard *s, int n_ranks, int rank, int64_t max_pages, rk_error *err) {
    memset(s, 0, sizeof *s);
    if (n_ranks < 1 || n_ranks > RK_RING_MAX_RANKS)
        return rk_error_set(err, RK_ERR_UNSUPPORTED, "ring: 1 to %d ranks (got %d)", RK_RING_MAX_RANKS, n_ranks);
    s->n_ranks = n_ranks;
    s->rank = rank;
    s->max_pages = max_pages;
    s->owner = malloc((size_t)max_pages * sizeof *s->owner);
    s->local_index = malloc((size_t)max_pages * sizeof *s->local_index);
    s->n_held = calloc((size_t)n_ranks, sizeof *s->n_held);
    s->global_of_local = malloc((size_t)n_ranks * (size_t)max_pages * sizeof *s->global_of_local);
    if (!s->owner || !s->local_index || !s->n_held || !s->global_of_local) {
        rk_ring_shard_free(s);
        return rk_error_set(err, RK_ERR_NO_MEMORY, "ring: out of memory for the page map of %lld pages",
                            (long long)max_pages);
    }
    return RK_OK;
}

void rk_ring_shard_free(rk_ring_shard *s) {
    free(s->owner);
    free(s->local_index);
    free(s->n_held);
    free(s->global_of_local);
    memset(s, 0, sizeof *s);
}

void rk_ring_shard_clear(rk_ring_shard *s) {
    s->n_placed = 0;
    memset(s->n_held, 0, (size_t)s->n_ranks * sizeof *s->n_held);
}

/* Global page g (the next one) goes to rank q. */
static void place(rk_ring_shard *s, int64_t g, int q) {
    s->owner[g] = q;
    s->local_index[g] = s->n_held[q];
    s->global_of_local[(int64_t)q * s->max_pages + s->n_held[q]++] = g;
}

/* The rank holding the fewest pages (the lowest on ties). */
static int emptiest_rank(const rk_ring_shard *s) {
    int q = 0;
    for (int r = 1; r < s->n_ranks; r++)
        if (s->n_held[r] < s->n_held[q]) q = r;
    return q;
}

/* Tokens of the round of n_pages pages starting at page n_placed, when the sequence ends at
 * n_tokens (its last page may be partial). */
static int64_t round_tokens(const rk_ring_shard *s, int64_t n_pages, int64_t n_tokens) {
    int64_t t = n_tokens - s->n_placed * RK_KV_PAGE_TOKENS;
    return t < 0 ? 0 : t > n_pages * RK_KV_PAGE_TOKENS ? n_pages * RK_KV_PAGE_TOKENS : t;
}

/* Chunks of a round of n_pages pages: 2N zig-zag chunks, then, in a round of at least 3N pages,
 * its last N pages one by one (see round_chunk). */
static int64_t round_chunks(const rk_ring_shard *s, int64_t n_pages) {
    return n_pages >= 3 * (int64_t)s->n_ranks ? 3 * (int64_t)s->n_ranks : 2 * (int64_t)s->n_ranks;
}

/* Chunk c (of round_chunks) of a round of n_pages pages holding `tokens` tokens: its pages
 * [*first, *end) counted from the round's first page; returns its zig-zag position.
 *   - Zig-zag (c < 2N; chunks q and 2N-1-q share position q): the round, less its tail, is cut
 *     in two halves of about the same tokens (a partial last page counts for its tokens), each
 *     into N chunks of whole pages, the larger ones first. Position q takes chunk q of the first
 *     half and chunk N-1-q of the second, so a larger chunk pairs with a smaller one: positions
 *     differ by at most about one page and have about the same causal work. Chunk 0 is never
 *     empty.
 *   - Tail (c >= 2N, rounds of at least 3N pages): the last N pages, one per position, the last
 *     page to position 0. The newest pages are the ones a sliding-window layer keeps (and the
 *     open page is kept in f32): spread over the ranks, they do not pile up on one. */
static int round_chunk(const rk_ring_shard *s, int64_t n_pages, int64_t tokens, int64_t c, int64_t *first,
                       int64_t *end) {
    const int64_t N = s->n_ranks, tail = round_chunks(s, n_pages) > 2 * N ? N : 0, core = n_pages - tail;
    if (c >= 2 * N) {
        *first = core + (c - 2 * N);
        *end = *first + 1;
        return (int)(3 * N - 1 - c);
    }
    const int64_t core_tokens = tail ? core * RK_KV_PAGE_TOKENS : tokens; /* a partial page is the last */
    int64_t n1 = (core_tokens + RK_KV_PAGE_TOKENS) / (2 * RK_KV_PAGE_TOKENS); /* first half, rounded */
    if (n1 < 1) n1 = 1;
    if (n1 > core) n1 = core;
    const int64_t n2 = core - n1, k = c < N ? c : c - N, half = c < N ? n1 : n2, base = c < N ? 0 : n1;
    *first = base + (k * half + N - 1) / N;
    *end = base + ((k + 1) * half + N - 1) / N;
    return c < N ? (int)c : (int)(2 * N - 1 - c);
}

/* The rank taking each zig-zag position of the next round of n_pages pages. The first round:
 * position q on rank q, so rank 0 holds page 0 (and its exact sink rows). Later rounds: the
 * positions with more pages go to the ranks holding fewer, which keeps every rank within a page
 * of its share. */
static void round_owners(const rk_ring_shard *s, int64_t n_pages, int64_t tokens, int *owner_of) {
    const int N = s->n_ranks;
    int64_t count[RK_RING_MAX_RANKS] = {0};
    int pos[RK_RING_MAX_RANKS], rank[RK_RING_MAX_RANKS];
    for (int64_t c = 0; c < round_chunks(s, n_pages); c++) {
        int64_t first, end;
        const int q = round_chunk(s, n_pages, tokens, c, &first, &end);
        count[q] += end - first;
    }
    for (int i = 0; i < N; i++) pos[i] = rank[i] = i;
    if (s->n_placed > 0) {
        for (int i = 1; i < N; i++) { /* insertion sorts: positions by pages, most first; ranks by pages held */
            for (int j = i; j > 0 && count[pos[j]] > count[pos[j - 1]]; j--) {
                int t = pos[j];
                pos[j] = pos[j - 1];
                pos[j - 1] = t;
            }
            for (int j = i; j > 0 && s->n_held[rank[j]] < s->n_held[rank[j - 1]]; j--) {
                int t = rank[j];
                rank[j] = rank[j - 1];
                rank[j - 1] = t;
            }
        }
    }
    for (int i = 0; i < N; i++) owner_of[pos[i]] = rank[i];
}

void rk_ring_shard_place_round(rk_ring_shard *s, int64_t n_pages, int64_t n_tokens) {
    /* pages are placed in global order, so each rank's local pages stay in global order */
    const int64_t base = s->n_placed, tokens = round_tokens(s, n_pages, n_tokens);
    int owner_of[RK_RING_MAX_RANKS];
    round_owners(s, n_pages, tokens, owner_of);
    for (int64_t c = 0; c < round_chunks(s, n_pages); c++) {
        int64_t first, end;
        const int q = owner_of[round_chunk(s, n_pages, tokens, c, &first, &end)];
        for (int64_t g = first; g < end; g++) place(s, base + g, q);
    }
    s->n_placed = base + n_pages;
}

int64_t rk_ring_shard_round_most(const rk_ring_shard *s, int64_t n_pages, int64_t n_tokens) {
    const int64_t tokens = round_tokens(s, n_pages, n_tokens);
    int64_t per_rank[RK_RING_MAX_RANKS] = {0}, most = 0;
    int owner_of[RK_RING_MAX_RANKS];
    round_owners(s, n_pages, tokens, owner_of);
    for (int64_t c = 0; c < round_chunks(s, n_pages); c++) {
        int64_t first, end;
        const int q = owner_of[round_chunk(s, n_pages, tokens, c, &first, &end)];
        for (int64_t g = s->n_placed + first; g < s->n_placed + end; g++) {
            int64_t in_page = n_tokens - g * RK_KV_PAGE_TOKENS;
            per_rank[q] += in_page < 0 ? 0 : in_page > RK_KV_PAGE_TOKENS ? RK_KV_PAGE_TOKENS : in_page;
        }
    }
    for (int q = 0; q < s->n_ranks; q++) most = per_rank[q] > most ? per_rank[q] : most;
    return most;
}

int64_t rk_ring_shard_capacity(int n_ranks, int64_t n_ctx) {
    const int64_t pages = (n_ctx + RK_KV_PAGE_TOKENS - 1) / RK_KV_PAGE_TOKENS;
    const int64_t per_rank = (pages + n_ranks - 1) / n_ranks + RK_RING_SHARD_SLACK_PAGES;
    return per_rank < pages ? per_rank * RK_KV_PAGE_TOKENS : n_ctx;
}

int rk_ring_shard_place_next(rk_ring_shard *s) {
    const int q = emptiest_rank(s);
    place(s, s->n_placed++, q);
    return q;
}

void rk_ring_shard_unplace_last(rk_ring_shard *s) {
    if (s->n_placed == 0) return;
    s->n_held[s->owner[--s->n_placed]]--;
}

void rk_ring_shard_unplace_from(rk_ring_shard *s, int64_t n_pages) {
    while (s->n_placed > n_pages) rk_ring_shard_unplace_last(s);
}

int64_t rk_ring_shard_slot(const rk_ring_shard *s, int64_t pos) {
    const int64_t g = pos / RK_KV_PAGE_TOKENS;
    return s->local_index[g] * RK_KV_PAGE_TOKENS + pos % RK_KV_PAGE_TOKENS;
}

int64_t rk_ring_shard_first_slot_from(const rk_ring_shard *s, int q, int64_t pos, int64_t n_tokens) {
    const int64_t *pages = s->global_of_local + (int64_t)q * s->max_pages, g = pos / RK_KV_PAGE_TOKENS;
    int64_t lo = 0, hi = s->n_held[q]; /* first local page whose global page is >= g */
    while (lo < hi) {
        int64_t mid = (lo + hi) / 2;
        if (pages[mid] < g) lo = mid + 1; else hi = mid;
    }
    if (lo == s->n_held[q]) return rk_ring_shard_tokens(s, q, n_tokens);
    return lo * RK_KV_PAGE_TOKENS + (pages[lo] == g ? pos % RK_KV_PAGE_TOKENS : 0);
}

int64_t rk_ring_shard_tokens(const rk_ring_shard *s, int q, int64_t n_tokens) {
    /* q's pages that start before n_tokens: all full but the last, where the sequence may end */
    const int64_t *pages = s->global_of_local + (int64_t)q * s->max_pages;
    const int64_t end_page = (n_tokens + RK_KV_PAGE_TOKENS - 1) / RK_KV_PAGE_TOKENS;
    int64_t lo = 0, hi = s->n_held[q];
    while (lo < hi) {
        int64_t mid = (lo + hi) / 2;
        if (pages[mid] < end_page) lo = mid + 1; else hi = mid;
    }
    if (lo == 0) return 0;
    int64_t in_last = n_tokens - pages[lo - 1] * RK_KV_PAGE_TOKENS;
    if (in_last > RK_KV_PAGE_TOKENS) in_last = RK_KV_PAGE_TOKENS;
    return (lo - 1) * RK_KV_PAGE_TOKENS + in_last;
}
