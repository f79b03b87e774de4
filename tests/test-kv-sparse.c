/*
 * test-kv-sparse.c — per-page key bounds and sparse page selection (kv-sparse.h):
 *
 *   1. rounding: each stored min is the largest half ≤ the true minimum and each max the
 *      smallest half ≥ the true maximum, for values chosen to make round-to-nearest go the wrong
 *      way (just above / below halves, subnormals, ±0, beyond ±65504, NaN);
 *   2. bound: for random pages (Gaussian, outlier channels, all-negative, all-equal rows, values
 *      just off halves, identical rows just off halves, huge values) and random queries (with
 *      zero channels) the bound is ≥ the max over rows of q·k in double, and no looser than the
 *      decoded-f16 bound needs;
 *   3. tightness: a page of identical rows bounds q·k within f16 relative error, exactly for
 *      rows that are halves;
 *   4. selection counts: sinks, recent and unbounded pages always visited; the count is
 *      min(n, |forced| + top) over ranges starting at 0 and sliding windows (first > 0);
 *   5. needle: a planted page aligned with one query head of a GQA group is chosen at top 1;
 *   6. ties and determinism: equal bounds choose the lowest pages, the same call twice agrees;
 *   7. exactness: every skipped page ranks below every chosen page, and the chosen set equals
 *      the top of a reference sort;
 * and it prints the bound storage against a tq3.5 key page.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/kv-codec.h"
#include "kv/kv-sparse.h"
#include "quant/quant.h"
#include "test-util.h"

#define MAXD 256
#define T RK_KV_PAGE_TOKENS


static float gauss(rk_test_rng *r) {
    return (float)(sqrt(-2.0 * log(rk_test_rng_unif(r))) * cos(6.283185307179586 * rk_test_rng_unif(r)));
}

static float bound_min(const uint8_t *b, int64_t i) {
    return rk_fp16_to_fp32((uint16_t)(b[2 * i] | (b[2 * i + 1] << 8)));
}

static float bound_max(const uint8_t *b, int64_t d, int64_t i) { return bound_min(b, d + i); }

/* A float just off a half: h * (1 ± 2^-13) lands between two halves, nearer to h, so
 * round-to-nearest goes back to h, which is the wrong way for one of the two directions. */
static float near_half(rk_test_rng *r) {
    const float h = rk_fp16_to_fp32(rk_fp32_to_fp16(gauss(r) * 8.0f));
    const float e = (rk_test_rng_next(r) & 1) ? 1.0f + 0x1p-13f : 1.0f - 0x1p-13f;
    return h * e;
}

/* One f16 ulp at v (finite, |v| ≤ 65504). */
static double ulp16(double v) {
    const int e = v == 0.0 ? -14 : (int)floor(log2(fabs(v)));
    return ldexp(1.0, (e < -14 ? -14 : e) - 10);
}

static void test_rounding(void) {
    rk_test_rng r = {0x9e3779b97f4a7c15ull};
    float v[64];
    int n = 0;
    /* clang-format off */
    const float fixed[] = {0.0f, -0.0f, 1e-10f, -1e-10f, 0x1p-25f, -0x1p-25f, 0x1.8p-24f,
                           1.0f + 0x1p-12f, -(1.0f + 0x1p-12f), 65504.0f, 65519.0f, 65520.0f,
                           70000.0f, -70000.0f, 1e30f, -1e30f, 2049.0f, -2049.0f};
    /* clang-format on */
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        v[n++] = fixed[i];
    while (n < 64)
        v[n++] = near_half(&r);
    uint8_t b[4];
    for (int i = 0; i < n; i++) {
        rk_kv_bounds_compute(&v[i], 1, 1, b);
        const float lo = bound_min(b, 0), hi = bound_max(b, 1, 0);
        CHECK_MSG(lo <= v[i] && hi >= v[i], "%a in [%a, %a]", v[i], lo, hi);
        if (fabsf(v[i]) <= 65504.0f) { /* the nearest halves, not any halves */
            CHECK_MSG(hi - lo <= ulp16(v[i]), "%a: [%a, %a] wider than one ulp", v[i], lo, hi);
            if (rk_fp16_to_fp32(rk_fp32_to_fp16(v[i])) == v[i]) CHECK(lo == v[i] && hi == v[i]);
        } else {
            CHECK_MSG(v[i] > 0 ? lo == 65504.0f && isinf(hi) : isinf(lo) && hi == -65504.0f,
                      "%a: [%a, %a]", v[i], lo, hi);
        }
    }
    /* a NaN channel becomes [-inf, inf]; q_i == 0 there still adds nothing */
    const float rows[4] = {1.0f, NAN, 2.0f, 3.0f}; /* 2 rows x 2 channels */
    uint8_t b2[8];
    rk_kv_bounds_compute(rows, 2, 2, b2);
    CHECK(isinf(bound_min(b2, 1)) && isinf(bound_max(b2, 2, 1)));
    CHECK(bound_min(b2, 0) == 1.0f && bound_max(b2, 2, 0) == 2.0f);
    const float q0[2] = {1.0f, 0.0f}, q1[2] = {1.0f, -1.0f};
    CHECK(rk_kv_bounds_upper(b2, q0, 2) >= 2.0f && isfinite(rk_kv_bounds_upper(b2, q0, 2)));
    CHECK(isinf(rk_kv_bounds_upper(b2, q1, 2)));
}

