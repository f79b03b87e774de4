/*
 * test-quant-common.h — random but valid test data for the quant formats, shared by the quant
 * tests and bench/bench-quant.c: random bytes for the quants, with every fp16 scale field
 * overwritten by a finite value (random bytes there could be inf/nan).
 */
#ifndef RK_TEST_QUANT_COMMON_H
#define RK_TEST_QUANT_COMMON_H

#include <stdint.h>
#include <string.h>

#include "quant/quant.h"

typedef struct { uint64_t s; } tq_rng;
static inline uint32_t tq_next(tq_rng *r) {
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return (uint32_t)(r->s >> 16);
}
static inline float tq_unif(tq_rng *r) { return (float)(tq_next(r) & 0xffffff) / 16777216.0f * 2.0f - 1.0f; }

/* Byte offsets of the fp16 scale fields inside one block (-1 terminated). */
static inline const int *tq_scale_fields(uint32_t type) {
    static const int d0[] = {0, -1}, d01[] = {0, 2, -1}, q2k[] = {80, 82, -1}, q3k[] = {108, -1},
                     q6k[] = {208, -1}, none[] = {-1};
    switch (type) {
    case RK_TYPE_Q4_0: case RK_TYPE_Q5_0: case RK_TYPE_Q8_0: return d0;
    case RK_TYPE_Q4_1: case RK_TYPE_Q5_1: case RK_TYPE_Q8_1: case RK_TYPE_Q4_K: case RK_TYPE_Q5_K: return d01;
    case RK_TYPE_Q2_K: return q2k;
    case RK_TYPE_Q3_K: return q3k;
    case RK_TYPE_Q6_K: return q6k;
    default: return none;
    }
}

/* mode 0: random; 1: all quant bytes 0xFF; 2: all 0x00; 3: all 0x80; 4: random, zero scales. */
static inline void tq_fill_weights(tq_rng *r, uint32_t type, void *dst, int64_t n, int mode) {
    const rk_type_info *ti = rk_type_get_info(type);
    uint8_t *p = dst;
    const size_t bytes = rk_type_row_bytes(type, n);
    if (type == RK_TYPE_F32 || type == RK_TYPE_F16 || type == RK_TYPE_BF16) {
        for (int64_t i = 0; i < n; i++) {
            const float v = mode == 4 ? 0.0f : tq_unif(r) * (mode == 1 ? 100.0f : 1.0f);
            if (type == RK_TYPE_F32) memcpy(p + 4 * i, &v, 4);
            else {
                const uint16_t h = type == RK_TYPE_F16 ? rk_fp32_to_fp16(v) : rk_fp32_to_bf16(v);
                memcpy(p + 2 * i, &h, 2);
            }
        }
        return;
    }
    for (size_t i = 0; i < bytes; i++)
        p[i] = mode == 1 ? 0xFF : mode == 2 ? 0x00 : mode == 3 ? 0x80 : (uint8_t)tq_next(r);
    const int *f = tq_scale_fields(type);
    for (size_t b = 0; b < bytes / (size_t)ti->block_bytes; b++)
        for (int k = 0; f[k] >= 0; k++) {
            const float v = mode == 4 ? 0.0f : tq_unif(r) * (k == 0 ? 0.05f : 0.02f);
            const uint16_t h = rk_fp32_to_fp16(v);
            memcpy(p + b * (size_t)ti->block_bytes + (size_t)f[k], &h, 2);
        }
    if (type == RK_TYPE_Q8_K) /* float d */
        for (size_t b = 0; b < bytes / (size_t)ti->block_bytes; b++) {
            const float v = mode == 4 ? 0.0f : tq_unif(r) * 0.01f;
            memcpy(p + b * (size_t)ti->block_bytes, &v, 4);
        }
}

#endif
