/*
 * test-kv-codec.c — every KV codec through the kv-codec.h interface alone (parse, create,
 * get_ops), for both roles, head dimensions 64, 128 and 256 (plus 100, 288, 32 and 4 where a
 * codec accepts them: channel tails past a multiple of 8; more than one 256-channel chunk and
 * q4's 32-channel value groups; fewer channels than the kernels' blocks), at every SIMD level
 * this CPU has:
 *
 *   1. round trip: ||decode(encode(x)) - x||² / ||x||² on Gaussian rows (keys get outlier
 *      channels at 10x, as real keys have) below the codec's bound (mse_bound);
 *   2. kernels: scores() = scale · q · decode(row) and weighted_sum + finish = Σ w · decode(row)
 *      for n_q = 1..4 (and 5..10: GQA groups past the AVX2 kernels' tile of 8) on row ranges
 *      that cross q4's 64-token groups and end off multiples of 4, 8 and 32; errors are
 *      measured against Σ_i |q_i| · max_t |k_t,i| (scores) and Σ_t w_t · max_t |v_t,j|
 *      (weighted sums), which no cancellation can shrink, at 1e-5; nothing is written past
 *      the range;
 *   3. parity: every SIMD level encodes the same bytes as scalar, and its decode and kernels
 *      agree with scalar's at 1e-5 (same measure);
 *   4. names: bad names are RK_ERR_INVALID_ARG, q4 at d = 48 is RK_ERR_UNSUPPORTED, QJL for
 *      values is RK_ERR_INVALID_ARG, and page_bytes is the documented layout's size.
 *
 * Keys are checked through prepare + scores and values through weighted_sum + finish: the
 * operations attention uses for each role. A table of the measured errors is printed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/kv-codec.h"
#include "kv/kv-codec-tq.h"
#include "quant/quant.h"
#include "test-util.h"

#define T RK_KV_PAGE_TOKENS
#define NQ 10              /* most query heads per group tested (AVX2 takes 8 at a time) */
#define OUT_STRIDE (T + 5) /* strides that are not the page length */
#define W_STRIDE (T + 3)
#define N_STREAMS 8
#define STREAM 5
#define SEED 0x5EEDULL
#define TOL 1e-5
#define SENTINEL 12345.0f
#define ACC0 1e-3f /* what weighted_sum's accumulator holds before the call */

static const char *const codec_names[] = {"f32", "f16",   "q8",  "q4",       "tq2.5",
                                          "tq3", "tq3.5", "tq4", "tq3.5+qjl"};

/* (t0, n) row ranges (whole page, single rows, group crossings, odd ends), each run with two
 * head counts so that every count 1..4 meets several ranges and larger GQA groups are seen. */
static const int64_t ranges[][4] = {
    {0, T, 1, 4},   {0, 1, 2, 3},    {5, 70, 3, 4},   {63, 2, 1, 4},  {100, 156, 2, 4},
    {1, 254, 3, 2}, {130, 61, 1, 3}, {255, 1, 4, 1},  {64, 64, 2, 4}, {37, 29, 3, 1},
    {3, 90, 5, 8},  {70, 59, 6, 7},  {190, 66, 9, 10}};
#define N_RANGES (int)(sizeof ranges / sizeof ranges[0])

typedef struct {
    uint64_t s;
} rng;

static double unif(rng *r) { /* (0, 1) */
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return ((double)(r->s >> 11) + 0.5) / 9007199254740992.0;
}

