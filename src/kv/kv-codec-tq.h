/*
 * kv-codec-tq.h — the TurboQuant ("tq") codec's private state and helpers (private to src/kv
 * and its tests). The format and the maths are described at the top of kv-codec-tq.c.
 *
 * Files:
 *   kv-codec-tq.c        init, layout, encode/decode, prepare/finish, scalar kernels
 *   kv-codec-tq-avx2.c   AVX2/FMA scores and weighted sums that decode inside the dot loop
 *   kv-codec-tq-avx512-gfni.c the same with AVX-512, VBMI, GFNI and VNNI (bit planes
 *                        transposed by gf2p8affineqb; int8 scores by vpdpbusd, vpermps lookups
 *                        for weighted sums)
 *   kv-tq-rotation.c     seeded randomised Hadamard rotations and the QJL Gaussian matrix
 *   kv-tq-codebook.c     Lloyd–Max codebooks for a coordinate of a random unit vector
 */
#ifndef RK_KV_CODEC_TQ_H
#define RK_KV_CODEC_TQ_H

#include "kv/kv-codec-impl.h"
#include "quant/quant.h"

/* Largest head dimension: encode, decode and finish keep a few rows of this many floats on the
 * stack (the decode loop never calls malloc). */
#define RK_KV_TQ_MAX_DIM 1024
#define RK_KV_TQ_MAX_WIDTH 4

/* Centroids are multiples of 1/RK_KV_TQ_CENTROID_UNITS (kv-tq-codebook.c). */
#define RK_KV_TQ_CENTROID_UNITS 32

/* One codebook: 2^width centroids in ascending order (scaled so a coordinate has variance 1,
 * multiples of 1/32, exact in bf16) and the 2^width - 1 decision thresholds between
 * neighbours. */
typedef struct rk_kv_tq_codebook {
    int width;
    float centroid[1 << RK_KV_TQ_MAX_WIDTH];
    int8_t units[1 << RK_KV_TQ_MAX_WIDTH]; /* centroid * RK_KV_TQ_CENTROID_UNITS */
    float threshold[(1 << RK_KV_TQ_MAX_WIDTH) - 1];
    /* AVX2 lookup: lut[k][lane*16 + code] = byte 2+k of the float centroid[code] (its two
     * low bytes are zero), both 128-bit lanes the same, for vpshufb. */
    uint8_t lut[2][32];
} rk_kv_tq_codebook;

typedef struct rk_kv_tq_state {
    int64_t dim; /* d, a power of two */
    int b;       /* low width: coordinates n_hi .. d-1 */
    int n_hi;    /* coordinates 0 .. n_hi-1 use b+1 bits; a multiple of 8 */
    bool qjl;
    size_t row_bytes;   /* rate_x2 * d / 16 */
    size_t off_gamma;   /* qjl: f16 residual norm */
    size_t off_signs;   /* qjl: d/8 bytes of sign bits */
    size_t off_planes;  /* first bit plane */
    size_t plane_bytes; /* d/8 */
    size_t off_mean;    /* the page mean: RK_KV_PAGE_TOKENS * row_bytes (after the rows) */
    size_t mean_bytes;  /* f16 step + d int8 */
    float inv_sqrt_d;
    /* A prepared query (prep_floats per head; see "Attention" in kv-codec-tq.c): */
    int64_t prep_qi;     /* d floats: the integer query qi */
    int64_t prep_qscale; /* 1 float: q_rot ≈ qscale · qi */
    int64_t prep_qsum;   /* 1 float: 128 · Σ qi (the VNNI kernels' offset) */
    int64_t prep_q8;     /* d/4 floats holding qi as d int8 */
    int64_t prep_sketch; /* qjl: d floats, S·q_rot */
    float qjl_coef;            /* sqrt(pi/2) / d */
    rk_kv_tq_codebook book[2]; /* [0]: width b, [1]: width b+1 (when n_hi > 0) */
    uint8_t *signs;            /* (n_streams, d/8): bit j set = D_s[j] is -1 */
    /* The query and output rotations of attention (scalar or AVX2; encoding is always scalar). */
    void (*rotate)(float *x, int64_t d, const uint8_t *signs);
    void (*unrotate)(float *x, int64_t d, const uint8_t *signs);
    /* The row kernels (scalar or AVX2) the ops wrap with the page mean's share. */
    void (*row_scores)(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                       const float *qp, int64_t n_q, float scale, float *out, int64_t out_stride);
    void (*row_weighted_sum)(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                             const float *w, int64_t w_stride, int64_t n_q, float *acc);
    float *st;                 /* qjl: S transposed, (d, d) row-major: st[j*d + i] = S[i][j] */
    void *avx512_tables;       /* the AVX-512 kernels' constants (owned; NULL unless they run) */
    bool int16_weights;        /* weighted sums round weights to int16 (the AVX-512 kernels) */
} rk_kv_tq_state;

/* ---- kv-tq-rotation.c ---- */

