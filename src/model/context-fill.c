/*
 * context-fill.c — filling a context to a great depth without prefilling it, for benchmarks of
 * decode at depth (see rk_context_fill_replicated in ringkv.h and kv/kv-replicate.h).
 */
#include "core/error.h"
#include "kv/kv-replicate.h"
#include "model/context.h"

/* The first sliding-window layer of the model, or -1. */
static int64_t first_local_layer(const rk_hparams *hp) {
    if (hp->sliding_window <= 0) return -1;
    for (int64_t il = 0; il < hp->n_layer; il++)
        if (hp->layer_is_local[il]) return il;
    return -1;
}

rk_status rk_context_fill_replicated(rk_context *ctx, int64_t depth, rk_error *err) {
    if (!ctx) return rk_error_set(err, RK_ERR_INVALID_ARG, "context: NULL argument");
    const rk_hparams *hp = &ctx->model->hp;
    int64_t local = first_local_layer(hp);
    if (local >= 0)
        return rk_error_set(err, RK_ERR_INVALID_ARG,
                            "context: cannot replicate pages: layer %lld (and maybe others) attends through a "
                            "sliding window of %lld tokens and frees the pages behind it; replication needs a "
                            "model without sliding-window layers (fill with real text instead)",
                            (long long)local, (long long)hp->sliding_window);
    if (depth < RK_KV_PAGE_TOKENS || depth % RK_KV_PAGE_TOKENS != 0 || depth > ctx->n_ctx)
        return rk_error_set(err, RK_ERR_INVALID_ARG,
                            "context: cannot replicate to depth %lld: it must be a multiple of %d within the "
                            "context of %lld", (long long)depth, RK_KV_PAGE_TOKENS, (long long)ctx->n_ctx);
    const int64_t whole = ctx->n_past / RK_KV_PAGE_TOKENS * RK_KV_PAGE_TOKENS;
    if (whole < RK_KV_PAGE_TOKENS || whole > depth)
        return rk_error_set(err, RK_ERR_INVALID_ARG,
                            "context: replication to depth %lld needs a real prefill of %d to %lld tokens "
                            "first; the context holds %lld", (long long)depth, RK_KV_PAGE_TOKENS,
                            (long long)depth, (long long)ctx->n_past);
    rk_status s = RK_OK;
    if (whole != ctx->n_past) s = rk_context_truncate(ctx, whole, err);
    if (!s) s = rk_kv_fill_replicated(ctx->kv, whole, depth, err);
    ctx->n_logits = 0; /* the last eval's logits belong to a shorter context */
    if (s) return s;
    ctx->n_past = depth;
    return RK_OK;
}
