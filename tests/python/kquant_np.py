#!/usr/bin/env python3
"""kquant_np.py — NumPy quantisers that write ggml's Q4_K and Q6_K blocks byte for byte.

For generating test models: the `gguf` package (llama.cpp's gguf-py) dequantises every ggml
type but quantises only Q8_0 and a few legacy types. This module fills the gap for the two
k-quants ringkv's models use most, written from the block layouts in ggml-common.h:

  block_q4_K (256 values, 144 bytes): 8 sub-blocks of 32, x ~= d*sc[j]*q - dmin*m[j], q in 0..15
    f16 d | f16 dmin | scales[12]: sc[j], m[j] 6-bit, packed as
        bytes 0-3  = sc[0..3] | (sc[4..7] >> 4) << 6
        bytes 4-7  =  m[0..3] | ( m[4..7] >> 4) << 6
        bytes 8-11 = (sc[4..7] & 15) | (m[4..7] & 15) << 4
    | qs[128]: for each 64-value chunk c, qs[32c + l] = q[64c + l] | q[64c + 32 + l] << 4
  block_q6_K (256 values, 210 bytes): 16 sub-blocks of 16, x ~= d*sc[j]*(q - 32), q in 0..63
    ql[128] (low 4 bits) | qh[64] (high 2 bits) | int8 scales[16] | f16 d; for each 128-value
    half h and l in 0..31, with values v_k = q[128h + 32k + l]:
        ql[64h + l]      = v_0 & 15 | (v_2 & 15) << 4
        ql[64h + 32 + l] = v_1 & 15 | (v_3 & 15) << 4
        qh[32h + l]      = v_0 >> 4 | (v_1 >> 4) << 2 | (v_2 >> 4) << 4 | (v_3 >> 4) << 6

Scales are chosen in one pass (sub-block min/max for Q4_K, signed absolute maximum for Q6_K),
not with ggml's iterative search: the bytes are what llama.cpp and ringkv read, the error is
a little larger than ggml's reference quantiser's (relative RMS on normal data: Q4_K 0.078
vs 0.071, Q6_K 0.019 vs 0.018).

API (x: float32 array (..., n) with n % 256 == 0; the result is uint8 (..., n/256 * bytes)):
    quantize_q4_k(x), quantize_q6_k(x), quantize(x, "Q4_K" | "Q6_K" | "Q8_0")
Work is done in chunks of blocks, so memory stays bounded for large tensors; 10M values take
about a second.

Run it to self-test against gguf.quants.dequantize (exit 0 = pass, 1 = fail, 77 = skipped):
    python3 tests/python/kquant_np.py
"""
import sys
import time

import numpy as np

QK_K = 256
CHUNK_BLOCKS = 1 << 15  # blocks per vectorised step: 8M values, ~100 MB of temporaries


def _fp16_bytes(v):
    """(nb,) float32 -> (nb, 2) uint8 little-endian f16, and the f16 value back as float32."""
    h = v.astype("<f2")
    return h.view(np.uint8).reshape(-1, 2), h.astype(np.float32)


def _safe_div(a, b):
    """a / b, with 0 where b == 0 (an all-zero sub-block has scale 0)."""
    return np.divide(a, b, out=np.zeros(np.broadcast_shapes(a.shape, b.shape), np.float32),
                     where=b != 0)


