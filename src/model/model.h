/*
 * model.h — what a loaded model is inside ringkv: hyper-parameters, the weight views of each
 * layer, the tokenizer, and the architecture switches the shared forward pass reads.
 *
 * One transformer forward (forward.c) serves every supported architecture; an architecture
 * file (arch-llama.c, arch-qwen.c, arch-gemma3.c) reads its hyper-parameters from GGUF metadata
 * and sets the switches below (RoPE pairing, QK-norm, biases, sandwich norms, GeGLU, embedding
 * scale, sliding windows). Anything else is refused with a message naming the architecture.
 */
#ifndef RK_MODEL_H
#define RK_MODEL_H

#include <stdbool.h>

#include "backend/cpu/cpu-ops.h"
#include "gguf/gguf.h"
#include "ringkv.h"
#include "tok/tok.h"

#define RK_MAX_LAYERS 512

typedef enum rk_arch {
    RK_ARCH_LLAMA, RK_ARCH_QWEN2, RK_ARCH_QWEN3, RK_ARCH_GEMMA3,
    RK_ARCH_QWEN2MOE, RK_ARCH_QWEN3MOE, RK_ARCH_OLMOE
} rk_arch;

/* How a mixture-of-experts layer turns router logits into expert weights (arch-moe.c). Every
 * supported architecture takes a softmax over all experts and keeps the top k; they differ in
 * whether the k kept weights are renormalised to sum to 1 and in an optional scale. */
typedef struct rk_moe_routing {
    int64_t n_expert;            /* experts per layer; 0 = a dense FFN */
    int64_t n_used;              /* experts each token uses (top k) */
    bool renormalise;            /* divide the k weights by their sum */
    float scale;                 /* multiplies the weights (1 = none) */
} rk_moe_routing;

typedef struct rk_hparams {
    rk_arch arch;
    const char *arch_name;       /* GGUF general.architecture */
    int64_t n_vocab;
    int64_t n_ctx_train;
    int64_t n_embd;
    int64_t n_layer;
    int64_t n_head;
    int64_t n_head_kv;
    int64_t head_dim_k;          /* key/query head size */
    int64_t head_dim_v;          /* value head size */
    int64_t n_ff;
    int64_t rot_dim;             /* rotated dimensions of each head */
    float norm_eps;
    float rope_base;             /* global layers */
    float rope_base_local;       /* sliding-window layers */
    float rope_scale;            /* position multiplier (1 / linear scaling factor) */
    float attn_scale;            /* multiplies q·k */
    float embd_scale;            /* multiplies the token embeddings (1 unless gemma) */
    /* architecture switches */
    bool rope_neox;              /* pair (i, i+d/2) instead of (2i, 2i+1) */
    bool qk_norm;                /* RMSNorm over each q and k head (qwen3, gemma3) */
    bool qkv_bias;               /* q, k, v projections have biases (qwen2) */
    bool sandwich_norm;          /* post-attention and post-FFN norms (gemma3) */
    bool gelu;                   /* GeGLU (tanh GELU) instead of SwiGLU */
    bool qk_norm_full;           /* q/k RMSNorm over the whole projection, not per head (olmoe) */
    /* mixture of experts (moe.h); routing.n_expert == 0 for dense models */
    rk_moe_routing routing;
    int64_t n_ff_exp;            /* hidden size of one routed expert */
    int64_t n_ff_shexp;          /* hidden size of the shared expert (qwen2moe), 0 = none */
    int64_t sliding_window;      /* tokens a local layer sees, 0 = none */
    bool layer_is_local[RK_MAX_LAYERS]; /* sliding-window layer? */
} rk_hparams;

/* The first position the query at `pos` attends to in layer il: 0, or the start of the
 * sliding window of a local layer. */
static inline int64_t rk_layer_window_start(const rk_hparams *hp, int64_t il, int64_t pos) {
    return hp->layer_is_local[il] && pos + 1 > hp->sliding_window ? pos + 1 - hp->sliding_window : 0;
}

typedef struct rk_layer {
    const float *attn_norm;      /* (n_embd) */
    rk_matrix wq;                /* (n_head*head_dim_k, n_embd) */
    rk_matrix wk;                /* (n_head_kv*head_dim_k, n_embd) */
    rk_matrix wv;                /* (n_head_kv*head_dim_v, n_embd) */
    rk_matrix wo;                /* (n_embd, n_head*head_dim_v) */
    const float *bq, *bk, *bv;   /* biases or NULL */
    const float *q_norm;         /* (head_dim_k) or NULL */
    const float *k_norm;         /* (head_dim_k) or NULL */
    const float *post_attn_norm; /* (n_embd) or NULL */
    const float *ffn_norm;       /* (n_embd) */
    rk_matrix w_gate;            /* (n_ff, n_embd) */
    rk_matrix w_up;              /* (n_ff, n_embd) */
    rk_matrix w_down;            /* (n_embd, n_ff) */
    const float *post_ffn_norm;  /* (n_embd) or NULL */
    /* mixture of experts (when hp.routing.n_expert > 0; w_gate/w_up/w_down are then unused) */
    rk_matrix router;            /* (n_expert, n_embd): ffn_gate_inp */
    rk_matrix exp_gate;          /* (n_expert * n_ff_exp, n_embd): ffn_gate_exps, experts stacked */
    rk_matrix exp_up;            /* (n_expert * n_ff_exp, n_embd): ffn_up_exps */
    rk_matrix exp_down;          /* (n_expert * n_embd, n_ff_exp): ffn_down_exps */
    const float *shexp_gate;     /* (n_embd) sigmoid gate of the shared expert, or NULL */
    rk_matrix sh_gate, sh_up, sh_down; /* the shared expert's SwiGLU FFN (n_ff_shexp) */
} rk_layer;

struct rk_model {
    rk_gguf *gguf;               /* owns the mapping every weight points into */
    rk_tok *tok;
    rk_hparams hp;
    rk_simd_level simd;
    const rk_gguf_tensor *token_embd; /* (n_vocab, n_embd), any type */
    const rk_quant_ops *embd_ops;
    const float *output_norm;    /* (n_embd) */
    rk_matrix output;            /* (n_vocab, n_embd); token_embd when tied */
    rk_layer *layers;            /* n_layer */
    rk_log_fn log;
    void *log_user;
};

/* Architecture readers: fill hp (all fields) from the GGUF metadata. */
rk_status rk_arch_llama_read(const rk_gguf *gguf, rk_hparams *hp, rk_error *err);
rk_status rk_arch_gemma3_read(const rk_gguf *gguf, rk_hparams *hp, rk_error *err);
rk_status rk_arch_moe_read(const rk_gguf *gguf, rk_hparams *hp, rk_error *err);

/* Reads "<arch>.expert_count" and the other expert keys into hp->routing, hp->n_ff_exp and
 * hp->n_ff_shexp (arch-moe.c). `required`: an architecture that is always a mixture; otherwise
 * a missing expert_count means a dense model. `renormalise`: the architecture's default. */
rk_status rk_arch_read_experts(const rk_gguf *gguf, const char *arch, bool required, bool renormalise,
                               rk_hparams *hp, rk_error *err);

/* Reads the hyper-parameters every architecture shares under "<arch>.": block_count,
 * embedding_length, head counts, feed_forward_length, context_length, rms eps, rope. */
rk_status rk_arch_read_common(const rk_gguf *gguf, const char *arch, rk_hparams *hp,
                              rk_error *err);

/* Binds every tensor of the model to hp's expected shapes. */
rk_status rk_model_bind_weights(rk_model *model, rk_error *err);

#endif
