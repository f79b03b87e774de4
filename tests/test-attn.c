/*
 * test-attn.c — the merge operator and paged attention against a naive float64 reference.
 *   - merge: associativity and commutativity on random partials, empty partials on either side,
 *     partials whose maxima are -inf, and very different maxima (no overflow).
 *   - attention over the paged KV cache at lengths that cross page boundaries (1, 255, 256, 257,
 *     700), with GQA head mapping and a sliding-window range, scalar and AVX2 inner loops, for
 *     every KV codec: the first pages sealed (encoded), the tail open in f32. The reference is
 *     float64 attention over the rows as the codec decodes them, so this checks the kernels that
 *     read codec pages directly; the codecs' own error is tested in test-kv-codec / test-kv-tq.
 *   - KV cache truncate/reserve bookkeeping, and truncation into a sealed page.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "kv/kv-codec-tq.h"
#include "quant/quant.h"
#include "test-util.h"

static uint64_t rng = 0x1234567;
static float frand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

#define DV 8

/* A partial over n random (score, value) pairs, and its exact float64 summary. */
static void make_partial(rk_attn_partial *p, double *o, int n, float shift, double *ref_num, double *ref_den,
                         double ref_max) {
    rk_attn_partial_init(p, o, DV);
    for (int i = 0; i < n; i++) {
        float s = frand() * 4 + shift, v[DV];
        for (int j = 0; j < DV; j++) v[j] = frand();
        double o1[DV];
        rk_attn_partial single = {s, 1.0, o1};
        for (int j = 0; j < DV; j++) o1[j] = v[j];
        rk_attn_merge(p, &single, DV);
        double w = exp((double)s - ref_max);
        *ref_den += w;
        for (int j = 0; j < DV; j++) ref_num[j] += w * v[j];
    }
}

static void test_merge(void) {
    for (int trial = 0; trial < 50; trial++) {
        double num[DV] = {0}, den = 0, ref_max = 200.0;
        double oa[DV], ob[DV], oc[DV];
        rk_attn_partial a, b, c;
        /* shifts far apart: exp(s) alone would overflow float */
        make_partial(&a, oa, 1 + trial % 5, 150.0f, num, &den, ref_max);
        make_partial(&b, ob, trial % 4, -50.0f, num, &den, ref_max); /* may be empty */
        make_partial(&c, oc, 3, 180.0f, num, &den, ref_max);
        /* ((a+b)+c) vs (a+(b+c)): associativity; b+c before a also exercises commutativity */
        float o1[DV], o2[DV];
        double t1[DV], t2[DV];
        rk_attn_partial x, y;
        rk_attn_partial_init(&x, t1, DV);
        rk_attn_merge(&x, &a, DV);
        rk_attn_merge(&x, &b, DV);
        rk_attn_merge(&x, &c, DV);
        rk_attn_finish(&x, o1, DV);
        rk_attn_partial_init(&y, t2, DV);
        rk_attn_merge(&y, &b, DV);
        rk_attn_merge(&y, &c, DV);
        rk_attn_merge(&a, &y, DV);
        /* held in double, the grouping shows only at double rounding */
        CHECK(x.m == a.m && fabs(x.l - a.l) <= 1e-14 * x.l);
        for (int j = 0; j < DV; j++) CHECK_MSG(fabs(x.o[j] - a.o[j]) <= 1e-14 * x.l, "trial %d j %d", trial, j);
        rk_attn_finish(&a, o2, DV);
        for (int j = 0; j < DV; j++) {
            double ref = num[j] / den;
            CHECK_MSG(fabs(o1[j] - ref) < 1e-5 && fabs(o2[j] - ref) < 1e-5, "trial %d j %d: %g %g vs %g",
                      trial, j, o1[j], o2[j], ref);
            CHECK(isfinite(o1[j]));
        }
    }
    /* empty with empty stays empty and finishes to zeros */
    double e1[DV], e2[DV];
    float out[DV];
    rk_attn_partial p, q;
    rk_attn_partial_init(&p, e1, DV);
    rk_attn_partial_init(&q, e2, DV);
    rk_attn_merge(&p, &q, DV);
    CHECK(p.l == 0.0 && isinf(p.m) && p.m < 0);
    rk_attn_finish(&p, out, DV);
    for (int j = 0; j < DV; j++) CHECK(out[j] == 0.0f);
}

