#!/usr/bin/env python3
"""Writes small random-weight mixture-of-experts GGUF models (tests/python/test_moe_tiny.py).

    python3 tests/python/make_moe_models.py OUTDIR              # every model in MODELS + BAD
    python3 tests/python/make_moe_models.py OUTDIR NAME ...     # only those
    python3 tests/python/make_moe_models.py --bench OUT.gguf    # the benchmark-sized model

Tensors are laid out exactly as llama.cpp's converter writes them (convert_hf_to_gguf.py stacks
each layer's experts into one 3-D tensor; shapes below are ggml ne, fastest dimension first):

    blk.N.ffn_gate_inp.weight    [n_embd, n_expert]              router, F32 (llama-quantize
                                                                 never quantises it either)
    blk.N.ffn_gate_exps.weight   [n_embd, n_ff_exp, n_expert]    expert e = slice [:, :, e]
    blk.N.ffn_up_exps.weight     [n_embd, n_ff_exp, n_expert]
    blk.N.ffn_down_exps.weight   [n_ff_exp, n_embd, n_expert]
  qwen2moe's shared expert, besides:
    blk.N.ffn_gate_inp_shexp.weight  [n_embd]                    a vector: sigmoid(n . g) scales
    blk.N.ffn_gate_shexp.weight      [n_embd, n_ff_shexp]        the shared expert's output
    blk.N.ffn_up_shexp.weight        [n_embd, n_ff_shexp]
    blk.N.ffn_down_shexp.weight      [n_ff_shexp, n_embd]

and the metadata `<arch>.expert_count`, `<arch>.expert_used_count`, and where the architecture
reads it `<arch>.expert_feed_forward_length` (qwen3moe, qwen2moe; llama/Mixtral and olmoe size
their experts with `<arch>.feed_forward_length`) and `qwen2moe.expert_shared_feed_forward_length`.
Where the expert size has its own key, feed_forward_length is written too but deliberately
different (96, as the real converter writes the dense intermediate size there), so a reader
that sizes experts from the wrong key fails on the tensor shapes.

Vocabulary, tokenizer keys and the weight distributions follow tests/python/make_tiny_models.py
(its vocab() is reused): matrices N(0, 1/n_in) (attn_q 2x, expert down projections 2x so the
MoE branch moves the logits; down_std overrides that and the shared expert's 1x), norms
1 + N(0, 0.1^2) (q/k norms 0.2), biases N(0, 0.5^2), embeddings N(0, 0.4^2), output.weight
N(0, 0.5^2), routers N(0, 1/n_embd) (router logits of unit spread: top-2 of 8 typically holds
~half the probability, so renormalising matters), shared-expert gate vector N(0, 1/n_embd).
Everything is drawn in a fixed order from one seeded generator, before quantisation, so an F32
model and its quantised variant hold the same weights.

Models (context 256; routing as llama.cpp's build_moe_ffn: softmax over all experts, top-k,
then optional renormalisation of the k weights to sum 1):
    tiny-qwen3moe     qwen3moe, n_embd 64, 4 heads / 2 KV heads, key_length 32 (!= 64/4),
                      per-head q/k RMSNorm, NeoX RoPE (base 1e6), 3 layers, 8 experts / 2 used,
                      expert_feed_forward_length 32, renormalised, separate output.weight, F32
    tiny-qwen2moe     qwen2moe, head_dim 16, q/k/v biases, NeoX, 3 layers, 8 experts / 2 used,
                      expert ff 32, shared expert ff 64 (sigmoid-gated), NOT renormalised,
                      output.weight (qwen2moe requires it), F32
    tiny-mixtral      llama + llama.expert_count 4 / expert_used_count 2, experts of
                      llama.feed_forward_length 48, adjacent-pair RoPE (base 1e4), 2 layers,
                      renormalised, F32
    tiny-olmoe        olmoe, n_head_kv = n_head = 4 (no GQA), head_dim 16, attn_q_norm /
                      attn_k_norm of n_embd (RMSNorm over the whole projection, before the head
                      split), NeoX, 2 layers, 8 experts / 2 used, experts of feed_forward_length
                      32, NOT renormalised, F32
    tiny-qwen3moe-q8  tiny-qwen3moe with every matrix (experts, attention, token_embd, output)
                      Q8_0
    small-qwen3moe-k  qwen3moe, n_embd 256, 4 heads / 2 KV of 64, 2 layers, 8 experts / 2 used,
                      expert ff 256; like a Q4_K_M mix: expert gate/up Q4_K, expert down Q6_K,
                      attention and token_embd Q8_0, output Q6_K (tests/python/kquant_np.py)
  The same K-quant mix (K_M) for the other architectures, each keeping its tiny model's MoE
  details at n_embd 256, heads of 64, 2 layers, 256-wide experts (K-quant rows need multiples
  of 256):
    small-qwen2moe-k  qwen2moe, 4 heads / 2 KV, q/k/v biases, 16 experts / 2 used, expert ff
                      256, shared expert ff 512 quantised like the experts (gate/up Q4_K, down
                      Q6_K), feed_forward_length 768 (unused, as in tiny-qwen2moe), expert down
                      projections 3x and shared-expert down 2x (down_std; with the default 2x /
                      1x the renormalisation and shared-expert negative controls came within
                      8.6-10x of the test's tolerance)
    small-mixtral-k   llama, 4 heads / 2 KV, 8 experts / 2 used of feed_forward_length 256
    small-olmoe-k     olmoe, 4 heads = 4 KV heads, 8 experts / 2 used of feed_forward_length 256;
                      attn_q / attn_k rows of each head scaled by exp(0.5 z), z ~ N(0, 1)
                      (head_spread), as heads in trained models differ in scale: with equal
                      heads of 64 values, RMSNorm over the whole projection and per head nearly
                      coincide (that negative control came to 4.7x the test's tolerance)
Bad inputs (loader tests; based on tiny-qwen3moe):
    bad-expert-count   qwen3moe.expert_count 6, tensors hold 8 experts
    bad-expert-used    qwen3moe.expert_used_count 9 > expert_count 8
    bad-missing-down   blk.1.ffn_down_exps.weight left out
--bench: qwen3moe, n_embd 768, 12 layers, 12 heads / 4 KV heads of 64, 32 experts / 4 used,
    expert ff 512, vocabulary padded to 32000 with unreachable "[dummyNNNNN]" tokens, context
    4096; experts gate/up Q4_K, down Q6_K, attention Q4_K, token_embd Q8_0, output Q6_K,
    output.weight N(0, 0.15^2) (logits of std ~4); 353 MB, ~11 s. Its random weights route
    tokens about evenly (64 random tokens use 27-32 of the 32 experts per layer, top-4 holds
    ~0.42 of the router probability), which is what a speed benchmark needs; 12 random layers
    are chaotic, so its logits are not for accuracy comparisons.
"""

