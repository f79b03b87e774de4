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

void rk_ring_shard_place_prompt(rk_ring_shard *s, int64_t n_pages) {
    const int64_t n_chunks = 2 * (int64_t)s->n_ranks;
    /* Chunk c starts at page ceil(c * n_pages / n_chunks): chunk 0 is never empty, so rank 0
     * always holds page 0 (and its exact sink rows). Pages are placed in global order, so each
     * rank's local pages stay in global order. */
    for (int64_t c = 0; c < n_chunks; c++) {
        const int q = c < s->n_ranks ? (int)c : (int)(n_chunks - 1 - c);
        const int64_t first = (c * n_pages + n_chunks - 1) / n_chunks;
        const int64_t end = ((c + 1) * n_pages + n_chunks - 1) / n_chunks;
        for (int64_t g = first; g < end; g++) place(s, g, q);
    }
    s->n_placed = n_pages;
}

int rk_ring_shard_place_next(rk_ring_shard *s) {
    int q = 0;
    for (int r = 1; r < s->n_ranks; r++)
        if (s->n_held[r] < s->n_held[q]) q = r;
    place(s, s->n_placed++, q);
    return q;
}

void rk_ring_shard_unplace_last(rk_ring_shard *s) {
    if (s->n_placed == 0) return;
    s->n_held[s->owner[--s->n_placed]]--;
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
    const int64_t n = s->n_held[q];
    if (n == 0) return 0;
    const int64_t last = s->global_of_local[(int64_t)q * s->max_pages + n - 1];
    int64_t in_last = n_tokens - last * RK_KV_PAGE_TOKENS; /* the sequence's tail may end inside it */
    if (in_last > RK_KV_PAGE_TOKENS) in_last = RK_KV_PAGE_TOKENS;
    return (n - 1) * RK_KV_PAGE_TOKENS + (in_last > 0 ? in_last : 0);
}
