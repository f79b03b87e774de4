#!/usr/bin/env python3
"""Independent NumPy reference forward pass for GGUF models (arch `llama`, `qwen2`, `qwen3`,
`gemma3`, and the mixture-of-experts `qwen3moe`, `qwen2moe`, `olmoe`, llama with experts
(Mixtral)).

Written from the model definitions (llama.cpp graph builders / HF transformers modeling code),
not from ringkv's C sources. Weights are dequantised to float32 with the `gguf` package
(`gguf.quants.dequantize`) and cached in memory; ALL activations and matmuls are computed in
float64 (weights are upcast from their exact float32 dequantised values), so the only error in
the reference is the quantisation of the stored weights themselves.

    python3 tests/python/ref_forward.py --model M.gguf --tokens 1,2,3 --out ref.npy

writes the logits as an (n_tokens x n_vocab) float32 .npy file (row i = logits after token i).
With --out ending in `.f32` it writes raw little-endian float32 (row-major) instead, the same
layout as `ringkv eval logits`.

Architecture summary (what the reference implements). Sources: llama.cpp src/models/gemma3*.cpp,
llama_model_rope_type(), the gemma3 hparams loader (swa pattern 6, swa rope base 10000, attention
scale), is_masked_swa(), convert_hf_to_gguf.py (Gemma3 norm_shift = 1), HF modeling_gemma3.

llama (SmolLM2, Llama 2/3 ...):
  x = tok_embd[t]
  per layer: h = x + Wo·attn(rope_norm(Wq·rms(x)*w), rope_norm(Wk·rms(x)*w), Wv·rms(x)*w)
             x = h + Wdown·(silu(Wgate·n) * Wup·n),  n = rms(h)*ffn_norm
  logits = (output.weight or tok_embd) · (rms(x)*output_norm)
  RoPE "normal" mode: rotate adjacent pairs (2i, 2i+1) -- the HF->GGUF converter permutes the
  rows of q/k so that llama.cpp's adjacent-pair rotation equals HF's half-split rotation.
  attention scale 1/sqrt(head_dim); GQA: query head h uses kv head h // (n_head / n_head_kv).

qwen2 (llama.cpp src/models/qwen2.cpp; llama_model_rope_type() -> NEOX):
  as llama, but q = Wq·a + bq, k = Wk·a + bk, v = Wv·a + bv (biases required), then RoPE in
  NEOX mode (pairs (i, i + n_rot/2)); optional attn_output.bias / output.bias are added when
  present (llama.cpp: TENSOR_NOT_REQUIRED; Qwen2 checkpoints have none).

qwen3 (llama.cpp src/models/qwen3.cpp; rope type NEOX):
  as llama, but q = rope_neox(rms_head(Wq·a)*attn_q_norm),
                k = rope_neox(rms_head(Wk·a)*attn_k_norm)
  (per-head RMSNorm over head_dim with the model's rms eps, BEFORE RoPE), no biases; head_dim =
  qwen3.attention.key_length may differ from n_embd/n_head (Wq: n_head*head_dim x n_embd,
  Wo: n_embd x n_head*head_dim); attention scale 1/sqrt(head_dim).
  In the llama family any bq/bk/bv/bo tensor present in the file is added (llama.cpp's llama
  graph does the same).

Mixture of experts (llama.cpp src/llama-graph.cpp build_moe_ffn with gating SOFTMAX, no
expert-selection bias, no expert groups, no weight scale; src/models/{qwen3moe,qwen2moe,olmoe,
llama}.cpp; HF modeling_{qwen3_moe,qwen2_moe,olmoe,mixtral}). The dense FFN of a layer is
replaced by, with n = rms(h)*ffn_norm as before:
  p = softmax(Wr·n)                      Wr = ffn_gate_inp [n_expert x n_embd], over ALL experts
  S = the n_expert_used largest p        (top-k per token, independent of the other tokens)
  g_e = p_e                              qwen2moe, olmoe        (norm_w = false)
  g_e = p_e / max(sum_S p, 6.1035e-5)    qwen3moe, Mixtral      (norm_w = true; equals a softmax
                                                                  over the k selected logits)
  moe = sum_{e in S} g_e * Wdown_e·(silu(Wgate_e·n) * Wup_e·n)
  with the experts stacked: ffn_{gate,up}_exps ne [n_embd, n_ff_exp, n_expert] (numpy
  (n_expert, n_ff_exp, n_embd)), ffn_down_exps ne [n_ff_exp, n_embd, n_expert].
  n_ff_exp: qwen3moe/qwen2moe <arch>.expert_feed_forward_length (llama.cpp's fallback when the
  key is absent: n_ff / n_expert_used); llama (Mixtral) and olmoe: <arch>.feed_forward_length.
qwen3moe: attention exactly as qwen3 (per-head q/k RMSNorm, NEOX), FFN = moe, renormalised.
qwen2moe: attention as qwen2 (q/k/v biases, added when present: llama.cpp loads them as optional
  for qwen2moe; NEOX), FFN = moe (not renormalised) + the shared expert
  sigmoid(ffn_gate_inp_shexp · n) * Wdown_sh·(silu(Wgate_sh·n) * Wup_sh·n)
  (ffn_gate_inp_shexp is a vector [n_embd]: one scalar gate per token; llama.cpp computes the
  sigmoid as silu(x)/x; n_ff_shexp = expert_shared_feed_forward_length, default n_ff).
llama with <arch>.expert_count > 0 (Mixtral): attention as llama (adjacent-pair RoPE), FFN = moe,
  renormalised.
olmoe (NEOX; n_head_kv == n_head in practice):
  q = rms(Wq·a)*attn_q_norm, k = rms(Wk·a)*attn_k_norm with the norm over the WHOLE projection
  (attn_q_norm has n_head*head_dim entries; HF OlmoeRMSNorm(hidden_size)), then split into heads
  and RoPE; FFN = moe, not renormalised; separate output.
Weights of F32 tensors (routers, norms) are used without activation quantisation under act_q8, as
ggml does; only the MoE code paths apply that exemption (the dense paths are unchanged).

gemma3:
  x = tok_embd[t] * sqrt(n_embd)
  per layer: a = rms(x)*attn_norm
             q = rope_neox(rms_head(Wq·a)*attn_q_norm), k = rope_neox(rms_head(Wk·a)*attn_k_norm)
             q *= 1/sqrt(key_length)   (27B: 1/sqrt(n_embd/n_head))
             h = x + rms(Wo·attn(q,k,Wv·a))*post_attention_norm
             x = h + rms(Wdown·(gelu_tanh(Wgate·n) * Wup·n))*post_ffw_norm,  n = rms(h)*ffn_norm
  logits = tok_embd · (rms(x)*output_norm)   (tied; no final logit softcapping)
  Norm weights in the GGUF already include Gemma's "+1" (convert_hf_to_gguf adds 1 to every
  *norm.weight), so every norm is plain x/rms(x)*w.
  RoPE NEOX mode: pairs (i, i + n_rot/2).
  Layer il is global (full causal attention, rope base gemma3.rope.freq_base) when
  il % 6 == 5, otherwise sliding-window (rope base 10000, key at position p0 is visible from query
  position p1 iff 0 <= p1 - p0 < gemma3.attention.sliding_window).
"""