static float gauss(rng *r) {
    const double u = unif(r), v = unif(r);
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

/* Bound on the round trip's relative MSE.
 *   f16: relative rounding error <= 2^-11 per element, so <= 2^-22 ≈ 2.4e-7 (1e-6 leaves room).
 *   q8 : error <= s/2 with s = max|x|/127, about s²/12 on average. Values (max of d Gaussians
 *        about 3σ): (3/127)²/12 ≈ 5e-5 -> 1e-4. Keys: the three 10x outlier channels set
 *        max|x| near 13σ, s²/12 ≈ 8.7e-4σ² per element against ||x||²/d = (1 + 297/d)σ²:
 *        1.5e-4 at d = 64, tending to 8.7e-4 as d grows -> 2e-3.
 *   q4 : error about s²/12 with s = range/15; the range of 64 Gaussians (a key channel's
 *        group, a value row's channel group) is about 4.9σ: (4.9/15)²/12 ≈ 8.9e-3, and the
 *        32-channel groups of d % 64 != 0 give less -> 1.5e-2.
 *   tq : loose (the tq tests check it precisely): 0.2 at 2.5 bits, 4x less per extra bit; the
 *        QJL variant spends 1 + 16/d bits on the sketch, whose reconstruction is unbiased but
 *        noisy: 0.3 at 3.5 bits. Below d = 64 twice that: the f16 norms take more of a row. */
static double mse_bound(const rk_kv_codec_spec *s, rk_kv_role role, int64_t d) {
    switch (s->kind) {
    case RK_KV_CODEC_F32: return 0.0;
    case RK_KV_CODEC_F16: return 1e-6;
    case RK_KV_CODEC_Q8: return role == RK_KV_KEYS ? 2e-3 : 1e-4;
    case RK_KV_CODEC_Q4: return 1.5e-2;
    default:
        return (d < 64 ? 2.0 : 1.0) * (s->qjl ? 0.3 : 0.2) *
               pow(4.0, -(s->rate_x2 - (s->qjl ? 7 : 5)) / 2.0);
    }
}

/* page_bytes of the documented layouts. */
static size_t expected_page_bytes(const rk_kv_codec_spec *s, rk_kv_role role, int64_t d) {
    switch (s->kind) {
    case RK_KV_CODEC_F32: return (size_t)(T * d * 4);
    case RK_KV_CODEC_F16: return (size_t)(T * d * 2);
    case RK_KV_CODEC_Q8: return (size_t)(T * (2 + d));
    case RK_KV_CODEC_Q4:
        if (role == RK_KV_KEYS) return (size_t)((T / 64) * (4 * d + 64 * d / 2));
        return (size_t)(T * (4 * (d / (d % 64 == 0 ? 64 : 32)) + d / 2));
    default: /* exactly rate * dim bits a row, then the page mean: f16 step, d int8 */
        return (size_t)(T * s->rate_x2 * d / 16 + 2 + d);
    }
}

/* What one (codec, role, dim) case measured. */
typedef struct {
    double mse, bits, scores, ws, parity; /* errors relative to the measures above */
} case_errs;

/* The codec at one SIMD level: its page and decoded page. */
typedef struct {
    rk_kv_codec *c;
    const rk_kv_codec_ops *ops;
    uint8_t *page;
    float *dec; /* (T, d) */
} level;

/* References from the scalar decode: per-row scores, prefix sums for weighted sums and the
 * error measures. */
typedef struct {
    int64_t d;
    float scale;
    const float *q, *w;
    double *score;  /* (NQ, T): scale · q_g · dec_t */
    double *qk_abs; /* (NQ): |scale| · Σ_i |q_gi| colmax_i */
    double *pre;    /* (NQ, T + 1, d): Σ_(t' < t) w_gt' dec_t' */
    double *wpre;   /* (NQ, T + 1): Σ_(t' < t) w_gt' */
    float *colmax;  /* (d): max_t |dec_t,i| */
    /* tq keys score with the rotated query rounded to int8 steps of max|q_rot|/127
     * (kv-codec-tq.c): an error of at most scale · |q|/254 · sqrt(d) · |dec_t| per score, which
     * run_scores allows on top of TOL. 0 for the other codecs. */
    double *int8_allow; /* (NQ, T) */
    bool int8_query;
} reference;

static reference reference_alloc(int64_t d, const float *q, const float *w) {
    reference ref = {.d = d, .scale = 1.0f / sqrtf((float)d), .q = q, .w = w};
    ref.score = malloc(sizeof(double) * NQ * T);
    ref.qk_abs = malloc(sizeof(double) * NQ);
    ref.pre = malloc(sizeof(double) * (size_t)(NQ * (T + 1) * d));
    ref.wpre = malloc(sizeof(double) * NQ * (T + 1));
    ref.colmax = malloc(sizeof(float) * (size_t)d);
    ref.int8_allow = malloc(sizeof(double) * NQ * T);
    return ref;
}

static void reference_free(reference *ref) {
    free(ref->score);
    free(ref->qk_abs);
    free(ref->pre);
    free(ref->wpre);
    free(ref->colmax);
    free(ref->int8_allow);
}

/* Fills the reference from the scalar level's decoded page dec (T, d). */
static void reference_build(reference *ref, const float *dec) {
    const int64_t d = ref->d;
    for (int64_t i = 0; i < d; i++) {
        ref->colmax[i] = 0.0f;
        for (int64_t t = 0; t < T; t++)
            ref->colmax[i] = fmaxf(ref->colmax[i], fabsf(dec[t * d + i]));
    }
    for (int64_t g = 0; g < NQ; g++) {
        const float *q = ref->q + g * d, *w = ref->w + g * W_STRIDE;
        ref->qk_abs[g] = 0.0;
        for (int64_t i = 0; i < d; i++)
            ref->qk_abs[g] += fabs(ref->scale * q[i]) * ref->colmax[i];
        double *pre = ref->pre + g * (T + 1) * d;
        memset(pre, 0, sizeof(double) * (size_t)d);
        ref->wpre[g * (T + 1)] = 0.0;
        for (int64_t t = 0; t < T; t++) {
            double s = 0.0;
            for (int64_t i = 0; i < d; i++) {
                s += (double)q[i] * dec[t * d + i];
                pre[(t + 1) * d + i] = pre[t * d + i] + (double)w[t] * dec[t * d + i];
            }
            ref->score[g * T + t] = ref->scale * s;
            double qn = 0.0, kn = 0.0;
            for (int64_t i = 0; i < d; i++) {
                qn += (double)q[i] * q[i];
                kn += (double)dec[t * d + i] * dec[t * d + i];
            }
            ref->int8_allow[g * T + t] =
                ref->int8_query ? fabs(ref->scale) * sqrt(qn) / 254.0 * sqrt((double)d * kn) : 0.0;
            ref->wpre[g * (T + 1) + t + 1] = ref->wpre[g * (T + 1) + t] + w[t];
        }
    }
}

static double maxd(double a, double b) { return a > b ? a : b; }

/* Scores of range r with n_q heads at level L; returns the error against the reference and
 * (when base is given) against base's results, relative to the measure. */
static double run_scores(const level *L, const reference *ref, int64_t t0, int64_t n, int64_t n_q,
                         float *out, const float *base, double *parity) {
    const int64_t prep = rk_kv_codec_prep_floats(L->c);
    float *qp = malloc(sizeof(float) * (size_t)(NQ * prep));
    L->ops->prepare(L->c, STREAM, ref->q, n_q, qp);
    for (int64_t i = 0; i < NQ * OUT_STRIDE; i++)
        out[i] = SENTINEL;
    L->ops->scores(L->c, L->page, t0, n, qp, n_q, ref->scale, out, OUT_STRIDE);
    double err = 0.0;
    for (int64_t g = 0; g < n_q; g++) {
        const double m = ref->qk_abs[g] + 1e-30;
        for (int64_t t = 0; t < n; t++) {
            const double off = fabs(out[g * OUT_STRIDE + t] - ref->score[g * T + t0 + t]);
            err = maxd(err, maxd(0.0, off - ref->int8_allow[g * T + t0 + t]) / m);
            if (base)
                *parity =
                    maxd(*parity, fabs(out[g * OUT_STRIDE + t] - base[g * OUT_STRIDE + t]) / m);
        }
        CHECK(out[g * OUT_STRIDE + n] == SENTINEL); /* nothing written past the range */
    }
    free(qp);
    return err;
}

/* weighted_sum + finish of range r with n_q heads; weights for row t0 + t are w[t0 + t].
 * The accumulator starts at ACC0 (weighted_sum adds to it; finish of ACC0 alone is taken
 * off), and finish runs twice on the same accumulator, which must double o (it adds). */
static double run_weighted_sum(const level *L, const reference *ref, int64_t t0, int64_t n,
                               int64_t n_q, float *o, const float *base, double *parity) {
    const int64_t d = ref->d;
    const size_t bytes = sizeof(float) * (size_t)(NQ * d);
    float *acc = malloc(bytes), *o0 = calloc(1, bytes), *o2 = malloc(bytes);
    for (int64_t i = 0; i < NQ * d; i++)
        acc[i] = ACC0;
    L->ops->finish(L->c, STREAM, acc, n_q, o0);
    L->ops->weighted_sum(L->c, L->page, t0, n, ref->w + t0, W_STRIDE, n_q, acc);
    memset(o, 0, bytes);
    L->ops->finish(L->c, STREAM, acc, n_q, o);
    memcpy(o2, o, bytes);
    L->ops->finish(L->c, STREAM, acc, n_q, o2);
    for (int64_t i = 0; i < n_q * d; i++)
        o[i] -= o0[i];
    double err = 0.0;
    const bool tq = rk_kv_codec_get_spec(L->c)->kind == RK_KV_CODEC_TQ;
    for (int64_t g = 0; g < n_q; g++) {
        const double *pre = ref->pre + g * (T + 1) * d;
        const double wsum = ref->wpre[g * (T + 1) + t0 + n] - ref->wpre[g * (T + 1) + t0];
        /* tq's AVX-512 kernels round the weights to int16 (kv-codec-tq.h): allowed on top */
        const double allow = tq ? rk_kv_tq_weight_rounding(L->c, L->page, t0, n, ref->w + g * W_STRIDE + t0) : 0.0;
        for (int64_t j = 0; j < d; j++) {
            const double want = pre[(t0 + n) * d + j] - pre[t0 * d + j];
            const double m = wsum * ref->colmax[j] + 1e-30;
            err = maxd(err, maxd(0.0, fabs(o[g * d + j] - want) - allow) / m);
            if (base) *parity = maxd(*parity, maxd(0.0, fabs(o[g * d + j] - base[g * d + j]) - allow) / m);
            CHECK(fabs(o2[g * d + j] - 2.0 * (o[g * d + j] + o0[g * d + j])) <= 1e-6 * m);
        }
    }
    free(acc);
    free(o0);
    free(o2);
    return err;
}

/* Every range and its head counts, for the role's kernels at every level (level 0 is the
 * base). */
static void check_kernels(const level *lv, int n_levels, rk_kv_role role, const reference *ref,
                          case_errs *e) {
    const int64_t d = ref->d;
    float *out[2];
    for (int k = 0; k < 2; k++)
        out[k] = malloc(sizeof(float) * (size_t)(NQ * (OUT_STRIDE > d ? OUT_STRIDE : d)));
    for (int r = 0; r < N_RANGES; r++)
        for (int k = 2; k < 4; k++)
            for (int l = 0; l < n_levels; l++) {
                const int64_t t0 = ranges[r][0], n = ranges[r][1], n_q = ranges[r][k];
                const float *base = l > 0 ? out[0] : NULL;
                double err;
                if (role == RK_KV_KEYS) {
                    err = run_scores(&lv[l], ref, t0, n, n_q, out[l > 0], base, &e->parity);
                    e->scores = maxd(e->scores, err);
                } else {
                    err = run_weighted_sum(&lv[l], ref, t0, n, n_q, out[l > 0], base, &e->parity);
                    e->ws = maxd(e->ws, err);
                }
                CHECK_MSG(err <= TOL, "level %d rows %lld+%lld n_q %lld: error %.3g", l,
                          (long long)t0, (long long)n, (long long)n_q, err);
            }
    free(out[0]);
    free(out[1]);
}

/* Test data: (T, d) Gaussian rows (keys: channels 1, d/3 and d-2 at 10x), NQ queries and
 * NQ rows of positive weights. */
static void make_data(rng *r, int64_t d, rk_kv_role role, float *x, float *q, float *w) {
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < d; i++) {
            const bool outlier = role == RK_KV_KEYS && (i == 1 || i == d / 3 || i == d - 2);
            x[t * d + i] = gauss(r) * (outlier ? 10.0f : 1.0f);
        }
    for (int64_t i = 0; i < NQ * d; i++)
        q[i] = gauss(r);
    for (int64_t i = 0; i < NQ * W_STRIDE; i++)
        w[i] = (float)unif(r);
}

