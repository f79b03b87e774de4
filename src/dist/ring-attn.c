/*
 * ring-attn.c — ring attention over the ranks' KV shards (see ring-attn.h).
 *
 * Where the time goes: prefill does the same attention work as one process, split over the
 * ranks (the zig-zag placement balances the causal triangle), plus one pass of every rank's
 * sealed pages around the ring per layer, overlapped with the partials of the block in hand.
 * Decode adds one allgather of n_head partials per layer.
 */
#include "dist/ring-attn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"

/* A decode record: this rank's status, then (n_head, 2 + dv) partials as doubles (m, l, o). */
typedef struct rec_header {
    int32_t status;
    int32_t pad;
    char msg[RK_ERROR_MSG_MAX];
} rec_header;
_Static_assert(sizeof(rec_header) % sizeof(double) == 0, "the partials after the header must stay aligned");

rk_status rk_ring_init(rk_ring *ring, rk_transport *transport, int64_t max_pages, int64_t n_sink0, rk_error *err) {
    memset(ring, 0, sizeof *ring);
    ring->transport = transport;
    ring->n_sink0 = n_sink0;
    return rk_ring_shard_init(&ring->shard, transport->size, transport->rank, max_pages, err);
}

void rk_ring_free(rk_ring *ring) {
    if (!ring) return;
    rk_ring_shard_free(&ring->shard);
    free(ring->block[0]);
    free(ring->block[1]);
    free(ring->run);
    free(ring->part_o);
    free(ring->split);
    free(ring->rec_all);
    memset(ring, 0, sizeof *ring);
}

/* Grows *buf to hold `bytes`; false when out of memory (the old buffer stays). */
static bool grow(void **buf, size_t *cap, size_t bytes) {
    if (bytes <= *cap) return true;
    void *p = realloc(*buf, bytes);
    if (!p) return false;
    *buf = p;
    *cap = bytes;
    return true;
}

/* Rank q's full (sealed) pages in a sequence of n_tokens: its pages before the last partial one. */
static int64_t full_pages(const rk_ring_shard *s, int q, int64_t n_tokens) {
    const int64_t *pages = s->global_of_local + (int64_t)q * s->max_pages, full = n_tokens / RK_KV_PAGE_TOKENS;
    int64_t n = 0;
    while (n < s->n_held[q] && pages[n] < full) n++;
    return n;
}

/* How many of rank q's first n_pages pages lie before global page g (they are in order). */
static int64_t pages_before(const rk_ring_shard *s, int q, int64_t n_pages, int64_t g) {
    const int64_t *pages = s->global_of_local + (int64_t)q * s->max_pages;
    int64_t lo = 0, hi = n_pages;
    while (lo < hi) {
        int64_t mid = (lo + hi) / 2;
        if (pages[mid] < g) lo = mid + 1; else hi = mid;
    }
    return lo;
}

/* Sink rows carried by rank q's block of n_pages pages from its local page `first`. */
static int64_t block_sinks(const rk_ring *ring, int q, int64_t first, int64_t n_pages) {
    return q == 0 && first == 0 && n_pages > 0 ? ring->n_sink0 : 0;
}

static int64_t window_start(const rk_ring_layer *L, int64_t pos) {
    return L->window > 0 && pos + 1 > L->window ? pos + 1 - L->window : 0;
}

/* --- prefill ------------------------------------------------------------------------------ */

typedef struct prefill_job {
    rk_ring *ring;
    const rk_ring_layer *L;
    const float *q;
    const int64_t *pos;
    int64_t n, n_tokens, hpu;
    int src;                    /* the rank whose pages are in hand */
    const rk_kv_block *block;   /* NULL: this rank's own cache */
    int64_t block_first;        /* the block's first page among src's local pages */
    bool first;                 /* the first step writes the running partials */
} prefill_job;

/* The key range of query i in the pages in hand: local slots of the own cache, or rows of the
 * block. Empty when t0 >= t1. */
static void prefill_range(const prefill_job *job, int64_t i, int64_t *t0, int64_t *t1) {
    const rk_ring_shard *s = &job->ring->shard;
    const int64_t p = job->pos[i], ws = window_start(job->L, p);
    if (!job->block) {
        *t1 = rk_ring_shard_slot(s, p) + 1;
        *t0 = ws > 0 ? rk_ring_shard_first_slot_from(s, s->rank, ws, job->n_tokens) : 0;
        return;
    }
    const int64_t base = job->block_first * RK_KV_PAGE_TOKENS; /* block row 0 */
    *t1 = pages_before(s, job->src, job->block_first + job->block->n_pages, p / RK_KV_PAGE_TOKENS) *
              RK_KV_PAGE_TOKENS - base;
    *t0 = ws > 0 ? rk_ring_shard_first_slot_from(s, job->src, ws, job->n_tokens) - base : 0;
    if (*t0 < 0) *t0 = 0;
}