import os
import sys

import numpy as np
import gguf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_tiny_models as mt  # noqa: E402  (vocab(), bytes_to_unicode())

F32 = {}
Q8 = dict(embd="Q8_0", output="Q8_0", attn="Q8_0", exp_gate_up="Q8_0", exp_down="Q8_0",
          shexp_gate_up="Q8_0", shexp_down="Q8_0")
# Like llama-quantize's Q4_K_M on the FFN: every ffn_down* (routed experts and qwen2moe's shared
# expert) Q6_K, their gate/up Q4_K; attention and token_embd Q8_0, output Q6_K.
K_M = dict(embd="Q8_0", output="Q6_K", attn="Q8_0", exp_gate_up="Q4_K", exp_down="Q6_K",
           shexp_gate_up="Q4_K", shexp_down="Q6_K")
BENCH_MIX = dict(embd="Q8_0", output="Q6_K", attn="Q4_K", exp_gate_up="Q4_K", exp_down="Q6_K")

_TINY = dict(n_embd=64, n_head=4, n_head_kv=2, n_ctx=256, n_ff=96)
_QWEN3MOE = dict(_TINY, arch="qwen3moe", n_layer=3, head_dim=32, n_expert=8, n_expert_used=2,
                 n_ff_exp=32, rope_base=1e6, eps=1e-6, quant=F32, seed=21)
