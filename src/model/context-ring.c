/*
 * context-ring.c — evaluating a context that is one rank of a ring (DESIGN.md, "Ring
 * attention"; public contract at rk_context_params.ring).
 *
 * Every rank runs every layer with the same weights; the sequence's KV pages are spread over the
 * ranks (dist/ring-shard.h). An eval of several tokens is a ring prefill in rounds: each round
 * is as many whole pages as the ranks' micro-batches take, placed zig-zag; each rank evaluates
 * only the tokens of its pages of the round, in one micro-batch, and attention passes every
 * rank's KV blocks (earlier rounds' pages included) around the ring. So a rank's activations
 * stay O(n_ubatch) however long the prompt. A single token is a decode step that all ranks
 * evaluate together: the rank holding the token's page stores its keys and values, and
 * attention merges every rank's partial (dist/ring-attn.h). The last token's logits are the
 * same bits on every rank; with all_logits each rank also keeps those of its own tokens.
 *
 * Agreement: each step starts with the ranks confirming that they hold the same number of tokens,
 * were given the same tokens and could reserve their pages; failures inside a layer reach every rank through the ring. So
 * every rank returns the same status, and the message names the rank that failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crc32c.h"
#include "core/error.h"
#include "dist/ring-attn.h"
#include "model/context.h"

/* A checksum of the model file's header and tensor table (metadata keys and values, tensor
 * names, types, shapes and offsets): ranks must run the same model. */
static uint32_t model_fingerprint(const rk_model *m) {
    const rk_gguf *g = m->gguf;
    uint64_t size = rk_gguf_file_size(g);
    uint32_t crc = rk_crc32c(0, &size, sizeof size);
    char buf[256];
    for (int64_t i = 0; i < rk_gguf_kv_count(g); i++) {
        const char *key = rk_gguf_kv_key(g, i);
        crc = rk_crc32c(crc, key, strlen(key));
        rk_gguf_kv_format(g, i, buf, sizeof buf);
        crc = rk_crc32c(crc, buf, strlen(buf));
    }
    for (int64_t i = 0; i < rk_gguf_tensor_count(g); i++) {
        const rk_gguf_tensor *t = rk_gguf_tensor_at(g, i);
        crc = rk_crc32c(crc, t->name, strlen(t->name));
        crc = rk_crc32c(crc, &t->type, sizeof t->type);
        crc = rk_crc32c(crc, t->ne, sizeof t->ne);
        crc = rk_crc32c(crc, &t->offset, sizeof t->offset);
    }
    return crc;
}

/* What every rank must agree on before it joins the ring. */
typedef struct ring_hello {
    uint32_t fingerprint;
    int32_t n_ranks;
    int64_t n_ctx, n_ubatch;
    char codecs[64];
} ring_hello;

static rk_status check_hello(rk_context *ctx, rk_error *err) {
    rk_transport *t = ctx->ring->transport;
    ring_hello mine;
    memset(&mine, 0, sizeof mine);
    mine.fingerprint = model_fingerprint(ctx->model);
    mine.n_ranks = t->size;
    mine.n_ctx = ctx->n_ctx;
    mine.n_ubatch = ctx->n_ubatch;
    snprintf(mine.codecs, sizeof mine.codecs, "%s/%s", ctx->kv_codec_name[0], ctx->kv_codec_name[1]);
    ring_hello *all = malloc((size_t)t->size * sizeof *all);
    rk_status s = rk_transport_agree(t, all ? RK_OK : rk_error_set(err, RK_ERR_NO_MEMORY, "ring: out of memory"), err);
    if (!s) s = rk_transport_allgather(t, &mine, sizeof mine, all, err);
    for (int r = 1; r < t->size && !s; r++) {
        if (all[r].fingerprint != all[0].fingerprint)
            s = rk_error_set(err, RK_ERR_INVALID_ARG,
                             "ring: rank %d loaded another model than rank 0 (header and tensor table checksum "
                             "%08x, rank 0 has %08x): every rank must load the same GGUF file",
                             r, all[r].fingerprint, all[0].fingerprint);
        else if (all[r].n_ctx != all[0].n_ctx || all[r].n_ubatch != all[0].n_ubatch ||
                 strcmp(all[r].codecs, all[0].codecs) != 0)
            s = rk_error_set(err, RK_ERR_INVALID_ARG,
                             "ring: rank %d has context %lld, micro-batch %lld and KV codecs %s; rank 0 has %lld, "
                             "%lld and %s: every rank must use the same settings",
                             r, (long long)all[r].n_ctx, (long long)all[r].n_ubatch, all[r].codecs,
                             (long long)all[0].n_ctx, (long long)all[0].n_ubatch, all[0].codecs);
    }
    free(all);
    return s;
}

