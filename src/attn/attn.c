/*
 * attn.c — the merge operator and attention of one query head over paged KV (see attn.h).
 *
 * rk_attn_group walks the key range page by page for the query heads of one GQA group: scores
 * of the page's keys go into a page-sized scratch per head, the page becomes one float partial
 * per head (its own max, sum and weighted values), and each is merged into the running double
 * partial.
 * Each key and value row is read once for all heads of the group. Work is O(range × head_dim)
 * per head, memory O(page).
 */
#include "attn/attn.h"

#include <math.h>
#include <string.h>

#include "quant/quant.h"

void rk_attn_partial_init(rk_attn_partial *p, double *o_storage, int64_t dv) {
    p->m = -INFINITY;
    p->l = 0.0;
    p->o = o_storage;
    memset(o_storage, 0, (size_t)dv * sizeof(double));
}

void rk_attn_merge(rk_attn_partial *dst, const rk_attn_partial *src, int64_t dv) {
    if (src->l == 0.0) return;            /* src empty: nothing to add */
    if (dst->l == 0.0) {                  /* dst empty: take src */
        dst->m = src->m;
        dst->l = src->l;
        memcpy(dst->o, src->o, (size_t)dv * sizeof(double));
        return;
    }
    double m = dst->m > src->m ? dst->m : src->m;
    double a = exp(dst->m - m), b = exp(src->m - m);
    dst->l = dst->l * a + src->l * b;
    for (int64_t i = 0; i < dv; i++) dst->o[i] = dst->o[i] * a + src->o[i] * b;
    dst->m = m;
}

void rk_attn_merge_page(rk_attn_partial *dst, float m, float l, const float *o, int64_t dv) {
    if (l == 0.0f) return;
    if (dst->l == 0.0) {
        dst->m = m;
        dst->l = l;
        for (int64_t i = 0; i < dv; i++) dst->o[i] = o[i];
        return;
    }
    double mm = dst->m > m ? dst->m : m;
    double a = exp(dst->m - mm), b = exp((double)m - mm);
    dst->l = dst->l * a + l * b;
    for (int64_t i = 0; i < dv; i++) dst->o[i] = dst->o[i] * a + o[i] * b;
    dst->m = mm;
}

void rk_attn_finish(const rk_attn_partial *p, float *out, int64_t dv) {
    if (p->l <= 0.0) {
        memset(out, 0, (size_t)dv * sizeof(float));
        return;
    }
    for (int64_t i = 0; i < dv; i++) out[i] = (float)(p->o[i] / p->l);
}

static float exp_sum_scalar(float *s, int64_t n, float m) {
    float sum = 0.0f;
    for (int64_t t = 0; t < n; t++) {
        s[t] = expf(s[t] - m);
        sum += s[t];
    }
    return sum;
}

static const rk_attn_ops ops_scalar = {exp_sum_scalar};
static const rk_attn_ops ops_avx2 = {rk_attn_exp_sum_avx2};

const rk_attn_ops *rk_attn_get_ops(int simd_level) {
    return simd_level >= RK_SIMD_AVX2 ? &ops_avx2 : &ops_scalar;
}

/* Scratch layout for n_q heads: running outputs of rk_attn_group (n_q, dv doubles, first so
 * they stay aligned) | scores (n_q, page) | page outputs (n_q, dv) | codec-domain accumulators
 * (n_q, dv) | prepared queries (n_q, prep). group_partial uses what follows the doubles. */
static int64_t group_scratch_floats(const rk_kv_cache *kv, int64_t n_q) {
    const int64_t dv = rk_kv_get_dims(kv)->head_dim_v;
    return n_q * (RK_KV_PAGE_TOKENS + 2 * dv + rk_kv_prep_floats(kv));
}

int64_t rk_attn_scratch_floats(const rk_kv_cache *kv, int64_t n_q) {
    const int64_t dv = rk_kv_get_dims(kv)->head_dim_v;
    int64_t n = 2 * n_q * dv + group_scratch_floats(kv, n_q);
    return (n + 15) / 16 * 16;
}

