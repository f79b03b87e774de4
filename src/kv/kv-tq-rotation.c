/*
 * kv-tq-rotation.c — the random transforms of the tq codec (see kv-codec-tq.c):
 *
 *   - the randomised Hadamard rotation of stream s, y = H·D_s·x / sqrt(d), with H the
 *     (Sylvester-ordered) Walsh–Hadamard matrix and D_s a ±1 diagonal. H·H = d·I, so the
 *     rotation is orthogonal and its inverse is x = D_s·H·y / sqrt(d);
 *   - the QJL matrix S (d × d, iid N(0, 1)), one per codec.
 *
 * Both come from splitmix64 generators keyed by the codec's seed, so the same seed gives the
 * same transforms on every machine and SIMD level (S goes through libm's log/cos/sin in double
 * and is rounded to float; the signs are pure integer arithmetic).
 */
#include <math.h>
#include <string.h>

#include "kv/kv-codec-tq.h"

/* Domain tags so the sign and Gaussian generators never share a starting state. */
#define TQ_TAG_SIGNS 0x7471736967ull /* "tqsig" */
#define TQ_TAG_QJL 0x7471716a6cull   /* "tqqjl" */

uint64_t rk_kv_tq_mix64(uint64_t x) {
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static uint64_t splitmix64_next(uint64_t *state) {
    *state += 0x9E3779B97F4A7C15ull;
    return rk_kv_tq_mix64(*state);
}

void rk_kv_tq_fill_signs(uint64_t seed, int64_t n_streams, int64_t d, uint8_t *signs) {
    const int64_t nbytes = d / 8;
    for (int64_t s = 0; s < n_streams; s++) {
        uint64_t state = rk_kv_tq_mix64(seed ^ rk_kv_tq_mix64(TQ_TAG_SIGNS + (uint64_t)s));
        uint8_t *out = signs + s * nbytes;
        uint64_t word = 0;
        for (int64_t i = 0; i < nbytes; i++) {
            if (i % 8 == 0) word = splitmix64_next(&state);
            out[i] = (uint8_t)(word >> (8 * (i % 8)));
        }
    }
}

/* A uniform double in (0, 1] from the top 53 bits of a draw. */
static double uniform_open0(uint64_t *state) {
    return (double)((splitmix64_next(state) >> 11) + 1) * 0x1.0p-53;
}

void rk_kv_tq_fill_gaussian(uint64_t seed, int64_t d, float *st) {
    uint64_t state = rk_kv_tq_mix64(seed ^ rk_kv_tq_mix64(TQ_TAG_QJL));
    const double two_pi = 6.283185307179586476925;
    /* S is drawn row by row (S[i][0], S[i][1], ...) and stored transposed. d*d is even. */
    for (int64_t k = 0; k < d * d; k += 2) {
        const double r = sqrt(-2.0 * log(uniform_open0(&state)));
        const double a = two_pi * uniform_open0(&state);
        const int64_t i0 = k / d, j0 = k % d, i1 = (k + 1) / d, j1 = (k + 1) % d;
        st[j0 * d + i0] = (float)(r * cos(a));
        st[j1 * d + i1] = (float)(r * sin(a));
    }
}

void rk_kv_tq_fwht(float *x, int64_t d) {
    for (int64_t h = 1; h < d; h *= 2)
        for (int64_t i = 0; i < d; i += 2 * h)
            for (int64_t j = i; j < i + h; j++) {
                const float a = x[j], b = x[j + h];
                x[j] = a + b;
                x[j + h] = a - b;
            }
}

/* x[j] = -x[j] where bit j of signs is set; branch-free (the bits are random, so a branch
 * would mispredict half the time) by flipping the float's sign bit. */
static void apply_signs(float *restrict x, int64_t d, const uint8_t *restrict signs) {
    for (int64_t j = 0; j < d; j++) {
        uint32_t u;
        memcpy(&u, &x[j], 4);
        u ^= (uint32_t)((signs[j >> 3] >> (j & 7)) & 1) << 31;
        memcpy(&x[j], &u, 4);
    }
}

void rk_kv_tq_rotate(float *x, int64_t d, const uint8_t *signs) {
    apply_signs(x, d, signs);
    rk_kv_tq_fwht(x, d);
    const float inv = 1.0f / sqrtf((float)d);
    for (int64_t j = 0; j < d; j++)
        x[j] *= inv;
}

void rk_kv_tq_unrotate(float *x, int64_t d, const uint8_t *signs) {
    rk_kv_tq_fwht(x, d);
    const float inv = 1.0f / sqrtf((float)d);
    for (int64_t j = 0; j < d; j++)
        x[j] *= inv;
    apply_signs(x, d, signs);
}
