/*
 * kv-codec-tq.c — the TurboQuant ("tq") KV codec: layout, init, encode/decode, the query and
 * output transforms, and the scalar reference kernels (SIMD ones in kv-codec-tq-avx2.c and
 * kv-codec-tq-avx512-gfni.c).
 *
 * Rate. A row (one token's vector of dimension d for one KV head) takes rate_x2 * d / 16 bytes:
 * exactly R bits per element. Of its rate_x2 * d / 2 bits, 16 go to the f16 row scale, and
 * with +qjl (keys only) 16 more to the f16 residual norm gamma and d to the residual's sign
 * sketch. The rest, coord_bits, is spread over the d rotated coordinates: b = floor(coord_bits /
 * d) bits each, and coordinates 0 .. n_hi-1 get one bit more (n_hi = coord_bits - b*d). A page
 * adds its mean, 2 + d bytes per 256 rows (R + 8(d+2)/(256 d) bits per element: 3.53 for tq3.5 at
 * d = 64). d must be a power of two >= 16 (and <= RK_KV_TQ_MAX_DIM), b >= 1, widths <= 4 and n_hi
 * a multiple of 8; anything else is RK_ERR_UNSUPPORTED.
 *
 * Rotation. Stream s (layer * n_head_kv + head) rotates by y = H·D_s·x / sqrt(d), H the
 * Walsh–Hadamard matrix, D_s a seeded ±1 diagonal (kv-tq-rotation.c). After it, the
 * coordinates of x/||x|| look like those of a uniformly random unit vector, whatever x is.
 *
 * Centring. Keys and values of one head share a large common component (a channel bias that
 * attention's softmax ignores for keys, and that dominates their norms: the mean of a page is
 * about 65% of its keys' energy in SmolLM2). The page stores m, the mean of its rotated rows,
 * as an f16 step and d int8 multiples; each row then encodes y - m instead of y when that is
 * shorter, which the sign bit of its f16 scale records (attention sinks and outliers, far from
 * m, stay themselves, and m is recomputed without them). scores() adds q_rot·m to the rows
 * that are centred, weighted_sum() adds (Σ w_t over centred rows)·m; both are exact in m.
 *
 * Codebooks. u = v / ||v|| * sqrt(d), v the row's vector (y or y - m), is quantised coordinate
 * by coordinate to the nearest centroid of the Lloyd–Max codebook of its width for the density of
 * such a coordinate (kv-tq-codebook.c); codes index the centroids C in ascending order. The
 * centroids are rounded to bf16, which the AVX2 lookup needs and which changes the MSE by less
 * than 0.1%. The row scale is the least-squares nu = sqrt(d) <v, c> / ||c||^2 for the centroid
 * vector c (not ||v||: that lowers the MSE by a few percent), stored in f16 without its sign
 * bit; the reconstruction is v̂ = nu / sqrt(d) · c. A zero vector (or one whose scale rounds to
 * 0 in f16) encodes scale 0 and all-zero codes; scales above 65504 are clamped to the largest f16.
 *
 * QJL (keys, +qjl). r = v - v̂, gamma = ||r||, signs = sign(S·r) (a set bit is +1, and 0 counts
 * as +1) with S a seeded d×d matrix of iid N(0, 1), one per codec. Then q·v ≈ q_rot·v̂ +
 * sqrt(pi/2)/d · gamma · (S·q_rot)·signs is unbiased over S. decode() returns the same estimate as
 * a vector: the inverse rotation of v̂ + sqrt(pi/2)/d · gamma · S^T·signs (+ m when centred), so
 * decode(k)·q equals scores() up to float rounding.
 *
 * Row layout (bytes, little-endian):
 *   [f16 scale nu, bit 15 = centred] [qjl: f16 gamma]
 *   [qjl: d/8 bytes of signs, bit j of byte i = sign of (S r)_(8i+j)]
 *   [b bit planes of d/8 bytes] [plane b: n_hi/8 bytes]
 * In plane p, bit j of byte i is bit p of the code of coordinate 8i+j; plane b covers only the
 * coordinates 0 .. n_hi-1. A page is RK_KV_PAGE_TOKENS rows back to back, then the mean:
 *   [f16 step] [d int8: m_j = step * int8_j]
 *
 * Attention. prepare() rotates each query with the stream's rotation and quantises it to
 * integers: qi = round(q_rot / qscale) with qscale = max|q_rot| / 127 (an error of at most
 * 1/254 of the largest coordinate, far below the codec's own). Per head,
 *   qp = [q_rot (d) | qi (d floats) | qscale | 128·Σqi | qi as d int8 (d/4 floats) | qjl: S·q_rot (d)].
 * scores() takes qscale · Σ_j qi_j C_j, an integer dot product in units of 1/32 (the centroids
 * are multiples of 1/32): exact in float at every SIMD level, and on AVX-512 one VNNI
 * instruction per 64 coordinates, with the centroids offset by 128 to be unsigned (hence
 * 128·Σqi). The page mean's share q_rot·m and the QJL sketch use the exact q_rot. Every level
 * scales a row's dot product the same way: (scale · nu/sqrt(d)) · (qscale · dot), so scores are
 * bit-identical across levels without qjl. weighted_sum() accumulates
 * w_t·nu_t/sqrt(d)·C (plus w_t·m) in the rotated domain (the AVX-512 kernels round
 * w_t·nu_t/sqrt(d) to int16 steps of the page's largest first and sum exactly in integers:
 * rk_kv_tq_weight_rounding bounds the difference) and finish() applies the inverse
 * rotation of the stream (the QJL part is for keys and never enters weighted sums). Encode is scalar at every SIMD level, so the
 * bytes depend only on the seed.
 */
