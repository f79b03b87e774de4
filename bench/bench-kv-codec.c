/*
 * bench-kv-codec.c — micro-benchmark of the KV codecs' attention kernels: for each codec,
 * head dimension (64, 256) and GQA group size (3, 4 query heads per KV head), time scores()
 * over whole key pages and weighted_sum() + finish() over whole value pages, as attention
 * calls them in decode, with the pages
 *   L2   a few pages (about 512 KiB) visited round-robin: the kernels' compute speed;
 *   mem  pages spread over a 256 MiB buffer (well past L3): what long-context decode sees.
 * Reported per page (RK_KV_PAGE_TOKENS rows of one KV head) and as GB/s of page bytes read.
 *
 *     bench-kv-codec [SECONDS [CODEC,... [SIMD_LEVEL]]]   defaults 0.2, all, this CPU's best
 *
 * A codec that rejects a role (QJL values) shows "-" there.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv/kv-codec.h"
#include "quant/quant.h"

#define T RK_KV_PAGE_TOKENS
#define BIG_BYTES ((size_t)256 << 20)
#define SMALL_BYTES ((size_t)512 << 10)

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float unif(uint64_t *s) { /* [-1, 1) */
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (float)(*s >> 40) / 8388608.0f - 1.0f;
}

/* What one timing needs: a codec, its pages, and the buffers of one call. */
typedef struct {
    const rk_kv_codec *c;
    const rk_kv_codec_ops *ops;
    const uint8_t *pages;
    size_t page_bytes;
    int64_t n_pages, n_q;
    const float *qp, *w;
    float *out, *acc, *o;
} bench_run;

static void run_scores(const bench_run *b, int64_t p) {
    b->ops->scores(b->c, b->pages + (size_t)p * b->page_bytes, 0, T, b->qp, b->n_q, 0.125f, b->out,
                   T);
}

static void run_weighted_sum(const bench_run *b, int64_t p) {
    const int64_t d = rk_kv_codec_dim(b->c);
    memset(b->acc, 0, sizeof(float) * (size_t)(b->n_q * d));
    b->ops->weighted_sum(b->c, b->pages + (size_t)p * b->page_bytes, 0, T, b->w, T, b->n_q, b->acc);
    b->ops->finish(b->c, 0, b->acc, b->n_q, b->o);
}

/* Nanoseconds per page of fn over b's pages: the best of 5 runs of about secs / 5 each (the
 * best, because other processes on a shared machine only ever make a run slower). */
static double time_pages(const bench_run *b, void (*fn)(const bench_run *, int64_t), double secs) {
    for (int64_t p = 0; p < b->n_pages && p < 64; p++)
        fn(b, p); /* warm up */
    double best = 1e30;
    for (int run = 0; run < 5; run++) {
        int64_t calls = 0;
        const double t0 = now();
        double t1;
        do {
            for (int64_t p = 0; p < b->n_pages; p++)
                fn(b, p);
            calls += b->n_pages;
        } while ((t1 = now()) - t0 < secs / 5);
        const double ns = (t1 - t0) * 1e9 / (double)calls;
        best = ns < best ? ns : best;
    }
    return best;
}

/* A codec for (name, role, d) with one encoded page copied over buf (BIG_BYTES); NULL when
 * the codec rejects it. */
static rk_kv_codec *make_pages(const char *name, rk_kv_role role, int64_t d, int level,
                               uint8_t *buf, int64_t *n_big) {
    rk_kv_codec_spec spec;
    rk_kv_codec *c = NULL;
    rk_error err;
    if (rk_kv_codec_parse(name, &spec, &err) != RK_OK ||
        rk_kv_codec_create(&spec, role, d, 1, level, 42, &c, &err) != RK_OK)
        return NULL;
    const size_t pb = rk_kv_codec_page_bytes(c);
    float *x = malloc(sizeof(float) * (size_t)(T * d));
    uint64_t s = 0x243F6A8885A308D3ULL + (uint64_t)d;
    for (int64_t i = 0; i < T * d; i++)
        x[i] = unif(&s) * (role == RK_KV_KEYS && i % d == 3 ? 8.0f : 1.0f);
    rk_kv_codec_get_ops(c)->encode(c, 0, x, buf);
    *n_big = (int64_t)(BIG_BYTES / pb);
    for (int64_t p = 1; p < *n_big; p++)
        memcpy(buf + (size_t)p * pb, buf, pb);
    free(x);
    return c;
}

/* ns per page of fn with the pages in L2 and in memory. */
static void bench_op(bench_run *b, rk_kv_codec *c, const uint8_t *buf, int64_t n_big,
                     void (*fn)(const bench_run *, int64_t), double secs, double ns[2]) {
    b->c = c;
    b->ops = rk_kv_codec_get_ops(c);
    b->pages = buf;
    b->page_bytes = rk_kv_codec_page_bytes(c);
    const int64_t n_small = (int64_t)(SMALL_BYTES / b->page_bytes);
    b->n_pages = n_small > 0 ? n_small : 1;
    ns[0] = time_pages(b, fn, secs);
    b->n_pages = n_big;
    ns[1] = time_pages(b, fn, secs);
}