rk_status rk_context_ring_init(rk_context *ctx, struct rk_transport *transport, rk_status local, rk_error *err) {
    rk_status s = local;
    if (!s && (ctx->engine || ctx->sparse_pages > 0))
        s = rk_error_set(err, RK_ERR_INVALID_ARG, "context: a ring context runs alone, without an engine or "
                                                  "sparse decode");
    if (s) return rk_transport_agree(transport, s, err);
    ctx->ring = calloc(1, sizeof *ctx->ring);
    ctx->ring_tokens = malloc((size_t)ctx->n_ubatch * sizeof *ctx->ring_tokens);
    ctx->ring_positions = malloc((size_t)ctx->n_ubatch * sizeof *ctx->ring_positions);
    if (!ctx->ring || !ctx->ring_tokens || !ctx->ring_positions)
        s = rk_error_set(err, RK_ERR_NO_MEMORY, "context: out of memory for the ring");
    const int64_t max_pages = (ctx->n_ctx + RK_KV_PAGE_TOKENS - 1) / RK_KV_PAGE_TOKENS;
    if (!s) s = rk_ring_init(ctx->ring, transport, max_pages, RK_CTX_KV_SINKS, err);
    s = rk_transport_agree(transport, s, err);
    if (!s) s = check_hello(ctx, err);
    return s;
}

void rk_context_ring_free(rk_context *ctx) {
    rk_ring_free(ctx->ring);
    free(ctx->ring);
    free(ctx->ring_tokens);
    free(ctx->ring_positions);
    free(ctx->ring_logit_pos);
}

int rk_context_ring_report(const rk_context *ctx, rk_ring_report *out) {
    if (!ctx || !ctx->ring || !out) return 0;
    const rk_ring *ring = ctx->ring;
    const rk_transport *t = ring->transport;
    out->rank = t->rank;
    out->n_ranks = t->size;
    out->tokens_held = rk_ring_shard_tokens(&ring->shard, t->rank, ctx->n_past);
    out->attn_seconds = ring->stats.compute_seconds;
    out->attn_wait_seconds = ring->stats.exchange_wait_seconds;
    out->wait_seconds = t->stats.wait_seconds;
    out->bytes_sent = t->stats.bytes_sent;
    out->bytes_received = t->stats.bytes_received;
    return 1;
}

int64_t rk_context_ring_local_slot(const rk_context *ctx, int64_t pos) {
    const rk_ring_shard *sh = &ctx->ring->shard;
    return rk_ring_shard_first_slot_from(sh, sh->rank, pos, ctx->n_past);
}

/* Back to the first n tokens: pages from ceil(n / page) on are unplaced, this rank's cache keeps
 * its slots before n. The same on every rank, with no message: every rank computes it alike. */
static rk_status ring_rewind(rk_context *ctx, int64_t n, rk_error *err) {
    rk_ring_shard *sh = &ctx->ring->shard;
    rk_status s = rk_kv_truncate(ctx->kv, rk_ring_shard_tokens(sh, sh->rank, n), err);
    if (s) return s;
    rk_ring_shard_unplace_from(sh, (n + RK_KV_PAGE_TOKENS - 1) / RK_KV_PAGE_TOKENS);
    ctx->n_past = n;
    ctx->n_logits = 0;
    return RK_OK;
}