#include "kv/kv-codec-tq.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "quant/quant.h"

static void put_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static float get_f16(const uint8_t *p) { return rk_fp16_to_fp32((uint16_t)(p[0] | p[1] << 8)); }

static const rk_kv_tq_state *tq_state(const rk_kv_codec *c) { return c->state; }

/* y += a·x (restrict: the compiler may vectorise it; the result is the same either way). */
static void axpy(float *restrict y, float a, const float *restrict x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        y[i] += a * x[i];
}

/* out = S·v (d floats) as a sum of the columns of S, which are the contiguous rows of st. */
static void mul_s(const rk_kv_tq_state *s, const float *v, float *out) {
    memset(out, 0, (size_t)s->dim * sizeof(float));
    for (int64_t j = 0; j < s->dim; j++)
        axpy(out, v[j], s->st + j * s->dim, s->dim);
}

static const uint8_t *stream_signs(const rk_kv_tq_state *s, int64_t stream) {
    return s->signs + stream * (s->dim / 8);
}

/* ---- encode ---- */

static int nearest_code(const rk_kv_tq_codebook *bk, float u) {
    const int n = 1 << bk->width;
    int code = 0;
    while (code + 1 < n && u > bk->threshold[code])
        code++;
    return code;
}

static float clamp_f16_range(double v) { return v < 65504.0 ? (float)v : 65504.0f; }

/* The QJL part of a row from the residual r (rotated domain): gamma and sign(S r). */
static void encode_qjl(const rk_kv_tq_state *s, const float *r, uint8_t *row) {
    const int64_t d = s->dim;
    float sr[RK_KV_TQ_MAX_DIM];
    double ss = 0.0;
    for (int64_t j = 0; j < d; j++)
        ss += (double)r[j] * r[j];
    put_u16(row + s->off_gamma, rk_fp32_to_fp16(clamp_f16_range(sqrt(ss))));
    mul_s(s, r, sr);
    uint8_t *bits = row + s->off_signs;
    for (int64_t i = 0; i < d; i++)
        if (sr[i] >= 0.0f) bits[i >> 3] |= (uint8_t)(1u << (i & 7));
}