MODELS = {
    "tiny-qwen3moe": _QWEN3MOE,
    "tiny-qwen2moe": dict(_TINY, arch="qwen2moe", n_layer=3, head_dim=16, n_expert=8,
                          n_expert_used=2, n_ff_exp=32, n_ff_shexp=64, rope_base=1e6, eps=1e-6,
                          quant=F32, seed=22),
    "tiny-mixtral": dict(_TINY, arch="llama", n_layer=2, head_dim=16, n_ff=48, n_expert=4,
                         n_expert_used=2, rope_base=1e4, eps=1e-5, quant=F32, seed=23),
    "tiny-olmoe": dict(_TINY, arch="olmoe", n_layer=2, n_head_kv=4, head_dim=16, n_ff=32,
                       n_expert=8, n_expert_used=2, rope_base=1e4, eps=1e-5, quant=F32, seed=24),
    "tiny-qwen3moe-q8": dict(_QWEN3MOE, quant=Q8),
    "small-qwen3moe-k": dict(_QWEN3MOE, n_embd=256, n_head=4, n_head_kv=2, head_dim=64,
                             n_layer=2, n_ff=512, n_ff_exp=256, quant=K_M, seed=25),
}
# The K-quant mix for the other architectures: each keeps its tiny model's MoE details
# (biases, renormalisation, RoPE, olmoe's full-width q/k norm), at n_embd 256 with 256-wide
# experts (K-quant rows need multiples of 256), 2 layers, heads of 64.
_SMALL = dict(n_embd=256, n_head=4, n_head_kv=2, head_dim=64, n_layer=2, quant=K_M)
MODELS.update({
    "small-qwen2moe-k": dict(MODELS["tiny-qwen2moe"], **_SMALL, n_ff=768, n_ff_exp=256,
                             n_ff_shexp=512, n_expert=16, down_std=(3.0, 2.0), seed=26),
    "small-mixtral-k": dict(MODELS["tiny-mixtral"], **_SMALL, n_ff=256, n_expert=8, seed=27),
    "small-olmoe-k": dict(MODELS["tiny-olmoe"], **dict(_SMALL, n_head_kv=4), n_ff=256, seed=28,
                          head_spread=0.5),
})
# bad inputs: (base model, overrides of write_model's keyword arguments)
BAD = {
    "bad-expert-count": ("tiny-qwen3moe", dict(meta=dict(expert_count=6))),
    "bad-expert-used": ("tiny-qwen3moe", dict(meta=dict(expert_used_count=9))),
    "bad-missing-down": ("tiny-qwen3moe", dict(drop=("blk.1.ffn_down_exps.weight",))),
}
BENCH = dict(arch="qwen3moe", n_embd=768, n_head=12, n_head_kv=4, head_dim=64, n_layer=12,
             n_ff=3072, n_expert=32, n_expert_used=4, n_ff_exp=512, n_ctx=4096, rope_base=1e6,
             eps=1e-6, quant=BENCH_MIX, seed=31, n_vocab=32000, out_std=0.15)

PRE = {"llama": "llama-bpe", "olmoe": "olmo"}   # tokenizer.ggml.pre; default "qwen2"
FTYPE = {id(F32): gguf.LlamaFileType.ALL_F32, id(Q8): gguf.LlamaFileType.MOSTLY_Q8_0,
         id(K_M): gguf.LlamaFileType.MOSTLY_Q4_K_M, id(BENCH_MIX): gguf.LlamaFileType.MOSTLY_Q4_K_M}


