/*
 * context-fill.c — filling a context to a great depth without prefilling it, for benchmarks of
 * decode at depth (see rk_context_fill_replicated in ringkv.h and kv/kv-replicate.h).
 */
#include "core/error.h"
#include "kv/kv-replicate.h"
#include "model/context.h"

rk_status rk_context_fill_replicated(rk_context *ctx, int64_t depth, rk_error *err) {
    if (!ctx) return rk_error_set(err, RK_ERR_INVALID_ARG, "context: NULL argument");
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