/* Encodes y (d floats in the rotated domain; clobbered: it becomes the residual) into row.
 * The codes quantise y / ||y|| * sqrt(d); the stored scale is not ||y|| but the least-squares
 * factor nu = sqrt(d) <y, c> / ||c||^2 for the centroid vector c, so y ≈ nu / sqrt(d) · c. */
static void encode_rotated_row(const rk_kv_tq_state *s, float *y, bool centred, uint8_t *row) {
    const int64_t d = s->dim;
    double ss = 0.0;
    for (int64_t j = 0; j < d; j++)
        ss += (double)y[j] * y[j];
    memset(row, 0, s->row_bytes);
    const float norm = (float)sqrt(ss);
    if (!(norm > 0.0f) || !isfinite(norm)) return;
    const float to_unit = sqrtf((float)d) / norm;
    uint8_t *planes = row + s->off_planes;
    float c[RK_KV_TQ_MAX_DIM];
    double yc = 0.0, cc = 0.0;
    for (int64_t j = 0; j < d; j++) {
        const rk_kv_tq_codebook *bk = &s->book[j < s->n_hi];
        const int code = nearest_code(bk, y[j] * to_unit);
        for (int p = 0; p < bk->width; p++)
            if ((code >> p) & 1)
                planes[(size_t)p * s->plane_bytes + (size_t)(j >> 3)] |= (uint8_t)(1u << (j & 7));
        c[j] = bk->centroid[code];
        yc += (double)y[j] * c[j];
        cc += (double)c[j] * c[j];
    }
    const double nu = cc > 0.0 && yc > 0.0 ? sqrt((double)d) * yc / cc : 0.0;
    const uint16_t nh = rk_fp32_to_fp16(clamp_f16_range(nu));
    put_u16(row, (uint16_t)(nh | (centred ? RK_KV_TQ_CENTRED_BIT : 0)));
    const float from_unit = rk_fp16_to_fp32(nh) * s->inv_sqrt_d;
    for (int64_t j = 0; j < d; j++)
        y[j] -= from_unit * c[j]; /* y becomes the residual r */
    if (s->qjl) encode_qjl(s, y, row);
}

/* Mean of the rotated rows of a page that are closer to `centre` than to 0 (all rows when
 * centre is NULL). */
static void rows_mean(const rk_kv_tq_state *s, const uint8_t *signs, const float *rows,
                      const float *centre, double *mean) {
    const int64_t d = s->dim;
    float y[RK_KV_TQ_MAX_DIM];
    int64_t n = 0;
    memset(mean, 0, (size_t)d * sizeof(double));
    for (int64_t t = 0; t < RK_KV_PAGE_TOKENS; t++) {
        memcpy(y, rows + t * d, (size_t)d * sizeof(float));
        rk_kv_tq_rotate(y, d, signs);
        if (centre) {
            double raw = 0.0, res = 0.0;
            for (int64_t j = 0; j < d; j++) {
                raw += (double)y[j] * y[j];
                res += ((double)y[j] - centre[j]) * ((double)y[j] - centre[j]);
            }
            if (!(res < raw)) continue;
        }
        for (int64_t j = 0; j < d; j++)
            mean[j] += y[j];
        n++;
    }
    for (int64_t j = 0; j < d; j++)
        mean[j] = n > 0 ? mean[j] / (double)n : 0.0;
}

/* The page mean the rows are centred on: the mean of all rotated rows, then again over the
 * rows that mean helps (so attention sinks and outliers do not pull it). Written as an f16
 * step and d int8 multiples into page + off_mean; *mean gets the values stored. */