/* One page's partial per head, in float: page_o + g * dv holds head g's output. */
typedef struct page_partial {
    float m, l;
} page_partial;

/* Partials of the n_q heads over rows [r0, r0+len) of one page, into page[g] and page_o. Rows below
 * pv->n_exact (a sealed page 0's sink rows) are read from their exact f32 copy: their scores
 * go into the same score row and their values into the same output, so the page still gives
 * one partial. q: the raw queries (what the f32 codec's prepare would copy); qp: prepared for
 * the page's key codec. */
static void page_partials(const rk_attn_ops *ops, const rk_kv_page_view *pv, int64_t r0,
                          int64_t len, int64_t n_q, const float *q, const float *qp, float scale,
                          int64_t dv, float *scores, float *acc, page_partial *page, float *page_o) {
    const rk_kv_codec_ops *kops = rk_kv_codec_get_ops(pv->key_codec);
    const rk_kv_codec_ops *vops = rk_kv_codec_get_ops(pv->value_codec);
    const rk_kv_codec_ops *xk = rk_kv_codec_get_ops(pv->exact_key_codec);
    const rk_kv_codec_ops *xv = rk_kv_codec_get_ops(pv->exact_value_codec);
    int64_t e = pv->n_exact < r0 ? r0 : pv->n_exact; /* rows [r0, e) exact, [e, r0+len) codec */
    if (e > r0 + len) e = r0 + len;
    if (e > r0)
        xk->scores(pv->exact_key_codec, pv->exact_keys, r0, e - r0, q, n_q, scale, scores,
                   RK_KV_PAGE_TOKENS);
    if (r0 + len > e)
        kops->scores(pv->key_codec, pv->keys, e, r0 + len - e, qp, n_q, scale, scores + (e - r0),
                     RK_KV_PAGE_TOKENS);
    for (int64_t g = 0; g < n_q; g++) {
        float *sc = scores + g * RK_KV_PAGE_TOKENS;

        float m = sc[0];
        for (int64_t t = 1; t < len; t++) m = sc[t] > m ? sc[t] : m;
        page[g].m = m;
        page[g].l = ops->exp_sum(sc, len, m);
    }
    if (e > r0) {
        memset(acc, 0, (size_t)(n_q * dv) * sizeof(float));
        xv->weighted_sum(pv->exact_value_codec, pv->exact_values, r0, e - r0, scores,
                         RK_KV_PAGE_TOKENS, n_q, acc);
        xv->finish(pv->exact_value_codec, pv->stream, acc, n_q, page_o);
    }
    if (r0 + len > e) {
        memset(acc, 0, (size_t)(n_q * dv) * sizeof(float));
        vops->weighted_sum(pv->value_codec, pv->values, e, r0 + len - e, scores + (e - r0),
                           RK_KV_PAGE_TOKENS, n_q, acc);
        vops->finish(pv->value_codec, pv->stream, acc, n_q, page_o);
    }
}

/* Where a range's pages come from: the cache's own pages, or a block of another rank's
 * (kv-cache.h), read through the same codecs. */
typedef struct page_source {
    const rk_kv_cache *kv;
    const rk_kv_block *block; /* NULL: kv's pages */
} page_source;