static void prefill_rows(void *arg, int ith, int nth) {
    const prefill_job *job = arg;
    const rk_ring_layer *L = job->L;
    const int64_t dk = L->head_dim_k, dv = L->head_dim_v, hpu = job->hpu, stride = 2 + dv;
    const int64_t group = L->n_head / L->n_head_kv, units = L->n_head / hpu;
    float *scratch = L->scratch + ith * L->scratch_floats;
    int64_t begin, end;
    rk_pool_split(job->n * units, ith, nth, &begin, &end);
    for (int64_t w = begin; w < end; w++) {
        const int64_t i = w / units, h = (w % units) * hpu;
        int64_t t0, t1;
        prefill_range(job, i, &t0, &t1);
        if (t0 >= t1 && !job->first) continue; /* nothing of this block before the query */
        rk_attn_partial parts[RK_ATTN_MAX_GROUP];
        for (int64_t g = 0; g < hpu; g++) parts[g].o = job->ring->part_o + (ith * RK_ATTN_MAX_GROUP + g) * dv;
        const float *qi = job->q + (i * L->n_head + h) * dk;
        if (!job->block)
            rk_attn_group_partial(L->ops, L->kv, L->layer, h / group, hpu, qi, L->scale, t0, t1, t1 - 1, parts,
                                  scratch);
        else
            rk_attn_group_partial_block(L->ops, L->kv, job->block, L->layer, h / group, hpu, qi, L->scale, t0, t1,
                                        parts, scratch);
        for (int64_t g = 0; g < hpu; g++) {
            double *run = job->ring->run + (i * L->n_head + h + g) * stride;
            rk_attn_partial r = {run[0], run[1], run + 2};
            if (job->first) {
                r.m = -INFINITY;
                r.l = 0.0;
            }
            rk_attn_merge(&r, &parts[g], dv);
            run[0] = r.m;
            run[1] = r.l;
        }
    }
}

/* Buffers for n local queries and blocks of up to max_block bytes. */
static rk_status prefill_buffers(rk_ring *ring, const rk_ring_layer *L, int64_t n, size_t max_block, rk_error *err) {
    const size_t run_bytes = (size_t)(n * L->n_head * (2 + L->head_dim_v)) * sizeof(double);
    const size_t part_bytes = (size_t)(rk_pool_size(L->pool) * RK_ATTN_MAX_GROUP * L->head_dim_v) * sizeof(double);
    size_t run_cap = (size_t)ring->cap_q, part_cap = 0, cap0 = ring->block_cap, cap1 = ring->block_cap;
    bool ok = grow((void **)&ring->run, &run_cap, run_bytes) && grow((void **)&ring->part_o, &part_cap, part_bytes) &&
              grow((void **)&ring->block[0], &cap0, max_block) && grow((void **)&ring->block[1], &cap1, max_block);
    if (!ok) return rk_error_set(err, RK_ERR_NO_MEMORY, "ring: out of memory for blocks of %zu bytes", max_block);
    ring->cap_q = (int64_t)run_cap;
    ring->block_cap = cap0 < cap1 ? cap0 : cap1;
    return RK_OK;
}

static void finish_rows(const rk_ring *ring, const rk_ring_layer *L, int64_t n, float *out) {
    const int64_t dv = L->head_dim_v;
    for (int64_t i = 0; i < n * L->n_head; i++) {
        double *run = ring->run + i * (2 + dv);
        const rk_attn_partial r = {run[0], run[1], run + 2};
        rk_attn_finish(&r, out + i * dv, dv);
    }
}