static void free_levels(level *lv, int n) {
    for (int l = 0; l < n; l++) {
        rk_kv_codec_free(lv[l].c);
        free(lv[l].page);
        free(lv[l].dec);
    }
}

/* Levels 0..top of the codec: created, encoded and decoded; checks the bytes.
 * Returns how many levels were made (0 if the codec rejects this dimension). */
static int make_levels(const rk_kv_codec_spec *spec, rk_kv_role role, int64_t d, bool required,
                       const float *x, level *lv, case_errs *e) {
    const int top = (int)rk_cpu_simd_level();
    for (int l = 0; l <= top; l++) {
        rk_error err = {0};
        rk_kv_codec *c = NULL;
        const rk_status s = rk_kv_codec_create(spec, role, d, N_STREAMS, l, SEED, &c, &err);
        if (s != RK_OK) {
            CHECK_MSG(!required, "create d=%lld level %d: %s", (long long)d, l, err.msg);
            free_levels(lv, l);
            return 0; /* an optional dimension the codec does not lay out */
        }
        level *L = &lv[l];
        L->c = c;
        L->ops = rk_kv_codec_get_ops(c);
        const size_t pb = rk_kv_codec_page_bytes(c);
        CHECK_MSG(pb == expected_page_bytes(spec, role, d), "page_bytes %zu, layout says %zu", pb,
                  expected_page_bytes(spec, role, d));
        L->page = malloc(pb);
        L->dec = malloc(sizeof(float) * (size_t)(T * d));
        L->ops->encode(c, STREAM, x, L->page);
        L->ops->decode(c, STREAM, L->page, 0, T, L->dec);
        e->bits = 8.0 * (double)pb / (double)(T * d);
        if (l == 0) continue;
        CHECK_MSG(memcmp(L->page, lv[0].page, pb) == 0, "level %d encodes other bytes", l);
    }
    return top + 1;
}

