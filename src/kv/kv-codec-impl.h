/*
 * kv-codec-impl.h — what every codec implementation fills in (private to src/kv).
 *
 * rk_kv_codec_create validates the common arguments, fills the common fields, then calls the
 * kind's init, which sets page_bytes, prep_floats, ops and (optionally) state + free_state.
 * Ops are chosen by c->simd (an rk_simd_level) inside init.
 */
#ifndef RK_KV_CODEC_IMPL_H
#define RK_KV_CODEC_IMPL_H

#include "kv/kv-codec.h"

struct rk_kv_codec {
    rk_kv_codec_spec spec;
    rk_kv_role role;
    int64_t dim;
    int64_t n_streams;
    int simd;                  /* rk_simd_level */
    uint64_t seed;
    size_t page_bytes;         /* one stream's page of RK_KV_PAGE_TOKENS rows */
    int64_t prep_floats;       /* floats per prepared query (keys) */
    const rk_kv_codec_ops *ops;
    void *state;               /* kind-specific tables; NULL when none */
    void (*free_state)(void *state);
};

rk_status rk_kv_codec_init_f32(rk_kv_codec *c, rk_error *err);
rk_status rk_kv_codec_init_f16(rk_kv_codec *c, rk_error *err);
rk_status rk_kv_codec_init_q8(rk_kv_codec *c, rk_error *err);
rk_status rk_kv_codec_init_q4(rk_kv_codec *c, rk_error *err);
rk_status rk_kv_codec_init_tq(rk_kv_codec *c, rk_error *err);

#endif
