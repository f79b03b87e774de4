/* kv-codec.c — codec names, parsing and creation (see kv-codec.h). */
#include "kv/kv-codec-impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

static const char codec_names[] =
    "f32, f16, q8, q4, tq2.5, tq3, tq3.5, tq4 (keys may add +qjl to a tq rate, e.g. tq3.5+qjl)";

const char *rk_kv_codec_names(void) { return codec_names; }

static bool parse_tq_rate(const char *s, int *rate_x2) {
    static const struct { const char *text; int x2; } rates[] = {
        {"2.5", 5}, {"3", 6}, {"3.5", 7}, {"4", 8}};
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++)
        if (strcmp(s, rates[i].text) == 0) {
            *rate_x2 = rates[i].x2;
            return true;
        }
    return false;
}

rk_status rk_kv_codec_parse(const char *name, rk_kv_codec_spec *out, rk_error *err) {
    memset(out, 0, sizeof *out);
    if (!name || !*name) return rk_error_set(err, RK_ERR_INVALID_ARG, "kv codec: empty name (accepted: %s)", codec_names);
    static const struct { const char *text; rk_kv_codec_kind kind; } plain[] = {
        {"f32", RK_KV_CODEC_F32}, {"f16", RK_KV_CODEC_F16}, {"q8", RK_KV_CODEC_Q8}, {"q4", RK_KV_CODEC_Q4}};
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        if (strcmp(name, plain[i].text) == 0) {
            out->kind = plain[i].kind;
            return RK_OK;
        }
    if (strncmp(name, "tq", 2) == 0) {
        char rate[16];
        const char *plus = strchr(name + 2, '+');
        size_t len = plus ? (size_t)(plus - (name + 2)) : strlen(name + 2);
        if (len < sizeof rate) {
            memcpy(rate, name + 2, len);
            rate[len] = '\0';
            if (parse_tq_rate(rate, &out->rate_x2) && (!plus || strcmp(plus, "+qjl") == 0)) {
                out->kind = RK_KV_CODEC_TQ;
                out->qjl = plus != NULL;
                return RK_OK;
            }
        }
        memset(out, 0, sizeof *out);
        return rk_error_set(err, RK_ERR_INVALID_ARG,
                            "kv codec '%s': tq offers the rates 2.5, 3, 3.5 and 4 bits, optionally +qjl (accepted: %s)",
                            name, codec_names);
    }
    return rk_error_set(err, RK_ERR_INVALID_ARG, "kv codec '%s' is unknown (accepted: %s)", name, codec_names);
}

void rk_kv_codec_spec_name(const rk_kv_codec_spec *spec, char *buf, size_t buf_size) {
    static const char *plain[] = {"f32", "f16", "q8", "q4"};
    if (spec->kind != RK_KV_CODEC_TQ) {
        snprintf(buf, buf_size, "%s", plain[spec->kind]);
        return;
    }
    snprintf(buf, buf_size, "tq%d%s%s", spec->rate_x2 / 2, spec->rate_x2 % 2 ? ".5" : "",
             spec->qjl ? "+qjl" : "");
}

rk_status rk_kv_codec_create(const rk_kv_codec_spec *spec, rk_kv_role role, int64_t dim,
                             int64_t n_streams, int simd_level, uint64_t seed,
                             rk_kv_codec **out, rk_error *err) {
    *out = NULL;
    char name[32];
    rk_kv_codec_spec_name(spec, name, sizeof name);
    if (dim <= 0 || n_streams <= 0)
        return rk_error_set(err, RK_ERR_INVALID_ARG, "kv codec %s: dimension and stream count must be positive", name);
    if (spec->qjl && role != RK_KV_KEYS)
        return rk_error_set(err, RK_ERR_INVALID_ARG, "kv codec %s: the QJL sketch is for keys only", name);
    rk_kv_codec *c = calloc(1, sizeof *c);
    if (!c) return rk_error_set(err, RK_ERR_NO_MEMORY, "kv codec %s: out of memory", name);
    c->spec = *spec;
    c->role = role;
    c->dim = dim;
    c->n_streams = n_streams;
    c->simd = simd_level;
    c->seed = seed;
    rk_status s;
    switch (spec->kind) {
    case RK_KV_CODEC_F32: s = rk_kv_codec_init_f32(c, err); break;
    case RK_KV_CODEC_F16: s = rk_kv_codec_init_f16(c, err); break;
    case RK_KV_CODEC_Q8: s = rk_kv_codec_init_q8(c, err); break;
    case RK_KV_CODEC_Q4: s = rk_kv_codec_init_q4(c, err); break;
    case RK_KV_CODEC_TQ: s = rk_kv_codec_init_tq(c, err); break;
    default: s = rk_error_set(err, RK_ERR_INVALID_ARG, "kv codec: unknown kind %d", (int)spec->kind);
    }
    if (s) {
        rk_kv_codec_free(c);
        return s;
    }
    *out = c;
    return RK_OK;
}

void rk_kv_codec_free(rk_kv_codec *c) {
    if (!c) return;
    if (c->free_state) c->free_state(c->state);
    free(c);
}

const rk_kv_codec_ops *rk_kv_codec_get_ops(const rk_kv_codec *c) { return c->ops; }
const rk_kv_codec_spec *rk_kv_codec_get_spec(const rk_kv_codec *c) { return &c->spec; }
int64_t rk_kv_codec_dim(const rk_kv_codec *c) { return c->dim; }
size_t rk_kv_codec_page_bytes(const rk_kv_codec *c) { return c->page_bytes; }
int64_t rk_kv_codec_prep_floats(const rk_kv_codec *c) { return c->prep_floats; }