def _q4_k_blocks(x):
    """(nb, 256) float32 -> (nb, 144) uint8 block_q4_K."""
    nb = x.shape[0]
    x = x.reshape(nb, 8, 32)
    # Per sub-block: x = scale*q - min with q in 0..15; ggml keeps min <= 0 so that 0 is
    # representable and the stored m is non-negative.
    lo = np.minimum(x.min(axis=-1), 0.0)
    scale = (x.max(axis=-1) - lo) / 15.0           # (nb, 8) >= 0
    mins = -lo                                      # (nb, 8) >= 0
    d_bytes, d = _fp16_bytes(scale.max(axis=-1) / 63.0)
    dmin_bytes, dmin = _fp16_bytes(mins.max(axis=-1) / 63.0)
    sc = np.clip(np.rint(_safe_div(scale, d[:, None])), 0, 63).astype(np.uint8)
    m = np.clip(np.rint(_safe_div(mins, dmin[:, None])), 0, 63).astype(np.uint8)
    # Quantise against the scales the reader will see (after f16 and 6-bit rounding).
    ds = (d[:, None] * sc)[..., None]
    dm = (dmin[:, None] * m)[..., None]
    q = np.clip(np.rint(_safe_div(x + dm, ds)), 0, 15).astype(np.uint8)  # (nb, 8, 32)
    scales = np.concatenate([
        sc[:, :4] | ((sc[:, 4:] >> 4) << 6),
        m[:, :4] | ((m[:, 4:] >> 4) << 6),
        (sc[:, 4:] & 15) | ((m[:, 4:] & 15) << 4),
    ], axis=1)                                      # (nb, 12)
    q = q.reshape(nb, 4, 2, 32)                     # sub-blocks 2c and 2c+1 share 32 bytes
    qs = (q[:, :, 0] | (q[:, :, 1] << 4)).reshape(nb, 128)
    return np.concatenate([d_bytes, dmin_bytes, scales, qs], axis=1)


def _q6_k_blocks(x):
    """(nb, 256) float32 -> (nb, 210) uint8 block_q6_K."""
    nb = x.shape[0]
    x = x.reshape(nb, 16, 16)
    # Per sub-block, the signed value of largest magnitude maps to -32 (as ggml does), so
    # the full -32..31 range is used on the side that needs it.
    i = np.abs(x).argmax(axis=-1)[..., None]
    scale = np.take_along_axis(x, i, axis=-1)[..., 0] / -32.0         # (nb, 16)
    j = np.abs(scale).argmax(axis=-1)[:, None]
    d_bytes, d = _fp16_bytes(np.take_along_axis(scale, j, axis=-1)[:, 0] / -128.0)
    sc = np.clip(np.rint(_safe_div(scale, d[:, None])), -128, 127).astype(np.int8)
    ds = (d[:, None] * sc)[..., None]
    q = np.clip(np.rint(_safe_div(x, ds)), -32, 31)
    q = (q + 32).astype(np.uint8).reshape(nb, 2, 4, 32)  # (block, half, k, l)
    lo, hi = q & 15, q >> 4
    ql = np.concatenate([lo[:, :, 0] | (lo[:, :, 2] << 4),
                         lo[:, :, 1] | (lo[:, :, 3] << 4)], axis=-1).reshape(nb, 128)
    qh = hi[:, :, 0] | (hi[:, :, 1] << 2) | (hi[:, :, 2] << 4) | (hi[:, :, 3] << 6)
    qh = qh.reshape(nb, 64)
    return np.concatenate([ql, qh, sc.view(np.uint8), d_bytes], axis=1)


