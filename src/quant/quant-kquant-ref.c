/*
 * quant-kquant-ref.c — scalar reference for the K-quant super-block formats (Q2_K, Q3_K, Q4_K,
 * Q5_K, Q6_K: 256 elements with per-group scales) and their Q8_K activations. Dots accumulate
 * exact integer sums per super-block and apply the float scales once, as the SIMD kernels do.
 */
#include "quant/quant-impl.h"

#define H2F(h) rk_fp16_to_fp32(h)

void rk_q_dequant_q8_K_ref(const void *src, float *dst, int64_t n) {
    const block_q8_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K)
        for (int j = 0; j < QK_K; j++) dst[j] = b[i].d * (float)b[i].qs[j];
}

/* Q2_K: per 128 elements, 32 bytes of qs hold four 2-bit planes (shift 0,2,4,6); each plane is
 * two groups of 16 with their own 4-bit scale (low nibble) and min (high nibble). */
static void q2k_unpack(const block_q2_K *b, uint8_t q[QK_K]) {
    for (int h = 0; h < 2; h++)
        for (int p = 0; p < 4; p++)
            for (int l = 0; l < 32; l++) q[h * 128 + p * 32 + l] = (b->qs[h * 32 + l] >> (2 * p)) & 3;
}
void rk_q_dequant_q2_K_ref(const void *src, float *dst, int64_t n) {
    const block_q2_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        const float d = H2F(b[i].d), dmin = H2F(b[i].dmin);
        uint8_t q[QK_K];
        q2k_unpack(&b[i], q);
        for (int g = 0; g < 16; g++) {
            const float dl = d * (float)(b[i].scales[g] & 0xf), ml = dmin * (float)(b[i].scales[g] >> 4);
            for (int l = 0; l < 16; l++) dst[g * 16 + l] = dl * (float)q[g * 16 + l] - ml;
        }
    }
}
float rk_q_dot_q2_K_ref(int64_t n, const void *w, const void *act) {
    const block_q2_K *x = w;
    const block_q8_K *y = act;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint8_t q[QK_K];
        q2k_unpack(&x[i], q);
        int sumi = 0, summ = 0;
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int l = 0; l < 16; l++) s += q[g * 16 + l] * y[i].qs[g * 16 + l];
            sumi += (x[i].scales[g] & 0xf) * s;
            summ += (x[i].scales[g] >> 4) * y[i].bsums[g];
        }
        sum += y[i].d * (H2F(x[i].d) * (float)sumi - H2F(x[i].dmin) * (float)summ);
    }
    return sum;
}

/* Q3_K: the 2 low bits as in Q2_K, the third bit from hmask (bit p+4h of byte l for plane p of
 * half h); a clear bit means minus 4. 16 signed 6-bit scales. */
static void q3k_unpack(const block_q3_K *b, int8_t q[QK_K]) {
    for (int h = 0; h < 2; h++)
        for (int p = 0; p < 4; p++)
            for (int l = 0; l < 32; l++) {
                const int lo = (b->qs[h * 32 + l] >> (2 * p)) & 3;
                const int hi = (b->hmask[l] >> (4 * h + p)) & 1;
                q[h * 128 + p * 32 + l] = (int8_t)(lo - (hi ? 0 : 4));
            }
}
void rk_q_dequant_q3_K_ref(const void *src, float *dst, int64_t n) {
    const block_q3_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        const float d = H2F(b[i].d);
        int8_t q[QK_K], sc[16];
        q3k_unpack(&b[i], q);
        rk_q_unpack_q3k_scales(b[i].scales, sc);
        for (int g = 0; g < 16; g++)
            for (int l = 0; l < 16; l++) dst[g * 16 + l] = d * (float)sc[g] * (float)q[g * 16 + l];
    }
}
float rk_q_dot_q3_K_ref(int64_t n, const void *w, const void *act) {
    const block_q3_K *x = w;
    const block_q8_K *y = act;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int8_t q[QK_K], sc[16];
        q3k_unpack(&x[i], q);
        rk_q_unpack_q3k_scales(x[i].scales, sc);
        int sumi = 0;
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int l = 0; l < 16; l++) s += q[g * 16 + l] * y[i].qs[g * 16 + l];
            sumi += sc[g] * s;
        }
        sum += y[i].d * H2F(x[i].d) * (float)sumi;
    }
    return sum;
}

/* Q4_K / Q5_K: per 64 elements, 32 bytes of qs: low nibbles are group 2j, high nibbles group
 * 2j+1; Q5_K's fifth bit of element l in group g is bit g of qh[l]. */