static void encode_mean(const rk_kv_tq_state *s, const uint8_t *signs, const float *rows,
                        uint8_t *page, float *mean) {
    const int64_t d = s->dim;
    double acc[RK_KV_TQ_MAX_DIM];
    float first[RK_KV_TQ_MAX_DIM];
    rows_mean(s, signs, rows, NULL, acc);
    for (int64_t j = 0; j < d; j++)
        first[j] = (float)acc[j];
    rows_mean(s, signs, rows, first, acc);
    double amax = 0.0;
    for (int64_t j = 0; j < d; j++)
        if (fabs(acc[j]) > amax) amax = fabs(acc[j]);
    const uint16_t sh = rk_fp32_to_fp16(clamp_f16_range(amax / 127.0));
    const float step = rk_fp16_to_fp32(sh);
    uint8_t *out = page + s->off_mean;
    put_u16(out, sh);
    for (int64_t j = 0; j < d; j++) {
        long q = step > 0.0f ? lround(acc[j] / step) : 0;
        q = q > 127 ? 127 : q < -127 ? -127 : q;
        out[2 + j] = (uint8_t)(int8_t)q;
        mean[j] = step * (float)q;
    }
}

void rk_kv_tq_page_mean(const rk_kv_tq_state *s, const uint8_t *page, float *mean) {
    const uint8_t *in = page + s->off_mean;
    const float step = get_f16(in);
    for (int64_t j = 0; j < s->dim; j++)
        mean[j] = step * (float)(int8_t)in[2 + j];
}

static void tq_encode(const rk_kv_codec *c, int64_t stream, const float *rows, uint8_t *page) {
    const rk_kv_tq_state *s = tq_state(c);
    const int64_t d = s->dim;
    const uint8_t *signs = stream_signs(s, stream);
    float mean[RK_KV_TQ_MAX_DIM], y[RK_KV_TQ_MAX_DIM];
    encode_mean(s, signs, rows, page, mean);
    for (int64_t t = 0; t < RK_KV_PAGE_TOKENS; t++) {
        memcpy(y, rows + t * d, (size_t)d * sizeof(float));
        rk_kv_tq_rotate(y, d, signs);
        /* A row far from the page mean (an attention sink, an outlier) is cheaper as itself. */
        double raw = 0.0, res = 0.0;
        for (int64_t j = 0; j < d; j++) {
            raw += (double)y[j] * y[j];
            res += ((double)y[j] - mean[j]) * ((double)y[j] - mean[j]);
        }
        const bool centred = res < raw;
        if (centred)
            for (int64_t j = 0; j < d; j++)
                y[j] -= mean[j];
        encode_rotated_row(s, y, centred, page + (size_t)t * s->row_bytes);
    }
}

/* ---- decode (rotated domain helpers shared by the scalar kernels) ---- */

/* vals[j] = C[code_j] of a row: the MSE reconstruction divided by norm/sqrt(d). */
static void row_centroids(const rk_kv_tq_state *s, const uint8_t *row, float *vals) {
    const uint8_t *planes = row + s->off_planes;
    for (int64_t j = 0; j < s->dim; j++)
        vals[j] = s->book[j < s->n_hi].centroid[rk_kv_tq_code(s, planes, j)];
}

/* sgn[i] = ±1 from the row's QJL sign bits. */
static void row_signs(const rk_kv_tq_state *s, const uint8_t *row, float *sgn) {
    const uint8_t *bits = row + s->off_signs;
    for (int64_t i = 0; i < s->dim; i++)
        sgn[i] = (bits[i >> 3] >> (i & 7)) & 1 ? 1.0f : -1.0f;
}

static void tq_decode(const rk_kv_codec *c, int64_t stream, const uint8_t *page, int64_t t0,
                      int64_t n, float *out) {
    const rk_kv_tq_state *s = tq_state(c);
    const int64_t d = s->dim;
    float sgn[RK_KV_TQ_MAX_DIM], mean[RK_KV_TQ_MAX_DIM];
    rk_kv_tq_page_mean(s, page, mean);
    for (int64_t t = 0; t < n; t++) {
        const uint8_t *row = page + (size_t)(t0 + t) * s->row_bytes;
        float *o = out + t * d;
        const float row_scale = rk_kv_tq_row_norm(row) * s->inv_sqrt_d;
        row_centroids(s, row, o);
        for (int64_t j = 0; j < d; j++)
            o[j] *= row_scale;
        if (s->qjl) { /* o += sqrt(pi/2)/d · gamma · S^T·signs */
            const float g = s->qjl_coef * get_f16(row + s->off_gamma);
            row_signs(s, row, sgn);
            for (int64_t j = 0; j < d; j++) {
                float dot = 0.0f;
                for (int64_t i = 0; i < d; i++)
                    dot += s->st[j * d + i] * sgn[i];
                o[j] += g * dot;
            }
        }
        if (rk_kv_tq_row_centred(row))
            for (int64_t j = 0; j < d; j++)
                o[j] += mean[j];
        rk_kv_tq_unrotate(o, d, stream_signs(s, stream));
    }
}

