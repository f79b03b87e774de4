/*
 * kv-codec-q4-avx2.c — AVX2 kernels of the q4 codec (layouts in kv-codec-q4.c), on the shared
 * kernels of kv-codec-int-avx2.h.
 *
 * Unpacking nibbles costs more than f16's convert, and is cheapest 32 codes at a time, so the
 * q4 kernels decode a batch of rows (Q4_DOT_ROWS for scores, RK_KV_AXPY_ROWS for weighted sums)
 * RK_KV_CHUNK channels at a time into a stack buffer, and run the shared kernels on it: each
 * row is still decoded once per call, and the buffer (at most 12 KiB) stays in L1.
 *
 * Values: decoded to s * code + m (one FMA per 8 channels, its group's scale and min).
 * Keys' scores: with a per-channel scale s_i and min m_i for the rows of a 64-token group,
 *     q·k = Σ_i q_i (s_i c_i + m_i) = Σ_i (q_i s_i) c_i + Σ_i q_i m_i,
 * so per group and head we precompute q_i s_i (a chunk at a time, on the stack) and the
 * constant Σ_i q_i m_i, and the rows decode to bare codes. A row range crossing groups is
 * split at group boundaries.
 * Keys' weighted sum, which attention never asks for, is the scalar reference.
 */
#include "kv/kv-codec-int-avx2.h"

#define Q4_DOT_ROWS 12 /* rows per decoded batch for scores (a multiple of the dot's R) */

static inline __m256 f32_load8(const rk_kv_codec *c, const uint8_t *row, int64_t j) {
    (void)c;
    return _mm256_loadu_ps((const float *)(const void *)row + j);
}

/* The codes of channels [c0, c0 + cw) of nr key rows (codes at `codes`, d / 2 bytes a row)
 * as floats into buf (nr, cw). */
static void q4k_unpack(const rk_kv_codec *c, const uint8_t *codes, int64_t nr, int64_t c0,
                       int64_t cw, float *buf) {
    const int64_t rb = c->dim / 2;
    for (int64_t r = 0; r < nr; r++)
        for (int64_t j = 0; j < cw; j += 32) {
            __m256 v[4];
            rk_kv_q4_block_avx2(codes + r * rb + (c0 + j) / 2, v);
            for (int k = 0; k < 4; k++)
                _mm256_storeu_ps(buf + r * cw + j + 8 * k, v[k]);
        }
}

/* Channels [c0, c0 + cw) of nr value rows (at `rows`) decoded into buf (nr, cw). */
static void q4v_decode(const rk_kv_codec *c, const uint8_t *rows, int64_t nr, int64_t c0,
                       int64_t cw, float *buf) {
    const int64_t d = c->dim, G = rk_kv_q4_value_group(d), rb = rk_kv_q4_value_row_bytes(d);
    for (int64_t r = 0; r < nr; r++) {
        const uint8_t *row = rows + r * rb;
        for (int64_t j = 0; j < cw; j += 32) {
            uint16_t h[2];
            memcpy(h, row + 4 * ((c0 + j) / G), 4);
            const __m256 s = _mm256_set1_ps(_cvtsh_ss(h[0])), m = _mm256_set1_ps(_cvtsh_ss(h[1]));
            __m256 v[4];
            rk_kv_q4_block_avx2(row + 4 * (d / G) + (c0 + j) / 2, v);
            for (int k = 0; k < 4; k++)
                _mm256_storeu_ps(buf + r * cw + j + 8 * k, _mm256_fmadd_ps(v[k], s, m));
        }
    }
}

/* qs[g * RK_KV_CHUNK + j] = q[g * d + c0 + j] * s_(c0+j) and qm[g] += Σ_j q[g * d + c0 + j] *
 * m_(c0+j) for j < cw, g < nq, from a keys group's header hdr (dim pairs of f16 scale, min). */
static void q4k_fold_queries(const uint8_t *hdr, int64_t d, int64_t c0, int64_t cw, const float *q,
                             int64_t nq, float *qs, float *qm) {
    float s[RK_KV_CHUNK], m[RK_KV_CHUNK];
    for (int64_t j = 0; j < cw; j++) {
        uint16_t h[2];
        memcpy(h, hdr + 4 * (c0 + j), 4);
        s[j] = _cvtsh_ss(h[0]);
        m[j] = _cvtsh_ss(h[1]);
    }
    for (int64_t g = 0; g < nq; g++) {
        const float *qg = q + g * d + c0;
        __m256 a = _mm256_setzero_ps();
        for (int64_t j = 0; j < cw; j += 8) {
            const __m256 x = _mm256_loadu_ps(qg + j);
            _mm256_storeu_ps(qs + g * RK_KV_CHUNK + j, _mm256_mul_ps(x, _mm256_loadu_ps(s + j)));
            a = _mm256_fmadd_ps(x, _mm256_loadu_ps(m + j), a);
        }
        qm[g] += rk_hsum_ps(a);
    }
}

/* Raw dots Σ_j qs[g * RK_KV_CHUNK + j] * code_t,(c0+j) of nq <= RK_KV_TILE heads for the rows
 * [0, n) at codes, into out[g * out_stride + t] (added to it when c0 > 0). */
