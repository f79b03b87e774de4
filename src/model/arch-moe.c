/*
 * arch-moe.c — mixture-of-experts architectures and the expert keys every MoE GGUF shares.
 *
 *   qwen3moe: qwen3 attention (per-head q/k RMSNorm, NeoX RoPE); routed experts only; the k
 *             chosen weights are renormalised (Qwen3's norm_topk_prob).
 *   qwen2moe: qwen2 attention (q/k/v biases, NeoX RoPE); routed experts, weights not
 *             renormalised, plus one shared expert whose output is scaled by
 *             sigmoid(ffn_gate_inp_shexp · h).
 *   olmoe:    RMSNorm over the whole q and k projections (not per head), NeoX RoPE; routed
 *             experts of feed_forward_length, weights not renormalised.
 *   llama with llama.expert_count (Mixtral): read by arch-llama.c; experts of
 *             feed_forward_length, weights renormalised.
 *
 * Every one routes by a softmax over all experts followed by the top k (for Mixtral this is the
 * same as its softmax over the top-k logits). GGUF keys "<arch>.expert_weights_norm" and
 * "<arch>.expert_weights_scale" override the defaults where a converter wrote them; a gating
 * function other than softmax ("<arch>.expert_gating_func" != 1) is refused.
 */
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "model/model.h"

#define MAX_EXPERTS 4096
#define GATING_SOFTMAX 1 /* llama.cpp's LLAMA_EXPERT_GATING_FUNC_TYPE_SOFTMAX */

static rk_status get_optional_i64(const rk_gguf *g, const char *arch, const char *suffix, int64_t *out,
                                  bool *present, rk_error *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    *present = rk_gguf_find_key(g, key) >= 0;
    if (!*present) return RK_OK;
    rk_status s = rk_gguf_get_i64(g, key, out, err);
    return s ? rk_error_prefix(err, s, "model") : RK_OK;
}

rk_status rk_arch_read_experts(const rk_gguf *g, const char *arch, bool required, bool renormalise,
                               rk_hparams *hp, rk_error *err) {
    rk_moe_routing *r = &hp->routing;
    memset(r, 0, sizeof *r);
    hp->n_ff_exp = hp->n_ff_shexp = 0;
    int64_t n_expert = 0, n_used = 0, ff_exp = 0, ff_shexp = 0, gating = GATING_SOFTMAX;
    bool has_count, has_used, has_ff, has_shff, has_gating;
    rk_status s;
    if ((s = get_optional_i64(g, arch, "expert_count", &n_expert, &has_count, err)) ||
        (s = get_optional_i64(g, arch, "expert_used_count", &n_used, &has_used, err)) ||
        (s = get_optional_i64(g, arch, "expert_feed_forward_length", &ff_exp, &has_ff, err)) ||
        (s = get_optional_i64(g, arch, "expert_shared_feed_forward_length", &ff_shexp, &has_shff, err)) ||
        (s = get_optional_i64(g, arch, "expert_gating_func", &gating, &has_gating, err)))
        return s;
    if (!has_count || n_expert == 0) {
        if (required)
            return rk_error_set(err, RK_ERR_FORMAT, "model: %s is a mixture of experts but '%s.expert_count' is %s",
                                arch, arch, has_count ? "0" : "missing");
        return RK_OK; /* a dense model */
    }
    if (n_expert < 1 || n_expert > MAX_EXPERTS)
        return rk_error_set(err, RK_ERR_FORMAT, "model: %s.expert_count = %lld is outside 1..%d", arch,
                            (long long)n_expert, MAX_EXPERTS);
    if (!has_used || n_used < 1)
        return rk_error_set(err, RK_ERR_FORMAT, "model: '%s.expert_used_count' is %s (it must be 1..expert_count)",
                            arch, has_used ? "below 1" : "missing");
    if (n_used > n_expert)
        return rk_error_set(err, RK_ERR_FORMAT, "model: %s.expert_used_count = %lld is larger than expert_count = %lld",
                            arch, (long long)n_used, (long long)n_expert);
    if (gating != GATING_SOFTMAX)
        return rk_error_set(err, RK_ERR_UNSUPPORTED,
                            "model: %s.expert_gating_func = %lld is not supported (only softmax gating, 1)", arch,
                            (long long)gating);
    r->n_expert = n_expert;
    r->n_used = n_used;
    r->renormalise = renormalise;
    r->scale = 1.0f;
    char key[128];
    snprintf(key, sizeof key, "%s.expert_weights_norm", arch);
    if ((s = rk_gguf_get_bool_or(g, key, renormalise, &r->renormalise, err))) return rk_error_prefix(err, s, "model");
    snprintf(key, sizeof key, "%s.expert_weights_scale", arch);
    if ((s = rk_gguf_get_f32_or(g, key, 1.0f, &r->scale, err))) return rk_error_prefix(err, s, "model");
    if (!(r->scale == r->scale)) return rk_error_set(err, RK_ERR_FORMAT, "model: %s is not a number", key);
    if (r->scale == 0.0f) r->scale = 1.0f; /* llama.cpp: 0 means "no scale" */
    /* qwen2moe/qwen3moe size their experts with expert_feed_forward_length (llama.cpp falls back
     * to n_ff / n_used); llama (Mixtral) and olmoe use feed_forward_length. */
    hp->n_ff_exp = has_ff && ff_exp > 0 ? ff_exp : hp->n_ff;
    if (!has_ff && (hp->arch == RK_ARCH_QWEN2MOE || hp->arch == RK_ARCH_QWEN3MOE)) hp->n_ff_exp = hp->n_ff / n_used;
    if (hp->n_ff_exp < 1 || hp->n_ff_exp > (1 << 20))
        return rk_error_set(err, RK_ERR_FORMAT, "model: expert hidden size %lld is outside 1..%d",
                            (long long)hp->n_ff_exp, 1 << 20);
    if (hp->arch == RK_ARCH_QWEN2MOE) {
        hp->n_ff_shexp = has_shff && ff_shexp > 0 ? ff_shexp : hp->n_ff;
        if (hp->n_ff_shexp > (1 << 20))
            return rk_error_set(err, RK_ERR_FORMAT, "model: shared expert hidden size %lld is too large",
                                (long long)hp->n_ff_shexp);
    }
    return RK_OK;
}

rk_status rk_arch_moe_read(const rk_gguf *gguf, rk_hparams *hp, rk_error *err) {
    const char *arch = hp->arch_name;
    rk_status s = rk_arch_read_common(gguf, arch, hp, err);
    if (s) return s;
    bool renormalise;
    if (strcmp(arch, "qwen3moe") == 0) {
        hp->arch = RK_ARCH_QWEN3MOE;
        hp->rope_neox = true;
        hp->qk_norm = true;
        renormalise = true;
    } else if (strcmp(arch, "qwen2moe") == 0) {
        hp->arch = RK_ARCH_QWEN2MOE;
        hp->rope_neox = true;
        hp->qkv_bias = true;
        renormalise = false;
    } else if (strcmp(arch, "olmoe") == 0) {
        hp->arch = RK_ARCH_OLMOE;
        hp->rope_neox = true;
        hp->qk_norm_full = true;
        renormalise = false;
    } else {
        return rk_error_set(err, RK_ERR_UNSUPPORTED, "model: architecture '%s' is not a supported mixture of experts",
                            arch);
    }
    return rk_arch_read_experts(gguf, arch, true, renormalise, hp, err);
}