/* ---- query and output transforms (every SIMD level) ---- */

/* The integer query of q_rot (see "Attention" at the top). */
static void quantise_query(const rk_kv_tq_state *s, float *o) {
    const int64_t d = s->dim;
    float amax = 0.0f;
    for (int64_t j = 0; j < d; j++)
        amax = fabsf(o[j]) > amax ? fabsf(o[j]) : amax;
    const float qscale = amax / 127.0f, inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    int8_t *q8 = (int8_t *)(o + s->prep_q8);
    int32_t sum = 0;
    for (int64_t j = 0; j < d; j++) {
        long v = lrintf(o[j] * inv);
        v = v > 127 ? 127 : v < -127 ? -127 : v;
        q8[j] = (int8_t)v;
        o[s->prep_qi + j] = (float)v;
        sum += (int32_t)v;
    }
    o[s->prep_qscale] = qscale;
    o[s->prep_qsum] = 128.0f * (float)sum;
}

static void tq_prepare(const rk_kv_codec *c, int64_t stream, const float *q, int64_t n_q,
                       float *qp) {
    const rk_kv_tq_state *s = tq_state(c);
    const int64_t d = s->dim;
    for (int64_t g = 0; g < n_q; g++) {
        float *o = qp + g * c->prep_floats;
        memcpy(o, q + g * d, (size_t)d * sizeof(float));
        s->rotate(o, d, stream_signs(s, stream));
        quantise_query(s, o);
        if (s->qjl) mul_s(s, o, o + s->prep_sketch); /* S·q_rot */
    }
}

static void tq_finish(const rk_kv_codec *c, int64_t stream, const float *acc, int64_t n_q,
                      float *o) {
    const rk_kv_tq_state *s = tq_state(c);
    const int64_t d = s->dim;
    float tmp[RK_KV_TQ_MAX_DIM];
    for (int64_t g = 0; g < n_q; g++) {
        memcpy(tmp, acc + g * d, (size_t)d * sizeof(float));
        s->unrotate(tmp, d, stream_signs(s, stream));
        for (int64_t j = 0; j < d; j++)
            o[g * d + j] += tmp[j];
    }
}

/* ---- scalar kernels: the reference the AVX2 ones must match ---- */

static void tq_scores(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                      const float *qp, int64_t n_q, float scale, float *out, int64_t out_stride) {
    const rk_kv_tq_state *s = tq_state(c);
    const int64_t d = s->dim;
    float vals[RK_KV_TQ_MAX_DIM], sgn[RK_KV_TQ_MAX_DIM];
    for (int64_t t = 0; t < n; t++) {
        const uint8_t *row = page + (size_t)(t0 + t) * s->row_bytes;
        const float row_scale = rk_kv_tq_row_norm(row) * s->inv_sqrt_d;
        const float qjl_scale = s->qjl ? s->qjl_coef * get_f16(row + s->off_gamma) : 0.0f;
        row_centroids(s, row, vals);
        if (s->qjl) row_signs(s, row, sgn);
        for (int64_t g = 0; g < n_q; g++) {
            const float *q = qp + g * c->prep_floats;
            float dot = 0.0f, sketch = 0.0f; /* dot: exact (integers over 32) */
            for (int64_t j = 0; j < d; j++)
                dot += q[s->prep_qi + j] * vals[j];
            float o = (scale * row_scale) * (q[s->prep_qscale] * dot);
            if (s->qjl) {
                for (int64_t i = 0; i < d; i++)
                    sketch += q[s->prep_sketch + i] * sgn[i];
                o += (scale * qjl_scale) * sketch;
            }
            out[g * out_stride + t] = o;
        }
    }
}