/* The splitmix64 output function (a bijective 64-bit mixer). */
uint64_t rk_kv_tq_mix64(uint64_t x);
/* Fills signs (n_streams, d/8) with the ±1 diagonals D_s drawn from (seed, s). */
void rk_kv_tq_fill_signs(uint64_t seed, int64_t n_streams, int64_t d, uint8_t *signs);
/* Fills st (d, d) with S^T for S of iid N(0, 1) drawn from seed (Box–Muller). */
void rk_kv_tq_fill_gaussian(uint64_t seed, int64_t d, float *st);
/* In-place unnormalised Walsh–Hadamard transform of x (d a power of two). */
void rk_kv_tq_fwht(float *x, int64_t d);
/* x := H·D·x / sqrt(d) (forward) or D·H·x / sqrt(d) (inverse), signs = the stream's d/8 bytes. */
void rk_kv_tq_rotate(float *x, int64_t d, const uint8_t *signs);
void rk_kv_tq_unrotate(float *x, int64_t d, const uint8_t *signs);
/* The same with AVX2 (kv-tq-rotation-avx2.c), bit-identical; d >= 8. */
void rk_kv_tq_rotate_avx2(float *x, int64_t d, const uint8_t *signs);
void rk_kv_tq_unrotate_avx2(float *x, int64_t d, const uint8_t *signs);

/* ---- kv-tq-codebook.c ---- */

/* The Lloyd–Max quantiser of `width` bits (1..4) for one coordinate of a uniformly random unit
 * vector of R^d times sqrt(d) (density ∝ (1 - x²/d)^((d-3)/2) on |x| < sqrt(d)), computed by
 * Lloyd iterations on a fine grid. Fills book (centroids, thresholds, AVX2 tables) and, when
 * mse is not NULL, the expected squared error per coordinate. RK_ERR_NO_MEMORY if the grid
 * cannot be allocated. Deterministic. */
rk_status rk_kv_tq_codebook_build(int64_t d, int width, rk_kv_tq_codebook *book, double *mse,
                                  rk_error *err);

/* ---- row helpers (the kernels and tests) ---- */

/* A row starts with its f16 norm; the norm's sign bit says whether the row is a residual from
 * the page mean (set) or the vector itself (clear). */
#define RK_KV_TQ_CENTRED_BIT 0x8000u
static inline uint16_t rk_kv_tq_row_head(const uint8_t *row) {
    return (uint16_t)(row[0] | row[1] << 8);
}
static inline float rk_kv_tq_row_norm(const uint8_t *row) {
    return rk_fp16_to_fp32((uint16_t)(rk_kv_tq_row_head(row) & ~RK_KV_TQ_CENTRED_BIT));
}
static inline bool rk_kv_tq_row_centred(const uint8_t *row) {
    return (rk_kv_tq_row_head(row) & RK_KV_TQ_CENTRED_BIT) != 0;
}

/* The code of coordinate j of a row (planes = row + off_planes). */
static inline int rk_kv_tq_code(const rk_kv_tq_state *s, const uint8_t *planes, int64_t j) {
    const int nb = s->b + (j < s->n_hi);
    int code = 0;
    for (int p = 0; p < nb; p++)
        code |= ((planes[(size_t)p * s->plane_bytes + (size_t)(j >> 3)] >> (j & 7)) & 1) << p;
    return code;
}

/* The page mean in the rotated domain (d floats), as stored. */
void rk_kv_tq_page_mean(const rk_kv_tq_state *s, const uint8_t *page, float *mean);

/* What weighted_sum's weight rounding may add to one head's output (any coordinate, rotated
 * domain or back), for weights w[0 .. n-1] over rows t0 .. t0+n-1 of a value page: the AVX-512
 * kernels round ws_t = w_t·nu_t/sqrt(d) to steps of Δ = max_t |ws_t| / 32767, so the sum moves
 * by at most Δ/2 · Σ_t ||C_t|| (C_t the row's centroid vector). 0 where weights are not
 * rounded (scalar and AVX2) and for codecs other than tq. For tests and error budgets. */
double rk_kv_tq_weight_rounding(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                                const float *w);

/* ---- kv-codec-tq-avx2.c: the ops' AVX2 kernels (d >= 32; t0 + n <= RK_KV_PAGE_TOKENS) ---- */

void rk_kv_tq_scores_avx2(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                          const float *qp, int64_t n_q, float scale, float *out,
                          int64_t out_stride);
void rk_kv_tq_weighted_sum_avx2(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                                const float *w, int64_t w_stride, int64_t n_q, float *acc);

/* ---- kv-codec-tq-avx512-gfni.c: AVX-512 + VBMI + GFNI kernels (32 <= d <= 256, n_hi a
 * multiple of 16) ---- */

/* Whether the AVX-512 kernels take this layout (head size, widths, and their whole-window loads
 * staying inside a page). */
int rk_kv_tq_avx512_supports(const rk_kv_tq_state *s);
/* Builds s->avx512_tables (freed with free()); call once the layout and codebooks are set.
 * RK_ERR_NO_MEMORY on failure. */
rk_status rk_kv_tq_avx512_init(rk_kv_tq_state *s, rk_error *err);
void rk_kv_tq_scores_avx512(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                            const float *qp, int64_t n_q, float scale, float *out,
                            int64_t out_stride);
void rk_kv_tq_weighted_sum_avx512(const rk_kv_codec *c, const uint8_t *page, int64_t t0,
                                  int64_t n, const float *w, int64_t w_stride, int64_t n_q,
                                  float *acc);

#endif
