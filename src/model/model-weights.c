/*
 * model-weights.c — binds GGUF tensors to the layer structs, checking each tensor's existence,
 * type and shape against the hyper-parameters so the forward pass never reads out of bounds.
 * Messages name the tensor and both shapes.
 */
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "model/model.h"

/* Finds tensor `name` and checks its shape is [ne0, ne1] (ne2 == 1), or [ne0, ne1, ne2] for a
 * stacked expert tensor (ne2 = expert_count). A missing tensor is an error when `required`. */
static rk_status find_checked(const rk_model *m, const char *name, int64_t ne0, int64_t ne1, int64_t ne2,
                              bool required, const rk_gguf_tensor **out, rk_error *err) {
    const rk_gguf_tensor *t = rk_gguf_find_tensor(m->gguf, name);
    *out = t;
    if (!t) {
        if (!required) return RK_OK;
        return rk_error_set(err, RK_ERR_FORMAT, "model: tensor '%s' is missing", name);
    }
    if (t->ne[0] == ne0 && t->ne[1] == ne1 && t->ne[2] == ne2 && t->ne[3] == 1) return RK_OK;
    char expected[96];
    if (ne2 == 1)
        snprintf(expected, sizeof expected, "[%lld, %lld]", (long long)ne0, (long long)ne1);
    else
        snprintf(expected, sizeof expected, "[%lld, %lld, %lld] (expert_count %lld)", (long long)ne0,
                 (long long)ne1, (long long)ne2, (long long)ne2);
    return rk_error_set(err, RK_ERR_FORMAT, "model: tensor '%s' has shape [%lld, %lld, %lld, %lld], expected %s",
                        name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3],
                        expected);
}

/* Binds a found tensor as an (n_out, n_in) matrix (n_out = ne[1] * ne[2] for stacked experts). */
static rk_status bind_found(const rk_model *m, const char *name, const rk_gguf_tensor *t, int64_t n_in,
                            int64_t n_out, rk_matrix *out, rk_error *err) {
    const rk_quant_ops *ops = rk_quant_get_ops(t->type, m->simd);
    if (!ops) {
        const rk_type_info *info = rk_type_get_info(t->type);
        return rk_error_set(err, RK_ERR_UNSUPPORTED,
                            "model: tensor '%s' has type %s, which ringkv cannot compute with",
                            name, info ? info->name : "?");
    }
    out->data = t->data;
    out->type = t->type;
    out->n_in = n_in;
    out->n_out = n_out;
    out->row_bytes = rk_type_row_bytes(t->type, n_in);
    out->ops = ops;
    return RK_OK;
}

static rk_status bind_matrix(const rk_model *m, const char *name, int64_t n_in, int64_t n_out,
                             rk_matrix *out, rk_error *err) {
    const rk_gguf_tensor *t;
    rk_status s = find_checked(m, name, n_in, n_out, 1, true, &t, err);
    return s ? s : bind_found(m, name, t, n_in, n_out, out, err);
}

/* Binds ffn_*_exps (ne = [n_in, n_out, n_expert]) as one (n_expert * n_out, n_in) matrix:
 * expert e is rows e*n_out .. (e+1)*n_out - 1. */
static rk_status bind_experts(const rk_model *m, const char *name, int64_t n_in, int64_t n_out,
                              rk_matrix *out, rk_error *err) {
    const rk_gguf_tensor *t;
    const int64_t n_expert = m->hp.routing.n_expert;
    rk_status s = find_checked(m, name, n_in, n_out, n_expert, true, &t, err);
    return s ? s : bind_found(m, name, t, n_in, n_out * n_expert, out, err);
}

static rk_status bind_vector(const rk_model *m, const char *name, int64_t n, bool required,
                             const float **out, rk_error *err) {
    const rk_gguf_tensor *t;
    *out = NULL;
    rk_status s = find_checked(m, name, n, 1, 1, required, &t, err);
    if (s || !t) return s;
    if (t->type != RK_TYPE_F32)
        return rk_error_set(err, RK_ERR_UNSUPPORTED, "model: tensor '%s' must be F32 (type %u)",
                            name, t->type);
    *out = t->data;
    return RK_OK;
}