static void tq_weighted_sum(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                            const float *w, int64_t w_stride, int64_t n_q, float *acc) {
    const rk_kv_tq_state *s = tq_state(c);
    const int64_t d = s->dim;
    float vals[RK_KV_TQ_MAX_DIM];
    for (int64_t t = 0; t < n; t++) {
        const uint8_t *row = page + (size_t)(t0 + t) * s->row_bytes;
        const float row_scale = rk_kv_tq_row_norm(row) * s->inv_sqrt_d;
        row_centroids(s, row, vals);
        for (int64_t g = 0; g < n_q; g++) {
            const float wt = w[g * w_stride + t] * row_scale;
            for (int64_t j = 0; j < d; j++)
                acc[g * d + j] += wt * vals[j];
        }
    }
}

double rk_kv_tq_weight_rounding(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                                const float *w) {
    if (c->spec.kind != RK_KV_CODEC_TQ) return 0.0;
    const rk_kv_tq_state *s = tq_state(c);
    if (!s->int16_weights) return 0.0;
    float vals[RK_KV_TQ_MAX_DIM];
    double wmax = 0.0, norms = 0.0;
    for (int64_t t = 0; t < n; t++) {
        const uint8_t *row = page + (size_t)(t0 + t) * s->row_bytes;
        const double ws = fabs((double)w[t] * rk_kv_tq_row_norm(row) * s->inv_sqrt_d);
        wmax = ws > wmax ? ws : wmax;
        row_centroids(s, row, vals);
        double sq = 0.0;
        for (int64_t j = 0; j < s->dim; j++)
            sq += (double)vals[j] * vals[j];
        norms += sqrt(sq);
    }
    return wmax / 32767.0 * 0.5 * norms;
}

/* ---- the ops: row kernels (scalar or AVX2) plus the page mean's share ---- */

/* Σ a_i b_i in 16 interleaved partial sums added by a fixed tree: the same bits at every SIMD
 * level, and a loop the compiler vectorises (a single running sum cannot be: each addition
 * waits for the one before). */
static float dot_lanes(const float *a, const float *b, int64_t n) {
    float p[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++)
            p[l] += a[i + l] * b[i + l];
    for (; i < n; i++)
        p[i % 16] += a[i] * b[i];
    for (int w = 8; w >= 1; w /= 2)
        for (int l = 0; l < w; l++)
            p[l] += p[l + w];
    return p[0];
}

/* centred[t] = 1 for the rows t0 .. t0+n-1 of a page encoded as differences from its mean. */
static void centred_rows(const rk_kv_tq_state *s, const uint8_t *page, int64_t t0, int64_t n,
                         float *centred) {
    for (int64_t t = 0; t < n; t++)
        centred[t] = rk_kv_tq_row_centred(page + (size_t)(t0 + t) * s->row_bytes) ? 1.0f : 0.0f;
}

/* q·k_t = q_rot·(mean + r̂_t): the row kernel scores the residuals, q_rot·mean is added once. */
static void tq_scores_page(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                           const float *qp, int64_t n_q, float scale, float *out,
                           int64_t out_stride) {
    const rk_kv_tq_state *s = tq_state(c);
    s->row_scores(c, page, t0, n, qp, n_q, scale, out, out_stride);
    float mean[RK_KV_TQ_MAX_DIM], centred[RK_KV_PAGE_TOKENS];
    rk_kv_tq_page_mean(s, page, mean);
    centred_rows(s, page, t0, n, centred);
    for (int64_t g = 0; g < n_q; g++) {
        const float qm = scale * dot_lanes(qp + g * c->prep_floats, mean, s->dim);
        float *o = out + g * out_stride;
        for (int64_t t = 0; t < n; t++)
            o[t] += qm * centred[t];
    }
}

