/*
 * moe.h — the mixture-of-experts FFN: routing each token to its top-k experts, and computing
 * only those experts.
 *
 * Routing (rk_moe_route) is a pure function of one token's router logits, so a token's experts
 * and weights never depend on the other tokens of its batch. The FFN (rk_moe_ffn) groups the
 * micro-batch's tokens by expert and runs each routed expert once over all of its tokens, so a
 * prefill chunk reads each expert's weights at most once and a decode step reads only the k
 * experts of its token. Nothing here knows about attention or the KV cache.
 */
#ifndef RK_MODEL_MOE_H
#define RK_MODEL_MOE_H

#include "model/context.h"

/* One token: softmax over r->n_expert logits, the r->n_used largest probabilities (ties go to
 * the lower expert index), optionally renormalised to sum 1, times r->scale. Writes the chosen
 * experts in decreasing weight order to experts[n_used] and their weights to weights[n_used].
 * NaN logits still yield n_used distinct, valid expert indices. */
void rk_moe_route(const rk_moe_routing *r, const float *logits, int32_t *experts, float *weights);

/* The FFN of MoE layer `L` for the n tokens whose normed inputs are in ctx->xb; writes the FFN
 * output (routed experts' weighted sum, plus the gated shared expert if the layer has one) back
 * into ctx->xb. Adds to ctx->weight_stats. */
void rk_moe_ffn(rk_context *ctx, const rk_layer *L, int64_t n);

#endif