static void print_cell(double v, int width, int prec) {
    if (v > 0)
        printf(" %*.*f", width, prec, v);
    else
        printf(" %*s", width, "-");
}

/* pb: key page bytes (for the bits column and the scores), pbv: value page bytes. */
static void print_row(const char *name, int64_t d, int64_t n_q, size_t pb, size_t pbv,
                      const double sc[2], const double ws[2]) {
    const size_t shown = pb ? pb : pbv;
    printf("%-10s %4lld %3lld %5.2f %9zu", name, (long long)d, (long long)n_q,
           8.0 * (double)shown / (double)(T * d), shown);
    for (int k = 0; k < 2; k++)
        print_cell(sc[k], 9, 0);
    for (int k = 0; k < 2; k++)
        print_cell(ws[k], 9, 0);
    for (int k = 0; k < 2; k++)
        print_cell(sc[k] > 0 ? (double)pb / sc[k] : 0.0, 7, 1);
    for (int k = 0; k < 2; k++)
        print_cell(ws[k] > 0 ? (double)pbv / ws[k] : 0.0, 7, 1);
    printf("\n");
}

static bool selected(const char *only, const char *name) {
    if (!only) return true;
    const size_t len = strlen(name);
    for (const char *p = strstr(only, name); p; p = strstr(p + 1, name))
        if ((p == only || p[-1] == ',') && (p[len] == '\0' || p[len] == ',')) return true;
    return false;
}

/* One table row: scores on key pages and weighted sums on value pages of codec `name`. */
static void bench_codec(const char *name, int64_t d, int64_t n_q, int level, double secs,
                        uint8_t *buf, const float *q, bench_run b) {
    double sc[2] = {0, 0}, ws[2] = {0, 0};
    size_t pb = 0, pbv = 0;
    int64_t n_big;
    b.n_q = n_q;
    rk_kv_codec *c = make_pages(name, RK_KV_KEYS, d, level, buf, &n_big);
    if (c) {
        pb = rk_kv_codec_page_bytes(c);
        float *qp = malloc(sizeof(float) * (size_t)(n_q * rk_kv_codec_prep_floats(c)));
        rk_kv_codec_get_ops(c)->prepare(c, 0, q, n_q, qp);
        b.qp = qp;
        bench_op(&b, c, buf, n_big, run_scores, secs, sc);
        rk_kv_codec_free(c);
        free(qp);
    }
    if ((c = make_pages(name, RK_KV_VALUES, d, level, buf, &n_big))) {
        pbv = rk_kv_codec_page_bytes(c);
        bench_op(&b, c, buf, n_big, run_weighted_sum, secs, ws);
        rk_kv_codec_free(c);
    }
    print_row(name, d, n_q, pb, pbv, sc, ws);
}

int main(int argc, char **argv) {
    static const char *const names[] = {"f32", "f16",   "q8",  "q4",       "tq2.5",
                                        "tq3", "tq3.5", "tq4", "tq3.5+qjl"};
    static const int64_t dims[] = {64, 256}, heads[] = {3, 4};
    const double secs = argc > 1 ? atof(argv[1]) : 0.2;
    const char *only = argc > 2 ? argv[2] : NULL;
    const int level = argc > 3 ? atoi(argv[3]) : (int)rk_cpu_simd_level();
    uint8_t *buf = malloc(BIG_BYTES);
    float *q = malloc(sizeof(float) * 4 * 256), *w = malloc(sizeof(float) * 4 * T);
    float *out = malloc(sizeof(float) * 4 * T), *acc = malloc(sizeof(float) * 4 * 256);
    float *o = calloc(4 * 256, sizeof(float));
    uint64_t s = 7;
    for (int i = 0; i < 4 * 256; i++)
        q[i] = unif(&s);
    for (int i = 0; i < 4 * T; i++)
        w[i] = 0.5f * (unif(&s) + 1.0f) / (float)T;
    printf("bench-kv-codec: SIMD level %s; ns per page of %d rows; L2: ~512 KiB of pages, "
           "mem: 256 MiB\n",
           rk_simd_level_name((rk_simd_level)level), T);
    printf("%-10s %4s %3s %5s %9s %9s %9s %9s %9s %7s %7s %7s %7s\n", "codec", "d", "nq", "bits",
           "B/page", "sc L2", "sc mem", "ws L2", "ws mem", "GB/s sc", "sc mem", "ws L2", "ws mem");
    const bench_run b = {.w = w, .out = out, .acc = acc, .o = o};
    for (size_t k = 0; k < sizeof names / sizeof *names; k++)
        for (size_t di = 0; di < 2 && selected(only, names[k]); di++)
            for (size_t hi = 0; hi < 2; hi++)
                bench_codec(names[k], dims[di], heads[hi], level, secs, buf, q, b);
    free(buf);
    free(q);
    free(w);
    free(out);
    free(acc);
    free(o);
    return 0;
}