/* Σ_t w_t v_t = Σ_t w_t r̂_t + (Σ_t w_t over centred rows)·mean. */
static void tq_weighted_sum_page(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                                 const float *w, int64_t w_stride, int64_t n_q, float *acc) {
    const rk_kv_tq_state *s = tq_state(c);
    s->row_weighted_sum(c, page, t0, n, w, w_stride, n_q, acc);
    float mean[RK_KV_TQ_MAX_DIM], centred[RK_KV_PAGE_TOKENS];
    rk_kv_tq_page_mean(s, page, mean);
    centred_rows(s, page, t0, n, centred);
    for (int64_t g = 0; g < n_q; g++) {
        const float wsum = dot_lanes(w + g * w_stride, centred, n);
        for (int64_t j = 0; j < s->dim; j++)
            acc[g * s->dim + j] += wsum * mean[j];
    }
}

static const rk_kv_codec_ops tq_ops = {tq_encode,      tq_decode,            tq_prepare,
                                       tq_scores_page, tq_weighted_sum_page, tq_finish};

/* ---- init ---- */

/* Fills the layout of s from (rate, qjl, d); RK_ERR_UNSUPPORTED naming why it cannot. */
static rk_status tq_layout(rk_kv_tq_state *s, const rk_kv_codec *c, const char *name,
                           rk_error *err) {
    const int64_t d = c->dim;
    if (d < 16 || (d & (d - 1)) != 0)
        return rk_error_set(err, RK_ERR_UNSUPPORTED,
                            "kv codec %s: head dimension %lld is not a power of two >= 16 (the "
                            "Hadamard rotation needs one)",
                            name, (long long)d);
    if (d > RK_KV_TQ_MAX_DIM)
        return rk_error_set(err, RK_ERR_UNSUPPORTED,
                            "kv codec %s: head dimension %lld is above the supported %d", name,
                            (long long)d, RK_KV_TQ_MAX_DIM);
    const bool qjl = c->spec.qjl;
    const int64_t overhead = 16 + (qjl ? 16 + d : 0);
    const int64_t coord_bits = (int64_t)c->spec.rate_x2 * d / 2 - overhead;
    const int64_t b = coord_bits > 0 ? coord_bits / d : 0, n_hi = coord_bits - b * d;
    if (b < 1)
        return rk_error_set(err, RK_ERR_UNSUPPORTED,
                            "kv codec %s: head dimension %lld leaves %lld bits for %lld "
                            "coordinates after the norm%s; each needs at least 1",
                            name, (long long)d, (long long)coord_bits, (long long)d,
                            qjl ? "s and the sign sketch" : "");
    if (b + (n_hi > 0) > RK_KV_TQ_MAX_WIDTH || n_hi % 8 != 0)
        return rk_error_set(err, RK_ERR_UNSUPPORTED,
                            "kv codec %s: head dimension %lld needs %lld-bit codes for %lld "
                            "coordinates (at most %d bits, a multiple of 8 coordinates)",
                            name, (long long)d, (long long)(b + 1), (long long)n_hi,
                            RK_KV_TQ_MAX_WIDTH);
    s->dim = d;
    s->b = (int)b;
    s->n_hi = (int)n_hi;
    s->qjl = qjl;
    s->row_bytes = (size_t)(c->spec.rate_x2 * d / 16);
    s->plane_bytes = (size_t)(d / 8);
    s->off_gamma = 2;
    s->off_signs = 4;
    s->off_planes = qjl ? 4 + s->plane_bytes : 2;
    s->off_mean = (size_t)RK_KV_PAGE_TOKENS * s->row_bytes;
    s->mean_bytes = 2 + (size_t)d;
    s->inv_sqrt_d = 1.0f / sqrtf((float)d);
    s->qjl_coef = (float)(sqrt(3.14159265358979323846 / 2.0) / (double)d);
    return RK_OK;
}