/* Row t of (layer, head) as attention sees it: decoded through the page's codec, or its exact
 * copy for a sink row. */
static void row_as_seen(const rk_kv_cache *kv, int64_t layer, int64_t head, int64_t t, int64_t q_pos, int role,
                        float *out) {
    rk_kv_page_view pv;
    rk_kv_get_page(kv, layer, head, t / RK_KV_PAGE_TOKENS, q_pos, &pv);
    const int64_t r = t % RK_KV_PAGE_TOKENS;
    const bool exact = r < pv.n_exact;
    const rk_kv_codec *c = exact ? (role == 0 ? pv.exact_key_codec : pv.exact_value_codec)
                                 : (role == 0 ? pv.key_codec : pv.value_codec);
    const uint8_t *data = exact ? (role == 0 ? pv.exact_keys : pv.exact_values) : (role == 0 ? pv.keys : pv.values);
    rk_kv_codec_get_ops(c)->decode(c, pv.stream, data, r, 1, out);
}

/* scale·q·k for position t as attention scores it. A tq key codec scores with its integer query
 * (kv-codec-tq.c), which is part of the codec and bounded in test-kv-tq: for those rows the
 * reference takes the codec's own score of the row alone; for every other codec it is
 * q·decode(k) in float64. */
static double score_as_seen(const rk_kv_cache *kv, int64_t layer, int64_t head, int64_t t,
                            int64_t q_pos, const float *q, float scale, int64_t dk) {
    rk_kv_page_view pv;
    rk_kv_get_page(kv, layer, head, t / RK_KV_PAGE_TOKENS, q_pos, &pv);
    const int64_t r = t % RK_KV_PAGE_TOKENS;
    if (r >= pv.n_exact && rk_kv_codec_get_spec(pv.key_codec)->kind == RK_KV_CODEC_TQ) {
        float qp[4 * 256], score;
        rk_kv_codec_get_ops(pv.key_codec)->prepare(pv.key_codec, pv.stream, q, 1, qp);
        rk_kv_codec_get_ops(pv.key_codec)->scores(pv.key_codec, pv.keys, r, 1, qp, 1, scale, &score, 1);
        return score;
    }
    float k[256];
    row_as_seen(kv, layer, head, t, q_pos, 0, k);
    double s = 0;
    for (int64_t i = 0; i < dk; i++) s += (double)q[i] * k[i];
    return s * scale;
}

/* What a tq value codec's int16 weights (kv-codec-tq.h) may add to the output, for weights w
 * (exp(s - m), indexed by position) over [t0, t1), of total den: each page's encoded rows are
 * one weighted sum, bounded by rk_kv_tq_weight_rounding. 0 for other codecs. */
static double weight_rounding(const rk_kv_cache *kv, int64_t layer, int64_t kvh, const float *w, int64_t t0,
                              int64_t t1, double den) {
    double allow = 0;
    for (int64_t p = t0 / RK_KV_PAGE_TOKENS; p * RK_KV_PAGE_TOKENS < t1; p++) {
        rk_kv_page_view pv;
        rk_kv_get_page(kv, layer, kvh, p, t1 - 1, &pv);
        const int64_t base = p * RK_KV_PAGE_TOKENS;
        int64_t r0 = t0 > base ? t0 - base : 0, r1 = t1 - base < RK_KV_PAGE_TOKENS ? t1 - base : RK_KV_PAGE_TOKENS;
        if (r0 < pv.n_exact) r0 = pv.n_exact;
        if (r1 > r0) allow += rk_kv_tq_weight_rounding(pv.value_codec, pv.values, r0, r1 - r0, w + base + r0) / den;
    }
    return allow;
}