/* K_EQUAL_HALF: identical rows just off halves, where the rounding is the bound's only slack */
enum { K_GAUSS, K_OUTLIER, K_NEGATIVE, K_EQUAL, K_NEAR_HALF, K_EQUAL_HALF, K_HUGE, K_KINDS };

static void make_page(rk_test_rng *r, int kind, int64_t n, int64_t d, float *rows) {
    for (int64_t t = 0; t < n; t++)
        for (int64_t i = 0; i < d; i++) {
            float x = gauss(r);
            switch (kind) {
            case K_OUTLIER: x *= (i % 17 == 3) ? 60.0f : 1.0f; break;
            case K_NEGATIVE: x = -fabsf(x) - 0.5f; break;
            case K_EQUAL: x = t ? rows[i] : x; break;
            case K_NEAR_HALF: x = near_half(r); break;
            case K_EQUAL_HALF: x = t ? rows[i] : near_half(r); break;
            case K_HUGE: x *= (i == 5) ? 30000.0f : 1.0f; break;
            default: break;
            }
            rows[t * d + i] = x;
        }
}

static void make_query(rk_test_rng *r, int64_t d, float *q) {
    for (int64_t i = 0; i < d; i++)
        q[i] = (rk_test_rng_next(r) % 8 == 0) ? 0.0f : gauss(r) * 2.0f;
}

/* max over rows of q·k in double, and the bound the decoded halves give in double. */
static double max_dot(const float *rows, int64_t n, int64_t d, const float *q) {
    double best = -INFINITY;
    for (int64_t t = 0; t < n; t++) {
        double s = 0.0;
        for (int64_t i = 0; i < d; i++)
            s += (double)q[i] * rows[t * d + i];
        best = s > best ? s : best;
    }
    return best;
}

static double f16_bound(const uint8_t *b, int64_t d, const float *q) {
    double s = 0.0;
    for (int64_t i = 0; i < d; i++)
        if (q[i] != 0.0f) s += (double)q[i] * (q[i] > 0 ? bound_max(b, d, i) : bound_min(b, i));
    return s;
}

static void test_bound(void) {
    rk_test_rng r = {12345};
    const int64_t dims[] = {64, 80, 128, 256};
    static float rows[T * MAXD];
    uint8_t b[4 * MAXD];
    float q[MAXD];
    int64_t checks = 0;
    for (int kind = 0; kind < K_KINDS; kind++)
        for (int di = 0; di < 4; di++)
            for (int rep = 0; rep < 8; rep++) {
                const int64_t d = dims[di], n = 1 + (int64_t)(rk_test_rng_next(&r) % T);
                make_page(&r, kind, n, d, rows);
                rk_kv_bounds_compute(rows, n, d, b);
                for (int k = 0; k < 16; k++, checks++) {
                    make_query(&r, d, q);
                    const float u = rk_kv_bounds_upper(b, q, d);
                    const double m = max_dot(rows, n, d, q), f = f16_bound(b, d, q);
                    CHECK_MSG((double)u >= m, "kind %d d %lld n %lld: bound %.9g < max q.k %.17g",
                              kind, (long long)d, (long long)n, u, m);
                    CHECK_MSG(isinf(f) || fabs((double)u - f) <= 1e-5 * fabs(f) + 1e-6,
                              "kind %d: bound %.9g vs f16 bound %.17g", kind, u, f);
                }
            }
    fprintf(stderr, "bound: %lld page/query pairs, bound >= max q.k in double for all\n",
            (long long)checks);
}