static void q45k_unpack(const uint8_t *qs, const uint8_t *qh, uint8_t q[QK_K]) {
    for (int j = 0; j < 4; j++)
        for (int l = 0; l < 32; l++) {
            q[j * 64 + l] = qs[j * 32 + l] & 0xf;
            q[j * 64 + 32 + l] = qs[j * 32 + l] >> 4;
            if (qh) {
                q[j * 64 + l] |= ((qh[l] >> (2 * j)) & 1) << 4;
                q[j * 64 + 32 + l] |= ((qh[l] >> (2 * j + 1)) & 1) << 4;
            }
        }
}
static void q45k_dequant(const uint8_t *q, const uint8_t *scales, float d, float dmin, float *dst) {
    uint8_t sm[16];
    rk_q_unpack_k4_scales(scales, sm);
    for (int g = 0; g < 8; g++) {
        const float dl = d * (float)sm[g], ml = dmin * (float)sm[8 + g];
        for (int l = 0; l < 32; l++) dst[g * 32 + l] = dl * (float)q[g * 32 + l] - ml;
    }
}
static float q45k_dot(const uint8_t *q, const uint8_t *scales, float d, float dmin,
                      const block_q8_K *y) {
    uint8_t sm[16];
    rk_q_unpack_k4_scales(scales, sm);
    int sumi = 0, summ = 0;
    for (int g = 0; g < 8; g++) {
        int s = 0;
        for (int l = 0; l < 32; l++) s += q[g * 32 + l] * y->qs[g * 32 + l];
        sumi += sm[g] * s;
        summ += sm[8 + g] * (y->bsums[2 * g] + y->bsums[2 * g + 1]);
    }
    return y->d * (d * (float)sumi - dmin * (float)summ);
}
void rk_q_dequant_q4_K_ref(const void *src, float *dst, int64_t n) {
    const block_q4_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        uint8_t q[QK_K];
        q45k_unpack(b[i].qs, NULL, q);
        q45k_dequant(q, b[i].scales, H2F(b[i].d), H2F(b[i].dmin), dst);
    }
}
float rk_q_dot_q4_K_ref(int64_t n, const void *w, const void *act) {
    const block_q4_K *x = w;
    const block_q8_K *y = act;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint8_t q[QK_K];
        q45k_unpack(x[i].qs, NULL, q);
        sum += q45k_dot(q, x[i].scales, H2F(x[i].d), H2F(x[i].dmin), &y[i]);
    }
    return sum;
}
void rk_q_dequant_q5_K_ref(const void *src, float *dst, int64_t n) {
    const block_q5_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        uint8_t q[QK_K];
        q45k_unpack(b[i].qs, b[i].qh, q);
        q45k_dequant(q, b[i].scales, H2F(b[i].d), H2F(b[i].dmin), dst);
    }
}
float rk_q_dot_q5_K_ref(int64_t n, const void *w, const void *act) {
    const block_q5_K *x = w;
    const block_q8_K *y = act;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint8_t q[QK_K];
        q45k_unpack(x[i].qs, x[i].qh, q);
        sum += q45k_dot(q, x[i].scales, H2F(x[i].d), H2F(x[i].dmin), &y[i]);
    }
    return sum;
}

/* Q6_K: per 128 elements, 64 bytes of ql and 32 of qh. Element l (< 32) of the four 32-wide
 * quarters: ql[l] low, ql[l+32] low, ql[l] high, ql[l+32] high nibble, with 2 bits of qh[l] at
 * shifts 0, 2, 4, 6; minus 32. Group g of 16 elements has int8 scale g. */
static void q6k_unpack(const block_q6_K *b, int8_t q[QK_K]) {
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
        int8_t *o = q + 128 * h;
        for (int l = 0; l < 32; l++) {
            o[l] = (int8_t)(((ql[l] & 0xf) | ((qh[l] >> 0) & 3) << 4) - 32);
            o[l + 32] = (int8_t)(((ql[l + 32] & 0xf) | ((qh[l] >> 2) & 3) << 4) - 32);
            o[l + 64] = (int8_t)(((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32);
            o[l + 96] = (int8_t)(((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32);
        }
    }
}
void rk_q_dequant_q6_K_ref(const void *src, float *dst, int64_t n) {
    const block_q6_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        const float d = H2F(b[i].d);
        int8_t q[QK_K];
        q6k_unpack(&b[i], q);
        for (int g = 0; g < 16; g++)
            for (int l = 0; l < 16; l++)
                dst[g * 16 + l] = d * (float)b[i].scales[g] * (float)q[g * 16 + l];
    }
}
float rk_q_dot_q6_K_ref(int64_t n, const void *w, const void *act) {
    const block_q6_K *x = w;
    const block_q8_K *y = act;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int8_t q[QK_K];
        q6k_unpack(&x[i], q);
        int sumi = 0;
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int l = 0; l < 16; l++) s += q[g * 16 + l] * y[i].qs[g * 16 + l];
            sumi += x[i].scales[g] * s;
        }
        sum += y[i].d * H2F(x[i].d) * (float)sumi;
    }
    return sum;
}