import argparse
import math
import sys
import time

import numpy as np

try:
    import gguf
except ImportError:  # pragma: no cover - reported by callers
    gguf = None

MOE_ARCHS = ("qwen3moe", "qwen2moe", "olmoe")  # + llama with expert_count > 0 (Mixtral)


def _field(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    v = f.contents()
    return v


class Model:
    """Lazily dequantised GGUF model + hyper-parameters."""

    def __init__(self, path):
        if gguf is None:
            raise RuntimeError("the `gguf` Python package is required")
        self.path = path
        self.r = gguf.GGUFReader(path)
        self.tensors = {t.name: t for t in self.r.tensors}
        self._cache = {}
        a = _field(self.r, "general.architecture")
        self.arch = a
        if a not in ("llama", "qwen2", "qwen3", "gemma3") + MOE_ARCHS:
            raise ValueError(f"unsupported architecture {a!r}")
        g = lambda k, d=None: _field(self.r, f"{a}.{k}", d)
        self.n_layer = int(g("block_count"))
        self.n_embd = int(g("embedding_length"))
        self.n_ff = int(g("feed_forward_length"))
        self.n_head = int(g("attention.head_count"))
        self.n_head_kv = int(g("attention.head_count_kv", self.n_head))
        self.head_dim_k = int(g("attention.key_length", self.n_embd // self.n_head))
        # llama.cpp: both default to n_embd / n_head independently (value_length does NOT
        # default to key_length)
        self.head_dim_v = int(g("attention.value_length", self.n_embd // self.n_head))
        self.n_rot = int(g("rope.dimension_count", self.head_dim_k))
        same = self.head_dim_v == self.head_dim_k == self.n_rot
        if a in ("qwen2", "qwen3") + MOE_ARCHS and not same:
            # llama.cpp's qwen2/qwen3 graphs assert n_embd_head_v == n_embd_head_k == n_rot
            raise ValueError(f"{a}: key_length {self.head_dim_k}, value_length {self.head_dim_v} "
                             f"and rope.dimension_count {self.n_rot} must be equal")
        self.rope_base = float(g("rope.freq_base", 10000.0))
        self.eps = float(g("attention.layer_norm_rms_epsilon", 1e-5))
        scaling = g("rope.scaling.type")
        factor = g("rope.scaling.factor")
        if (scaling not in (None, "none")) and factor not in (None, 1.0):
            if scaling == "linear":
                self.rope_freq_scale = 1.0 / float(factor)
            else:
                raise ValueError(f"rope scaling {scaling!r} not implemented in the reference")
        else:
            self.rope_freq_scale = 1.0
        emb = self.tensors["token_embd.weight"]
        self.n_vocab = int(emb.shape[1])
        self._init_moe(g)
        if a == "gemma3":
            self.n_swa = int(g("attention.sliding_window"))
            self.swa_pattern = 6
            self.rope_base_swa = 10000.0
            if self.n_layer == 62:  # 27B: query_pre_attn_scalar = n_embd / n_head
                self.attn_scale = 1.0 / math.sqrt(self.n_embd / self.n_head)
            else:
                self.attn_scale = 1.0 / math.sqrt(self.head_dim_k)
            # Gemma 3 has no final logit softcapping (HF config: None; llama.cpp's sliding-window
            # gemma3 graph never applies it), so a stray GGUF key is ignored like llama.cpp does.
            self.final_softcap = None
        else:
            self.attn_scale = 1.0 / math.sqrt(self.head_dim_k)
            self.final_softcap = None

    def _init_moe(self, g):
        """Expert hyper-parameters (n_expert 0 = dense FFN), checked like llama.cpp's loader."""
        a = self.arch
        self.n_expert = int(g("expert_count", 0))
        self.n_expert_used = int(g("expert_used_count", 0))
        if a in MOE_ARCHS and self.n_expert == 0:
            raise ValueError(f"{a}: {a}.expert_count missing or 0")
        if self.n_expert == 0:
            return
        if not 0 < self.n_expert_used <= self.n_expert:
            raise ValueError(f"{a}.expert_used_count {self.n_expert_used} not in "
                             f"[1, expert_count {self.n_expert}]")
        if a in ("qwen3moe", "qwen2moe"):
            self.n_ff_exp = int(g("expert_feed_forward_length",
                                  self.n_ff // self.n_expert_used))
        else:
            self.n_ff_exp = self.n_ff
        self.n_ff_shexp = int(g("expert_shared_feed_forward_length", self.n_ff))
        self.moe_norm_w = a in ("qwen3moe", "llama")
        want = {"ffn_gate_inp": [self.n_embd, self.n_expert],
                "ffn_gate_exps": [self.n_embd, self.n_ff_exp, self.n_expert],
                "ffn_up_exps": [self.n_embd, self.n_ff_exp, self.n_expert],
                "ffn_down_exps": [self.n_ff_exp, self.n_embd, self.n_expert]}
        for il in range(self.n_layer):
            for t, ne in want.items():
                name = f"blk.{il}.{t}.weight"
                if name not in self.tensors:
                    raise ValueError(f"{a}: missing tensor {name}")
                if [int(v) for v in self.tensors[name].shape] != ne:
                    raise ValueError(f"{a}: tensor {name} has ne "
                                     f"{[int(v) for v in self.tensors[name].shape]}, expected {ne}")

    # ---- weights -------------------------------------------------------------------------
    def has(self, name):
        return name in self.tensors

    def w(self, name):
        """float32 dequantised weight; matrices are (n_out, n_in), so y = W @ x."""
        if name not in self._cache:
            t = self.tensors[name]
            d = gguf.quants.dequantize(t.data, t.tensor_type)
            d = np.ascontiguousarray(d, dtype=np.float32)
            self._cache[name] = d
        return self._cache[name]

    def weight_qtype(self, name):
        return self.tensors[name].tensor_type

    def is_swa(self, il):
        return self.arch == "gemma3" and (il % self.swa_pattern) < (self.swa_pattern - 1)


# ---- building blocks (float64) ---------------------------------------------------------------

def rms_norm(x, w, eps):
    ms = np.mean(x * x, axis=-1, keepdims=True)
    return x / np.sqrt(ms + x.dtype.type(eps)) * w.astype(x.dtype)


def rope(x, pos, n_rot, base, mode, freq_scale=1.0):
    """x: (T, H, D) float64; rotate the first n_rot dims of each head.
    mode 'norm': pairs (2i, 2i+1); mode 'neox': pairs (i, i + n_rot/2).
    theta_i = pos * freq_scale * base^(-2i/n_rot), i in [0, n_rot/2)."""
    half = n_rot // 2
    inv = base ** (-np.arange(half, dtype=np.float64) * 2.0 / n_rot)
    ang = (np.asarray(pos, dtype=np.float64) * freq_scale)[:, None] * inv[None, :]  # (T, half)
    c = np.cos(ang)[:, None, :].astype(x.dtype)
    s = np.sin(ang)[:, None, :].astype(x.dtype)
    out = x.copy()
    if mode == "norm":
        x0 = x[..., 0:n_rot:2]
        x1 = x[..., 1:n_rot:2]
        out[..., 0:n_rot:2] = x0 * c - x1 * s
        out[..., 1:n_rot:2] = x0 * s + x1 * c
    elif mode == "neox":
        x0 = x[..., :half]
        x1 = x[..., half:n_rot]
        out[..., :half] = x0 * c - x1 * s
        out[..., half:n_rot] = x0 * s + x1 * c
    else:
        raise ValueError(mode)
    return out


def gelu_tanh(x):
    k = x.dtype.type(math.sqrt(2.0 / math.pi))
    return 0.5 * x * (1.0 + np.tanh(k * (x + x.dtype.type(0.044715) * x * x * x)))


def silu(x):
    return x / (1.0 + np.exp(-x))


def quantize_act_q8(x, block):
    """Simulate 8-bit symmetric per-block activation quantisation (like ggml's Q8_0/Q8_1/Q8_K
    vec_dot types): scale = amax/127 per `block` consecutive values, round to nearest."""
    shp = x.shape
    n = shp[-1]
    if n % block:
        return x
    xb = x.reshape(-1, n // block, block)
    amax = np.max(np.abs(xb), axis=-1, keepdims=True)
    d = amax / 127.0
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(d > 0, np.round(xb / np.where(d > 0, d, 1.0)), 0.0)
    return (q * d).reshape(shp)


def quantize_act_q8_0_ggml(x):
    """ggml's quantize_row_q8_0 exactly: per 32 values d = amax/127 (float32), q = round(x * (1/d))
    in float32, and the stored scale d rounded to float16 -- so a Q8_0 x Q8_0 dot product equals
    sum(qw*qx) * f16(dw) * f16(dx) up to float summation order."""
    shp = x.shape
    n = shp[-1]
    if n % 32:
        return x
    xb = x.astype(np.float32).reshape(-1, n // 32, 32)
    d = (np.max(np.abs(xb), axis=-1, keepdims=True) / np.float32(127)).astype(np.float32)
    inv = np.where(d > 0, np.float32(1) / np.where(d > 0, d, np.float32(1)), np.float32(0))
    q = np.round(xb * inv.astype(np.float32))
    return (q * d.astype(np.float16).astype(np.float64)).reshape(shp).astype(x.dtype)


class Forward:
    """Reference forward pass. Options (for measuring tolerances / bug sensitivity only):
       act_q8: quantise activations to 8 bits before each weight matmul (llama.cpp-like),
       kv_f16: round K and V to float16 (llama.cpp's default KV cache type),
       rope_mode: override the rope pairing ('norm'/'neox'),
       norm_shift: add this to gemma norm weights (e.g. 1.0 to simulate a double +1 bug),
       dtype: compute dtype (float64 default; float32 to measure a plain float32 path),
       act_q8_exact: with act_q8, quantise the activations of Q8_0 weights exactly like ggml
                     (float16 block scales, quantize_act_q8_0_ggml); other types as act_q8,
       record_routes: keep each MoE layer's router logits and selection in self.routes,
       ablate: names of architecture features to switch OFF, for negative controls only:
               'qkv_bias' (ignore q/k/v biases), 'qk_norm' (skip qwen3's per-head q/k norm);
               MoE: 'moe_norm_w' (flip the top-k renormalisation: on where the arch has it
               off and vice versa), 'shexp' (drop qwen2moe's shared expert), 'olmoe_qk_norm_full'
               (olmoe's q/k norm per head, weight slice h for head h, instead of full width)."""

    def __init__(self, model, act_q8=False, kv_f16=False, rope_mode=None, norm_shift=0.0,
                 dtype=np.float64, act_q8_exact=False, ablate=(), record_routes=False):
        self.m = model
        # MoE: with record_routes, every layer's (prefix "blk.N.", router logits (T, n_expert),
        # selected experts (T, k)) is appended here, for tests that measure routing margins
        self.routes = [] if record_routes else None
        self.act_q8_exact = act_q8_exact
        self.ablate = frozenset(ablate)
        self.dt = np.dtype(dtype)
        self.act_q8 = act_q8
        self.kv_f16 = kv_f16
        self.rope_mode = rope_mode or ("norm" if model.arch == "llama" else "neox")
        self.norm_shift = norm_shift

    def mm(self, name, x):
        W = self.m.w(name)
        if self.act_q8:
            x = self.quant_act(x, self.m.weight_qtype(name))
        return x @ W.T.astype(self.dt)

    def quant_act(self, x, qt):
        if self.act_q8_exact and qt.name == "Q8_0":
            return quantize_act_q8_0_ggml(x)
        # K-quants use 256-value Q8_K activation blocks, the rest 32-value Q8_0/Q8_1 blocks
        return quantize_act_q8(x, 256 if qt.name.endswith("_K") else 32)

    def bias(self, name, y):
        """y + bias when the model has tensor `name` (required for qwen2's q/k/v)."""
        if self.m.has(name):
            if "qkv_bias" in self.ablate and not name.endswith("attn_output.bias"):
                return y
            return y + self.m.w(name).astype(self.dt)
        if self.m.arch == "qwen2" and name.rsplit(".", 2)[-2] in ("attn_q", "attn_k", "attn_v"):
            raise ValueError(f"qwen2 model without {name}")
        return y

    def nw(self, name):
        w = self.m.w(name).astype(self.dt)
        if self.m.arch == "gemma3" and self.norm_shift:
            w = w + self.norm_shift
        return w

    def attention(self, q, k, v, pos, il):
        """q: (T, H, Dk), k: (T, Hkv, Dk), v: (T, Hkv, Dv); causal (+ sliding window)."""
        m = self.m
        T = q.shape[0]
        if self.kv_f16:
            k = k.astype(np.float16).astype(self.dt)
            v = v.astype(np.float16).astype(self.dt)
        group = m.n_head // m.n_head_kv
        p = np.asarray(pos)
        diff = p[:, None] - p[None, :]           # query pos - key pos
        allowed = diff >= 0
        if m.is_swa(il):
            allowed &= diff < m.n_swa
        out = np.empty((T, m.n_head, v.shape[2]), dtype=self.dt)
        for h in range(m.n_head):
            kh = k[:, h // group, :]
            vh = v[:, h // group, :]
            s = q[:, h, :] @ kh.T                 # scale already applied to q
            s = np.where(allowed, s, -np.inf)
            s = s - s.max(axis=1, keepdims=True)
            e = np.exp(s)
            e /= e.sum(axis=1, keepdims=True)
            out[:, h, :] = e @ vh
        return out.reshape(T, -1)

    def layer_llama(self, x, pos, il):
        m = self.m
        b = f"blk.{il}."
        T = x.shape[0]
        a = rms_norm(x, m.w(b + "attn_norm.weight"), m.eps)
        q = self.bias(b + "attn_q.bias", self.mm(b + "attn_q.weight", a))
        k = self.bias(b + "attn_k.bias", self.mm(b + "attn_k.weight", a))
        v = self.bias(b + "attn_v.bias", self.mm(b + "attn_v.weight", a))
        q = q.reshape(T, m.n_head, m.head_dim_k)
        k = k.reshape(T, m.n_head_kv, m.head_dim_k)
        v = v.reshape(T, m.n_head_kv, m.head_dim_v)
        if m.arch in ("qwen3", "qwen3moe") and "qk_norm" not in self.ablate:
            # per-head RMSNorm, before RoPE
            q = rms_norm(q, m.w(b + "attn_q_norm.weight"), m.eps)
            k = rms_norm(k, m.w(b + "attn_k_norm.weight"), m.eps)
        if m.arch == "olmoe":
            q, k = self.olmoe_qk_norm(q, k, b)
        q = rope(q, pos, m.n_rot, m.rope_base, self.rope_mode, m.rope_freq_scale)
        k = rope(k, pos, m.n_rot, m.rope_base, self.rope_mode, m.rope_freq_scale)
        q = q * m.attn_scale
        att = self.attention(q, k, v, pos, il)
        h = x + self.bias(b + "attn_output.bias", self.mm(b + "attn_output.weight", att))
        n = rms_norm(h, m.w(b + "ffn_norm.weight"), m.eps)
        if m.n_expert:
            return h + self.moe_ffn(n, b)
        f = silu(self.mm(b + "ffn_gate.weight", n)) * self.mm(b + "ffn_up.weight", n)
        return h + self.mm(b + "ffn_down.weight", f)

    # ---- mixture of experts ----------------------------------------------------------------

    def olmoe_qk_norm(self, q, k, b):
        """olmoe: RMSNorm over each token's whole q (k) projection, (T, H, D) in and out."""
        m = self.m
        wq, wk = m.w(b + "attn_q_norm.weight"), m.w(b + "attn_k_norm.weight")
        T = q.shape[0]
        if "olmoe_qk_norm_full" in self.ablate:  # negative control: per head
            return (rms_norm(q, wq.reshape(q.shape[1:]), m.eps),
                    rms_norm(k, wk.reshape(k.shape[1:]), m.eps))
        q = rms_norm(q.reshape(T, -1), wq, m.eps).reshape(q.shape)
        k = rms_norm(k.reshape(T, -1), wk, m.eps).reshape(k.shape)
        return q, k

    def mm_w(self, W, qt, x):
        """x @ W.T with activation quantisation (act_q8) for quantised weights only: ggml
        multiplies F32 weights by F32 activations."""
        if self.act_q8 and qt.name not in ("F32", "F16", "BF16"):
            x = self.quant_act(x, qt)
        return x @ W.T.astype(self.dt)

    def expert_mm(self, name, e, x):
        """Expert e of the stacked tensor `name` ((n_expert, n_out, n_in)) applied to x."""
        return self.mm_w(self.m.w(name)[e], self.m.weight_qtype(name), x)

    def moe_route(self, n, b):
        """(T, k) selected expert ids and their (T, k) weights, per token independently."""
        m = self.m
        r = b + "ffn_gate_inp.weight"
        logits = self.mm_w(m.w(r), m.weight_qtype(r), n)                # (T, n_expert)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        sel = np.argsort(-p, axis=1, kind="stable")[:, :m.n_expert_used]
        if self.routes is not None:
            self.routes.append((b, logits, sel))
        g = np.take_along_axis(p, sel, axis=1)
        if m.moe_norm_w != ("moe_norm_w" in self.ablate):
            g = g / np.maximum(g.sum(axis=1, keepdims=True), 6.103515625e-5)
        return sel, g

    def moe_ffn(self, n, b):
        """The layer's MoE FFN output (T, n_embd) for normed input n (T, n_embd)."""
        m = self.m
        sel, g = self.moe_route(n, b)
        out = np.zeros_like(n)
        for e in range(m.n_expert):
            rows, slot = np.nonzero(sel == e)
            if rows.size == 0:
                continue
            x = n[rows]
            f = silu(self.expert_mm(b + "ffn_gate_exps.weight", e, x)) * \
                self.expert_mm(b + "ffn_up_exps.weight", e, x)
            y = self.expert_mm(b + "ffn_down_exps.weight", e, f)
            out[rows] += g[rows, slot][:, None] * y
        if m.arch == "qwen2moe" and "shexp" not in self.ablate:
            gname = b + "ffn_gate_inp_shexp.weight"
            z = self.mm_w(m.w(gname).reshape(1, -1), m.weight_qtype(gname), n)   # (T, 1)
            f = silu(self.mm(b + "ffn_gate_shexp.weight", n)) * \
                self.mm(b + "ffn_up_shexp.weight", n)
            out = out + self.mm(b + "ffn_down_shexp.weight", f) / (1.0 + np.exp(-z))
        return out

    def layer_gemma3(self, x, pos, il):
        m = self.m
        b = f"blk.{il}."
        T = x.shape[0]
        base = m.rope_base_swa if m.is_swa(il) else m.rope_base
        a = rms_norm(x, self.nw(b + "attn_norm.weight"), m.eps)
        q = self.mm(b + "attn_q.weight", a).reshape(T, m.n_head, m.head_dim_k)
        k = self.mm(b + "attn_k.weight", a).reshape(T, m.n_head_kv, m.head_dim_k)
        v = self.mm(b + "attn_v.weight", a).reshape(T, m.n_head_kv, m.head_dim_v)
        q = rms_norm(q, self.nw(b + "attn_q_norm.weight"), m.eps)
        k = rms_norm(k, self.nw(b + "attn_k_norm.weight"), m.eps)
        q = rope(q, pos, m.n_rot, base, self.rope_mode, 1.0 if m.is_swa(il) else m.rope_freq_scale)
        k = rope(k, pos, m.n_rot, base, self.rope_mode, 1.0 if m.is_swa(il) else m.rope_freq_scale)
        q = q * m.attn_scale
        att = self.attention(q, k, v, pos, il)
        o = self.mm(b + "attn_output.weight", att)
        h = x + rms_norm(o, self.nw(b + "post_attention_norm.weight"), m.eps)
        n = rms_norm(h, self.nw(b + "ffn_norm.weight"), m.eps)
        f = gelu_tanh(self.mm(b + "ffn_gate.weight", n)) * self.mm(b + "ffn_up.weight", n)
        d = self.mm(b + "ffn_down.weight", f)
        return h + rms_norm(d, self.nw(b + "post_ffw_norm.weight"), m.eps)

    def __call__(self, tokens, last_only=False):
        m = self.m
        tokens = np.asarray(tokens, dtype=np.int64)
        if tokens.min() < 0 or tokens.max() >= m.n_vocab:
            raise ValueError("token id out of range")
        pos = np.arange(len(tokens))
        emb = m.w("token_embd.weight")
        x = emb[tokens].astype(self.dt)
        if m.arch == "gemma3":
            x = x * self.dt.type(math.sqrt(m.n_embd))
        for il in range(m.n_layer):
            x = self.layer_gemma3(x, pos, il) if m.arch == "gemma3" else self.layer_llama(x, pos, il)
        if last_only:
            x = x[-1:]
        onw = self.nw("output_norm.weight") if m.arch == "gemma3" else m.w("output_norm.weight")
        x = rms_norm(x, onw, m.eps)
        out_name = "output.weight" if m.has("output.weight") else "token_embd.weight"
        if self.act_q8:
            x = self.quant_act(x, m.weight_qtype(out_name))
        W = m.w(out_name)
        logits = np.empty((x.shape[0], W.shape[0]), dtype=self.dt)
        step = 32768
        for i in range(0, W.shape[0], step):
            logits[:, i:i + step] = x @ W[i:i + step].T.astype(self.dt)
        if m.arch == "qwen2" and m.has("output.bias"):
            logits = logits + m.w("output.bias").astype(self.dt)
        if m.final_softcap:
            c = float(m.final_softcap)
            logits = c * np.tanh(logits / c)
        return logits


def reference_logits(model_path, tokens, **opts):
    """Convenience wrapper: float32 (n_tokens, n_vocab) logits."""
    m = model_path if isinstance(model_path, Model) else Model(model_path)
    return Forward(m, **opts)(tokens).astype(np.float32)


def greedy(fwd, tokens, n):
    toks = list(tokens)
    for _ in range(n):
        lg = fwd(toks, last_only=True)[0]
        toks.append(int(np.argmax(lg)))
    return toks[len(tokens):]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", "-m", required=True)
    ap.add_argument("--tokens", required=True, help="comma-separated token ids")
    ap.add_argument("--out", required=True, help=".npy (default) or .f32 raw little-endian")
    ap.add_argument("--act-q8", action="store_true", help="simulate 8-bit activation quantisation")
    ap.add_argument("--kv-f16", action="store_true", help="round K/V to float16")
    args = ap.parse_args(argv)
    toks = [int(t) for t in args.tokens.split(",") if t.strip()]
    t0 = time.time()
    m = Model(args.model)
    lg = Forward(m, act_q8=args.act_q8, kv_f16=args.kv_f16)(toks).astype(np.float32)
    if args.out.endswith(".f32"):
        lg.astype("<f4").tofile(args.out)
    else:
        np.save(args.out, lg)
    print(f"ref_forward: arch={m.arch} n_tokens={len(toks)} n_vocab={m.n_vocab} "
          f"time={time.time() - t0:.1f}s -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