static void test_tightness(void) {
    rk_test_rng r = {777};
    static float rows[8 * MAXD];
    uint8_t b[4 * MAXD];
    float q[MAXD];
    for (int rep = 0; rep < 50; rep++) {
        const int64_t d = rep % 2 ? 128 : 64;
        const int exact = rep % 5 == 0; /* rows that are halves */
        for (int64_t i = 0; i < d; i++) {
            const float x = gauss(&r);
            rows[i] = exact ? rk_fp16_to_fp32(rk_fp32_to_fp16(x)) : x;
        }
        for (int64_t t = 1; t < 8; t++)
            memcpy(rows + t * d, rows, (size_t)d * sizeof(float));
        rk_kv_bounds_compute(rows, 8, d, b);
        make_query(&r, d, q);
        const double dot = max_dot(rows, 1, d, q);
        double mag = 0.0;
        for (int64_t i = 0; i < d; i++)
            mag += fabs((double)q[i] * rows[i]);
        const double u = rk_kv_bounds_upper(b, q, d);
        const double tol = exact ? 1e-6 * mag : 0x1p-10 * mag + 1e-6 * mag; /* f16 relative error */
        CHECK_MSG(u >= dot && u - dot <= tol, "rep %d: bound %.9g, q.k %.9g, tol %.3g", rep, u, dot,
                  tol);
    }
}

/* Pages of random keys with bounds; page `null_from` and later have no bounds (open). */
typedef struct {
    int64_t n, d;
    uint8_t *store;         /* n x 4d bytes */
    const uint8_t **bounds; /* n pointers */
} pages;

static pages make_pages(rk_test_rng *r, int64_t n, int64_t d, int64_t null_from) {
    pages p = {n, d, malloc((size_t)n * rk_kv_bounds_bytes(d)), malloc((size_t)n * sizeof(void *))};
    static float rows[T * MAXD];
    for (int64_t i = 0; i < n; i++) {
        make_page(r, K_GAUSS, 16, d, rows);
        uint8_t *b = p.store + (size_t)i * rk_kv_bounds_bytes(d);
        rk_kv_bounds_compute(rows, 16, d, b);
        p.bounds[i] = i >= null_from ? NULL : b;
    }
    return p;
}

static void free_pages(pages *p) {
    free(p->store);
    free(p->bounds);
}

static int64_t select_range(const rk_kv_sparse_params *sp, const pages *pg, int64_t first,
                            int64_t last, const float *q, int64_t n_q, uint8_t *visit) {
    void *scratch = malloc(rk_kv_sparse_scratch_bytes(last - first + 1));
    const int64_t v = rk_kv_sparse_select(sp, first, last, pg->bounds + first, q, n_q, pg->d,
                                          0.125f, visit, scratch);
    free(scratch);
    return v;
}