/* Round trip, kernels and parity for one (codec, role, dim); false when skipped. */
static bool run_case(const char *name, rk_kv_role role, int64_t d, bool required, case_errs *e) {
    rk_kv_codec_spec spec;
    rk_error err = {0};
    if (rk_kv_codec_parse(name, &spec, &err) != RK_OK) {
        CHECK_MSG(0, "parse '%s': %s", name, err.msg);
        return false;
    }
    rng r = {0x9E3779B97F4A7C15ULL ^ (uint64_t)(d * 2 + role)};
    float *x = malloc(sizeof(float) * (size_t)(T * d)),
          *q = malloc(sizeof(float) * (size_t)(NQ * d));
    float *w = malloc(sizeof(float) * (size_t)(NQ * W_STRIDE));
    make_data(&r, d, role, x, q, w);
    level lv[RK_SIMD_AVX512 + 1];
    memset(e, 0, sizeof *e);
    const int n_levels = make_levels(&spec, role, d, required, x, lv, e);
    if (n_levels > 0) {
        double num = 0.0, den = 0.0;
        for (int64_t i = 0; i < T * d; i++) {
            num += (double)(lv[0].dec[i] - x[i]) * (lv[0].dec[i] - x[i]);
            den += (double)x[i] * x[i];
        }
        e->mse = num / den;
        CHECK_MSG(e->mse <= mse_bound(&spec, role, d), "%s d=%lld: relative MSE %.3g above %.3g",
                  name, (long long)d, e->mse, mse_bound(&spec, role, d));
        reference ref = reference_alloc(d, q, w);
        ref.int8_query = role == RK_KV_KEYS && spec.kind == RK_KV_CODEC_TQ;
        reference_build(&ref, lv[0].dec);
        for (int l = 1; l < n_levels; l++) /* decode parity, per channel's measure */
            for (int64_t i = 0; i < T * d; i++)
                e->parity = maxd(e->parity,
                                 fabs(lv[l].dec[i] - lv[0].dec[i]) / (ref.colmax[i % d] + 1e-30));
        CHECK_MSG(e->parity <= TOL, "%s d=%lld: levels decode differently (%.3g)", name,
                  (long long)d, e->parity);
        check_kernels(lv, n_levels, role, &ref, e);
        reference_free(&ref);
        free_levels(lv, n_levels);
    }
    free(x);
    free(q);
    free(w);
    return n_levels > 0;
}

