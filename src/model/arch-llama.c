/*
 * arch-llama.c — the llama family: Llama 2/3, SmolLM2, TinyLlama, Mistral-style GQA, and the
 * Qwen variants that differ from it by a switch or two:
 *   llama:  RMSNorm, RoPE on adjacent pairs (GGUF conversion permutes q/k for it), SwiGLU.
 *   qwen2:  + biases on q, k and v; RoPE on half-split pairs (NeoX).
 *   qwen3:  + RMSNorm over each q and k head; NeoX RoPE; no biases.
 * Embeddings may be tied (no output.weight): weight binding handles that. A llama file with
 * llama.expert_count is a Mixtral-style mixture of experts (arch-moe.c reads the expert keys).
 */
#include <string.h>

#include "core/error.h"
#include "model/model.h"

rk_status rk_arch_llama_read(const rk_gguf *gguf, rk_hparams *hp, rk_error *err) {
    const char *arch = hp->arch_name;
    rk_status s = rk_arch_read_common(gguf, arch, hp, err);
    if (s) return s;
    if (strcmp(arch, "llama") == 0) {
        hp->arch = RK_ARCH_LLAMA;
        return rk_arch_read_experts(gguf, arch, false, true, hp, err); /* Mixtral when expert_count is set */
    } else if (strcmp(arch, "qwen2") == 0) {
        hp->arch = RK_ARCH_QWEN2;
        hp->rope_neox = true;
        hp->qkv_bias = true;
    } else if (strcmp(arch, "qwen3") == 0) {
        hp->arch = RK_ARCH_QWEN3;
        hp->rope_neox = true;
        hp->qk_norm = true;
    } else {
        return rk_error_set(err, RK_ERR_UNSUPPORTED, "model: architecture '%s' is not in the llama family", arch);
    }
    return RK_OK;
}
