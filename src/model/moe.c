/*
 * moe.c — the mixture-of-experts FFN (see moe.h).
 *
 *   logits = router · h                       (n_expert per token)
 *   p = softmax(logits); top k of p; [w /= sum w]; w *= scale
 *   out = Σ_chosen w_e · down_e(silu(gate_e · h) * (up_e · h))        in expert-index order
 *       [+ sigmoid(shexp_gate · h) · shared_ffn(h)]                    (qwen2moe)
 *
 * The micro-batch is grouped by expert (a counting sort of the (token, expert) pairs), each
 * routed expert's rows are gathered into one block and multiplied once, and the results are
 * scattered back with their weights. Every row's arithmetic is the same whether it shares its
 * expert's block with other tokens or not, up to the matrix kernels' tiling.
 */
#include "model/moe.h"

#include <math.h>
#include <string.h>

void rk_moe_route(const rk_moe_routing *r, const float *logits, int32_t *experts, float *weights) {
    const int64_t n = r->n_expert, k = r->n_used;
    float max = logits[0];
    for (int64_t e = 1; e < n; e++)
        if (logits[e] > max) max = logits[e];
    double sum = 0.0; /* the softmax denominator; only the chosen probabilities are needed */
    for (int64_t e = 0; e < n; e++) sum += expf(logits[e] - max);
    float chosen_sum = 0.0f;
    for (int64_t j = 0; j < k; j++) {
        int32_t best = -1;
        for (int64_t e = 0; e < n; e++) {
            bool taken = false;
            for (int64_t i = 0; i < j && !taken; i++) taken = experts[i] == e;
            if (!taken && (best < 0 || logits[e] > logits[best])) best = (int32_t)e;
        }
        experts[j] = best;
        weights[j] = (float)(expf(logits[best] - max) / sum);
        chosen_sum += weights[j];
    }
    for (int64_t j = 0; j < k; j++) {
        if (r->renormalise && chosen_sum > 0.0f) weights[j] /= chosen_sum;
        weights[j] *= r->scale;
    }
}

/* Routes every token and groups the (token, expert) pairs by expert. Returns the number of
 * experts with at least one token. */
static int64_t route_and_group(rk_context *ctx, const rk_moe_routing *r, int64_t n) {
    const int64_t k = r->n_used, n_expert = r->n_expert;
    int64_t *off = ctx->moe_offsets;
    memset(off, 0, (size_t)(n_expert + 1) * sizeof *off);
    for (int64_t i = 0; i < n; i++) {
        rk_moe_route(r, ctx->moe_logits + i * n_expert, ctx->moe_choice + i * k, ctx->moe_weight + i * k);
        for (int64_t j = 0; j < k; j++) off[ctx->moe_choice[i * k + j] + 1]++;
    }
    int64_t touched = 0;
    for (int64_t e = 0; e < n_expert; e++) {
        touched += off[e + 1] > 0;
        off[e + 1] += off[e];
    }
    /* fill in token order, so each expert's rows are ascending */
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < k; j++) {
            int64_t e = ctx->moe_choice[i * k + j];
            int64_t slot = off[e]++;
            ctx->moe_rows[slot] = (int32_t)i;
            ctx->moe_row_weight[slot] = ctx->moe_weight[i * k + j];
        }
    for (int64_t e = n_expert; e > 0; e--) off[e] = off[e - 1]; /* undo the advance */
    off[0] = 0;
    return touched;
}

/* Rows first .. first+rows-1 of a stacked expert matrix, as a matrix of its own. */
static rk_matrix expert_rows(const rk_matrix *stack, int64_t first, int64_t rows) {
    rk_matrix m = *stack;
    m.data = (const uint8_t *)stack->data + (size_t)first * stack->row_bytes;
    m.n_out = rows;
    return m;
}

static void swiglu_rows(const rk_context *ctx, float *gate, const float *up, int64_t rows, int64_t width) {
    void (*act)(float *, const float *, int64_t) = ctx->model->simd >= RK_SIMD_AVX2 ? rk_swiglu_avx2 : rk_swiglu;
    for (int64_t i = 0; i < rows; i++) act(gate + i * width, up + i * width, width);
}

/* A SwiGLU FFN over `rows` rows of x (stride n_embd) into y (stride n_embd). */
static void swiglu_ffn(rk_context *ctx, const rk_matrix *gate, const rk_matrix *up, const rk_matrix *down,
                       const float *x, int64_t rows, float *y) {
    const int64_t E = ctx->model->hp.n_embd, F = gate->n_out;
    rk_ctx_matmul(ctx, gate, x, E, rows, ctx->hb, F);
    rk_ctx_matmul(ctx, up, x, E, rows, ctx->hb2, F);
    swiglu_rows(ctx, ctx->hb, ctx->hb2, rows, F);
    rk_ctx_matmul(ctx, down, ctx->hb, F, rows, y, E);
}

void rk_moe_ffn(rk_context *ctx, const rk_layer *L, int64_t n) {
    const rk_hparams *hp = &ctx->model->hp;
    const rk_moe_routing *r = &hp->routing;
    const int64_t E = hp->n_embd, F = hp->n_ff_exp;
    rk_ctx_matmul(ctx, &L->router, ctx->xb, E, n, ctx->moe_logits, r->n_expert);
    int64_t touched = route_and_group(ctx, r, n);
    ctx->weight_stats.experts_touched += (uint64_t)touched;
    ctx->weight_stats.experts_available += (uint64_t)r->n_expert;
    memset(ctx->moe_out, 0, (size_t)(n * E) * sizeof *ctx->moe_out);
    for (int64_t e = 0; e < r->n_expert; e++) {
        const int64_t begin = ctx->moe_offsets[e], rows = ctx->moe_offsets[e + 1] - begin;
        if (rows == 0) continue;
        for (int64_t j = 0; j < rows; j++)
            memcpy(ctx->moe_x + j * E, ctx->xb + (int64_t)ctx->moe_rows[begin + j] * E, (size_t)E * sizeof(float));
        rk_matrix gate = expert_rows(&L->exp_gate, e * F, F), up = expert_rows(&L->exp_up, e * F, F);
        rk_matrix down = expert_rows(&L->exp_down, e * E, E);
        swiglu_ffn(ctx, &gate, &up, &down, ctx->moe_x, rows, ctx->moe_y);
        for (int64_t j = 0; j < rows; j++) {
            float *out = ctx->moe_out + (int64_t)ctx->moe_rows[begin + j] * E;
            const float *y = ctx->moe_y + j * E, w = ctx->moe_row_weight[begin + j];
            for (int64_t d = 0; d < E; d++) out[d] += w * y[d];
        }
    }
    if (L->shexp_gate) { /* qwen2moe: every token also goes through the shared expert */
        swiglu_ffn(ctx, &L->sh_gate, &L->sh_up, &L->sh_down, ctx->xb, n, ctx->moe_y);
        ctx->weight_stats.bytes_read += (uint64_t)E * sizeof(float);
        for (int64_t i = 0; i < n; i++) {
            const float *h = ctx->xb + i * E, *y = ctx->moe_y + i * E;
            float dot = 0.0f;
            for (int64_t d = 0; d < E; d++) dot += L->shexp_gate[d] * h[d];
            const float g = 1.0f / (1.0f + expf(-dot));
            float *out = ctx->moe_out + i * E;
            for (int64_t d = 0; d < E; d++) out[d] += g * y[d];
        }
    }
    memcpy(ctx->xb, ctx->moe_out, (size_t)(n * E) * sizeof *ctx->xb);
}
