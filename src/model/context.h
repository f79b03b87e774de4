/*
 * context.h — a context: one sequence's KV cache plus the activation buffers of the forward
 * pass, sized once for n_ubatch tokens at creation so evaluation does not allocate (the KV
 * cache grows page by page as the sequence grows).
 */
#ifndef RK_MODEL_CONTEXT_H
#define RK_MODEL_CONTEXT_H

#include "attn/attn.h"
#include "kv/kv-cache.h"
#include "model/model.h"

/* Positions kept exact (f32) when page 0 is sealed: the attention sinks (context.c). */
#define RK_CTX_KV_SINKS 4

struct rk_context {
    const rk_model *model;
    rk_pool *pool;           /* the context's own, or its engine's (borrowed) */
    rk_engine *engine;       /* NULL: evaluated alone */
    size_t mm_scratch_per_token; /* activation scratch one token needs in the widest stage */
    rk_kv_cache *kv;
    const rk_attn_ops *attn_ops;
    int64_t n_ctx;
    int64_t n_past;
    int64_t n_ubatch;
    /* activations for up to n_ubatch tokens */
    float *x;        /* (n_ubatch, n_embd) residual stream */
    float *xb;       /* (n_ubatch, n_embd) normed input / block output */
    float *q;        /* (n_ubatch, n_head * head_dim_k) */
    float *k;        /* (n_ubatch, n_head_kv * head_dim_k) */
    float *v;        /* (n_ubatch, n_head_kv * head_dim_v) */
    float *att;      /* (n_ubatch, n_head * head_dim_v) */
    float *hb;       /* (n_ubatch, n_ff); MoE: (n_ubatch * n_used, n_ff_exp) */
    float *hb2;      /* the same */
    float *cos_sin;  /* (n_ubatch, rot_dim) for the current layer's RoPE base */
    int64_t attn_max_group; /* query heads per attention work unit: a divisor of the GQA group */
    int64_t attn_scratch_floats; /* per thread: rk_attn_scratch_floats(kv, attn_max_group) */
    float *attn_scratch; /* (n_threads, attn_scratch_floats) */
    char kv_codec_name[2][32];   /* canonical names of the key and value codecs */
    void *mm_scratch;    /* quantised activations, the largest batch of products needs */
    size_t mm_scratch_bytes;
    /* split-K decode: one partial per (query head, key page), merged in page order */
    int64_t max_splits;          /* pages the context can hold */
    /* decode: each (head, page)'s partial, stored in float (one page's partial is exact in
     * float, attn.h), merged in page order in double */
    float *split_ml;             /* (n_head, max_splits, 2): m and l */
    float *split_o;              /* (n_head, max_splits, head_dim_v) */
    double *merge_o;             /* (head_dim_v) the running merge */
    float *page_share;           /* (max_splits) attention share per page, for the tiers */
    float *page_mass;            /* (max_splits) one head's softmax mass per page (scratch) */
    /* opt-in sparse decode (--kv-sparse): 0 = exact */
    int64_t sparse_pages;        /* pages chosen by key bound besides the first and newest */
    uint8_t *sparse_visit;       /* (n_head_kv, max_splits) pages each KV head reads this step */
    uint8_t *sparse_union;       /* (max_splits) pages any head reads */
    const uint8_t **sparse_bounds; /* (max_splits) bounds of the pages in range */
    void *sparse_scratch;        /* rk_kv_sparse_scratch_bytes(max_splits) */
    uint64_t sparse_visited, sparse_skipped; /* (page, KV head) pairs since creation */
    /* mixture of experts (moe.c), allocated when the model has experts */
    float *moe_logits;           /* (n_ubatch, n_expert) router logits, then probabilities */
    int32_t *moe_choice;         /* (n_ubatch, n_used) each token's experts */
    float *moe_weight;           /* (n_ubatch, n_used) and their weights */
    int64_t *moe_offsets;        /* (n_expert + 1) start of each expert's rows in moe_rows */
    int32_t *moe_rows;           /* (n_ubatch * n_used) tokens grouped by expert */
    float *moe_row_weight;       /* (n_ubatch * n_used) the weight of each grouped row */
    float *moe_y;                /* (n_ubatch * n_used, n_embd) expert outputs, grouped rows */
    rk_matmul_task *moe_tasks;   /* (2 * n_expert) the products of one batch */
    rk_matrix *moe_views;        /* (3 * n_expert) per-expert views of the stacked tensors */
    float *moe_out;              /* (n_ubatch, n_embd) the weighted sum over experts */
    rk_weight_stats weight_stats;/* weight traffic since creation or reset */
    /* the micro-batch being evaluated: where its tokens are (set by rk_forward, or by the ring
     * driver in context-ring.c before it calls rk_forward) */
    const int64_t *fwd_positions;/* (n) RoPE positions; NULL = n_past + i */
    int64_t fwd_kv_pos0;         /* cache position of token 0 (a ring rank: its local slot) */
    bool fwd_kv_write;           /* false: a ring rank that does not hold these tokens' page */
    /* ring attention (context-ring.c), NULL for a context on one machine */
    struct rk_ring *ring;
    bool ring_prefill;           /* this forward is a ring prefill (else a ring decode step) */
    int64_t ring_first_pos;      /* a prefill round's first position (the same on every rank) */
    int64_t ring_n_tokens;       /* the sequence's length once this forward is done */
    rk_token *ring_tokens;       /* (n_ubatch) this rank's tokens of a prefill round */
    int64_t *ring_positions;     /* (n_ubatch) their global positions */
    int64_t *ring_logit_pos;     /* (ring_logit_cap) global positions of logits rows 1.. */
    int64_t ring_logit_cap;
    int64_t ring_n_local_logits; /* rows 1.. of the last eval's logits (all_logits: this rank's tokens) */
    /* logits */
    float *logits;       /* (logits_cap, n_vocab) */
    int64_t logits_cap;  /* rows allocated */
    int64_t n_logits;    /* rows valid from the last eval */
    int64_t logits_first;/* index (within the last eval) of row 0 */
};

