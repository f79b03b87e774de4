/*
 * arch-common.c — hyper-parameters every architecture stores the same way under "<arch>.".
 * Each value is checked for range so later size products (n_ctx * n_head_kv * head_dim ...)
 * cannot overflow and no layer loop can run past RK_MAX_LAYERS.
 */
#include <math.h>
#include <stdio.h>

#include "core/error.h"
#include "model/model.h"

static rk_status get_dim(const rk_gguf *g, const char *arch, const char *suffix, int64_t def,
                         int64_t lo, int64_t hi, int64_t *out, rk_error *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    if (rk_gguf_find_key(g, key) < 0) {
        if (def < 0) return rk_error_set(err, RK_ERR_FORMAT, "model: missing key '%s'", key);
        *out = def;
        return RK_OK;
    }
    int64_t v;
    rk_status s = rk_gguf_get_i64(g, key, &v, err);
    if (s) return rk_error_prefix(err, s, "model");
    if (v < lo || v > hi)
        return rk_error_set(err, RK_ERR_FORMAT, "model: %s = %lld is outside %lld..%lld", key,
                            (long long)v, (long long)lo, (long long)hi);
    *out = v;
    return RK_OK;
}

static rk_status get_float(const rk_gguf *g, const char *arch, const char *suffix, float def,
                           float *out, rk_error *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    rk_status s = rk_gguf_get_f32_or(g, key, def, out, err);
    if (s) return rk_error_prefix(err, s, "model");
    if (!(*out == *out) || *out <= 0.0f)
        return rk_error_set(err, RK_ERR_FORMAT, "model: %s = %g is not a positive number", key,
                            (double)*out);
    return RK_OK;
}

rk_status rk_arch_read_common(const rk_gguf *g, const char *arch, rk_hparams *hp, rk_error *err) {
    rk_status s;
    if ((s = get_dim(g, arch, "block_count", -1, 1, RK_MAX_LAYERS, &hp->n_layer, err)) ||
        (s = get_dim(g, arch, "embedding_length", -1, 1, 1 << 16, &hp->n_embd, err)) ||
        (s = get_dim(g, arch, "feed_forward_length", -1, 1, 1 << 20, &hp->n_ff, err)) ||
        (s = get_dim(g, arch, "attention.head_count", -1, 1, 1024, &hp->n_head, err)) ||
        (s = get_dim(g, arch, "attention.head_count_kv", hp->n_head, 1, 1024, &hp->n_head_kv,
                     err)) ||
        (s = get_dim(g, arch, "context_length", 2048, 1, (int64_t)1 << 32, &hp->n_ctx_train, err)))
        return s;
    if (hp->n_head % hp->n_head_kv != 0)
        return rk_error_set(err, RK_ERR_FORMAT,
                            "model: %lld query heads are not a multiple of %lld key/value heads",
                            (long long)hp->n_head, (long long)hp->n_head_kv);
    int64_t def_head = hp->n_embd / hp->n_head;
    if ((s = get_dim(g, arch, "attention.key_length", def_head, 1, 4096, &hp->head_dim_k, err)) ||
        (s = get_dim(g, arch, "attention.value_length", def_head, 1, 4096, &hp->head_dim_v,
                     err)) ||
        (s = get_dim(g, arch, "rope.dimension_count", hp->head_dim_k, 2, hp->head_dim_k,
                     &hp->rot_dim, err)))
        return s;
    if (hp->rot_dim % 2 != 0)
        return rk_error_set(err, RK_ERR_FORMAT, "model: rope.dimension_count %lld is odd",
                            (long long)hp->rot_dim);
    if ((s = get_float(g, arch, "attention.layer_norm_rms_epsilon", 1e-5f, &hp->norm_eps, err)) ||
        (s = get_float(g, arch, "rope.freq_base", 10000.0f, &hp->rope_base, err)))
        return s;
    float scale_linear = 1.0f;
    if ((s = get_float(g, arch, "rope.scaling.factor", 1.0f, &scale_linear, err))) return s;
    hp->rope_scale = 1.0f / scale_linear;
    hp->rope_base_local = hp->rope_base;
    hp->attn_scale = 1.0f / sqrtf((float)hp->head_dim_k);
    hp->embd_scale = 1.0f;
    return RK_OK;
}