rk_status rk_context_ring_truncate(rk_context *ctx, int64_t pos, rk_status local, rk_error *err) {
    rk_status s = rk_transport_agree(ctx->ring->transport, local, err);
    return s ? s : ring_rewind(ctx, pos, err);
}

/* The same position, the same tokens on every rank, and this rank's local status: agreed by all. */
static rk_status agree_step(rk_context *ctx, const rk_token *tokens, size_t n, rk_status local, rk_error *err) {
    rk_transport *t = ctx->ring->transport;
    struct {
        uint32_t crc;
        int32_t pad;
        int64_t n_past;
    } mine = {rk_crc32c(0, tokens, n * sizeof *tokens), 0, ctx->n_past}, all[RK_RING_MAX_RANKS];
    rk_status s = rk_transport_agree(t, local, err);
    if (!s) s = rk_transport_allgather(t, &mine, sizeof mine, all, err);
    for (int r = 1; r < t->size && !s; r++) {
        if (all[r].n_past != all[0].n_past)
            s = rk_error_set(err, RK_ERR_INVALID_ARG, "ring: rank %d holds %lld tokens, rank 0 %lld (every rank must "
                                                      "evaluate and truncate alike)",
                             r, (long long)all[r].n_past, (long long)all[0].n_past);
        else if (all[r].crc != all[0].crc)
            s = rk_error_set(err, RK_ERR_INVALID_ARG, "ring: rank %d was given other tokens than rank 0 (every "
                                                      "rank must evaluate the same tokens)", r);
    }
    return s;
}

/* The rounds of a prefill of tokens [start, start + n): places their pages and writes each
 * round's end position to ends (grown as needed), their number to *n_rounds. A round whose first page is already placed (the tail page of the sequence so far, partly
 * filled) is that page's remainder, on its owner. Every other round is as many whole pages as
 * fit: no rank's share may exceed the micro-batch. */
static rk_status plan_rounds(rk_context *ctx, int64_t start, int64_t n, int64_t **ends, int64_t *cap,
                             int64_t *n_rounds, rk_error *err) {
    rk_ring_shard *sh = &ctx->ring->shard;
    const int64_t P = RK_KV_PAGE_TOKENS, end = start + n, ub = ctx->n_ubatch;
    *n_rounds = 0;
    if (ub < P)
        return rk_error_set(err, RK_ERR_INVALID_ARG, "ring: the micro-batch (-ub %lld) is smaller than one KV page "
                                                     "(%lld tokens): raise -ub to at least %lld",
                            (long long)ub, (long long)P, (long long)P);
    for (int64_t a = start; a < end;) {
        int64_t b;
        if (a / P < sh->n_placed) { /* the rest of the tail page */
            b = (a / P + 1) * P < end ? (a / P + 1) * P : end;
        } else {
            const int64_t left = (end - a + P - 1) / P;
            int64_t pages = (int64_t)sh->n_ranks * (ub / P);
            if (pages > left) pages = left;
            while (pages > 1 && rk_ring_shard_round_most(sh, pages, end) > ub) pages--;
            rk_ring_shard_place_round(sh, pages, end);
            b = (a / P + pages) * P < end ? (a / P + pages) * P : end;
        }
        if (*n_rounds == *cap) {
            int64_t grown = *cap ? 2 * *cap : 16, *e = realloc(*ends, (size_t)grown * sizeof *e);
            if (!e) return rk_error_set(err, RK_ERR_NO_MEMORY, "ring: out of memory");
            *ends = e;
            *cap = grown;
        }
        (*ends)[(*n_rounds)++] = b;
        a = b;
    }
    return RK_OK;
}

/* One prefill round [a, b): every rank evaluates its tokens of the round in one micro-batch
 * while KV blocks pass around the ring. all_logits: this rank keeps the logits of its tokens
 * (appended after row 0); last: the logits of position b - 1 go to row 0 on every rank. */
