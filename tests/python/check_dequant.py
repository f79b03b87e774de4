#!/usr/bin/env python3
"""check_dequant.py — ringkv's dequantisation against the `gguf` package (llama.cpp's gguf-py).

Drives tests/test-quant-dump.c (argv[1]): raw block bytes in, float32 out, at every SIMD level.
Two sources of blocks:
  * synthetic: random blocks of every format ringkv supports, with finite fp16 scales;
  * real: tensors of the cached models SmolLM2-135M-Instruct.Q4_1.gguf and
    gemma-3-270m-q4_k_m.gguf (up to 64 rows of the first two tensors of each type).
Exit 0 = pass, 1 = mismatch, 77 = skipped (no numpy/gguf, no dump binary or no models at all).
"""
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    from gguf import GGMLQuantizationType as T
    from gguf import GGUFReader
    from gguf.quants import dequantize
except ImportError as e:  # pragma: no cover
    print(f"skip: python module missing: {e}")
    sys.exit(77)

# type: (block elements, block bytes, byte offsets of fp16 scale fields)
FORMATS = {
    T.F32: (1, 4, []), T.F16: (1, 2, []), T.BF16: (1, 2, []),
    T.Q4_0: (32, 18, [0]), T.Q4_1: (32, 20, [0, 2]), T.Q5_0: (32, 22, [0]),
    T.Q5_1: (32, 24, [0, 2]), T.Q8_0: (32, 34, [0]), T.Q2_K: (256, 84, [80, 82]),
    T.Q3_K: (256, 110, [108]), T.Q4_K: (256, 144, [0, 2]), T.Q5_K: (256, 176, [0, 2]),
    T.Q6_K: (256, 210, [208]),
}
LEVELS = (0, 1, 2)  # test-quant-dump clamps to what the CPU has


def run_dump(exe, ttype, raw, n, level, tmp):
    src, dst = os.path.join(tmp, "in.bin"), os.path.join(tmp, "out.bin")
    with open(src, "wb") as f:
        f.write(raw)
    r = subprocess.run([exe, str(int(ttype)), str(n), src, dst, str(level)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"test-quant-dump failed ({r.returncode}): {r.stderr.strip()}")
    return np.fromfile(dst, dtype=np.float32)


def compare(name, ours, want):
    want = np.asarray(want, dtype=np.float32).reshape(-1)
    if ours.shape != want.shape:
        print(f"FAIL {name}: {ours.shape} values vs {want.shape}")
        return False
    scale = max(float(np.max(np.abs(want))) if want.size else 0.0, 1e-30)
    err = np.abs(ours.astype(np.float64) - want.astype(np.float64))
    bad = int(np.count_nonzero(err > 1e-6 * scale + 2e-6 * np.abs(want)))
    if bad:
        i = int(np.argmax(err))
        print(f"FAIL {name}: {bad}/{want.size} differ, worst at {i}: ours {ours[i]} want {want[i]}")
        return False
    return True


def synthetic(rng, ttype, nblocks):
    bs, bb, fields = FORMATS[ttype]
    if ttype == T.F32:
        return rng.standard_normal(nblocks).astype(np.float32).tobytes(), nblocks
    if ttype == T.F16:
        return rng.standard_normal(nblocks).astype(np.float16).tobytes(), nblocks
    if ttype == T.BF16:
        f = rng.standard_normal(nblocks).astype(np.float32)
        return (f.view(np.uint32) >> 16).astype(np.uint16).tobytes(), nblocks
    raw = rng.integers(0, 256, size=(nblocks, bb), dtype=np.uint8)
    for off in fields:
        d = (rng.standard_normal(nblocks) * 0.05).astype(np.float16)
        raw[:, off:off + 2] = d.view(np.uint8).reshape(nblocks, 2)
    return raw.tobytes(), nblocks * bs


def main():
    if len(sys.argv) < 2 or not os.path.exists(sys.argv[1]):
        print("skip: test-quant-dump binary not given")
        return 77
    exe = sys.argv[1]
    ok = True
    rng = np.random.default_rng(1234)
    with tempfile.TemporaryDirectory() as tmp:
        for ttype in FORMATS:
            raw, n = synthetic(rng, ttype, 64 if FORMATS[ttype][0] > 1 else 4096)
            bb = FORMATS[ttype][1]
            want = dequantize(np.frombuffer(raw, dtype=np.uint8).reshape(-1, bb) if ttype not in (T.F32, T.F16, T.BF16)
                              else np.frombuffer(raw, dtype=np.uint8).reshape(1, -1), ttype)
            for level in LEVELS:
                ok &= compare(f"synthetic {ttype.name} level {level}", run_dump(exe, ttype, raw, n, level, tmp), want)
        print(f"synthetic blocks: {len(FORMATS)} formats checked")

        models_dir = os.environ.get("RINGKV_MODELS", os.path.join(os.path.dirname(__file__), "..", "..", "models"))
        names = ["SmolLM2-135M-Instruct.Q4_1.gguf", "gemma-3-270m-q4_k_m.gguf"]
        found = 0
        for name in names:
            path = os.path.join(models_dir, name)
            if not os.path.exists(path):
                print(f"note: model {path} not cached, skipped")
                continue
            found += 1
            reader = GGUFReader(path)
            seen = {}
            for t in reader.tensors:
                tt = T(int(t.tensor_type))
                if tt not in FORMATS or seen.get(tt, 0) >= 2:
                    continue
                seen[tt] = seen.get(tt, 0) + 1
                data = np.asarray(t.data)
                ne0 = int(t.shape[0])
                rows = data.reshape(-1, data.shape[-1])[:64] if data.ndim > 1 else data.reshape(1, -1)
                if tt in (T.F32, T.F16, T.BF16) and data.ndim == 1:
                    rows = data[: 64 * ne0].reshape(1, -1)
                raw = np.ascontiguousarray(rows).view(np.uint8).tobytes()
                bs, bb, _ = FORMATS[tt]
                n = len(raw) // bb * bs
                want = dequantize(np.frombuffer(raw, dtype=np.uint8).reshape(-1, bb)
                                  if tt not in (T.F32, T.F16, T.BF16) else np.frombuffer(raw, dtype=np.uint8).reshape(1, -1), tt)
                for level in LEVELS:
                    ok &= compare(f"{name}:{t.name} ({tt.name}) level {level}", run_dump(exe, tt, raw, n, level, tmp), want)
            print(f"{name}: checked {sum(seen.values())} tensors of types {sorted(x.name for x in seen)}")
        if found == 0:
            print("note: no cached models; only synthetic blocks were checked")
    print("check_dequant: " + ("ok" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
