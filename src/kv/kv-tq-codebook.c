/*
 * kv-tq-codebook.c — Lloyd–Max codebooks for the tq codec (see kv-codec-tq.c).
 *
 * After the random rotation, a coordinate of a unit vector of R^d scaled by sqrt(d) has the
 * density f(x) ∝ (1 - x²/d)^((d-3)/2) on |x| < sqrt(d) (≈ N(0, 1) for large d). The MSE-optimal
 * scalar quantiser of that density is found by Lloyd's iteration (centroid = conditional mean
 * of its cell, threshold = midpoint of neighbours), which converges to the unique optimum
 * because f is log-concave. The integrals ∫f, ∫x·f, ∫x²·f are tabulated once on a fine grid
 * (trapezoid rule) and interpolated at the thresholds, so an iteration costs O(2^width).
 * Everything is in double and deterministic; centroids are made exactly symmetric at the end
 * and then rounded to multiples of 1/RK_KV_TQ_CENTROID_UNITS (see fill_book).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "kv/kv-codec-tq.h"

#define GRID_CELLS 8192
#define LLOYD_MAX_ITERS 20000
#define LLOYD_TOL 1e-12

/* Running integrals of f, x f and x² f from -lim up to grid point i (unnormalised). */
typedef struct moments {
    double lim, step;
    double *m[3]; /* each GRID_CELLS + 1 */
} moments;

static void moments_fill(moments *mo, int64_t d) {
    const double dd = (double)d, expo = (dd - 3.0) / 2.0;
    double prev[3] = {0, 0, 0};
    for (int i = 0; i <= GRID_CELLS; i++) {
        const double x = -mo->lim + i * mo->step;
        const double u = 1.0 - x * x / dd;
        const double f = u > 0.0 ? pow(u, expo) : 0.0;
        const double cur[3] = {f, x * f, x * x * f};
        for (int k = 0; k < 3; k++) {
            mo->m[k][i] = i == 0 ? 0.0 : mo->m[k][i - 1] + 0.5 * mo->step * (prev[k] + cur[k]);
            prev[k] = cur[k];
        }
    }
}

/* Integral k of the density from -lim to t (linear interpolation inside a cell). */
static double moment_at(const moments *mo, int k, double t) {
    double pos = (t + mo->lim) / mo->step;
    if (pos <= 0.0) return 0.0;
    if (pos >= GRID_CELLS) return mo->m[k][GRID_CELLS];
    const int i = (int)pos;
    const double frac = pos - i;
    return mo->m[k][i] + frac * (mo->m[k][i + 1] - mo->m[k][i]);
}

/* Lloyd iterations for n levels; c holds the start and receives the result. */
static void lloyd(const moments *mo, int n, double *c) {
    for (int it = 0; it < LLOYD_MAX_ITERS; it++) {
        double lo = -mo->lim, change = 0.0;
        for (int k = 0; k < n; k++) {
            const double hi = k + 1 < n ? 0.5 * (c[k] + c[k + 1]) : mo->lim;
            const double mass = moment_at(mo, 0, hi) - moment_at(mo, 0, lo);
            if (mass > 0.0) {
                const double next = (moment_at(mo, 1, hi) - moment_at(mo, 1, lo)) / mass;
                change = fmax(change, fabs(next - c[k]));
                c[k] = next;
            }
            lo = hi;
        }
        if (change < LLOYD_TOL) break;
    }
    for (int k = 0; k < n / 2; k++) { /* exact symmetry: the density is even */
        const double m = 0.5 * (c[n - 1 - k] - c[k]);
        c[k] = -m;
        c[n - 1 - k] = m;
    }
}

static double codebook_mse(const moments *mo, int n, const double *c) {
    double lo = -mo->lim, sum = 0.0;
    for (int k = 0; k < n; k++) {
        const double hi = k + 1 < n ? 0.5 * (c[k] + c[k + 1]) : mo->lim;
        double m[3];
        for (int j = 0; j < 3; j++)
            m[j] = moment_at(mo, j, hi) - moment_at(mo, j, lo);
        sum += m[2] - 2.0 * c[k] * m[1] + c[k] * c[k] * m[0];
        lo = hi;
    }
    return sum / mo->m[0][GRID_CELLS];
}

/* Fills book from the centroids c, rounded to multiples of 1/RK_KV_TQ_CENTROID_UNITS (1/32):
 * integers after scaling, so a key score is an exact integer dot product with the integer query
 * at every SIMD level (AVX-512 VNNI, AVX2 and scalar give the same bits), and exact in bf16
 * (|c| < 4 needs at most 7 significant bits), so the AVX2 kernels can rebuild any centroid from
 * two table bytes. The rounding error (at most 1/64) adds about 0.8% to the MSE at 4 bits and
 * 0.2% at 3 bits. c receives the rounded values. */
static void fill_book(rk_kv_tq_codebook *book, int width, double *c) {
    const int n = 1 << width;
    memset(book, 0, sizeof *book);
    book->width = width;
    for (int k = 0; k < n; k++) {
        const double units = nearbyint(c[k] * RK_KV_TQ_CENTROID_UNITS);
        book->units[k] = (int8_t)(units > 127 ? 127 : units < -127 ? -127 : units);
        book->centroid[k] = (float)book->units[k] / RK_KV_TQ_CENTROID_UNITS;
        c[k] = book->centroid[k];
    }
    for (int k = 0; k + 1 < n; k++)
        book->threshold[k] = (float)(0.5 * ((double)book->centroid[k] + book->centroid[k + 1]));
    for (int k = 0; k < n; k++) {
        uint32_t bits;
        memcpy(&bits, &book->centroid[k], 4);
        for (int byte = 0; byte < 2; byte++) {
            book->lut[byte][k] = (uint8_t)(bits >> (16 + 8 * byte));
            book->lut[byte][16 + k] = (uint8_t)(bits >> (16 + 8 * byte));
        }
    }
}

rk_status rk_kv_tq_codebook_build(int64_t d, int width, rk_kv_tq_codebook *book, double *mse,
                                  rk_error *err) {
    if (width < 1 || width > RK_KV_TQ_MAX_WIDTH || d < 4)
        return rk_error_set(err, RK_ERR_INTERNAL, "kv codec tq: no codebook of width %d for d=%lld",
                            width, (long long)d);
    moments mo;
    mo.lim = fmin(sqrt((double)d), 12.0); /* beyond 12 standard deviations nothing is left */
    mo.step = 2.0 * mo.lim / GRID_CELLS;
    double *buf = malloc(3 * (size_t)(GRID_CELLS + 1) * sizeof(double));
    if (!buf) return rk_error_set(err, RK_ERR_NO_MEMORY, "kv codec tq: out of memory (codebook)");
    for (int k = 0; k < 3; k++)
        mo.m[k] = buf + (size_t)k * (GRID_CELLS + 1);
    moments_fill(&mo, d);

    const int n = 1 << width;
    double c[1 << RK_KV_TQ_MAX_WIDTH];
    for (int k = 0; k < n; k++)
        c[k] = (2.0 * k + 1.0 - n) / n * 2.5; /* spread over ±2.5 */
    lloyd(&mo, n, c);
    fill_book(book, width, c);
    if (mse) *mse = codebook_mse(&mo, n, c);
    free(buf);
    return RK_OK;
}