static void group_partial(const rk_attn_ops *ops, const page_source *src, int64_t layer, int64_t kv_head,
                          int64_t n_q, const float *q, float scale, int64_t t0, int64_t t1, int64_t q_pos,
                          rk_attn_partial *parts, float *scratch, const rk_kv_codec **prepared) {
    const int64_t dv = rk_kv_get_dims(src->kv)->head_dim_v;
    float *scores = scratch;                           /* (n_q, page) */
    float *page_o = scores + n_q * RK_KV_PAGE_TOKENS;  /* (n_q, dv) */
    float *acc = page_o + n_q * dv;                    /* (n_q, dv) */
    float *qp = acc + n_q * dv;                        /* (n_q, prep): prepared for *prepared */
    page_partial page[RK_ATTN_MAX_GROUP];
    for (int64_t g = 0; g < n_q; g++) rk_attn_partial_init(&parts[g], parts[g].o, dv);
    for (int64_t p0 = t0; p0 < t1;) {
        int64_t pi = p0 / RK_KV_PAGE_TOKENS, page_end = (pi + 1) * RK_KV_PAGE_TOKENS;
        int64_t p1 = page_end < t1 ? page_end : t1;
        rk_kv_page_view pv;
        if (src->block)
            rk_kv_block_get_page(src->kv, src->block, layer, kv_head, pi, &pv);
        else
            rk_kv_get_page(src->kv, layer, kv_head, pi, q_pos, &pv);
        if (pv.key_codec != *prepared) {
            rk_kv_codec_get_ops(pv.key_codec)->prepare(pv.key_codec, pv.stream, q, n_q, qp);
            *prepared = pv.key_codec;
        }
        memset(page_o, 0, (size_t)(n_q * dv) * sizeof(float));
        page_partials(ops, &pv, p0 - pi * RK_KV_PAGE_TOKENS, p1 - p0, n_q, q, qp, scale, dv,
                      scores, acc, page, page_o);
        for (int64_t g = 0; g < n_q; g++) rk_attn_merge_page(&parts[g], page[g].m, page[g].l, page_o + g * dv, dv);
        p0 = p1;
    }
}

void rk_attn_group_partial(const rk_attn_ops *ops, const rk_kv_cache *kv, int64_t layer,
                           int64_t kv_head, int64_t n_q, const float *q, float scale, int64_t t0,
                           int64_t t1, int64_t q_pos, rk_attn_partial *parts, float *scratch) {
    const page_source src = {kv, NULL};
    const rk_kv_codec *prepared = NULL;
    group_partial(ops, &src, layer, kv_head, n_q, q, scale, t0, t1, q_pos, parts, scratch, &prepared);
}

void rk_attn_group_partial_cached(const rk_attn_ops *ops, const rk_kv_cache *kv, int64_t layer,
                                  int64_t kv_head, int64_t n_q, const float *q, float scale,
                                  int64_t t0, int64_t t1, int64_t q_pos, rk_attn_partial *parts,
                                  float *scratch, const rk_kv_codec **prepared) {
    const page_source src = {kv, NULL};
    group_partial(ops, &src, layer, kv_head, n_q, q, scale, t0, t1, q_pos, parts, scratch, prepared);
}

void rk_attn_group_partial_block(const rk_attn_ops *ops, const rk_kv_cache *kv, const rk_kv_block *block,
                                 int64_t layer, int64_t kv_head, int64_t n_q, const float *q, float scale,
                                 int64_t t0, int64_t t1, rk_attn_partial *parts, float *scratch) {
    const page_source src = {kv, block};
    const rk_kv_codec *prepared = NULL;
    group_partial(ops, &src, layer, kv_head, n_q, q, scale, t0, t1, -1, parts, scratch, &prepared);
}

void rk_attn_group(const rk_attn_ops *ops, const rk_kv_cache *kv, int64_t layer, int64_t kv_head,
                   int64_t n_q, const float *q, float scale, int64_t t0, int64_t t1, float *out,
                   float *scratch) {
    const int64_t dv = rk_kv_get_dims(kv)->head_dim_v;
    double *run_o = (double *)scratch; /* the first part */
    rk_attn_partial run[RK_ATTN_MAX_GROUP];
    for (int64_t g = 0; g < n_q; g++) run[g].o = run_o + g * dv;
    rk_attn_group_partial(ops, kv, layer, kv_head, n_q, q, scale, t0, t1, t1 - 1, run, scratch + 2 * n_q * dv);
    for (int64_t g = 0; g < n_q; g++) rk_attn_finish(&run[g], out + g * dv, dv);
}