static void layer_name(char *buf, size_t size, int64_t il, const char *suffix) {
    snprintf(buf, size, "blk.%lld.%s", (long long)il, suffix);
}

/* The dense SwiGLU/GeGLU FFN. */
static rk_status bind_ffn_dense(rk_model *m, int64_t il, rk_error *err) {
    const rk_hparams *hp = &m->hp;
    rk_layer *L = &m->layers[il];
    char n[3][96];
    layer_name(n[0], sizeof n[0], il, "ffn_gate.weight");
    layer_name(n[1], sizeof n[1], il, "ffn_up.weight");
    layer_name(n[2], sizeof n[2], il, "ffn_down.weight");
    rk_status s;
    if ((s = bind_matrix(m, n[0], hp->n_embd, hp->n_ff, &L->w_gate, err)) ||
        (s = bind_matrix(m, n[1], hp->n_embd, hp->n_ff, &L->w_up, err)) ||
        (s = bind_matrix(m, n[2], hp->n_ff, hp->n_embd, &L->w_down, err)))
        return s;
    return RK_OK;
}

/* A mixture-of-experts FFN: router, stacked experts, and (qwen2moe) the shared expert. */
static rk_status bind_ffn_moe(rk_model *m, int64_t il, rk_error *err) {
    const rk_hparams *hp = &m->hp;
    rk_layer *L = &m->layers[il];
    const int64_t E = hp->n_embd, F = hp->n_ff_exp, SF = hp->n_ff_shexp;
    char n[8][96];
    const char *suffix[8] = {"ffn_gate_inp.weight",  "ffn_gate_exps.weight", "ffn_up_exps.weight",
                             "ffn_down_exps.weight", "ffn_gate_inp_shexp.weight", "ffn_gate_shexp.weight",
                             "ffn_up_shexp.weight",  "ffn_down_shexp.weight"};
    for (int i = 0; i < 8; i++) layer_name(n[i], sizeof n[i], il, suffix[i]);
    rk_status s;
    if ((s = bind_matrix(m, n[0], E, hp->routing.n_expert, &L->router, err)) ||
        (s = bind_experts(m, n[1], E, F, &L->exp_gate, err)) ||
        (s = bind_experts(m, n[2], E, F, &L->exp_up, err)) ||
        (s = bind_experts(m, n[3], F, E, &L->exp_down, err)))
        return s;
    if (SF == 0) return RK_OK;
    if ((s = bind_vector(m, n[4], E, true, &L->shexp_gate, err)) ||
        (s = bind_matrix(m, n[5], E, SF, &L->sh_gate, err)) ||
        (s = bind_matrix(m, n[6], E, SF, &L->sh_up, err)) ||
        (s = bind_matrix(m, n[7], SF, E, &L->sh_down, err)))
        return s;
    return RK_OK;
}