/* Names and arguments that must be refused. */
static void check_rejections(void) {
    static const char *const bad[] = {"q3", "tq5", "tq3.5+foo", "", "F16", "tq", "tq3.5+qjl+qjl"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rk_kv_codec_spec spec;
        rk_error err = {0};
        CHECK_MSG(rk_kv_codec_parse(bad[i], &spec, &err) == RK_ERR_INVALID_ARG, "'%s' accepted",
                  bad[i]);
    }
    rk_kv_codec_spec spec;
    rk_error err = {0};
    rk_kv_codec *c = NULL;
    CHECK(rk_kv_codec_parse("q4", &spec, &err) == RK_OK);
    CHECK(rk_kv_codec_create(&spec, RK_KV_VALUES, 48, 1, RK_SIMD_SCALAR, 0, &c, &err) ==
          RK_ERR_UNSUPPORTED);
    CHECK(c == NULL && strstr(err.msg, "q4") && strstr(err.msg, "48"));
    CHECK(rk_kv_codec_create(&spec, RK_KV_KEYS, 48, 1, RK_SIMD_SCALAR, 0, &c, &err) ==
          RK_ERR_UNSUPPORTED);
    CHECK(rk_kv_codec_parse("tq3.5+qjl", &spec, &err) == RK_OK);
    CHECK(rk_kv_codec_create(&spec, RK_KV_VALUES, 128, 1, RK_SIMD_SCALAR, 0, &c, &err) ==
          RK_ERR_INVALID_ARG);
    /* q4 is 4.5 bits per element for keys and for 64-channel value groups */
    CHECK(rk_kv_codec_parse("q4", &spec, &err) == RK_OK);
    for (int role = 0; role < 2; role++) {
        CHECK(rk_kv_codec_create(&spec, (rk_kv_role)role, 128, 1, RK_SIMD_SCALAR, 0, &c, &err) ==
              RK_OK);
        CHECK(rk_kv_codec_page_bytes(c) * 8 == (size_t)(T * 128 * 9 / 2));
        rk_kv_codec_free(c);
    }
}

