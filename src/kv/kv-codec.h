/*
 * kv-codec.h — how one KV head's page of keys or values is stored, and the attention inner
 * loops that read that storage directly (DESIGN.md, "KV cache").
 *
 * A codec instance is made for one role (keys or values), one head dimension and one SIMD
 * level, and is immutable afterwards (shared by every layer and thread). A *page* of a codec
 * is the encoding of RK_KV_PAGE_TOKENS consecutive rows (positions) of one KV head of one
 * layer: page_bytes bytes. The rows of a layer/head pair form a *stream*; codecs that rotate
 * (tq) use a different seeded rotation per stream, numbered layer * n_head_kv + head.
 *
 * Codecs:
 *   f32        4 bytes per element; the open tail page of every cache uses it
 *   f16        2 bytes per element, exact to f16 rounding
 *   q8         per row (token): symmetric int8 with one f16 scale
 *   q4         KIVI: keys per channel (each channel's 64-token groups get an f16 scale and
 *              minimum), values per token (each row's 64-channel groups get scale and min)
 *   tqR        TurboQuant at R = 2.5, 3, 3.5 or 4 bits per element, *everything counted*:
 *              randomised Hadamard rotation per stream, per-row f16 scale, Lloyd–Max codebook
 *              for rotated unit-vector coordinates, bit widths mixed across coordinates so
 *              the row takes exactly R * dim bits; each page also stores its mean (2 + dim
 *              bytes), and rows closer to it than to 0 encode their difference from it
 *   tqR+qjl    keys only: part of the budget goes to a 1-bit QJL sketch of the residual and
 *              its f16 norm, which makes q·k unbiased
 *
 * Attention never decodes a page into a full-size buffer. For a group of n_q query heads
 * that share a KV head (GQA) it calls, per page:
 *   prepare(q)                 once per stream: queries into the codec's domain (rotation, sketch)
 *   scores(page, t0, n, qp)    scale * q·k for rows t0..t0+n-1, decoding inside the dot loop
 *   weighted_sum(page, w)      acc += Σ w_t v_t in the codec's domain, decoding inside the loop
 *   finish(acc)                o += acc mapped back to the model's domain (inverse rotation)
 *
 * Contract for kernels: every op is set for both roles (attention calls prepare/scores on key
 * codecs and weighted_sum/finish on value codecs); n_q <= 16 (RK_ATTN_MAX_GROUP); pages come
 * from malloc (16-byte aligned) and rows inside them are not aligned; a kernel may hold a few
 * decoded rows on its stack (q4 batches 8-12 rows), never a decoded page.
 */
#ifndef RK_KV_CODEC_H
#define RK_KV_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringkv.h"

#define RK_KV_PAGE_TOKENS 256

typedef enum rk_kv_codec_kind {
    RK_KV_CODEC_F32 = 0,
    RK_KV_CODEC_F16,
    RK_KV_CODEC_Q8,
    RK_KV_CODEC_Q4,
    RK_KV_CODEC_TQ,
} rk_kv_codec_kind;

typedef enum rk_kv_role { RK_KV_KEYS = 0, RK_KV_VALUES = 1 } rk_kv_role;

/* What the user asked for: parsed from a name such as "tq3.5" or "tq3+qjl". */
typedef struct rk_kv_codec_spec {
    rk_kv_codec_kind kind;
    int rate_x2;    /* tq: bits per element times two (5, 6, 7, 8); 0 otherwise */
    bool qjl;       /* tq keys: spend d + 16 bits of the row on a QJL residual sketch */
} rk_kv_codec_spec;

/* Parses a codec name. RK_ERR_INVALID_ARG naming the accepted codecs otherwise. */
rk_status rk_kv_codec_parse(const char *name, rk_kv_codec_spec *out, rk_error *err);

/* Canonical name ("f16", "tq3.5", "tq3+qjl") into buf (always NUL-terminated). */
void rk_kv_codec_spec_name(const rk_kv_codec_spec *spec, char *buf, size_t buf_size);

/* Comma-separated list of accepted names, for help texts and error messages. */
const char *rk_kv_codec_names(void);

typedef struct rk_kv_codec rk_kv_codec;

typedef struct rk_kv_codec_ops {
    /* Encodes rows[0 .. RK_KV_PAGE_TOKENS) (row stride dim floats) into page (page_bytes). */
    void (*encode)(const rk_kv_codec *c, int64_t stream, const float *rows, uint8_t *page);
    /* Decodes rows t0 .. t0+n-1 into out (n, dim): the values attention uses. Tests and
     * un-sealing a page use it; attention does not. */
    void (*decode)(const rk_kv_codec *c, int64_t stream, const uint8_t *page, int64_t t0,
                   int64_t n, float *out);
    /* Keys: qp (n_q, prep_floats) from the queries q (n_q rows of dim floats, stride dim). */
    void (*prepare)(const rk_kv_codec *c, int64_t stream, const float *q, int64_t n_q,
                    float *qp);
    /* Keys: out[g * out_stride + t] = scale * q_g·k_(t0+t) for t < n, g < n_q. */
    void (*scores)(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                   const float *qp, int64_t n_q, float scale, float *out, int64_t out_stride);
    /* Values: acc[g * dim + j] += Σ_t w[g * w_stride + t] * v_(t0+t)[j] in the codec's domain
     * (rotated for tq), for t < n, g < n_q. */
    void (*weighted_sum)(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                         const float *w, int64_t w_stride, int64_t n_q, float *acc);
    /* Values: o[g * dim + j] += acc[g] mapped back to the model's domain. */
    void (*finish)(const rk_kv_codec *c, int64_t stream, const float *acc, int64_t n_q,
                   float *o);
} rk_kv_codec_ops;

/* One codec for (spec, role, dim). n_streams = n_layer * n_head_kv; seed picks the rotations
 * and sketches (the same seed gives the same encoding). *out belongs to the caller.
 * RK_ERR_INVALID_ARG: qjl for values, non-positive sizes. RK_ERR_UNSUPPORTED: a dimension the
 * codec cannot lay out (message says which and why). */
rk_status rk_kv_codec_create(const rk_kv_codec_spec *spec, rk_kv_role role, int64_t dim,
                             int64_t n_streams, int simd_level, uint64_t seed,
                             rk_kv_codec **out, rk_error *err);
void rk_kv_codec_free(rk_kv_codec *c);

const rk_kv_codec_ops *rk_kv_codec_get_ops(const rk_kv_codec *c);
const rk_kv_codec_spec *rk_kv_codec_get_spec(const rk_kv_codec *c);
int64_t rk_kv_codec_dim(const rk_kv_codec *c);
size_t rk_kv_codec_page_bytes(const rk_kv_codec *c);  /* one stream's page */
int64_t rk_kv_codec_prep_floats(const rk_kv_codec *c); /* floats per prepared query */

#endif