def expert_ff(spec):
    """The experts' hidden size: expert_feed_forward_length where the arch has it."""
    return spec["n_ff_exp"] if spec["arch"] in ("qwen3moe", "qwen2moe") else spec["n_ff"]


def _quantize(a, qtype):
    if qtype == "F32":
        return a, None
    if qtype == "Q8_0":
        return gguf.quants.quantize(a, gguf.GGMLQuantizationType.Q8_0), \
            gguf.GGMLQuantizationType.Q8_0
    import kquant_np
    return kquant_np.quantize(a, qtype), gguf.GGMLQuantizationType[qtype]


def write_model(path, arch, n_layer, n_embd, n_head, n_head_kv, head_dim, n_ff, n_ctx,
                n_expert, n_expert_used, rope_base, eps, quant, seed, n_ff_exp=None,
                n_ff_shexp=None, n_vocab=None, out_std=0.5, drop=(), meta=None, head_spread=0.0,
                down_std=(2.0, 1.0)):
    """Writes one model. `drop`: tensor names left out; `meta`: metadata overrides
    ({"expert_count": 6}); n_vocab pads the byte vocabulary with dummy tokens; out_std is
    output.weight's standard deviation (logits ~ out_std * sqrt(n_embd)); head_spread > 0
    scales attn_q's and attn_k's rows of head h by exp(head_spread * z_h), z_h ~ N(0, 1);
    down_std: the routed and the shared experts' down projections are N(0, (s / sqrt(n_ff))^2)."""
    rng = np.random.default_rng(seed)
    meta = dict(meta or {})
    tokens, types, merges, ids = mt.vocab()
    if n_vocab:
        tokens = tokens + [f"[dummy{i:05d}]" for i in range(n_vocab - len(tokens))]
        types = types + [1] * (n_vocab - len(types))
    n_vocab = len(tokens)
    spec = dict(arch=arch, n_ff=n_ff, n_ff_exp=n_ff_exp)
    ff_exp = expert_ff(spec)

    w = gguf.GGUFWriter(path, arch)
    w.add_name(os.path.basename(path))
    w.add_block_count(n_layer)
    w.add_context_length(n_ctx)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    if head_dim != n_embd // n_head:
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(rope_base)
    w.add_layer_norm_rms_eps(eps)
    w.add_expert_count(meta.pop("expert_count", n_expert))
    w.add_expert_used_count(meta.pop("expert_used_count", n_expert_used))
    if arch in ("qwen3moe", "qwen2moe"):
        w.add_expert_feed_forward_length(n_ff_exp)
    if arch == "qwen2moe":
        w.add_expert_shared_feed_forward_length(n_ff_shexp)
    assert not meta, f"unknown metadata overrides {meta}"
    w.add_file_type(FTYPE[id(quant)])

    mt.add_vocab(w, PRE.get(arch, "qwen2"), arch == "llama", tokens, types, merges, ids)

    def mat(name, shape, std, role, heads=0):
        """shape in numpy order (outer ... inner = n_in); std of N(0, std^2); heads > 0: the
        rows are that many heads, scaled by head_spread."""
        a = rng.standard_normal(shape, dtype=np.float32)
        a *= np.float32(std)
        if heads and head_spread > 0:
            f = np.exp(head_spread * rng.standard_normal(heads)).astype(np.float32)
            a *= np.repeat(f, shape[0] // heads)[:, None]
        if name in drop:
            return
        data, raw = _quantize(a, quant.get(role, "F32"))
        w.add_tensor(name, data, raw_dtype=raw)

    def vec(name, n, mean, std):
        v = (mean + std * rng.standard_normal(n, dtype=np.float32)).astype(np.float32)
        if name not in drop:
            w.add_tensor(name, v)

    q_dim, kv_dim = n_head * head_dim, n_head_kv * head_dim
    mat("token_embd.weight", (n_vocab, n_embd), 0.4, "embd")
    vec("output_norm.weight", n_embd, 1.0, 0.1)
    mat("output.weight", (n_vocab, n_embd), out_std, "output")
    for il in range(n_layer):
        b = f"blk.{il}."
        vec(b + "attn_norm.weight", n_embd, 1.0, 0.1)
        mat(b + "attn_q.weight", (q_dim, n_embd), 2.0 / np.sqrt(n_embd), "attn", n_head)
        mat(b + "attn_k.weight", (kv_dim, n_embd), 1.0 / np.sqrt(n_embd), "attn", n_head_kv)
        mat(b + "attn_v.weight", (kv_dim, n_embd), 1.0 / np.sqrt(n_embd), "attn")
        mat(b + "attn_output.weight", (n_embd, q_dim), 1.0 / np.sqrt(q_dim), "attn")
        if arch == "qwen2moe":
            vec(b + "attn_q.bias", q_dim, 0.0, 0.5)
            vec(b + "attn_k.bias", kv_dim, 0.0, 0.5)
            vec(b + "attn_v.bias", kv_dim, 0.0, 0.5)
        if arch == "qwen3moe":      # per head: [head_dim]
            vec(b + "attn_q_norm.weight", head_dim, 1.0, 0.2)
            vec(b + "attn_k_norm.weight", head_dim, 1.0, 0.2)
        if arch == "olmoe":         # whole projection: [n_head*head_dim], [n_head_kv*head_dim]
            vec(b + "attn_q_norm.weight", q_dim, 1.0, 0.2)
            vec(b + "attn_k_norm.weight", kv_dim, 1.0, 0.2)
        vec(b + "ffn_norm.weight", n_embd, 1.0, 0.1)
        mat(b + "ffn_gate_inp.weight", (n_expert, n_embd), 1.0 / np.sqrt(n_embd), "router")
        mat(b + "ffn_gate_exps.weight", (n_expert, ff_exp, n_embd), 1.0 / np.sqrt(n_embd),
            "exp_gate_up")
        mat(b + "ffn_up_exps.weight", (n_expert, ff_exp, n_embd), 1.0 / np.sqrt(n_embd),
            "exp_gate_up")
        mat(b + "ffn_down_exps.weight", (n_expert, n_embd, ff_exp), down_std[0] / np.sqrt(ff_exp),
            "exp_down")
        if arch == "qwen2moe":
            vec(b + "ffn_gate_inp_shexp.weight", n_embd, 0.0, 1.0 / np.sqrt(n_embd))
            mat(b + "ffn_gate_shexp.weight", (n_ff_shexp, n_embd), 1.0 / np.sqrt(n_embd),
                "shexp_gate_up")
            mat(b + "ffn_up_shexp.weight", (n_ff_shexp, n_embd), 1.0 / np.sqrt(n_embd),
                "shexp_gate_up")
            mat(b + "ffn_down_shexp.weight", (n_embd, n_ff_shexp),
                down_std[1] / np.sqrt(n_ff_shexp), "shexp_down")

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def write_named(outdir, name):
    """Writes MODELS[name] or BAD[name] to OUTDIR/NAME.gguf; returns the path."""
    path = os.path.join(outdir, name + ".gguf")
    if name in BAD:
        base, over = BAD[name]
        return write_model(path, **dict(MODELS[base], **over))
    return write_model(path, **MODELS[name])


def make_all(outdir, names=None):
    """Writes the models named (default: every model in MODELS and BAD); returns {name: path}."""
    os.makedirs(outdir, exist_ok=True)
    return {name: write_named(outdir, name) for name in (names or list(MODELS) + list(BAD))}


def main(argv):
    if len(argv) == 3 and argv[1] == "--bench":
        import time
        t0 = time.time()
        write_model(argv[2], **BENCH)
        print(f"bench: {argv[2]} ({os.path.getsize(argv[2]) / 1e6:.0f} MB, "
              f"{time.time() - t0:.0f} s)")
        return 0
    if len(argv) < 2 or argv[1].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    for name, path in make_all(argv[1], argv[2:] or None).items():
        print(f"{name}: {path} ({os.path.getsize(path)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
