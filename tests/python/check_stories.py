#!/usr/bin/env python3
"""check_stories.py — validates `ringkv convert --llama2c` on Karpathy's stories260K.

    check_stories.py --convert CLI      convert stories260K.bin + tok512.bin with CLI (the
                                        `ringkv convert` command or test-convert-cli) into a temp
                                        dir, then check the GGUF independently of ringkv
    check_stories.py --gguf FILE.gguf   check an existing converted file
    check_stories.py --bad-inputs CLI   truncated, missing and garbage inputs must fail with a
                                        message and exit code 1 (never a crash)

The check reads the GGUF with the `gguf` package (not ringkv's reader), verifies metadata and
vocabulary, and runs a small NumPy Llama forward pass written from llama2.c's run.c: greedy
decoding from BOS must reproduce the 20 golden ids of ../shared/testdata/README.md. Exit code 77
(skipped) when numpy or gguf is missing.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

GOLDEN = [403, 407, 261, 378, 432, 383, 286, 261, 376, 298,
          315, 421, 395, 317, 426, 338, 401, 396, 267, 337]
GOLDEN_TEXT = "Once upon a time, there was a little girl named Lily."
SKIP = 77


def testdata():
    here = os.path.dirname(os.path.abspath(__file__))
    d = os.environ.get("RINGKV_TESTDATA") or os.path.join(here, "..", "..", "..", "shared", "testdata")
    return os.path.join(d, "models")


def field(reader, key):
    f = reader.fields.get(key)
    if f is None:
        raise AssertionError(f"missing key {key}")
    return f.contents()


def check_metadata(r):
    import numpy as np
    want = {
        "general.architecture": "llama", "llama.context_length": 512,
        "llama.embedding_length": 64, "llama.feed_forward_length": 172, "llama.block_count": 5,
        "llama.attention.head_count": 8, "llama.attention.head_count_kv": 4,
        "llama.rope.dimension_count": 8, "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2,
        "tokenizer.ggml.unknown_token_id": 0, "tokenizer.ggml.add_bos_token": True,
        "tokenizer.ggml.add_space_prefix": True, "general.alignment": 32,
    }
    for k, v in want.items():
        got = field(r, k)
        assert got == v, f"{k}: {got!r} != {v!r}"
    assert abs(field(r, "llama.attention.layer_norm_rms_epsilon") - 1e-5) < 1e-12
    assert field(r, "llama.rope.freq_base") == 10000.0
    tokens = field(r, "tokenizer.ggml.tokens")
    types = field(r, "tokenizer.ggml.token_type")
    scores = field(r, "tokenizer.ggml.scores")
    assert len(tokens) == len(types) == len(scores) == 512
    assert tokens[:3] == ["<unk>", "<s>", "</s>"], tokens[:3]
    assert list(types[:3]) == [2, 3, 3] and types[3] == 6 and tokens[3] == "<0x00>"
    assert tokens[258] == "<0xFF>" and types[258] == 6 and types[259] == 1
    assert tokens[259] == "\u2581t", repr(tokens[259])
    assert all(" " not in t for t in tokens), "unescaped space in a token"
    assert np.all(np.isfinite(scores))
    # tensor layout / alignment
    for t in r.tensors:
        assert t.data_offset % 32 == 0, (t.name, t.data_offset)
        assert t.tensor_type == 0, (t.name, t.tensor_type)
    return tokens


def load_weights(r):
    import numpy as np
    w = {t.name: np.asarray(t.data, dtype=np.float32) for t in r.tensors}
    names = set(w)
    assert "output.weight" not in names, "stories260K shares its classifier"
    expected = {"token_embd.weight", "output_norm.weight"}
    for l in range(5):
        for s in ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm",
                  "ffn_gate", "ffn_down", "ffn_up"):
            expected.add(f"blk.{l}.{s}.weight")
    assert names == expected, sorted(names ^ expected)
    # gguf-py shapes numpy arrays as reversed ne: (out, in) for matrices.
    assert w["token_embd.weight"].shape == (512, 64)
    assert w["blk.0.attn_q.weight"].shape == (64, 64)
    assert w["blk.0.attn_k.weight"].shape == (32, 64)
    assert w["blk.0.ffn_gate.weight"].shape == (172, 64)
    assert w["blk.0.ffn_down.weight"].shape == (64, 172)
    return w


def greedy(w, n_steps, n_layers=5, n_heads=8, n_kv=4, eps=1e-5, base=10000.0):
    """llama2.c run.c forward, fp32, greedy from BOS."""
    import numpy as np
    f32 = np.float32
    emb = w["token_embd.weight"]
    dim = emb.shape[1]
    hs = dim // n_heads
    kv_dim = hs * n_kv
    rep = n_heads // n_kv

    def rmsnorm(x, g):
        ss = f32(np.mean(x * x, dtype=f32)) + f32(eps)
        return (x * f32(1.0 / np.sqrt(ss))) * g

    def rope(v, pos, n):
        v = v.copy()
        i = np.arange(0, n, 2)
        freq = (1.0 / np.power(f32(base), (i % hs).astype(f32) / f32(hs))).astype(f32)
        ang = f32(pos) * freq
        c, s = np.cos(ang).astype(f32), np.sin(ang).astype(f32)
        a, b = v[0::2].copy(), v[1::2].copy()
        v[0::2] = a * c - b * s
        v[1::2] = a * s + b * c
        return v

    kc = np.zeros((n_layers, n_steps, kv_dim), f32)
    vc = np.zeros((n_layers, n_steps, kv_dim), f32)
    tok, out = 1, []
    for pos in range(n_steps):
        x = emb[tok].copy()
        for l in range(n_layers):
            p = f"blk.{l}."
            xb = rmsnorm(x, w[p + "attn_norm.weight"])
            q = rope(w[p + "attn_q.weight"] @ xb, pos, dim)
            kc[l, pos] = rope(w[p + "attn_k.weight"] @ xb, pos, kv_dim)
            vc[l, pos] = w[p + "attn_v.weight"] @ xb
            att_out = np.zeros(dim, f32)
            for h in range(n_heads):
                kh = h // rep
                qh = q[h * hs:(h + 1) * hs]
                ks = kc[l, :pos + 1, kh * hs:(kh + 1) * hs]
                sc = (ks @ qh) / f32(np.sqrt(hs))
                sc = np.exp(sc - sc.max())
                sc /= sc.sum()
                att_out[h * hs:(h + 1) * hs] = sc @ vc[l, :pos + 1, kh * hs:(kh + 1) * hs]
            x = x + w[p + "attn_output.weight"] @ att_out
            xb = rmsnorm(x, w[p + "ffn_norm.weight"])
            h1 = w[p + "ffn_gate.weight"] @ xb
            h3 = w[p + "ffn_up.weight"] @ xb
            x = x + w[p + "ffn_down.weight"] @ ((h1 / (f32(1) + np.exp(-h1))) * h3)
        x = rmsnorm(x, w["output_norm.weight"])
        logits = emb @ x
        tok = int(np.argmax(logits))
        out.append(tok)
    return out


def check_gguf(path):
    try:
        import numpy  # noqa: F401
        import gguf
    except ImportError as e:
        print(f"check_stories: skipped ({e})")
        return SKIP
    r = gguf.GGUFReader(path)
    tokens = check_metadata(r)
    w = load_weights(r)
    ids = greedy(w, len(GOLDEN))
    text = "".join(tokens[i] for i in ids).replace("\u2581", " ").lstrip()
    print("ids :", " ".join(map(str, ids)))
    print("text:", text)
    if ids != GOLDEN:
        print("check_stories: FAILED, golden ids:", " ".join(map(str, GOLDEN)))
        return 1
    if not text.startswith(GOLDEN_TEXT):
        print(f"check_stories: FAILED, text does not start with {GOLDEN_TEXT!r}")
        return 1
    print("check_stories: ok (20 golden ids)")
    return 0


def run_cli(cli, *args):
    p = subprocess.run([cli, *args], capture_output=True, text=True, timeout=120)
    return p.returncode, p.stderr


def convert(cli, out_dir):
    m = testdata()
    out = os.path.join(out_dir, "stories260K.gguf")
    rc, err = run_cli(cli, "--llama2c", os.path.join(m, "stories260K.bin"),
                      "--tokenizer", os.path.join(m, "tok512.bin"), "-o", out)
    if rc != 0:
        print(f"check_stories: convert failed (exit {rc}): {err}")
        return None
    assert not os.path.exists(out + ".tmp")
    return out


def bad_inputs(cli, d):
    m = testdata()
    ckpt, tok = os.path.join(m, "stories260K.bin"), os.path.join(m, "tok512.bin")
    data = open(ckpt, "rb").read()
    tokdata = open(tok, "rb").read()

    def write(name, b):
        p = os.path.join(d, name)
        with open(p, "wb") as f:
            f.write(b)
        return p

    import struct
    hdr = list(struct.unpack("<7i", data[:28]))

    def with_header(**kw):
        h = hdr[:]
        for i, k in enumerate(("dim", "hidden", "layers", "heads", "kv", "vocab", "seq")):
            if k in kw:
                h[i] = kw[k]
        return struct.pack("<7i", *h) + data[28:]

    out = os.path.join(d, "out.gguf")
    cases = [
        ("truncated checkpoint", [write("trunc.bin", data[:100]), tok], "implies"),
        ("tiny checkpoint", [write("tiny.bin", data[:10]), tok], "too short"),
        ("empty checkpoint", [write("empty.bin", b""), tok], "empty"),
        ("one byte short", [write("short.bin", data[:-1]), tok], "implies"),
        ("one float long", [write("long.bin", data + b"\0\0\0\0"), tok], "implies"),
        ("missing checkpoint", [os.path.join(d, "nope.bin"), tok], "cannot open"),
        ("missing tokenizer", [ckpt, os.path.join(d, "nope-tok.bin")], "cannot open"),
        ("garbage tokenizer", [ckpt, write("garbage.bin", bytes(range(256)) * 20)], "tokenizer"),
        ("truncated tokenizer", [ckpt, write("ttok.bin", tokdata[:3000])], "ends at token"),
        ("tokenizer with trailing bytes", [ckpt, write("ltok.bin", tokdata + b"xx")], "after its"),
        ("empty tokenizer", [ckpt, write("etok.bin", b"")], "too short"),
        ("negative dim", [write("negdim.bin", with_header(dim=-64)), tok], "dim"),
        ("zero layers", [write("zl.bin", with_header(layers=0)), tok], "n_layers"),
        ("huge dim", [write("huge.bin", with_header(dim=2**31 - 1)), tok], "dim"),
        ("huge vocab", [write("hv.bin", with_header(vocab=-2**31)), tok], "vocab_size"),
        ("kv heads > heads", [write("kvh.bin", with_header(kv=16)), tok], "n_kv_heads"),
        ("heads not dividing dim", [write("hd.bin", with_header(heads=7)), tok], "head"),
        ("unshared flag flipped", [write("uns.bin", with_header(vocab=-512)), tok], "implies"),
        ("newer export format", [write("v1.bin", b"24ka" + struct.pack("<i", 1) + data[8:]), tok],
         "magic"),
        ("directory as checkpoint", [d, tok], "regular file"),
    ]
    failures = 0
    for what, (c, t), needle in cases:
        rc, err = run_cli(cli, "--llama2c", c, "--tokenizer", t, "-o", out)
        ok = rc == 1 and needle in err and not os.path.exists(out) and not os.path.exists(out + ".tmp")
        print(f"{'ok  ' if ok else 'FAIL'} {what}: exit {rc}: {err.strip()}")
        failures += not ok
    # output into a missing directory
    rc, err = run_cli(cli, "--llama2c", ckpt, "--tokenizer", tok, "-o", os.path.join(d, "no", "x.gguf"))
    ok = rc == 1 and "cannot create" in err
    print(f"{'ok  ' if ok else 'FAIL'} missing output directory: exit {rc}: {err.strip()}")
    failures += not ok
    # usage errors
    for args in ([], ["--llama2c"], ["--llama2c", ckpt, "--tokenizer", tok], ["--bogus", "x"]):
        rc, err = run_cli(cli, *args)
        ok = rc == 2 and "usage" in err
        print(f"{'ok  ' if ok else 'FAIL'} usage {args[:1]}: exit {rc}")
        failures += not ok
    return 1 if failures else 0


def main():
    ap = argparse.ArgumentParser()
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--convert", metavar="CLI")
    g.add_argument("--gguf", metavar="FILE")
    g.add_argument("--bad-inputs", metavar="CLI")
    a = ap.parse_args()
    if a.gguf:
        return check_gguf(a.gguf)
    d = tempfile.mkdtemp(prefix="rk-convert-")
    try:
        if a.bad_inputs:
            return bad_inputs(a.bad_inputs, d)
        out = convert(a.convert, d)
        return 1 if out is None else check_gguf(out)
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
