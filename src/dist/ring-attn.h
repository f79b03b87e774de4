/*
 * ring-attn.h — attention of one sequence whose KV pages are spread over the ranks of a ring
 * (DESIGN.md, "Ring attention"). Each rank holds some pages (ring-shard.h) in its own KV cache,
 * with its own codecs and tiers; attention partials from every rank's pages merge with the one
 * merge operator (attn.h), so the result is attention over the whole sequence.
 *
 *   prefill  each rank has the queries of its own tokens. In N steps every rank's block of
 *            sealed pages travels once around the ring: at step s a rank computes the partials
 *            of its queries over the block in hand while that block goes to the next rank and
 *            the following one arrives from the previous (one exchange in flight, two buffers).
 *   decode   every rank has the same query; each computes the partial over its own pages, the
 *            partials are allgathered and every rank merges them in rank order, so all ranks get
 *            the same bits.
 *
 * Takes plain parameters (no model). Errors: a rank's local failure is passed in (or arises
 * here) and every rank returns it, named by rank, instead of hanging (transport.h).
 */
#ifndef RK_DIST_RING_ATTN_H
#define RK_DIST_RING_ATTN_H

#include "attn/attn.h"
#include "core/threadpool.h"
#include "dist/ring-shard.h"
#include "dist/transport.h"
#include "kv/kv-cache.h"

/* What a rank did in ring attention (cumulative). */
typedef struct rk_ring_stats {
    double compute_seconds;    /* attention partials and merges */
    double exchange_wait_seconds; /* blocked waiting for a block or the decode partials */
    uint64_t blocks_sent;
} rk_ring_stats;

typedef struct rk_ring {
    rk_transport *transport;   /* borrowed; outlives the ring */
    rk_ring_shard shard;
    int64_t n_sink0;           /* exact sink rows that rank 0's page 0 carries in its block */
    uint8_t *block[2];         /* prefill: the block in hand and the one arriving */
    size_t block_cap;
    double *run;               /* (cap_q, n_head, 2 + dv): running m, l, o of each local query */
    int64_t cap_q;
    double *part_o;             /* (n_threads, RK_ATTN_MAX_GROUP, dv) per-thread partial outputs */
    double *split;             /* decode: (n_head, cap_pages, 2 + dv) partials per local page */
    int64_t cap_pages;
    uint8_t *rec_all;          /* decode: (n_ranks, rec_bytes) allgathered partials */
    size_t rec_cap;
    rk_ring_stats stats;
} rk_ring;

/* One layer's attention, in plain parameters. */
typedef struct rk_ring_layer {
    const rk_attn_ops *ops;
    rk_pool *pool;
    rk_kv_cache *kv;          /* this rank's pages */
    int64_t layer, n_head, n_head_kv, head_dim_k, head_dim_v;
    int64_t max_group;        /* query heads per work unit at most (one GQA group) */
    float scale;
    int64_t window;           /* sliding window in positions; 0 = whole context */
    float *scratch;           /* rk_attn_scratch_floats floats per pool thread */
    int64_t scratch_floats;
} rk_ring_layer;

/* A ring over `transport` for a sequence of up to max_pages pages; rank 0's page 0 carries
 * n_sink0 exact sink rows (its cache's n_sink; the other ranks' caches keep none). */
rk_status rk_ring_init(rk_ring *ring, rk_transport *transport, int64_t max_pages, int64_t n_sink0, rk_error *err);
void rk_ring_free(rk_ring *ring);

/* Prefill attention of layer L->layer for one round: the tokens at global positions
 * [first_pos, n_tokens), the same on every rank. This rank's n queries (q: (n, n_head,
 * head_dim_k)) are its tokens of the round, at global positions pos[i] (ascending); every
 * position before n_tokens is placed, and its keys and values are in its owner's cache with
 * every full page sealed (rk_kv_seal_full_pages) and acquired. In a sliding-window layer the
 * pages before the window of first_pos may have been released. out: (n, n_head, head_dim_v).
 * `local` is this rank's status so far (with *err): a failure anywhere is returned by every
 * rank. */
rk_status rk_ring_attn_prefill(rk_ring *ring, const rk_ring_layer *L, const float *q, int64_t n, const int64_t *pos,
                               int64_t first_pos, int64_t n_tokens, float *out, rk_status local, rk_error *err);

/* Decode attention of the query at global position pos (the sequence then holds pos + 1
 * tokens; q and out as above with n = 1, the same q on every rank). */
rk_status rk_ring_attn_decode(rk_ring *ring, const rk_ring_layer *L, const float *q, int64_t pos, float *out,
                              rk_status local, rk_error *err);

#endif