rk_status rk_ring_attn_prefill(rk_ring *ring, const rk_ring_layer *L, const float *q, int64_t n, const int64_t *pos,
                               int64_t first_pos, int64_t n_tokens, float *out, rk_status local, rk_error *err) {
    rk_transport *t = ring->transport;
    const rk_ring_shard *s = &ring->shard;
    const int N = t->size, r = t->rank;
    size_t bytes[RK_RING_MAX_RANKS], max_block = 0;
    int64_t first[RK_RING_MAX_RANKS], pages[RK_RING_MAX_RANKS];
    /* Each rank's block: its sealed pages, from the first any query of the round can see (in a
     * sliding-window layer, earlier ones may be released already). */
    const int64_t ws = window_start(L, first_pos), ws_page = ws / RK_KV_PAGE_TOKENS;
    for (int k = 0; k < N; k++) {
        const int64_t full = full_pages(s, k, n_tokens);
        first[k] = ws_page > 0 ? pages_before(s, k, full, ws_page) : 0;
        pages[k] = full - first[k];
        bytes[k] = rk_kv_block_bytes(L->kv, pages[k], block_sinks(ring, k, first[k], pages[k]));
        if (bytes[k] > max_block) max_block = bytes[k];
    }
    if (!local) local = prefill_buffers(ring, L, n, max_block, err);
    if (!local && pages[r] > 0)
        local = rk_kv_block_export(L->kv, L->layer, first[r], pages[r], ring->block[0], err);
    rk_status st = rk_transport_agree(t, local, err);
    if (st) return st;
    const int64_t hpu = n * L->n_head_kv >= 2 * rk_pool_size(L->pool) ? L->max_group : 1;
    int cur = 0;
    for (int step = 0; step < N; step++) {
        const int src = (r - step + N) % N, next_src = (r - step - 1 + N) % N;
        if (step < N - 1) {
            st = rk_transport_exchange_begin(t, ring->block[cur], bytes[src], (r + 1) % N, ring->block[1 - cur],
                                             bytes[next_src], (r - 1 + N) % N, err);
            if (st) return st;
        }
        const double t0 = rk_now_seconds();
        const rk_kv_block block = {ring->block[cur], pages[src], block_sinks(ring, src, first[src], pages[src])};
        prefill_job job = {ring, L, q, pos, n, n_tokens, hpu, src, step == 0 ? NULL : &block, first[src], step == 0};
        if (n > 0) rk_pool_run(L->pool, prefill_rows, &job);
        const double t1 = rk_now_seconds();
        ring->stats.compute_seconds += t1 - t0;
        if (step < N - 1) {
            st = rk_transport_exchange_end(t, err);
            ring->stats.exchange_wait_seconds += rk_now_seconds() - t1;
            ring->stats.blocks_sent++;
            if (st) return st;
            cur = 1 - cur;
        }
    }
    finish_rows(ring, L, n, out);
    return RK_OK;
}

/* --- decode ------------------------------------------------------------------------------- */

typedef struct decode_job {
    rk_ring *ring;
    const rk_ring_layer *L;
    const float *q;
    int64_t t0, t_end, first_page, n_pages, q_pos;
} decode_job;

static void decode_split(void *arg, int ith, int nth) {
    const decode_job *job = arg;
    const rk_ring_layer *L = job->L;
    const int64_t dv = L->head_dim_v, group = L->n_head / L->n_head_kv, cap = job->ring->cap_pages;
    float *scratch = L->scratch + ith * L->scratch_floats;
    int64_t begin, end;
    rk_pool_split(L->n_head * job->n_pages, ith, nth, &begin, &end);
    for (int64_t w = begin; w < end; w++) {
        const int64_t h = w / job->n_pages, sp = w % job->n_pages, page = job->first_page + sp;
        int64_t t0 = page * RK_KV_PAGE_TOKENS, t1 = t0 + RK_KV_PAGE_TOKENS;
        if (t0 < job->t0) t0 = job->t0;
        if (t1 > job->t_end) t1 = job->t_end;
        double *rec = job->ring->split + (h * cap + sp) * (2 + dv);
        rk_attn_partial part = {0.0, 0.0, rec + 2};
        rk_attn_group_partial(L->ops, L->kv, L->layer, h / group, 1, job->q + h * L->head_dim_k, L->scale, t0, t1,
                              job->q_pos, &part, scratch);
        rec[0] = part.m;
        rec[1] = part.l;
    }
}