int main(void) {
    static const int64_t dims[] = {64, 128, 256, 100, 288, 32, 4}; /* the last four optional */
    const size_t n_codecs = sizeof codec_names / sizeof codec_names[0];
    check_rejections();
    printf("test-kv-codec: levels 0..%d (%s); errors relative to the measures in the header\n",
           (int)rk_cpu_simd_level(), rk_simd_level_name(rk_cpu_simd_level()));
    printf("%-10s %-6s %4s %5s %10s %9s %10s %10s %10s\n", "codec", "role", "d", "bits", "rel MSE",
           "bound", "scores", "w-sum", "parity");
    for (size_t k = 0; k < n_codecs; k++)
        for (int role = 0; role < 2; role++) {
            if (role == RK_KV_VALUES && strstr(codec_names[k], "+qjl")) continue;
            for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
                case_errs e;
                rk_kv_codec_spec spec;
                rk_error err = {0};
                if (!run_case(codec_names[k], (rk_kv_role)role, dims[di], di < 3, &e)) continue;
                rk_kv_codec_parse(codec_names[k], &spec, &err);
                printf("%-10s %-6s %4lld %5.2f %10.3g %9.2g %10.3g %10.3g %10.3g\n", codec_names[k],
                       role == RK_KV_KEYS ? "keys" : "values", (long long)dims[di], e.bits, e.mse,
                       mse_bound(&spec, (rk_kv_role)role, dims[di]), e.scores, e.ws, e.parity);
            }
        }
    return rk_test_finish("test-kv-codec");
}