static void q4k_dot_codes(const rk_kv_codec *c, const uint8_t *codes, int64_t n, int64_t c0,
                          int64_t cw, const float *qs, int64_t nq, float *out, int64_t out_stride) {
    float buf[Q4_DOT_ROWS * RK_KV_CHUNK];
    for (int64_t t = 0; t < n; t += Q4_DOT_ROWS) {
        const int64_t nr = rk_kv_min64(Q4_DOT_ROWS, n - t);
        q4k_unpack(c, codes + t * (c->dim / 2), nr, c0, cw, buf);
        const rk_kv_dot_job jb = {.c = c,
                                  .rows = (const uint8_t *)buf,
                                  .stride = 4 * cw,
                                  .n = nr,
                                  .d8 = cw,
                                  .q = qs,
                                  .q_stride = RK_KV_CHUNK,
                                  .n_q = nq,
                                  .out = out + t,
                                  .out_stride = out_stride,
                                  .accumulate = c0 > 0};
        rk_kv_dot_avx2(&jb, f32_load8);
    }
}

/* Scores of n_q heads for rows [ta, tb) of one 64-token group into out[g * out_stride + t - ta]:
 * RK_KV_TILE heads and RK_KV_CHUNK channels at a time. */
static void q4k_group_scores(const rk_kv_codec *c, const uint8_t *page, int64_t ta, int64_t tb,
                             const float *q, int64_t n_q, float scale, float *out,
                             int64_t out_stride) {
    const int64_t d = c->dim;
    const uint8_t *hdr = page + (ta / RK_KV_Q4_KEY_GROUP) * rk_kv_q4_key_group_bytes(d);
    const uint8_t *codes = hdr + 4 * d + (ta % RK_KV_Q4_KEY_GROUP) * (d / 2);
    float qs[RK_KV_TILE * RK_KV_CHUNK], qm[RK_KV_TILE];
    for (int64_t g0 = 0; g0 < n_q; g0 += RK_KV_TILE) {
        const int64_t nq = rk_kv_min64(RK_KV_TILE, n_q - g0);
        float *o = out + g0 * out_stride;
        memset(qm, 0, sizeof qm);
        for (int64_t c0 = 0; c0 < d; c0 += RK_KV_CHUNK) {
            const int64_t cw = rk_kv_min64(RK_KV_CHUNK, d - c0);
            q4k_fold_queries(hdr, d, c0, cw, q + g0 * d, nq, qs, qm);
            q4k_dot_codes(c, codes, tb - ta, c0, cw, qs, nq, o, out_stride);
        }
        for (int64_t g = 0; g < nq; g++)
            for (int64_t t = 0; t < tb - ta; t++)
                o[g * out_stride + t] = scale * (o[g * out_stride + t] + qm[g]);
    }
}

void rk_kv_q4k_scores_avx2(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                           const float *qp, int64_t n_q, float scale, float *out,
                           int64_t out_stride) {
    for (int64_t t = t0; t < t0 + n;) {
        const int64_t end = rk_kv_min64((t / RK_KV_Q4_KEY_GROUP + 1) * RK_KV_Q4_KEY_GROUP, t0 + n);
        q4k_group_scores(c, page, t, end, qp, n_q, scale, out + (t - t0), out_stride);
        t = end;
    }
}

void rk_kv_q4k_weighted_sum_avx2(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                                 const float *w, int64_t w_stride, int64_t n_q, float *acc) {
    rk_kv_weighted_sum_ref(c, rk_kv_q4k_rows, page, t0, n, w, w_stride, n_q, acc);
}

void rk_kv_q4v_scores_avx2(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                           const float *qp, int64_t n_q, float scale, float *out,
                           int64_t out_stride) {
    const int64_t d = c->dim, rb = rk_kv_q4_value_row_bytes(d);
    float buf[Q4_DOT_ROWS * RK_KV_CHUNK];
    for (int64_t t = 0; t < n; t += Q4_DOT_ROWS) {
        const int64_t nr = rk_kv_min64(Q4_DOT_ROWS, n - t);
        for (int64_t c0 = 0; c0 < d; c0 += RK_KV_CHUNK) {
            const int64_t cw = rk_kv_min64(RK_KV_CHUNK, d - c0);
            q4v_decode(c, page + (t0 + t) * rb, nr, c0, cw, buf);
            const rk_kv_dot_job jb = {.c = c,
                                      .rows = (const uint8_t *)buf,
                                      .stride = 4 * cw,
                                      .n = nr,
                                      .d8 = cw,
                                      .q = qp + c0,
                                      .q_stride = d,
                                      .n_q = n_q,
                                      .out = out + t,
                                      .out_stride = out_stride,
                                      .accumulate = c0 > 0};
            rk_kv_dot_avx2(&jb, f32_load8);
        }
    }
    for (int64_t g = 0; g < n_q; g++)
        for (int64_t t = 0; t < n; t++)
            out[g * out_stride + t] *= scale;
}

void rk_kv_q4v_weighted_sum_avx2(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                                 const float *w, int64_t w_stride, int64_t n_q, float *acc) {
    const int64_t d = c->dim, rb = rk_kv_q4_value_row_bytes(d);
    float buf[RK_KV_AXPY_ROWS * RK_KV_CHUNK];
    for (int64_t t = 0; t < n; t += RK_KV_AXPY_ROWS) {
        const int64_t nr = rk_kv_min64(RK_KV_AXPY_ROWS, n - t);
        for (int64_t c0 = 0; c0 < d; c0 += RK_KV_CHUNK) {
            const int64_t cw = rk_kv_min64(RK_KV_CHUNK, d - c0);
            q4v_decode(c, page + (t0 + t) * rb, nr, c0, cw, buf);
            const rk_kv_axpy_job jb = {.c = c,
                                       .rows = (const uint8_t *)buf,
                                       .stride = 4 * cw,
                                       .n = nr,
                                       .d8 = cw,
                                       .w = w + t,
                                       .w_stride = w_stride,
                                       .n_q = n_q,
                                       .acc = acc + c0,
                                       .acc_stride = d};
            rk_kv_axpy_avx2(&jb, f32_load8);
        }
    }
}
