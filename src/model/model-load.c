/*
 * model-load.c — rk_model_load and the model's read-only accessors.
 *
 * Loading = open and validate the GGUF, load the tokenizer from its metadata, read the
 * hyper-parameters of a supported architecture, and bind every weight tensor (no copies: the
 * weights stay in the read-only mapping and the OS pages them in).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/model.h"

rk_model_params rk_model_default_params(void) {
    rk_model_params p = {0};
    return p;
}

static rk_status read_hparams(rk_model *m, rk_error *err) {
    const char *arch;
    rk_status s = rk_gguf_get_str(m->gguf, "general.architecture", &arch, NULL, err);
    if (s) return rk_error_prefix(err, s, "model");
    m->hp.arch_name = arch;
    if (strcmp(arch, "llama") == 0 || strcmp(arch, "qwen2") == 0 || strcmp(arch, "qwen3") == 0)
        s = rk_arch_llama_read(m->gguf, &m->hp, err);
    else if (strcmp(arch, "gemma3") == 0)
        s = rk_arch_gemma3_read(m->gguf, &m->hp, err);
    else if (strcmp(arch, "qwen2moe") == 0 || strcmp(arch, "qwen3moe") == 0 || strcmp(arch, "olmoe") == 0)
        s = rk_arch_moe_read(m->gguf, &m->hp, err);
    else
        return rk_error_set(err, RK_ERR_UNSUPPORTED,
                            "model: architecture '%s' is not supported (supported: llama (and Mixtral-style "
                            "llama MoE), qwen2, qwen3, gemma3, qwen2moe, qwen3moe, olmoe)",
                            arch);
    if (s) return s;
    const rk_gguf_tensor *embd = rk_gguf_find_tensor(m->gguf, "token_embd.weight");
    if (!embd) return rk_error_set(err, RK_ERR_FORMAT, "model: tensor 'token_embd.weight' is missing");
    m->hp.n_vocab = embd->ne[1];
    if (m->hp.n_vocab != rk_tok_n_vocab(m->tok))
        return rk_error_set(err, RK_ERR_FORMAT,
                            "model: token_embd.weight has %lld rows but the vocabulary has %lld tokens",
                            (long long)m->hp.n_vocab, (long long)rk_tok_n_vocab(m->tok));
    return RK_OK;
}

rk_status rk_model_load(const char *path, const rk_model_params *params, rk_model **out,
                        rk_error *err) {
    if (!path || !out) return rk_error_set(err, RK_ERR_INVALID_ARG, "model: NULL argument");
    *out = NULL;
    rk_model_params defaults = rk_model_default_params();
    if (!params) params = &defaults;
    rk_model *m = calloc(1, sizeof *m);
    if (!m) return rk_error_set(err, RK_ERR_NO_MEMORY, "model: out of memory");
    m->log = params->log;
    m->log_user = params->log_user;
    m->simd = rk_cpu_simd_level();
    rk_status s = rk_gguf_open(path, &m->gguf, err);
    if (!s) s = rk_tok_load(m->gguf, &m->tok, err);
    if (!s && !params->vocab_only) {
        s = read_hparams(m, err);
        if (!s) {
            m->layers = calloc((size_t)m->hp.n_layer, sizeof *m->layers);
            s = m->layers ? rk_model_bind_weights(m, err)
                          : rk_error_set(err, RK_ERR_NO_MEMORY, "model: out of memory");
        }
    }
    if (s) {
        rk_model_free(m);
        return s;
    }
    *out = m;
    return RK_OK;
}

void rk_model_free(rk_model *m) {
    if (!m) return;
    rk_tok_free(m->tok);
    free(m->layers);
    rk_gguf_close(m->gguf);
    free(m);
}

void rk_model_describe(const rk_model *m, char *buf, size_t size) {
    const rk_hparams *hp = &m->hp;
    if (!m->layers) {
        snprintf(buf, size, "vocabulary only: %lld tokens", (long long)rk_tok_n_vocab(m->tok));
        return;
    }
    char window[96] = "";
    if (hp->sliding_window)
        snprintf(window, sizeof window, ", sliding window %lld (rope base %g) on local layers",
                 (long long)hp->sliding_window, (double)hp->rope_base_local);
    snprintf(buf, size,
             "arch %s, %lld layers, n_embd %lld, %lld heads (%lld kv) of %lld, n_ff %lld, vocab "
             "%lld, trained context %lld, rope base %g%s%s, norm eps %g, SIMD %s",
             hp->arch_name, (long long)hp->n_layer, (long long)hp->n_embd, (long long)hp->n_head,
             (long long)hp->n_head_kv, (long long)hp->head_dim_k, (long long)hp->n_ff,
             (long long)hp->n_vocab, (long long)hp->n_ctx_train, (double)hp->rope_base,
             hp->rope_neox ? " (NeoX pairs)" : "", window, (double)hp->norm_eps,
             rk_simd_level_name(m->simd));
    const rk_moe_routing *r = &hp->routing;
    size_t used = strlen(buf);
    if (r->n_expert > 0 && used < size)
        snprintf(buf + used, size - used, ", %lld experts of %lld (%lld used per token, weights %s)%s",
                 (long long)r->n_expert, (long long)hp->n_ff_exp, (long long)r->n_used,
                 r->renormalise ? "renormalised" : "as routed", hp->n_ff_shexp ? " + a shared expert" : "");
}

int32_t rk_model_n_vocab(const rk_model *m) { return (int32_t)rk_tok_n_vocab(m->tok); }
int64_t rk_model_n_ctx_train(const rk_model *m) { return m->hp.n_ctx_train; }

static size_t matrix_bytes(const rk_matrix *w) { return (size_t)w->n_out * w->row_bytes; }

rk_status rk_model_evict_weights(const rk_model *m, rk_error *err) {
    return rk_gguf_evict_pages(m->gguf, err);
}

size_t rk_model_decode_bytes(const rk_model *m) {
    if (!m->layers) return 0;
    const rk_hparams *hp = &m->hp;
    size_t total = matrix_bytes(&m->output) + rk_type_row_bytes(m->token_embd->type, hp->n_embd);
    const rk_moe_routing *r = &hp->routing;
    for (int64_t il = 0; il < hp->n_layer; il++) {
        const rk_layer *L = &m->layers[il];
        const rk_matrix *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) total += matrix_bytes(ws[i]);
        if (r->n_expert == 0) {
            total += matrix_bytes(&L->w_gate) + matrix_bytes(&L->w_up) + matrix_bytes(&L->w_down);
            continue;
        }
        /* the router, the k routed experts' rows, and the shared expert */
        size_t experts = matrix_bytes(&L->exp_gate) + matrix_bytes(&L->exp_up) + matrix_bytes(&L->exp_down);
        total += matrix_bytes(&L->router) + experts / (size_t)r->n_expert * (size_t)r->n_used;
        if (L->shexp_gate)
            total += matrix_bytes(&L->sh_gate) + matrix_bytes(&L->sh_up) + matrix_bytes(&L->sh_down) +
                     (size_t)hp->n_embd * sizeof(float);
    }
    return total;
}