static rk_status bind_layer(rk_model *m, int64_t il, rk_error *err) {
    const rk_hparams *hp = &m->hp;
    rk_layer *L = &m->layers[il];
    int64_t q_dim = hp->n_head * hp->head_dim_k;
    int64_t k_dim = hp->n_head_kv * hp->head_dim_k;
    int64_t v_dim = hp->n_head_kv * hp->head_dim_v;
    int64_t o_dim = hp->n_head * hp->head_dim_v;
    /* q/k norms: one weight per head dimension, or (olmoe) over the whole projection */
    bool qk_norm = hp->qk_norm || hp->qk_norm_full;
    int64_t q_norm_dim = hp->qk_norm_full ? q_dim : hp->head_dim_k;
    int64_t k_norm_dim = hp->qk_norm_full ? k_dim : hp->head_dim_k;
    char n[13][96];
    const char *suffix[13] = {"attn_norm.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight",
                              "attn_output.weight", "attn_q_norm.weight", "attn_k_norm.weight",
                              "post_attention_norm.weight", "ffn_norm.weight", "post_ffw_norm.weight",
                              "attn_q.bias", "attn_k.bias", "attn_v.bias"};
    for (int i = 0; i < 13; i++) layer_name(n[i], sizeof n[i], il, suffix[i]);
    rk_status s;
    if ((s = bind_vector(m, n[0], hp->n_embd, true, &L->attn_norm, err)) ||
        (s = bind_matrix(m, n[1], hp->n_embd, q_dim, &L->wq, err)) ||
        (s = bind_matrix(m, n[2], hp->n_embd, k_dim, &L->wk, err)) ||
        (s = bind_matrix(m, n[3], hp->n_embd, v_dim, &L->wv, err)) ||
        (s = bind_matrix(m, n[4], o_dim, hp->n_embd, &L->wo, err)) ||
        (s = bind_vector(m, n[5], q_norm_dim, qk_norm, &L->q_norm, err)) ||
        (s = bind_vector(m, n[6], k_norm_dim, qk_norm, &L->k_norm, err)) ||
        (s = bind_vector(m, n[7], hp->n_embd, hp->sandwich_norm, &L->post_attn_norm, err)) ||
        (s = bind_vector(m, n[8], hp->n_embd, true, &L->ffn_norm, err)) ||
        (s = bind_vector(m, n[9], hp->n_embd, hp->sandwich_norm, &L->post_ffn_norm, err)) ||
        (s = bind_vector(m, n[10], q_dim, hp->qkv_bias, &L->bq, err)) ||
        (s = bind_vector(m, n[11], k_dim, hp->qkv_bias, &L->bk, err)) ||
        (s = bind_vector(m, n[12], v_dim, hp->qkv_bias, &L->bv, err)))
        return s;
    return hp->routing.n_expert > 0 ? bind_ffn_moe(m, il, err) : bind_ffn_dense(m, il, err);
}

/* Tensors some converters write that this forward pass does not apply: refusing the file is
 * better than silently computing something else. */
static rk_status refuse_unused_biases(const rk_model *m, rk_error *err) {
    if (rk_gguf_find_tensor(m->gguf, "output.bias"))
        return rk_error_set(err, RK_ERR_UNSUPPORTED, "model: tensor 'output.bias' is not supported");
    char name[96];
    for (int64_t il = 0; il < m->hp.n_layer; il++) {
        const char *kinds[] = {"attn_output.bias", "ffn_up.bias", "ffn_down.bias", "ffn_gate.bias"};
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
            snprintf(name, sizeof name, "blk.%lld.%s", (long long)il, kinds[k]);
            if (rk_gguf_find_tensor(m->gguf, name))
                return rk_error_set(err, RK_ERR_UNSUPPORTED, "model: tensor '%s' is not supported", name);
        }
    }
    return RK_OK;
}

rk_status rk_model_bind_weights(rk_model *m, rk_error *err) {
    const rk_hparams *hp = &m->hp;
    rk_status s = refuse_unused_biases(m, err);
    if (s) return s;
    if ((s = bind_matrix(m, "token_embd.weight", hp->n_embd, hp->n_vocab, &m->output, err)))
        return s;
    m->token_embd = rk_gguf_find_tensor(m->gguf, "token_embd.weight");
    m->embd_ops = m->output.ops;
    if (rk_gguf_find_tensor(m->gguf, "output.weight") &&
        (s = bind_matrix(m, "output.weight", hp->n_embd, hp->n_vocab, &m->output, err)))
        return s;
    if ((s = bind_vector(m, "output_norm.weight", hp->n_embd, true, &m->output_norm, err)))
        return s;
    for (int64_t il = 0; il < hp->n_layer; il++)
        if ((s = bind_layer(m, il, err))) return s;
    return RK_OK;
}
