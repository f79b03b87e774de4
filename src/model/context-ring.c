/*
 * context-ring.c — evaluating a context that is one rank of a ring (DESIGN.md, "Ring
 * attention"; public contract at rk_context_params.ring).
 *
 * Every rank runs every layer with the same weights; the sequence's KV pages are spread over the
 * ranks (dist/ring-shard.h). The first eval of a prompt is a ring prefill: each rank evaluates
 * only the tokens of its pages (zig-zag chunks), in one micro-batch, and attention passes KV
 * blocks around the ring. Every later token is a decode step that all ranks evaluate together:
 * the rank holding the token's page stores its keys and values, and attention merges every
 * rank's partial (dist/ring-attn.h). Logits are the same bits on every rank.
 *
 * Agreement: each step starts with the ranks confirming that they were given the same tokens
 * and could reserve their pages; failures inside a layer reach every rank through the ring. So
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
    if (!s && transport->size > 64)
        s = rk_error_set(err, RK_ERR_UNSUPPORTED, "ring: at most 64 ranks (got %d)", transport->size);
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
}

int rk_context_ring_report(const rk_context *ctx, rk_ring_report *out) {
    if (!ctx || !ctx->ring || !out) return 0;
    const rk_ring *ring = ctx->ring;
    const rk_transport *t = ring->transport;
    out->rank = t->rank;
    out->n_ranks = t->size;
    out->tokens_held = rk_ring_shard_tokens(&ring->shard, t->rank, ctx->n_past);
    out->attn_seconds = ring->stats.compute_seconds;
    out->wait_seconds = t->stats.wait_seconds;
    out->bytes_sent = t->stats.bytes_sent;
    out->bytes_received = t->stats.bytes_received;
    return 1;
}

/* Forgets the whole sequence (after a failed prefill). */
static void ring_reset(rk_context *ctx) {
    rk_error ignored;
    rk_kv_truncate(ctx->kv, 0, &ignored);
    rk_ring_shard_clear(&ctx->ring->shard);
    ctx->n_past = 0;
    ctx->n_logits = 0;
}

/* The same tokens on every rank, and this rank's local status: agreed by all. */
static rk_status agree_step(rk_context *ctx, const rk_token *tokens, size_t n, rk_status local, rk_error *err) {
    rk_transport *t = ctx->ring->transport;
    uint32_t crc = rk_crc32c(0, tokens, n * sizeof *tokens), all_crc[64];
    rk_status s = rk_transport_agree(t, local, err);
    if (!s) s = rk_transport_allgather(t, &crc, sizeof crc, all_crc, err);
    for (int r = 1; r < t->size && !s; r++)
        if (all_crc[r] != all_crc[0])
            s = rk_error_set(err, RK_ERR_INVALID_ARG, "ring: rank %d was given other tokens than rank 0 (every "
                                                      "rank must evaluate the same tokens)", r);
    return s;
}

static rk_status ring_prefill(rk_context *ctx, const rk_token *tokens, int64_t n, rk_error *err) {
    rk_ring *ring = ctx->ring;
    rk_ring_shard *sh = &ring->shard;
    const int me = ring->transport->rank;
    rk_ring_shard_clear(sh);
    rk_ring_shard_place_prompt(sh, (n + RK_KV_PAGE_TOKENS - 1) / RK_KV_PAGE_TOKENS);
    int64_t most = 0; /* the same test on every rank: no message needed */
    for (int q = 0; q < sh->n_ranks; q++)
        if (rk_ring_shard_tokens(sh, q, n) > most) most = rk_ring_shard_tokens(sh, q, n);
    rk_status local = RK_OK;
    if (most > ctx->n_ubatch)
        local = rk_error_set(err, RK_ERR_INVALID_ARG, "ring: a rank's share of the %lld-token prompt is %lld tokens, "
                                                      "more than the micro-batch (%lld): raise -ub to at least %lld",
                             (long long)n, (long long)most, (long long)ctx->n_ubatch, (long long)most);
    int64_t k = 0;
    for (int64_t j = 0; j < sh->n_held[me] && !local; j++) {
        const int64_t g = sh->global_of_local[(int64_t)me * sh->max_pages + j];
        for (int64_t p = g * RK_KV_PAGE_TOKENS; p < n && p < (g + 1) * RK_KV_PAGE_TOKENS; p++, k++) {
            ctx->ring_tokens[k] = tokens[p];
            ctx->ring_positions[k] = p;
        }
    }
    if (!local && k > 0) local = rk_kv_reserve(ctx->kv, k, err);
    rk_status s = agree_step(ctx, tokens, (size_t)n, local, err);
    if (s) {
        ring_reset(ctx);
        return s;
    }
    ctx->fwd_positions = ctx->ring_positions;
    ctx->fwd_kv_pos0 = 0;
    ctx->fwd_kv_write = true;
    ctx->ring_prefill = true;
    ctx->ring_n_tokens = n;
    const int last_owner = sh->owner[(n - 1) / RK_KV_PAGE_TOKENS]; /* its last local token is n - 1 */
    s = rk_forward(ctx, ctx->ring_tokens, k, last_owner == me ? 1 : 0, ctx->logits, err);
    if (!s)
        s = rk_transport_broadcast(ring->transport, ctx->logits, (size_t)ctx->model->hp.n_vocab * sizeof(float),
                                   last_owner, err);
    if (s) {
        ring_reset(ctx);
        return s;
    }
    ctx->n_past = n;
    return RK_OK;
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
    rk_status s = all_logits ? rk_error_set(err, RK_ERR_UNSUPPORTED, "ring: logits of every position are not "
                                                                     "supported across ranks yet")
                             : rk_context_check_tokens(ctx, tokens, n, err);
    if (s) return agree_step(ctx, tokens, 0, s, err); /* every rank fails alike */
    ctx->n_logits = 0;
    if (ctx->n_past == 0 && n > 1) {
        s = ring_prefill(ctx, tokens, (int64_t)n, err);
    } else {
        for (size_t i = 0; i < n && !s; i++) s = ring_decode(ctx, tokens[i], err);
    }
    if (s) return s;
    ctx->n_logits = 1;
    ctx->logits_first = (int64_t)n - 1;
    return RK_OK;
}
