#!/usr/bin/env python3
"""Golden logits test: `ringkv eval logits` against the independent NumPy reference
(tests/python/ref_forward.py, float64 activations over the GGUF's dequantised weights).

For each cached model (SmolLM2-135M-Instruct Q4_1, arch llama; Gemma 3 270M Q4_K_M, arch gemma3)
and a fixed English token sequence it runs

    $RINGKV_BIN eval logits -m MODEL --tokens ID,ID,... --out OUT.f32

(OUT.f32: raw little-endian float32, n_tokens x n_vocab, row-major; row i = logits after token i)
and checks, per model:
  * top-1 token identical at every position, except "near ties": a position where ringkv's pick
    is within TIE_TOL logits of the reference's best (at most MAX_TIE_FLIPS such positions);
  * max |dlogit| <= MAX_ABS_TOL and mean |dlogit| <= MEAN_ABS_TOL;
  * KL(ref || ringkv) of the softmax distributions: mean over positions <= KL_MEAN_TOL and
    max <= KL_MAX_TOL.

Tolerances. ringkv, like llama.cpp, quantises activations to 8 bits for its integer dot products
(and may keep K/V in f16), so its logits differ from the float reference by quantisation noise.
Simulating exactly that in the reference (ref_forward.Forward(act_q8=True, kv_f16=True): 32-value
Q8 blocks for Q4_1/Q5_0/Q8_0 weights, 256-value blocks for K-quants) on these sequences gives:

    model      max|d|  mean|d|  KL mean  KL max  top-1
    SmolLM2     1.59    0.197    0.0048   0.030   34/34
    Gemma3      3.38    0.246    0.0090   0.101   35/35
    (act_q8 without kv_f16: SmolLM2 1.63/0.226, Gemma3 4.18/0.286)
    (a plain float32 path instead of float64, no activation quantisation: max|d| 1.2e-4
    on SmolLM2, 6.8e-5 on Gemma3, so an unquantised float path would sit far inside these)

while real architecture bugs injected into the reference (plus the same act_q8/kv_f16 noise, run
through this script with a stand-in binary) give (max|d| / mean|d| / KL mean / top-1):

    SmolLM2  RoPE NEOX pairing instead of adjacent      25.5 / 6.81 / 1.29  / 18/34
    SmolLM2  rope base 1e4 instead of 1e5                5.5 / 0.57 / 0.040 / 30/34
    SmolLM2  GQA head mapping h % n_kv (no noise)       40.8 / 8.20 /   -   /  0/34
    Gemma3   RoPE adjacent pairing instead of NEOX      25.7 / 2.56 / 1.95  / 12/35
    Gemma3   norm weights +1 again (w+1)                45.2 / 9.39 / 15.3  /  0/35
    Gemma3   local layers with rope base 1e6            11.0 / 1.12 / 0.17  / 30/35
    Gemma3   attention scale 1/sqrt(n_embd/n_head)       8.6 / 0.74 / 0.13  / 32/35
    Gemma3   embeddings not scaled by sqrt(n_embd)     121.8 / 45.0 / 12.4  /  0/35

The thresholds below sit well above the simulated noise (about 1.5-2x on max|d|, 2.5x on
mean|d|, 3-6x on KL) and below every injected bug on at least one metric. Not detectable at
this length (their effect is below the quantisation noise): Gemma's global-layer rope base at
positions < 40 and the sliding window itself (512 tokens); those need a long-context test.

Exit status: 0 pass, 1 fail, 77 skipped (no numpy/gguf, no ringkv binary, or no model cached).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

SKIP = 77

MAX_ABS_TOL = 6.0
MEAN_ABS_TOL = 0.6
KL_MEAN_TOL = 0.03
KL_MAX_TOL = 0.3
TIE_TOL = 0.75
MAX_TIE_FLIPS = 3

TEXT = ("The quick brown fox jumps over the lazy dog. Once upon a time, there was a little girl "
        "named Lily who loved to play outside in the park with her friends.")

# Token ids of TEXT. SmolLM2: Hugging Face `tokenizers` on ../shared/testdata/tokenizer/
# smollm2-135m-instruct/tokenizer.json (the GGUF says add_bos_token = false, so no BOS).
# Gemma 3: BOS (2) + the SentencePiece pieces of TEXT looked up in tokenizer.ggml.tokens.
# `pieces` are the vocabulary strings the ids must map to in the model file (checked first, so
# a different vocabulary fails loudly instead of comparing nonsense).
CASES = [
    {
        "name": "smollm2-135m-q4_1",
        "file": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "tokens": [504, 2365, 6354, 16438, 27003, 690, 260, 23790, 2767, 30, 4027, 1980, 253,
                   655, 28, 665, 436, 253, 1838, 8180, 3365, 14176, 617, 5732, 288, 1238, 2856,
                   281, 260, 5949, 351, 874, 2428, 30],
        "pieces": ["The", "Ġquick", "Ġbrown", "Ġfox", "Ġjumps", "Ġover", "Ġthe", "Ġlazy",
                   "Ġdog", ".", "ĠOnce", "Ġupon", "Ġa", "Ġtime", ",", "Ġthere", "Ġwas", "Ġa",
                   "Ġlittle", "Ġgirl", "Ġnamed", "ĠLily", "Ġwho", "Ġloved", "Ġto", "Ġplay",
                   "Ġoutside", "Ġin", "Ġthe", "Ġpark", "Ġwith", "Ġher", "Ġfriends", "."],
    },
    {
        "name": "gemma3-270m-q4_k_m",
        "file": "gemma-3-270m-q4_k_m.gguf",
        "tokens": [2, 818, 3823, 8864, 37423, 38167, 1024, 506, 31770, 4799, 236761, 9920, 3324,
                   496, 990, 236764, 993, 691, 496, 2268, 3953, 7489, 60708, 1015, 9312, 531,
                   1441, 4782, 528, 506, 4467, 607, 1116, 4690, 236761],
        "pieces": ["<bos>", "The", "▁quick", "▁brown", "▁fox", "▁jumps", "▁over", "▁the",
                   "▁lazy", "▁dog", ".", "▁Once", "▁upon", "▁a", "▁time", ",", "▁there", "▁was",
                   "▁a", "▁little", "▁girl", "▁named", "▁Lily", "▁who", "▁loved", "▁to",
                   "▁play", "▁outside", "▁in", "▁the", "▁park", "▁with", "▁her", "▁friends",
                   "."],
    },
]


def vocab_piece(reader, i):
    f = reader.fields["tokenizer.ggml.tokens"]
    return bytes(f.parts[f.data[i]]).decode("utf-8", errors="replace")


def log_softmax(x):
    import numpy as np
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def compare(ref, got, piece):
    """Returns (ok, report lines)."""
    import numpy as np
    ref = ref.astype(np.float64)
    got = got.astype(np.float64)
    lines = []
    ok = True
    if not np.all(np.isfinite(got)):
        bad = np.argwhere(~np.isfinite(got))
        lines.append(f"  FAIL: {len(bad)} non-finite logits (first at row {bad[0][0]}, col {bad[0][1]})")
        return False, lines
    d = np.abs(ref - got)
    max_d, mean_d = float(d.max()), float(d.mean())
    lp, lq = log_softmax(ref), log_softmax(got)
    kl = (np.exp(lp) * (lp - lq)).sum(axis=1)
    a, b = ref.argmax(axis=1), got.argmax(axis=1)
    n = len(a)
    exact = int((a == b).sum())
    flips, hard = [], []
    for i in np.nonzero(a != b)[0]:
        gap = float(ref[i, a[i]] - ref[i, b[i]])
        (flips if gap <= TIE_TOL else hard).append((int(i), gap))
    lines.append(f"  max|d|={max_d:.4f} (tol {MAX_ABS_TOL})  mean|d|={mean_d:.4f} (tol {MEAN_ABS_TOL})  "
                 f"KL mean={kl.mean():.5f} (tol {KL_MEAN_TOL}) max={kl.max():.5f} (tol {KL_MAX_TOL})")
    lines.append(f"  top-1 agreement {exact}/{n}; near-tie flips {len(flips)} (<= {MAX_TIE_FLIPS}, gap <= {TIE_TOL})")
    for i, gap in flips + hard:
        lines.append(f"    pos {i}: ref top-1 {a[i]} {piece(a[i])!r}  ringkv {b[i]} {piece(b[i])!r}  "
                     f"ref gap {gap:.3f}{'' if gap <= TIE_TOL else '  <-- MISMATCH'}")
    if hard or len(flips) > MAX_TIE_FLIPS:
        ok = False
        lines.append("  FAIL: top-1 differs")
    if max_d > MAX_ABS_TOL:
        ok = False
        lines.append(f"  FAIL: max|d| {max_d:.4f} > {MAX_ABS_TOL}")
    if mean_d > MEAN_ABS_TOL:
        ok = False
        lines.append(f"  FAIL: mean|d| {mean_d:.4f} > {MEAN_ABS_TOL}")
    if kl.mean() > KL_MEAN_TOL or kl.max() > KL_MAX_TOL:
        ok = False
        lines.append(f"  FAIL: KL mean {kl.mean():.5f} / max {kl.max():.5f} over tolerance")
    if not ok:
        pm = d.max(axis=1)
        lines.append("  per-position max|d|: " + " ".join(f"{v:.2f}" for v in pm))
        lines.append("  per-position KL:      " + " ".join(f"{v:.3f}" for v in kl))
    return ok, lines


def main(argv=None):
    ap = argparse.ArgumentParser(description="ringkv logits vs NumPy reference")
    ap.add_argument("--bin", default=os.environ.get("RINGKV_BIN"), help="ringkv executable")
    ap.add_argument("--models", default=os.environ.get("RINGKV_MODELS"), help="models directory")
    ap.add_argument("--only", help="run only the case whose name contains this string")
    ap.add_argument("--keep", help="directory to keep ringkv's .f32 and the reference .npy in")
    args = ap.parse_args(argv)

    try:
        import numpy as np
        import gguf  # noqa: F401
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import ref_forward
    except ImportError as e:
        print(f"SKIP: {e} (needs numpy and the gguf Python package)")
        return SKIP
    if not args.bin or not os.access(args.bin, os.X_OK):
        print(f"SKIP: ringkv executable not found (RINGKV_BIN={args.bin!r})")
        return SKIP
    models = args.models or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models")

    ran, failed = 0, []
    for case in CASES:
        if args.only and args.only not in case["name"]:
            continue
        path = os.path.join(models, case["file"])
        print(f"== {case['name']}: {path}")
        if not os.path.isfile(path):
            print(f"  skip: model not cached ({path})")
            continue
        toks = case["tokens"]
        model = ref_forward.Model(path)
        piece = lambda i: vocab_piece(model.r, int(i))
        got_pieces = [piece(t) for t in toks]
        if got_pieces != case["pieces"]:
            print(f"  FAIL: token ids do not map to the expected pieces in this vocabulary: {got_pieces}")
            failed.append(case["name"])
            continue
        ran += 1

        with tempfile.TemporaryDirectory(prefix="ringkv-logits-") as tmp:
            outdir = args.keep or tmp
            os.makedirs(outdir, exist_ok=True)
            out = os.path.join(outdir, case["name"] + ".f32")
            cmd = [args.bin, "eval", "logits", "-m", path, "--tokens", ",".join(map(str, toks)), "--out", out]
            print("  $ " + " ".join(cmd))
            t0 = time.time()
            try:
                p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
            except subprocess.TimeoutExpired:
                print("  FAIL: ringkv timed out")
                failed.append(case["name"])
                continue
            t_rk = time.time() - t0
            if p.returncode != 0:
                print(p.stdout.decode(errors="replace")[-3000:])
                print(f"  FAIL: ringkv exited with {p.returncode}")
                failed.append(case["name"])
                continue
            want = len(toks) * model.n_vocab * 4
            size = os.path.getsize(out) if os.path.exists(out) else -1
            if size != want:
                print(f"  FAIL: {out} has {size} bytes, expected {want} ({len(toks)} x {model.n_vocab} float32)")
                failed.append(case["name"])
                continue
            got = np.fromfile(out, dtype="<f4").reshape(len(toks), model.n_vocab)

            t0 = time.time()
            ref = ref_forward.Forward(model)(toks)
            t_ref = time.time() - t0
            if args.keep:
                np.save(os.path.join(outdir, case["name"] + ".ref.npy"), ref.astype(np.float32))
        print(f"  ringkv {t_rk:.1f}s, reference {t_ref:.1f}s")
        ok, lines = compare(ref, got, piece)
        print("\n".join(lines))
        last = int(ref[-1].argmax())
        print(f"  reference next token after the sequence: {last} {piece(last)!r}")
        print("  " + ("PASS" if ok else "FAIL"))
        if not ok:
            failed.append(case["name"])

    if failed:
        print(f"FAILED: {', '.join(failed)}")
        return 1
    if ran == 0:
        print("SKIP: no model cached")
        return SKIP
    print(f"all {ran} model(s) passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
