#!/usr/bin/env python3
"""Writes tiny random-weight GGUF models for architecture tests (tests/python/test_arch_tiny.py).

    python3 tests/python/make_tiny_models.py OUTDIR      # writes every model in MODELS

Each model has a small byte-level BPE vocabulary (tokenizer.ggml.model = "gpt2"): the 256
GPT-2 byte-unicode characters, a handful of merges (each merge's parts and result are tokens),
and the Qwen special tokens <|endoftext|>, <|im_start|>, <|im_end|> (token_type 3 = control).
Weights are drawn from a seeded normal distribution, scaled so every matmul output has unit
variance and the logits are O(1-10): matrices N(0, 1/n_in), norms 1 + N(0, 0.1^2) (qk norms
1 + N(0, 0.2^2)), biases N(0, 0.5^2), embeddings N(0, 0.4^2), separate output.weight
N(0, 0.5^2). (A dropped tensor still consumes its random numbers, so the rest is unchanged.)

Models (all: n_embd 64, n_head 4, n_head_kv 2 (GQA), n_ff 96, context 256):
    tiny-llama      llama, head_dim 16, separate output.weight, F32, 2 layers, rope base 1e4
    tiny-qwen2      qwen2, head_dim 16, q/k/v biases, tied embeddings, F32, 3 layers, base 1e6
    tiny-qwen3      qwen3, key_length = value_length = 32 (!= 64/4), q/k norms, separate
                    output.weight, F32, 3 layers, base 1e6
    tiny-qwen2-q8   as tiny-qwen2, every matrix (and token_embd) Q8_0
    tiny-qwen3-q8   as tiny-qwen3, every matrix (and token_embd, output) Q8_0
"""

import os
import sys

import numpy as np
import gguf

N_EMBD = 64
N_HEAD = 4
N_HEAD_KV = 2
N_FF = 96
N_CTX = 256