/* y = x·Wᵀ for n rows on the context's pool (rk_matmul), counting the bytes of W it read. */
void rk_ctx_matmul(rk_context *ctx, const rk_matrix *w, const float *x, int64_t x_stride, int64_t n,
                   float *y, int64_t y_stride);

/* Several products in one pass over the pool (rk_matmul_batch), counting the bytes they read. */
void rk_ctx_matmul_batch(rk_context *ctx, const rk_matmul_task *tasks, int n_tasks);

/* x·W1ᵀ → y1 and x·W2ᵀ → y2 (a gate and an up projection: the same input, the same output
 * width y_stride) in one pass. */
void rk_ctx_matmul_pair(rk_context *ctx, const float *x, int64_t x_stride, int64_t n, const rk_matrix *w1,
                        float *y1, const rk_matrix *w2, float *y2, int64_t y_stride);

/* What the contexts of one forward pass share: the thread pool, the scratch of quantised
 * activations and the task lists of one stage's products (one to three per context). */
#define RK_FWD_TASKS_PER_ITEM 3
typedef struct rk_fwd_shared {
    rk_pool *pool;
    void *scratch;            /* rk_matmul_batch scratch: at least the stage that needs most */
    size_t scratch_bytes;
    rk_matmul_task *tasks;    /* (max_tasks) */
    rk_context **owners;      /* (max_tasks) the context each task belongs to */
    int max_tasks;            /* RK_FWD_TASKS_PER_ITEM × (items + 1) */
    /* single-row items gathered into one product (NULL: never gather) */
    float *gx;                /* (items, widest input row) */
    float *gy[3];             /* (items, widest output row of product k; [0] includes n_vocab) */
    struct rk_fwd_item **gathered; /* (items) the item of each gathered row */
} rk_fwd_shared;

/* One context's micro-batch in a forward pass over several contexts. */
typedef struct rk_fwd_item {
    rk_context *ctx;
    const rk_token *tokens;   /* (n) */
    int64_t n;                /* 1..ctx->n_ubatch */
    int64_t n_out;            /* logits of the last n_out tokens go to `logits` (n_out, n_vocab) */
    float *logits;
    int64_t pos0;             /* set by the pass: the context's n_past before it */
    rk_status status;         /* set by the pass; a failed item is left out of the later stages */
    rk_error *err;            /* its message (may be NULL) */
} rk_fwd_item;

/* Runs the model over every item's tokens in one pass: each stage's matrix products of all
 * items run as one batch on the shared pool (the weights are read once per pass), while norms,
 * RoPE and attention are per context. Every product is one task per context, so each item's
 * numbers are exactly those of running it alone. Advances each successful item's n_past; a
 * failed item's cache may hold part of its tokens (the caller truncates it back). */
void rk_forward_batch(const rk_fwd_shared *shared, rk_fwd_item *items, int64_t n_items);

/* The ring driver (context-ring.c): sets up ctx->ring from params->ring (the model's files must
 * match on every rank; `local` is this rank's creation status so far, agreed with the others),
 * evaluates like rk_context_eval, and frees it (a context without a ring: nothing). */
rk_status rk_context_ring_init(rk_context *ctx, struct rk_transport *transport, rk_status local, rk_error *err);
rk_status rk_context_ring_eval(rk_context *ctx, const rk_token *tokens, size_t n, int all_logits, rk_error *err);
void rk_context_ring_free(rk_context *ctx);
/* rk_context_truncate of a ring context, once this rank checked it (`local`, with *err): agreed
 * by every rank, so all truncate or none does. */
rk_status rk_context_ring_truncate(rk_context *ctx, int64_t pos, rk_status local, rk_error *err);
/* rk_context_logits of a ring context. */
/* The first local slot of this rank at or after global position pos. */
int64_t rk_context_ring_local_slot(const rk_context *ctx, int64_t pos);
const float *rk_context_ring_logits(const rk_context *ctx, int64_t i);

/* Makes room for `rows` rows of logits (the old rows are not kept). RK_ERR_NO_MEMORY. */
rk_status rk_context_ensure_logits(rk_context *ctx, int64_t rows, rk_error *err);

/* RK_OK when n tokens (n >= 1, each in the vocabulary) fit after the context's n_past. */
rk_status rk_context_check_tokens(const rk_context *ctx, const rk_token *tokens, size_t n, rk_error *err);
/* After a failed evaluation: forgets every token from n_past_before on, and the logits. */
void rk_context_undo(rk_context *ctx, int64_t n_past_before);

/* The engine's model and pool (engine.c). */
const rk_model *rk_engine_model(const rk_engine *engine);
rk_pool *rk_engine_pool(rk_engine *engine);

/* Runs the model over n <= n_ubatch tokens at positions n_past.. and advances n_past.
 * Writes logits of the last `n_out` tokens (n_out <= n) into `logits` (n_out, n_vocab). */
rk_status rk_forward(rk_context *ctx, const rk_token *tokens, int64_t n, int64_t n_out,
                     float *logits, rk_error *err);

#endif