/* naive float64 attention of one query over positions [t0, t1); returns what tq values' weight
 * rounding may add to it (weight_rounding) */
static double naive(const rk_kv_cache *kv, int64_t layer, int64_t kvh, const float *q, float scale,
                    int64_t t0, int64_t t1, int64_t dk, int64_t dv, double *out) {
    double m = -INFINITY, den = 0;
    float v[256];
    float *w = malloc(sizeof(float) * (size_t)t1);
    for (int64_t t = t0; t < t1; t++) {
        const double s = score_as_seen(kv, layer, kvh, t, t1 - 1, q, scale, dk);
        if (s > m) m = s;
    }
    for (int64_t j = 0; j < dv; j++) out[j] = 0;
    for (int64_t t = t0; t < t1; t++) {
        row_as_seen(kv, layer, kvh, t, t1 - 1, 1, v);
        const double s = score_as_seen(kv, layer, kvh, t, t1 - 1, q, scale, dk);
        double wt = exp(s - m);
        w[t] = (float)wt;
        den += wt;
        for (int64_t j = 0; j < dv; j++) out[j] += wt * v[j];
    }
    for (int64_t j = 0; j < dv; j++) out[j] /= den;
    const double allow = weight_rounding(kv, layer, kvh, w, t0, t1, den);
    free(w);
    return allow;
}

/* How far attention over [0, t1) after a truncation (after, 3 heads) is from before it, or with
 * vs_reference from the float64 reference over what the cache now holds. */
static double truncated_change(const rk_kv_cache *kv, const float *q, int64_t dk, int64_t dv,
                               int64_t t1, const float *before, const float *after,
                               bool vs_reference) {
    double diff = 0, ref[256];
    for (int64_t g = 0; g < 3; g++) {
        const double allow = vs_reference ? naive(kv, 1, 1, q + g * dk, 0.125f, 0, t1, dk, dv, ref) : 0.0;
        for (int64_t j = 0; j < dv; j++)
            diff = fmax(diff, fabs(after[g * dv + j] - (vs_reference ? ref[j] : before[g * dv + j])) - allow);
    }
    return diff;
}

/* max |attention - naive| over the ranges that cross page boundaries, with and without a
 * sliding window, for one head and a GQA group of 3, at every SIMD level */
static double attention_error(rk_kv_cache *kv, const float *q, int64_t dk, int64_t dv, const char *what) {
    const int64_t lens[] = {1, 255, 256, 257, 700};
    float out[3 * 256];
    double ref[256], worst = 0;
    float *scratch = malloc((size_t)rk_attn_scratch_floats(kv, 3) * sizeof(float));
    for (int level = RK_SIMD_SCALAR; level <= (int)rk_cpu_simd_level() && level <= RK_SIMD_AVX2; level++) {
        const rk_attn_ops *ops = rk_attn_get_ops(level);
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            for (int64_t window = 0; window <= 300; window += 300) {
                int64_t t1 = lens[li], t0 = window && t1 > window ? t1 - window : 0;
                double max_err = 0;
                for (int64_t n_q = 1; n_q <= 3; n_q += 2) { /* one head, and a group of 3 */
                    rk_attn_group(ops, kv, 1, 1, n_q, q, 0.125f, t0, t1, out, scratch);
                    for (int64_t g = 0; g < n_q; g++) {
                        const double allow = naive(kv, 1, 1, q + g * dk, 0.125f, t0, t1, dk, dv, ref);
                        for (int j = 0; j < dv; j++) max_err = fmax(max_err, fabs(out[g * dv + j] - ref[j]) - allow);
                    }
                }
                CHECK_MSG(max_err < 1e-5, "%s level %d range [%lld, %lld): max error %g", what, level,
                          (long long)t0, (long long)t1, max_err);
                worst = fmax(worst, max_err);
            }
        }
    }
    free(scratch);
    return worst;
}

