/*
 * arch-gemma3.c — Gemma 3 (text): sandwich RMSNorms (before and after attention and FFN;
 * GGUF conversion has already added Gemma's "+1" to the norm weights, so they are plain
 * scales), RMSNorm over each q and k head, NeoX RoPE, GeGLU with tanh GELU, embeddings
 * scaled by sqrt(n_embd), q·k scaled by 1/sqrt(key_length), and interleaved layers: five
 * sliding-window layers (RoPE base 10000, window from attention.sliding_window) then one
 * global layer (rope.freq_base), repeating.
 */
#include <math.h>
#include <stdio.h>

#include "core/error.h"
#include "model/model.h"

#define GEMMA3_SWA_PERIOD 6         /* layer il is global when il % 6 == 5 */
#define GEMMA3_LOCAL_ROPE_BASE 10000.0f

rk_status rk_arch_gemma3_read(const rk_gguf *gguf, rk_hparams *hp, rk_error *err) {
    hp->arch = RK_ARCH_GEMMA3;
    rk_status s = rk_arch_read_common(gguf, "gemma3", hp, err);
    if (s) return s;
    uint32_t window = 0;
    s = rk_gguf_get_u32_or(gguf, "gemma3.attention.sliding_window", 0, &window, err);
    if (s) return rk_error_prefix(err, s, "model");
    hp->sliding_window = window;
    hp->rope_neox = true;
    hp->qk_norm = true;
    hp->sandwich_norm = true;
    hp->gelu = true;
    hp->embd_scale = sqrtf((float)hp->n_embd);
    hp->attn_scale = 1.0f / sqrtf((float)hp->head_dim_k);
    hp->rope_base_local = GEMMA3_LOCAL_ROPE_BASE;
    for (int64_t il = 0; il < hp->n_layer; il++)
        hp->layer_is_local[il] = window > 0 && (il % GEMMA3_SWA_PERIOD) < GEMMA3_SWA_PERIOD - 1;
    return RK_OK;
}