/* This rank's partial of every head over its pages, into rec (n_head, 2 + dv). */
static rk_status local_partials(rk_ring *ring, const rk_ring_layer *L, const float *q, int64_t pos, double *rec,
                                rk_error *err) {
    const rk_ring_shard *s = &ring->shard;
    const int64_t dv = L->head_dim_v, n_local = rk_ring_shard_tokens(s, s->rank, pos + 1);
    const int64_t ws = window_start(L, pos);
    const int64_t t0 = ws > 0 ? rk_ring_shard_first_slot_from(s, s->rank, ws, pos + 1) : 0;
    const int64_t first_page = t0 / RK_KV_PAGE_TOKENS;
    const int64_t n_pages = t0 < n_local ? (n_local - 1) / RK_KV_PAGE_TOKENS + 1 - first_page : 0;
    size_t cap = (size_t)ring->cap_pages * (size_t)(L->n_head * (2 + dv)) * sizeof(double);
    if (!grow((void **)&ring->split, &cap, (size_t)(n_pages * L->n_head * (2 + dv)) * sizeof(double)))
        return rk_error_set(err, RK_ERR_NO_MEMORY, "ring: out of memory for decode partials");
    if (n_pages > ring->cap_pages) ring->cap_pages = n_pages;
    /* the own page reads f32 when this rank holds the query's page */
    const int64_t q_pos = s->owner[pos / RK_KV_PAGE_TOKENS] == s->rank ? rk_ring_shard_slot(s, pos)
                                                                         : n_local + RK_KV_PAGE_TOKENS;
    decode_job job = {ring, L, q, t0, n_local, first_page, n_pages, q_pos};
    if (n_pages > 0) rk_pool_run(L->pool, decode_split, &job);
    for (int64_t h = 0; h < L->n_head; h++) {
        double *dst = rec + h * (2 + dv);
        rk_attn_partial acc = {-INFINITY, 0.0, dst + 2};
        memset(dst + 2, 0, (size_t)dv * sizeof(double));
        for (int64_t sp = 0; sp < n_pages; sp++) { /* pages in order: the same bits on every run */
            double *src = ring->split + (h * ring->cap_pages + sp) * (2 + dv);
            const rk_attn_partial part = {src[0], src[1], src + 2};
            rk_attn_merge(&acc, &part, dv);
        }
        dst[0] = acc.m;
        dst[1] = acc.l;
    }
    return RK_OK;
}

rk_status rk_ring_attn_decode(rk_ring *ring, const rk_ring_layer *L, const float *q, int64_t pos, float *out,
                              rk_status local, rk_error *err) {
    rk_transport *t = ring->transport;
    const int64_t dv = L->head_dim_v;
    const size_t rec_bytes = sizeof(rec_header) + (size_t)(L->n_head * (2 + dv)) * sizeof(double);
    if (!grow((void **)&ring->rec_all, &ring->rec_cap, (size_t)(t->size + 1) * rec_bytes) && !local)
        local = rk_error_set(err, RK_ERR_NO_MEMORY, "ring: out of memory for decode partials");
    uint8_t *mine = ring->rec_cap >= (size_t)(t->size + 1) * rec_bytes ? ring->rec_all + (size_t)t->size * rec_bytes
                                                                        : NULL;
    rec_header header;
    memset(&header, 0, sizeof header);
    const double t0 = rk_now_seconds();
    if (!local) local = local_partials(ring, L, q, pos, (double *)(mine + sizeof header), err);
    const double t1 = rk_now_seconds();
    ring->stats.compute_seconds += t1 - t0;
    if (!mine) return rk_transport_agree(t, local, err); /* cannot take part in the allgather */
    header.status = (int32_t)local;
    if (local && err) memcpy(header.msg, err->msg, sizeof header.msg);
    memcpy(mine, &header, sizeof header);
    rk_status st = rk_transport_allgather(t, mine, rec_bytes, ring->rec_all, err);
    ring->stats.exchange_wait_seconds += rk_now_seconds() - t1;
    if (st) return st;
    for (int k = 0; k < t->size; k++) { /* the lowest failing rank's error, on every rank */
        memcpy(&header, ring->rec_all + (size_t)k * rec_bytes, sizeof header);
        if (header.status != RK_OK)
            return rk_error_set(err, (rk_status)header.status, "rank %d: %.*s", k, RK_ERROR_MSG_MAX - 1, header.msg);
    }
    for (int64_t h = 0; h < L->n_head; h++) { /* ranks in order: the same bits on every rank */
        double *first = (double *)(ring->rec_all + sizeof header) + h * (2 + dv); /* merged in place */
        rk_attn_partial acc = {first[0], first[1], first + 2};
        for (int k = 1; k < t->size; k++) {
            double *src = (double *)(ring->rec_all + (size_t)k * rec_bytes + sizeof header) + h * (2 + dv);
            const rk_attn_partial part = {src[0], src[1], src + 2};
            rk_attn_merge(&acc, &part, dv);
        }
        rk_attn_finish(&acc, out + h * dv, dv);
    }
    return RK_OK;
}