static void test_counts(void) {
    rk_test_rng r = {4242};
    const int64_t d = 64, NPG = 48;
    pages pg = make_pages(&r, NPG, d, NPG - 1); /* the last page is open */
    float q[4 * 64];
    for (int i = 0; i < 4 * 64; i++)
        q[i] = gauss(&r);
    uint8_t visit[48];
    int64_t cases = 0;
    for (int64_t first = 0; first < 6; first++)
        for (int64_t last = first; last < NPG; last += 3)
            for (int64_t sinks = 0; sinks <= 3; sinks++)
                for (int64_t recent = 0; recent <= 3; recent++)
                    for (int64_t top = -1; top <= 50; top += 7, cases++) {
                        const rk_kv_sparse_params sp = {top, sinks, recent};
                        const int64_t n = last - first + 1;
                        memset(visit, 0xee, sizeof visit);
                        const int64_t v = select_range(&sp, &pg, first, last, q, 4, visit);
                        int64_t forced = 0, sum = 0;
                        for (int64_t i = 0; i < n; i++) {
                            const int64_t page = first + i;
                            const int f =
                                page < sinks || page > last - recent || pg.bounds[page] == NULL;
                            forced += f;
                            sum += visit[i];
                            CHECK(visit[i] <= 1);
                            if (f) CHECK_MSG(visit[i] == 1, "page %lld forced", (long long)page);
                        }
                        const int64_t t = top < 0 ? 0 : top;
                        const int64_t want = forced + t < n ? forced + t : n;
                        CHECK_MSG(v == want && sum == v,
                                  "[%lld, %lld] s%lld r%lld t%lld: %lld visited, want %lld",
                                  (long long)first, (long long)last, (long long)sinks,
                                  (long long)recent, (long long)top, (long long)v, (long long)want);
                        if (first == 0 && n <= sinks + recent + t) CHECK(v == n);
                        if (n < NPG) CHECK(visit[n] == 0xee); /* nothing past n */
                    }
    /* a sliding window [20, 39]: page 20 is no sink; with top 0 only the recent pages */
    const rk_kv_sparse_params sp = {0, 1, 2};
    CHECK(select_range(&sp, &pg, 20, 39, q, 4, visit) == 2);
    CHECK(visit[0] == 0 && visit[18] == 1 && visit[19] == 1);
    CHECK(select_range(&sp, &pg, 0, 39, q, 4, visit) == 3 && visit[0] == 1);
    /* an empty or invalid range visits nothing */
    CHECK(rk_kv_sparse_select(&sp, 5, 4, pg.bounds, q, 4, d, 1.0f, visit, NULL) == 0);
    CHECK(rk_kv_sparse_select(&sp, -1, 4, pg.bounds, q, 4, d, 1.0f, visit, NULL) == 0);
    rk_kv_sparse_params dp = rk_kv_sparse_default_params();
    CHECK(dp.sink_pages == 1 && dp.recent_pages == 2 && dp.top_pages == 0);
    fprintf(stderr, "counts: %lld ranges\n", (long long)cases);
    free_pages(&pg);
}

static void test_needle(void) {
    rk_test_rng r = {99};
    const int64_t d = 128, NPG = 64, needle = 37, n_q = 4, head = 2;
    pages pg = make_pages(&r, NPG, d, NPG);
    float q[4 * 128];
    for (int i = 0; i < n_q * d; i++)
        q[i] = gauss(&r);
    /* the needle's keys point along head 2's query with 3x the norm of the other keys: the
     * min/max box of 16 isotropic Gaussian rows is loose (its corner scores about
     * 1.8 * |q|_1 ≈ 1.4 * sqrt(d) * |q|), so a needle must beat that, as in Quest */
    static float rows[16 * 128];
    double qn = 0.0;
    for (int64_t i = 0; i < d; i++)
        qn += (double)q[head * d + i] * q[head * d + i];
    for (int64_t t = 0; t < 16; t++)
        for (int64_t i = 0; i < d; i++)
            rows[t * d + i] =
                (float)(3.0 * q[head * d + i] / sqrt(qn) * sqrt((double)d)) + 0.05f * gauss(&r);
    rk_kv_bounds_compute(rows, 16, d, pg.store + needle * rk_kv_bounds_bytes(d));
    uint8_t visit[64];
    for (int64_t top = 1; top <= 3; top++) {
        const rk_kv_sparse_params sp = {top, 1, 2};
        CHECK(select_range(&sp, &pg, 0, NPG - 1, q, n_q, visit) == 3 + top);
        CHECK_MSG(visit[needle], "needle not chosen at top %lld", (long long)top);
        CHECK(visit[0] && visit[NPG - 1] && visit[NPG - 2]);
    }
    /* the same group with head 2's query alone: still the needle */
    const rk_kv_sparse_params sp = {1, 1, 2};
    select_range(&sp, &pg, 0, NPG - 1, q + head * d, 1, visit);
    CHECK(visit[needle]);
    free_pages(&pg);
}

