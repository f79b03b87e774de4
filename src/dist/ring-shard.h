/*
 * ring-shard.h — which rank of a ring holds which KV page of a sequence (DESIGN.md, "Ring
 * attention"). Every rank keeps the same map (it is computed, never sent), so each knows what
 * every other rank holds and how big the blocks it will receive are.
 *
 * Pages are whole: a page of RK_KV_PAGE_TOKENS positions lives on one rank, so a rank's KV
 * cache is an ordinary cache whose positions ("local slots") are its pages' positions packed in
 * global order: local page j holds global page global_of_local[j]. Because the packing keeps
 * global order, a causal or sliding-window range of global positions is a range of local slots,
 * and the codecs see the same pages as in one process.
 *
 *   prefill: the pages of a prefill round (a prompt, or the part of one that fits the ranks'
 *            micro-batches) are cut into 2N chunks of whole pages, and zig-zag position q takes
 *            chunks q and 2N-1-q, so every rank has about the same causal attention work; in a
 *            round of at least 3N pages the last N pages go one to each position (the newest
 *            pages, which sliding-window layers keep, do not pile up on one rank). In the first
 *            round rank q takes position q (rank 0 holds page 0 and its sink rows); later, the
 *            positions with more pages go to the ranks holding fewer;
 *   decode:  each further page goes to the rank holding the fewest pages (the lowest on ties),
 *            so shards stay balanced as the sequence grows.
 */
#ifndef RK_DIST_RING_SHARD_H
#define RK_DIST_RING_SHARD_H

#include <stdint.h>

#include "ringkv.h"

/* The most ranks a ring has (fixed-size per-rank tables on the stack). */
#define RK_RING_MAX_RANKS 64

typedef struct rk_ring_shard {
    int n_ranks, rank;
    int64_t max_pages;          /* global pages the sequence may reach */
    int64_t n_placed;           /* global pages 0 .. n_placed-1 have an owner */
    int32_t *owner;             /* (max_pages) rank holding each global page */
    int64_t *local_index;       /* (max_pages) the page's index among its owner's pages */
    int64_t *n_held;            /* (n_ranks) pages each rank holds */
    int64_t *global_of_local;   /* (n_ranks, max_pages) rank q's local page j = global page */
} rk_ring_shard;

/* An empty map for rank `rank` of n_ranks over max_pages pages. RK_ERR_UNSUPPORTED beyond
 * RK_RING_MAX_RANKS ranks; RK_ERR_NO_MEMORY. */
rk_status rk_ring_shard_init(rk_ring_shard *s, int n_ranks, int rank, int64_t max_pages, rk_error *err);
void rk_ring_shard_free(rk_ring_shard *s);
/* Forgets every placement (an empty sequence). */
void rk_ring_shard_clear(rk_ring_shard *s);

/* Places the next n_pages global pages (n_placed ..) as one prefill round, zig-zag, for a
 * sequence that then ends at n_tokens (inside the round's last page, or at its end or beyond:
 * chunks are cut by tokens). Requires n_placed + n_pages <= max_pages. The first round's chunk
 * 0 holds page 0, on rank 0. */
void rk_ring_shard_place_round(rk_ring_shard *s, int64_t n_pages, int64_t n_tokens);
/* Pages a rank may hold beyond its even share of the context: rounds and decode pages keep every
 * rank within one page of ceil(placed / N) (test-ring-shard checks it); one more for margin. A
 * truncation can leave the shards less even; a rank that runs out of room fails the step with
 * the cache's error on every rank. */
#define RK_RING_SHARD_SLACK_PAGES 2

/* Positions a rank's KV cache needs for a context of n_ctx tokens over n_ranks: its share of the
 * pages plus the slack, at most n_ctx. */
int64_t rk_ring_shard_capacity(int n_ranks, int64_t n_ctx);

/* The most tokens any rank would evaluate if the next n_pages pages were one round and the
 * sequence ended at n_tokens (which may end inside the round's last page). */
int64_t rk_ring_shard_round_most(const rk_ring_shard *s, int64_t n_pages, int64_t n_tokens);
/* Places global page n_placed on the rank holding the fewest pages; returns that rank. */
int rk_ring_shard_place_next(rk_ring_shard *s);

/* Takes back the last placement (a decode step that failed). */
void rk_ring_shard_unplace_last(rk_ring_shard *s);
/* Takes back every placement from global page n_pages on (a truncation or a failed prefill). */
void rk_ring_shard_unplace_from(rk_ring_shard *s, int64_t n_pages);

/* Global position -> local slot on its owner (the page must be placed). */
int64_t rk_ring_shard_slot(const rk_ring_shard *s, int64_t pos);
/* The first local slot of rank q whose global position is >= pos (q's slot count when none);
 * n_tokens is the sequence length (positions beyond it are not held). */
int64_t rk_ring_shard_first_slot_from(const rk_ring_shard *s, int q, int64_t pos, int64_t n_tokens);
/* Positions rank q holds of a sequence of n_tokens (its local slot count). */
int64_t rk_ring_shard_tokens(const rk_ring_shard *s, int q, int64_t n_tokens);

#endif
