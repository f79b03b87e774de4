/*
 * attn.h — exact attention over paged keys/values through online-softmax partials.
 *
 * A partial summarises attention of one query head over some set of keys: the running max m,
 * the sum l of exp(score - m), and the unnormalised output o = sum exp(score - m) * v.
 * rk_attn_merge combines two partials over disjoint key sets exactly; it is associative and
 * commutative and is the only place the softmax normalisation lives (DESIGN.md, "the one
 * operator"). Pages, threads (split-K) and ring ranks all reduce through it. Nothing here
 * forms a score matrix larger than one page.
 *
 * One page's partial is computed in float by its codecs; partials are held and merged in
 * double. So the order in which pages are combined (page order in one process, rank blocks in
 * a ring, any thread split) changes the result only at double rounding, about 1e-16 relative,
 * and the float result is in practice the same bits whatever the grouping: ring attention
 * gives the greedy tokens of one process.
 */
#ifndef RK_ATTN_H
#define RK_ATTN_H

#include <stdint.h>

#include "kv/kv-cache.h"

typedef struct rk_attn_partial {
    double m;     /* running max of the scores (a float value); -INFINITY when empty */
    double l;     /* sum of exp(score - m) */
    double *o;    /* (head_dim_v) unnormalised output; borrowed storage */
} rk_attn_partial;

/* Makes p the empty partial (m = -inf, l = 0, o = 0) using o_storage (dv doubles). */
void rk_attn_partial_init(rk_attn_partial *p, double *o_storage, int64_t dv);

/* dst := merge(dst, src). Either may be empty. */
void rk_attn_merge(rk_attn_partial *dst, const rk_attn_partial *src, int64_t dv);

/* dst := merge(dst, one page's float partial (m, l, o)), as rk_attn_group_partial computes it
 * (a partial over keys of one page is exact in float: it can be stored as floats and merged
 * later with the same result). Nothing happens when l == 0 (an empty page partial). */
void rk_attn_merge_page(rk_attn_partial *dst, float m, float l, const float *o, int64_t dv);

/* out = o / l rounded to float; zeros when the partial is empty. */
void rk_attn_finish(const rk_attn_partial *p, float *out, int64_t dv);

/* The softmax inner loop per SIMD level (scalar reference and AVX2/FMA). The dot products and
 * weighted sums over a page belong to its codec (kv-codec.h), which reads the page directly. */
typedef struct rk_attn_ops {
    /* s[t] = exp(s[t] - m) in place; returns their sum */
    float (*exp_sum)(float *s, int64_t n, float m);
} rk_attn_ops;

/* Ops for `simd_level` (an rk_simd_level from quant.h); static, never NULL. */
const rk_attn_ops *rk_attn_get_ops(int simd_level);

float rk_attn_exp_sum_avx2(float *s, int64_t n, float m);

/* Most query heads one rk_attn_group call takes. */
#define RK_ATTN_MAX_GROUP 16

/* Scratch floats rk_attn_group needs for n_q query heads over `kv` (depends on its codecs); a
 * multiple of 16, so per-thread slices of one 64-byte aligned buffer stay aligned. */
int64_t rk_attn_scratch_floats(const rk_kv_cache *kv, int64_t n_q);

/* Attention of n_q query heads that share KV head `kv_head` (GQA) over positions [t0, t1) of
 * `layer`: out[g] (dv floats each, contiguous) = softmax(scale * q[g]·K) V, with q[g] at
 * q + g * head_dim_k. Every key and value row is read once for all n_q heads. Requires
 * 1 <= n_q <= RK_ATTN_MAX_GROUP, t0 < t1 and the positions reserved. */
void rk_attn_group(const rk_attn_ops *ops, const rk_kv_cache *kv, int64_t layer, int64_t kv_head,
                   int64_t n_q, const float *q, float scale, int64_t t0, int64_t t1, float *out,
                   float *scratch);

/* The same, stopping before normalisation: parts[g] becomes the partial of head g over
 * [t0, t1) (empty when t0 >= t1) for queries at position q_pos (which picks how pages are
 * read, see rk_kv_get_page); each parts[g].o must point to dv doubles. Partials of disjoint
 * ranges merge with rk_attn_merge (split-K / flash-decoding). */
void rk_attn_group_partial(const rk_attn_ops *ops, const rk_kv_cache *kv, int64_t layer,
                           int64_t kv_head, int64_t n_q, const float *q, float scale, int64_t t0,
                           int64_t t1, int64_t q_pos, rk_attn_partial *parts, float *scratch);

/* rk_attn_group_partial for callers that visit one head's pages in several calls (decode's
 * flash-decoding units are single pages): *prepared names the key codec whose prepared query
 * (kv-codec.h prepare) scratch still holds for this layer, head and q, and is updated. Set it
 * to NULL before the first call, and again whenever the layer, head, q or scratch changes.
 * Saves a tq codec's query rotation and quantisation per page. */
void rk_attn_group_partial_cached(const rk_attn_ops *ops, const rk_kv_cache *kv, int64_t layer,
                                  int64_t kv_head, int64_t n_q, const float *q, float scale,
                                  int64_t t0, int64_t t1, int64_t q_pos, rk_attn_partial *parts,
                                  float *scratch, const rk_kv_codec **prepared);

/* The same over positions [t0, t1) of a block of another rank's pages (kv-cache.h,
 * rk_kv_block; position 0 is the block's first row), read through kv's codecs: ring attention. */
void rk_attn_group_partial_block(const rk_attn_ops *ops, const rk_kv_cache *kv, const rk_kv_block *block,
                                 int64_t layer, int64_t kv_head, int64_t n_q, const float *q, float scale,
                                 int64_t t0, int64_t t1, rk_attn_partial *parts, float *scratch);

#endif