static rk_status prefill_round(rk_context *ctx, const rk_token *tokens, int64_t a, int64_t b, bool all_logits,
                               bool last, rk_error *err) {
    rk_ring *ring = ctx->ring;
    rk_ring_shard *sh = &ring->shard;
    const int me = ring->transport->rank;
    const int64_t P = RK_KV_PAGE_TOKENS, V = ctx->model->hp.n_vocab;
    int64_t k = 0;
    rk_status local = RK_OK;
    for (int64_t j = 0; j < sh->n_held[me] && !local; j++) {
        const int64_t g = sh->global_of_local[(int64_t)me * sh->max_pages + j];
        const int64_t p0 = g * P > a ? g * P : a, p1 = (g + 1) * P < b ? (g + 1) * P : b;
        for (int64_t p = p0; p < p1; p++, k++) {
            if (k == ctx->n_ubatch) { /* plan_rounds keeps every share within the micro-batch */
                local = rk_error_set(err, RK_ERR_INTERNAL, "ring: a round's share exceeds the micro-batch");
                break;
            }
            ctx->ring_tokens[k] = tokens[p - a];
            ctx->ring_positions[k] = p;
        }
    }
    const int64_t slot0 = rk_ring_shard_tokens(sh, me, a);
    if (!local && k > 0) local = rk_kv_reserve(ctx->kv, slot0 + k, err);
    rk_status s = agree_step(ctx, tokens, (size_t)(b - a), local, err);
    if (s) return s;
    ctx->fwd_positions = ctx->ring_positions;
    ctx->fwd_kv_pos0 = slot0;
    ctx->fwd_kv_write = true;
    ctx->ring_prefill = true;
    ctx->ring_first_pos = a;
    ctx->ring_n_tokens = b;
    const int last_owner = sh->owner[(b - 1) / P];
    const bool has_last = last && last_owner == me; /* then position b - 1 is its last token */
    float *rows = ctx->logits + (all_logits ? (1 + ctx->ring_n_local_logits) * V : 0);
    const int64_t n_out = all_logits ? k : has_last ? 1 : 0;
    s = rk_forward(ctx, ctx->ring_tokens, k, n_out, rows, err);
    ctx->n_past = a; /* rk_forward counted this rank's tokens only; the driver sets the length */
    if (s) return s;
    if (all_logits) {
        memcpy(ctx->ring_logit_pos + ctx->ring_n_local_logits, ctx->ring_positions, (size_t)k * sizeof(int64_t));
        ctx->ring_n_local_logits += k;
        if (has_last) memcpy(ctx->logits, rows + (k - 1) * V, (size_t)V * sizeof(float));
    }
    if (last) s = rk_transport_broadcast(ring->transport, ctx->logits, (size_t)V * sizeof(float), last_owner, err);
    if (!s) ctx->n_past = b;
    return s;
}

/* Tokens [n_past, n_past + n) in prefill rounds. On failure the context is back at n_past. */
static rk_status ring_prefill(rk_context *ctx, const rk_token *tokens, int64_t n, bool all_logits, rk_error *err) {
    rk_ring_shard *sh = &ctx->ring->shard;
    const int64_t start = ctx->n_past;
    int64_t *ends = NULL, cap = 0, n_rounds = 0;
    rk_status local = plan_rounds(ctx, start, n, &ends, &cap, &n_rounds, err);
    if (!local && all_logits) { /* rows: the last position's, then this rank's tokens */
        const int64_t mine = rk_ring_shard_tokens(sh, sh->rank, start + n) - rk_ring_shard_tokens(sh, sh->rank, start);
        local = rk_context_ensure_logits(ctx, 1 + mine, err);
        if (!local && mine > ctx->ring_logit_cap) {
            int64_t *p = realloc(ctx->ring_logit_pos, (size_t)mine * sizeof *p);
            if (p) {
                ctx->ring_logit_pos = p;
                ctx->ring_logit_cap = mine;
            } else {
                local = rk_error_set(err, RK_ERR_NO_MEMORY, "ring: out of memory");
            }
        }
    }
    ctx->ring_n_local_logits = 0;
    rk_status s = local ? agree_step(ctx, tokens, 0, local, err) : RK_OK;
    for (int64_t r = 0, a = start; r < n_rounds && !s; a = ends[r++])
        s = prefill_round(ctx, tokens + (a - start), a, ends[r], all_logits, r == n_rounds - 1, err);
    free(ends);
    if (s) { /* back from wherever the rounds stopped */
        rk_error ignored;
        ring_rewind(ctx, start, &ignored);
    }
    return s;
}

