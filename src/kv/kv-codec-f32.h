/* kv-codec-f32.h — the f32 codec's kernels that other codecs reuse (private to src/kv). */
#ifndef RK_KV_CODEC_F32_H
#define RK_KV_CODEC_F32_H

#include "kv/kv-codec-impl.h"

/* prepare: copies the queries; finish: o += acc. For codecs that work in the model's domain. */
void rk_kv_f32_prepare(const rk_kv_codec *c, int64_t stream, const float *q, int64_t n_q, float *qp);
void rk_kv_f32_finish(const rk_kv_codec *c, int64_t stream, const float *acc, int64_t n_q, float *o);

void rk_kv_f32_scores_avx2(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                           const float *qp, int64_t n_q, float scale, float *out, int64_t out_stride);
void rk_kv_f32_weighted_sum_avx2(const rk_kv_codec *c, const uint8_t *page, int64_t t0, int64_t n,
                                 const float *w, int64_t w_stride, int64_t n_q, float *acc);

#endif