def _quantize_k(x, block_fn, block_bytes):
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 0 or x.shape[-1] % QK_K != 0:
        raise ValueError(f"kquant_np: last dimension {x.shape[-1:]} is not a multiple of {QK_K}")
    if not np.isfinite(x).all():
        raise ValueError("kquant_np: input has inf or NaN")
    blocks = x.reshape(-1, QK_K)
    out = np.empty((blocks.shape[0], block_bytes), dtype=np.uint8)
    for s in range(0, blocks.shape[0], CHUNK_BLOCKS):
        out[s:s + CHUNK_BLOCKS] = block_fn(blocks[s:s + CHUNK_BLOCKS])
    return out.reshape(*x.shape[:-1], x.shape[-1] // QK_K * block_bytes)


def quantize_q4_k(x):
    """float32 (..., n), n % 256 == 0 -> uint8 (..., n/256*144) in ggml's block_q4_K layout."""
    return _quantize_k(x, _q4_k_blocks, 144)


def quantize_q6_k(x):
    """float32 (..., n), n % 256 == 0 -> uint8 (..., n/256*210) in ggml's block_q6_K layout."""
    return _quantize_k(x, _q6_k_blocks, 210)


def quantize(x, type_name):
    """Quantise x to "Q4_K", "Q6_K" or "Q8_0" (the last through gguf.quants); uint8 bytes."""
    if type_name == "Q4_K":
        return quantize_q4_k(x)
    if type_name == "Q6_K":
        return quantize_q6_k(x)
    if type_name == "Q8_0":
        from gguf import GGMLQuantizationType
        from gguf.quants import quantize as gguf_quantize
        return gguf_quantize(np.asarray(x, dtype=np.float32), GGMLQuantizationType.Q8_0)
    raise ValueError(f"kquant_np: unsupported type '{type_name}' (Q4_K, Q6_K, Q8_0)")


# ---------------------------------------------------------------------------------------------
# Self-test: round trips through gguf's dequantisers, which are independent of this file.

def _rel_rms(a, b):
    return float(np.sqrt(np.mean((a - b) ** 2) / max(np.mean(b ** 2), 1e-30)))


def _self_test():
    try:
        from gguf import GGMLQuantizationType as T
        from gguf.quants import dequantize
    except ImportError as e:
        print(f"skip: python module missing: {e}")
        return 77
    fails = []

    def check(name, ok, detail):
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
        if not ok:
            fails.append(name)

    budget = {"Q4_K": (144, 0.10), "Q6_K": (210, 0.03), "Q8_0": (34 * 8, 0.008)}
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 1 << 18), dtype=np.float32)  # 10.5M values
    # Magnitudes that change by up to 10x every 16 values: scales stored in the wrong slot
    # (which iid data barely notices) push the error well past the budget.
    gain = np.exp(rng.uniform(-1.15, 1.15, (64, 256, 1))).astype(np.float32)
    y = (rng.standard_normal((64, 256, 16), dtype=np.float32) * gain).reshape(64, 4096)

    def sq(v):  # mean square per 16 values
        return (v ** 2).reshape(64, 256, 16).mean(-1)

    for name, (bpb, limit) in budget.items():
        t0 = time.perf_counter()
        q = quantize(x, name)
        dt = time.perf_counter() - t0
        shape_ok = q.dtype == np.uint8 and q.shape == (40, (1 << 18) // 256 * bpb)
        check(f"{name} shape", shape_ok, f"{q.shape} {q.dtype}")
        err = _rel_rms(dequantize(q, T[name]).reshape(x.shape), x)
        check(f"{name} normal", err <= limit,
              f"rel RMS {err:.4f} (limit {limit}), {x.size / 1e6:.1f}M values in {dt:.2f} s")
        yq = dequantize(quantize(y, name), T[name]).reshape(y.shape)
        per = np.sqrt(sq(yq - y) / sq(y))
        err_y, med = _rel_rms(yq, y), float(np.median(per))
        check(f"{name} mixed scales", err_y <= limit and med <= 1.5 * limit,
              f"rel RMS {err_y:.4f}, median per 16 values {med:.4f}")

    # Edge cases: all zero, constant, one sign only, tiny and large magnitudes.
    edge = np.stack([np.zeros(512), np.full(512, 3.0), -np.abs(x[0, :512]), np.abs(x[1, :512]),
                     x[2, :512] * 1e-4, x[3, :512] * 1e3]).astype(np.float32)
    for name in ("Q4_K", "Q6_K"):
        e = dequantize(quantize(edge, name), T[name]).reshape(edge.shape)
        finite = bool(np.isfinite(e).all())
        zero = bool((e[0] == 0).all())
        errs = [_rel_rms(e[i], edge[i]) for i in range(1, len(edge))]
        check(f"{name} edge cases", finite and zero and max(errs) <= 2 * budget[name][1],
              "zeros exact, rel RMS " + " ".join(f"{v:.4f}" for v in errs))
    try:
        quantize_q4_k(np.zeros((2, 100), np.float32))
        check("bad width rejected", False, "no error for n=100")
    except ValueError as ex:
        check("bad width rejected", True, str(ex))
    print("kquant_np:", "FAIL " + ", ".join(fails) if fails else "all passed")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(_self_test())