static void test_ties(void) {
    rk_test_rng r = {5};
    const int64_t d = 64, NPG = 30;
    pages pg = make_pages(&r, NPG, d, NPG);
    for (int64_t i = 0; i < NPG; i++)
        pg.bounds[i] = pg.store; /* all the same bounds */
    float q[64];
    for (int i = 0; i < 64; i++)
        q[i] = gauss(&r);
    uint8_t v1[30], v2[30];
    const rk_kv_sparse_params sp = {5, 1, 2};
    CHECK(select_range(&sp, &pg, 0, NPG - 1, q, 1, v1) == 8);
    for (int64_t i = 0; i < NPG; i++)
        CHECK(v1[i] == (i <= 5 || i >= NPG - 2));
    CHECK(select_range(&sp, &pg, 10, NPG - 1, q, 1, v2) == 7);
    for (int64_t i = 0; i < NPG - 10; i++)
        CHECK(v2[i] == (i <= 4 || i >= NPG - 12));
    free_pages(&pg);
    /* random bounds: the same call twice agrees */
    pg = make_pages(&r, NPG, d, NPG - 1);
    select_range(&sp, &pg, 0, NPG - 1, q, 1, v1);
    select_range(&sp, &pg, 0, NPG - 1, q, 1, v2);
    CHECK(memcmp(v1, v2, sizeof v1) == 0);
    free_pages(&pg);
}

typedef struct {
    float score;
    int64_t page;
} ranked;

static int rank_cmp(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->page < y->page ? -1 : x->page > y->page;
}

static void test_exactness(void) {
    rk_test_rng r = {31337};
    const int64_t d = 64, NPG = 200;
    float q[4 * 64];
    uint8_t visit[200];
    ranked rk[200];
    for (int rep = 0; rep < 40; rep++) {
        pages pg = make_pages(&r, NPG, d, NPG - 1);
        const int64_t n_q = 1 + rep % 4, top = 1 + (int64_t)(rk_test_rng_next(&r) % 60);
        const int64_t first = rep % 3 ? 0 : 1 + (int64_t)(rk_test_rng_next(&r) % 50);
        for (int i = 0; i < n_q * d; i++)
            q[i] = gauss(&r);
        const rk_kv_sparse_params sp = {top, 1, 2};
        select_range(&sp, &pg, first, NPG - 1, q, n_q, visit);
        int64_t m = 0;
        for (int64_t page = first; page < NPG; page++) {
            if (page < 1 || page > NPG - 3 || pg.bounds[page] == NULL) continue;
            float best = -INFINITY;
            for (int64_t g = 0; g < n_q; g++) {
                const float s = 0.125f * rk_kv_bounds_upper(pg.bounds[page], q + g * d, d);
                best = s > best ? s : best;
            }
            rk[m++] = (ranked){best, page};
        }
        qsort(rk, (size_t)m, sizeof rk[0], rank_cmp);
        float min_chosen = INFINITY, max_skipped = -INFINITY;
        for (int64_t j = 0; j < m; j++) {
            const int chosen = visit[rk[j].page - first];
            CHECK_MSG(chosen == (j < top), "rep %d: rank %lld page %lld chosen %d", rep,
                      (long long)j, (long long)rk[j].page, chosen);
            if (chosen)
                min_chosen = fminf(min_chosen, rk[j].score);
            else
                max_skipped = fmaxf(max_skipped, rk[j].score);
        }
        CHECK(max_skipped <= min_chosen);
        free_pages(&pg);
    }
}

static void print_overhead(void) {
    rk_kv_codec_spec spec;
    rk_error err;
    if (rk_kv_codec_parse("tq3.5", &spec, &err) != RK_OK) return;
    for (int64_t d = 64; d <= 256; d *= 2) {
        rk_kv_codec *c = NULL;
        if (rk_kv_codec_create(&spec, RK_KV_KEYS, d, 1, RK_SIMD_SCALAR, 1, &c, &err) != RK_OK)
            continue;
        const size_t pb = rk_kv_codec_page_bytes(c), bb = rk_kv_bounds_bytes(d);
        fprintf(stderr,
                "head_dim %3lld: bounds %5zu B per page and head, tq3.5 key page %6zu B "
                "(+%.2f%%), f16 key page %6zu B (+%.2f%%)\n",
                (long long)d, bb, pb, 100.0 * (double)bb / (double)pb, (size_t)(T * d * 2),
                100.0 * (double)bb / (double)(T * d * 2));
        rk_kv_codec_free(c);
    }
}

int main(void) {
    test_rounding();
    test_bound();
    test_tightness();
    test_counts();
    test_needle();
    test_ties();
    test_exactness();
    print_overhead();
    return rk_test_finish("test-kv-sparse");
}