MODELS = {
    "tiny-llama": dict(arch="llama", n_layer=2, head_dim=16, tied=False, qtype="F32",
                       rope_base=10000.0, eps=1e-5, seed=1),
    "tiny-qwen2": dict(arch="qwen2", n_layer=3, head_dim=16, tied=True, qtype="F32",
                       rope_base=1e6, eps=1e-6, seed=2),
    "tiny-qwen3": dict(arch="qwen3", n_layer=3, head_dim=32, tied=False, qtype="F32",
                       rope_base=1e6, eps=1e-6, seed=3),
    "tiny-qwen2-q8": dict(arch="qwen2", n_layer=3, head_dim=16, tied=True, qtype="Q8_0",
                          rope_base=1e6, eps=1e-6, seed=2),
    "tiny-qwen3-q8": dict(arch="qwen3", n_layer=3, head_dim=32, tied=False, qtype="Q8_0",
                          rope_base=1e6, eps=1e-6, seed=3),
}

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable unicode character map."""
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1))
          + list(range(ord("\xae"), ord("\xff") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def vocab():
    """(tokens, token_types, merges, special ids)."""
    b2u = bytes_to_unicode()
    tokens = [b2u[b] for b in range(256)]
    sp = b2u[ord(" ")]  # 'Ġ'
    pairs = [("h", "e"), ("l", "l"), ("i", "n"), (sp, "t"), (sp, "h"), ("he", "ll"), ("hell", "o"),
             (sp, "hello"), ("t", "h"), ("th", "e"), (sp + "t", "he"), ("h", "i")]
    merges = []
    for a, b in pairs:
        assert a in tokens and b in tokens, (a, b)
        merges.append(f"{a} {b}")
        if a + b not in tokens:
            tokens.append(a + b)
    types = [1] * len(tokens)
    ids = {}
    for s in SPECIALS:
        ids[s] = len(tokens)
        tokens.append(s)
        types.append(3)
    return tokens, types, merges, ids


def add_vocab(w, pre, add_bos, tokens, types, merges, ids):
    """The byte-level BPE tokenizer metadata of vocab() (shared with make_moe_models.py)."""
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(ids["<|endoftext|>"])
    w.add_eos_token_id(ids["<|im_end|>"])
    w.add_pad_token_id(ids["<|endoftext|>"])
    w.add_add_bos_token(add_bos)


def write_model(path, arch, n_layer, head_dim, tied, qtype, rope_base, eps, seed, drop=()):
    """Writes one model; tensors named in `drop` are left out (for loader tests)."""
    rng = np.random.default_rng(seed)
    tokens, types, merges, ids = vocab()
    n_vocab = len(tokens)
    qt = gguf.GGMLQuantizationType[qtype]

    w = gguf.GGUFWriter(path, arch)
    w.add_name(os.path.basename(path))
    w.add_block_count(n_layer)
    w.add_context_length(N_CTX)
    w.add_embedding_length(N_EMBD)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD_KV)
    if head_dim != N_EMBD // N_HEAD:
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(rope_base)
    w.add_layer_norm_rms_eps(eps)
    ftype = gguf.LlamaFileType.MOSTLY_Q8_0 if qtype == "Q8_0" else gguf.LlamaFileType.ALL_F32
    w.add_file_type(ftype)

    add_vocab(w, "llama-bpe" if arch == "llama" else "qwen2", arch == "llama", tokens, types, merges, ids)

    def mat(name, n_out, n_in, std=None):
        a = rng.standard_normal((n_out, n_in)).astype(np.float32)
        a *= np.float32(std if std is not None else 1.0 / np.sqrt(n_in))
        if name in drop:
            return
        if qt == gguf.GGMLQuantizationType.F32:
            w.add_tensor(name, a)
        else:
            w.add_tensor(name, gguf.quants.quantize(a, qt), raw_dtype=qt)

    def vec(name, n, mean, std):
        v = (mean + std * rng.standard_normal(n)).astype(np.float32)
        if name not in drop:
            w.add_tensor(name, v)

    q_dim, kv_dim = N_HEAD * head_dim, N_HEAD_KV * head_dim
    mat("token_embd.weight", n_vocab, N_EMBD, std=0.4)
    vec("output_norm.weight", N_EMBD, 1.0, 0.1)
    if not tied:
        mat("output.weight", n_vocab, N_EMBD, std=0.5)
    for il in range(n_layer):
        b = f"blk.{il}."
        vec(b + "attn_norm.weight", N_EMBD, 1.0, 0.1)
        # q gets a 2x scale so attention is reasonably peaked (scores O(1-3))
        mat(b + "attn_q.weight", q_dim, N_EMBD, std=2.0 / np.sqrt(N_EMBD))
        mat(b + "attn_k.weight", kv_dim, N_EMBD)
        mat(b + "attn_v.weight", kv_dim, N_EMBD)
        mat(b + "attn_output.weight", N_EMBD, q_dim)
        if arch == "qwen2":
            vec(b + "attn_q.bias", q_dim, 0.0, 0.5)
            vec(b + "attn_k.bias", kv_dim, 0.0, 0.5)
            vec(b + "attn_v.bias", kv_dim, 0.0, 0.5)
        if arch == "qwen3":
            vec(b + "attn_q_norm.weight", head_dim, 1.0, 0.2)
            vec(b + "attn_k_norm.weight", head_dim, 1.0, 0.2)
        vec(b + "ffn_norm.weight", N_EMBD, 1.0, 0.1)
        mat(b + "ffn_gate.weight", N_FF, N_EMBD)
        mat(b + "ffn_up.weight", N_FF, N_EMBD)
        mat(b + "ffn_down.weight", N_EMBD, N_FF)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def make_all(outdir, names=None):
    """Writes the models named (default: all) into outdir; returns {name: path}."""
    os.makedirs(outdir, exist_ok=True)
    out = {}
    for name in names or MODELS:
        out[name] = write_model(os.path.join(outdir, name + ".gguf"), **MODELS[name])
    return out


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    for name, path in make_all(argv[1]).items():
        print(f"{name}: {path} ({os.path.getsize(path)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