static void tq_free_state(void *p) {
    rk_kv_tq_state *s = p;
    if (!s) return;
    free(s->signs);
    free(s->st);
    free(s->avx512_tables);
    free(s);
}

static rk_status tq_tables(rk_kv_tq_state *s, const rk_kv_codec *c, const char *name,
                           rk_error *err) {
    const int64_t d = s->dim;
    if (c->n_streams > (int64_t)(SIZE_MAX / 2 / (size_t)(d / 8)))
        return rk_error_set(err, RK_ERR_INVALID_ARG, "kv codec %s: %lld streams is too many", name,
                            (long long)c->n_streams);
    s->signs = malloc((size_t)c->n_streams * (size_t)(d / 8));
    s->st = s->qjl ? malloc((size_t)(d * d) * sizeof(float)) : NULL;
    if (!s->signs || (s->qjl && !s->st))
        return rk_error_set(err, RK_ERR_NO_MEMORY, "kv codec %s: out of memory (rotation tables)",
                            name);
    rk_kv_tq_fill_signs(c->seed, c->n_streams, d, s->signs);
    if (s->qjl) rk_kv_tq_fill_gaussian(c->seed, d, s->st);
    rk_status st = rk_kv_tq_codebook_build(d, s->b, &s->book[0], NULL, err);
    if (!st && s->n_hi > 0) st = rk_kv_tq_codebook_build(d, s->b + 1, &s->book[1], NULL, err);
    return st;
}

rk_status rk_kv_codec_init_tq(rk_kv_codec *c, rk_error *err) {
    char name[32];
    rk_kv_codec_spec_name(&c->spec, name, sizeof name);
    rk_kv_tq_state *s = calloc(1, sizeof *s);
    if (!s) return rk_error_set(err, RK_ERR_NO_MEMORY, "kv codec %s: out of memory", name);
    rk_status st = tq_layout(s, c, name, err);
    if (!st) st = tq_tables(s, c, name, err);
    if (st) {
        tq_free_state(s);
        return st;
    }
    c->state = s;
    c->free_state = tq_free_state;
    c->page_bytes = (size_t)RK_KV_PAGE_TOKENS * s->row_bytes + s->mean_bytes;
    s->prep_qi = s->dim;
    s->prep_qscale = 2 * s->dim;
    s->prep_qsum = s->prep_qscale + 1;
    s->prep_q8 = s->prep_qsum + 1;
    s->prep_sketch = s->prep_q8 + s->dim / 4;
    c->prep_floats = s->prep_sketch + (s->qjl ? s->dim : 0);
    c->ops = &tq_ops;
    /* The SIMD kernels work on blocks of 32 (AVX2) or 16 (AVX-512) coordinates of one width;
     * the AVX-512 ones decode a row's bit planes with VBMI and GFNI and take d <= 256. */
    s->row_scores = tq_scores;
    s->row_weighted_sum = tq_weighted_sum;
    s->rotate = rk_kv_tq_rotate;
    s->unrotate = rk_kv_tq_unrotate;
    if (c->simd >= RK_SIMD_AVX2) {
        s->rotate = rk_kv_tq_rotate_avx2;
        s->unrotate = rk_kv_tq_unrotate_avx2;
    }
    if (c->simd >= RK_SIMD_AVX512 && rk_cpu_has_avx512_gfni() && rk_kv_tq_avx512_supports(s)) {
        st = rk_kv_tq_avx512_init(s, err);
        if (st) return st; /* c owns s now: rk_kv_codec_create frees it */
        s->row_scores = rk_kv_tq_scores_avx512;
        s->row_weighted_sum = rk_kv_tq_weighted_sum_avx512;
        s->int16_weights = true;
    } else if (c->simd >= RK_SIMD_AVX2 && s->dim >= 32) {
        s->row_scores = rk_kv_tq_scores_avx2;
        s->row_weighted_sum = rk_kv_tq_weighted_sum_avx2;
    }
    return RK_OK;
}