/* Attention over a cache of 700 positions whose first two pages are sealed with `codec` (keys
 * and values; keys_codec may differ), the tail open in f32, against float64 over the rows as
 * the codecs decode them (the first n_sink positions exactly as written). Then truncation into
 * a sealed page re-opens it without changing what attention sees. */
static void test_paged_attention(const char *keys_codec, const char *values_codec, int64_t dk, int64_t dv,
                                 int64_t n_sink) {
    const int64_t n_kv = 2, n_ctx = 800;
    rk_kv_dims dims = {2, n_kv, dk, dv, n_ctx};
    rk_kv_config cfg = rk_kv_config_f32(rk_cpu_simd_level());
    cfg.seed = 7;
    cfg.n_sink = n_sink;
    rk_kv_cache *kv;
    rk_error err;
    CHECK(rk_kv_codec_parse(keys_codec, &cfg.key_codec, &err) == RK_OK);
    CHECK(rk_kv_codec_parse(values_codec, &cfg.value_codec, &err) == RK_OK);
    CHECK_MSG(rk_kv_create(&dims, &cfg, &kv, &err) == RK_OK, "%s", err.msg);
    CHECK(rk_kv_reserve(kv, n_ctx + 1, &err) == RK_ERR_CONTEXT_FULL);
    CHECK(rk_kv_reserve(kv, 700, &err) == RK_OK);
    for (int64_t l = 0; l < 2; l++)
        for (int64_t t = 0; t < 700; t++) {
            for (int64_t h = 0; h < n_kv; h++) {
                float *k = rk_kv_key(kv, l, h, t), *v = rk_kv_value(kv, l, h, t);
                for (int64_t i = 0; i < dk; i++) k[i] = frand() * 3;
                for (int64_t i = 0; i < dv; i++) v[i] = frand();
            }
        }
    float sink_k[8 * 256], sink_v[8 * 256]; /* layer 1, head 1, positions 0 .. n_sink-1 */
    memcpy(sink_k, rk_kv_key(kv, 1, 1, 0), sizeof(float) * (size_t)(n_sink * dk));
    memcpy(sink_v, rk_kv_value(kv, 1, 1, 0), sizeof(float) * (size_t)(n_sink * dv));
    size_t open_bytes = rk_kv_bytes(kv);
    for (int64_t l = 0; l < 2; l++) CHECK(rk_kv_seal_full_pages(kv, l, 700, NULL, &err) == RK_OK);
    bool f32 = strcmp(keys_codec, "f32") == 0 && strcmp(values_codec, "f32") == 0;
    float q[3 * 256];
    for (int i = 0; i < 3 * dk; i++) q[i] = frand();
    char what[64];
    snprintf(what, sizeof what, "keys %s values %s", keys_codec, values_codec);
    double worst = attention_error(kv, q, dk, dv, what);
    /* a query inside a page sealed in this step reads it in f32 (the retained rows); once they
     * are dropped it reads the codec like every later query */
    rk_kv_page_view own, later;
    rk_kv_get_page(kv, 1, 1, 0, 100, &own);
    rk_kv_get_page(kv, 1, 1, 0, 600, &later);
    CHECK(rk_kv_codec_get_spec(own.key_codec)->kind == RK_KV_CODEC_F32);
    CHECK(strcmp(keys_codec, "f32") == 0 || rk_kv_codec_get_spec(later.key_codec)->kind != RK_KV_CODEC_F32);
    for (int64_t l = 0; l < 2; l++) rk_kv_drop_retired(kv, l);
    CHECK(f32 ? rk_kv_bytes(kv) == open_bytes : rk_kv_bytes(kv) < open_bytes);
    rk_kv_get_page(kv, 1, 1, 0, 100, &own);
    CHECK(own.key_codec == later.key_codec);
    CHECK(own.n_exact == n_sink);
    for (int64_t t = 0; t < n_sink; t++) { /* sink rows read back exactly as written */
        float k[256], v[256];
        row_as_seen(kv, 1, 1, t, 600, 0, k);
        row_as_seen(kv, 1, 1, t, 600, 1, v);
        CHECK(memcmp(k, sink_k + t * dk, sizeof(float) * (size_t)dk) == 0);
        CHECK(memcmp(v, sink_v + t * dv, sizeof(float) * (size_t)dv) == 0);
    }
    worst = fmax(worst, attention_error(kv, q, dk, dv, what));
    printf("  %-22s dk %3lld dv %3lld: max |attention - float64 reference| %.2g\n", what,
           (long long)dk, (long long)dv, worst);
    /* Truncating into sealed page 1 re-opens it with the decoded rows: attention over the
     * kept positions is unchanged (tq keys: up to their integer query's rounding, as the
     * re-opened rows are scored with the exact query; tq values: up to their int16 weights;
     * both are checked against the reference instead). */
    const bool vs_reference = strncmp(keys_codec, "tq", 2) == 0 || strncmp(values_codec, "tq", 2) == 0;
    float before[3 * 256], after[3 * 256];
    float *scratch = malloc((size_t)rk_attn_scratch_floats(kv, 3) * sizeof(float));
    const rk_attn_ops *ops = rk_attn_get_ops(rk_cpu_simd_level());
    rk_attn_group(ops, kv, 1, 1, 3, q, 0.125f, 0, 300, before, scratch);
    size_t bytes = rk_kv_bytes(kv);
    CHECK(rk_kv_truncate(kv, 300, &err) == RK_OK); /* keeps 2 pages of 256, the second open */
    CHECK(rk_kv_bytes(kv) < bytes || !f32);
    rk_attn_group(ops, kv, 1, 1, 3, q, 0.125f, 0, 300, after, scratch);
    double diff = truncated_change(kv, q, dk, dv, 300, before, after, vs_reference);
    CHECK_MSG(diff < 1e-5, "%s: attention changed by %g after truncation", what, diff);
    /* into page 0: re-opened, its sink rows are the exact ones again, not their decoding */
    rk_attn_group(ops, kv, 1, 1, 3, q, 0.125f, 0, 100, before, scratch);
    CHECK(rk_kv_truncate(kv, 100, &err) == RK_OK);
    rk_attn_group(ops, kv, 1, 1, 3, q, 0.125f, 0, 100, after, scratch);
    diff = truncated_change(kv, q, dk, dv, 100, before, after, vs_reference);
    CHECK_MSG(diff < 1e-5, "%s: attention changed by %g after truncation into page 0", what, diff);
    CHECK(memcmp(rk_kv_key(kv, 1, 1, 0), sink_k, sizeof(float) * (size_t)(n_sink * dk)) == 0);
    CHECK(memcmp(rk_kv_value(kv, 1, 1, 0), sink_v, sizeof(float) * (size_t)(n_sink * dv)) == 0);
    CHECK(rk_kv_reserve(kv, 700, &err) == RK_OK);
    free(scratch);
    rk_kv_free(kv);
}

int main(void) {
    test_merge();
    printf("attention over paged KV (sealed codec pages + open f32 tail) vs float64:\n");
    test_paged_attention("f32", "f32", 64, 48, 0);
    const char *codecs[] = {"f16", "q8", "q4", "tq2.5", "tq3", "tq3.5", "tq4"};
    for (size_t i = 0; i < sizeof codecs / sizeof codecs[0]; i++)
        for (int64_t n_sink = 0; n_sink <= 4; n_sink += 4) test_paged_attention(codecs[i], codecs[i], 64, 64, n_sink);
    test_paged_attention("tq3.5+qjl", "tq3.5", 128, 64, 4);
    test_paged_attention("q8", "tq3", 256, 256, 0);
    test_paged_attention("f32", "tq3", 64, 64, 8); /* sinks for values only */
    return rk_test_finish("test-attn");
}