/* One token at position n_past, evaluated by every rank; stored by the holder of its page. */
static rk_status ring_decode(rk_context *ctx, rk_token token, rk_error *err) {
    rk_ring *ring = ctx->ring;
    rk_ring_shard *sh = &ring->shard;
    const int64_t pos = ctx->n_past, page = pos / RK_KV_PAGE_TOKENS;
    const bool new_page = page == sh->n_placed;
    if (new_page) rk_ring_shard_place_next(sh);
    const bool mine = sh->owner[page] == ring->transport->rank;
    const int64_t slot = mine ? rk_ring_shard_slot(sh, pos) : 0;
    rk_status s = agree_step(ctx, &token, 1, mine ? rk_kv_reserve(ctx->kv, slot + 1, err) : RK_OK, err);
    if (!s) {
        ctx->ring_positions[0] = pos;
        ctx->fwd_positions = ctx->ring_positions;
        ctx->fwd_kv_pos0 = slot;
        ctx->fwd_kv_write = mine;
        ctx->ring_prefill = false;
        ctx->ring_n_tokens = pos + 1;
        s = rk_forward(ctx, &token, 1, 1, ctx->logits, err);
    }
    if (s) { /* back to the length before this token */
        rk_error ignored;
        if (mine) rk_kv_truncate(ctx->kv, slot, &ignored);
        if (new_page) rk_ring_shard_unplace_last(sh);
        ctx->n_past = pos;
        return s;
    }
    ctx->n_past = pos + 1;
    return RK_OK;
}

rk_status rk_context_ring_eval(rk_context *ctx, const rk_token *tokens, size_t n, int all_logits, rk_error *err) {
    rk_status s = rk_context_check_tokens(ctx, tokens, n, err);
    if (s) return agree_step(ctx, tokens, 0, s, err); /* every rank fails alike */
    ctx->n_logits = 0;
    ctx->ring_n_local_logits = 0;
    if (n > 1) {
        s = ring_prefill(ctx, tokens, (int64_t)n, all_logits != 0, err);
    } else {
        s = ring_decode(ctx, tokens[0], err); /* its logits are row 0 on every rank */
    }
    if (s) return s;
    ctx->n_logits = 1;
    ctx->logits_first = (int64_t)n - 1;
    return RK_OK;
}

const float *rk_context_ring_logits(const rk_context *ctx, int64_t i) {
    if (ctx->n_logits == 0) return NULL;
    const int64_t n_eval = ctx->logits_first + 1, pos = ctx->n_past - n_eval + i;
    if (i < 0 || i == n_eval - 1) return ctx->logits; /* row 0: the last token's, on every rank */
    if (i >= n_eval) return NULL;
    const int64_t *p = ctx->ring_logit_pos;
    int64_t lo = 0, hi = ctx->ring_n_local_logits; /* this rank's positions, in order */
    while (lo < hi) {
        int64_t mid = (lo + hi) / 2;
        if (p[mid] < pos) lo = mid + 1; else hi = mid;
    }
    if (lo == ctx->ring_n_local_logits || p[lo] != pos) return NULL;
    return ctx->logits + (1 + lo) * ctx->model->hp.n_vocab;
}
