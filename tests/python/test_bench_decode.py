#!/usr/bin/env python3
"""End-to-end test of `ringkv bench decode --depth N` on SmolLM2-135M-Instruct.

1. Replicated fill in RAM (--depth 2048 --fill replicate --fill-tokens 512 --kv-codec q4 -n 4):
   exit 0, a table and a last stdout line of JSON whose fields are all present and sane
   (time > 0, KV bytes read per token = 8 sealed pages of 30 layers, nothing from disk), and the
   stderr note that the copies keep their originals' RoPE positions.
2. The same with a disk tier and small budgets (--kv-disk, --kv-hot 17M --kv-warm 2M): bytes
   from disk > 0, pages cold > 0, the same KV bytes read per token as in RAM (tiers move pages,
   never change what attention reads), the page files removed at exit.
3. A short text fill (--depth 600 --fill text) runs and says so.
4. Bad input fails with a clear message and a nonzero exit code, never a crash: --depth
   missing, a depth that does not fit in -c, a depth whose KV cache does not fit in memory, a
   replicated depth that is not a whole number of pages, an unknown --fill, a missing text file.
5. --fill replicate on Gemma 3 (sliding-window layers keep only their window's pages, which move
   to the end of the depth): the KV bytes read per token computed without tiers (pages each
   query reaches, the window in sliding-window layers) equal the bytes the tier counters count
   with a disk tier; skipped when that model is missing.

In a Debug or sanitizer build the prefills and decodes are shorter (a real prefill of one page,
so the copies are all of page 0); the checks are the same.
Exit 77 (skipped) when SmolLM2 is not cached. RINGKV_BIN and RINGKV_MODELS come from CTest.
"""
import json
import os
import subprocess
import sys
import tempfile

from build_kind import slow_build

BIN = os.environ.get("RINGKV_BIN", "build/ringkv")
MODELS = os.environ.get("RINGKV_MODELS", "models")
SMOL = os.path.join(MODELS, "SmolLM2-135M-Instruct.Q4_1.gguf")
GEMMA = os.path.join(MODELS, "gemma-3-270m-q4_k_m.gguf")
SLOW = slow_build(BIN)
STEPS = "2" if SLOW else "4"
REAL = "256" if SLOW else "512"  # real prefill before replication (256: copies of page 0 alone)
TEXT_DEPTH = "300" if SLOW else "600"
BASE = ["--depth", "2048", "-n", STEPS, "--fill", "replicate", "--fill-tokens", REAL, "--kv-codec", "q4", "-t", "2"]
FIELDS = ["depth", "codec", "fill", "fill_real_tokens", "prefill_s", "replicate_s", "warmup_ms", "n", "threads",
          "n_ctx", "ms_per_token", "tok_per_s", "kv_bytes_per_token_read", "hot_mib_per_token",
          "warm_mib_per_token", "disk_mib_per_token", "weights_bytes_per_token", "achieved_gb_per_s",
          "io_s_per_token", "io_wait_s_per_token", "io_hidden", "peak_rss_mib", "kv_ram_mib", "pages_hot",
          "pages_warm", "pages_cold", "kv_bytes_source", "disk_direct", "page_cache_dropped"]


def bench(args, model=SMOL):
    p = subprocess.run([BIN, "bench", "decode", "-m", model] + args, capture_output=True, timeout=600)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def last_json(stdout):
    lines = [line for line in stdout.splitlines() if line.strip()]
    try:
        return json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        return None


def fail(what, rc, stdout, err):
    print(f"FAIL {what}: exit {rc}\nstdout: {stdout}\nstderr: {err}")
    return 1


def check_common(what, rc, stdout, err):
    """Exit 0, a table, every JSON field, positive times and sizes. Returns (failures, json)."""
    r = last_json(stdout) if rc == 0 else None
    if r is None:
        return fail(what, rc, stdout, err), None
    missing = [f for f in FIELDS if f not in r]
    sane = (not missing and r["ms_per_token"] > 0 and r["tok_per_s"] > 0 and r["weights_bytes_per_token"] > 0
            and r["achieved_gb_per_s"] > 0 and r["peak_rss_mib"] > 0 and r["kv_ram_mib"] > 0
            and r["kv_bytes_per_token_read"] > 0 and r["n"] == int(STEPS) and stdout.startswith("| depth |")
            and abs(r["tok_per_s"] * r["ms_per_token"] - 1000) < 1)
    if not sane:
        print(f"FAIL {what}: missing {missing} or insane values: {r}")
        return 1, r
    print(f"ok   {what}: {r['ms_per_token']:.1f} ms/token, KV {r['kv_bytes_per_token_read']} B/token read "
          f"(hot {r['hot_mib_per_token']:.2f}, warm {r['warm_mib_per_token']:.2f}, disk {r['disk_mib_per_token']:.2f}"
          f" MiB), {r['pages_cold']} pages cold")
    return 0, r


def check_replicate(tmp):
    failures = 0
    rc, stdout, err = bench(BASE)
    f, ram = check_common("replicate in RAM", rc, stdout, err)
    failures += f
    if ram:
        # the steps at positions 2049.. read 8 sealed pages of every layer: 8 * 256 * bytes/token
        ok = (ram["depth"] == 2048 and ram["fill"] == "replicate" and ram["fill_real_tokens"] == int(REAL)
              and ram["codec"] == "q4" and ram["disk_mib_per_token"] == 0 and ram["io_hidden"] is None
              and ram["pages_cold"] == 0 and "copies keep their originals' RoPE positions" in err)
        if not ok:
            failures += fail("replicate in RAM fields", rc, stdout, err)
    disk = os.path.join(tmp, "kv")
    os.mkdir(disk)
    rc, stdout, err = bench(BASE + ["--kv-disk", disk, "--kv-hot", "17M", "--kv-warm", "2M"])
    f, tiered = check_common("replicate with a disk tier", rc, stdout, err)
    failures += f
    if tiered:
        ok = (tiered["disk_mib_per_token"] > 0 and tiered["pages_cold"] > 0 and tiered["io_s_per_token"] > 0
              and tiered["kv_bytes_source"] == "counted" and 0 <= tiered["io_hidden"] <= 1
              and "KV tiers:" in err and os.listdir(disk) == [])
        if ram and tiered["kv_bytes_per_token_read"] != ram["kv_bytes_per_token_read"]:
            print(f"FAIL KV bytes read differ: {tiered['kv_bytes_per_token_read']} with tiers, "
                  f"{ram['kv_bytes_per_token_read']} in RAM")
            ok = False
        if not ok:
            failures += fail("disk tier fields", rc, stdout, err)
    return failures


def check_text():
    rc, stdout, err = bench(["--depth", TEXT_DEPTH, "-n", STEPS, "--fill", "text", "--kv-codec", "q8", "-t", "2"])
    f, r = check_common("text fill", rc, stdout, err)
    if r and (r["fill"] != "text" or r["depth"] != int(TEXT_DEPTH) or f"fill: text, {TEXT_DEPTH} tokens" not in err):
        f += fail("text fill fields", rc, stdout, err)
    return f


def check_bad_inputs(tmp):
    cases = [
        ([], 2, "--depth N is required"),
        (["--depth", "4096", "-c", "2048"], 2, "do not fit in -c 2048"),
        (["--depth", "16M", "--fill", "replicate"], 1, "of memory is available"),
        (["--depth", "1000", "--fill", "replicate"], 2, "multiple of 256"),
        (["--depth", "2048", "--fill", "copy"], 2, "--fill takes text or replicate"),
        (["--depth", "2048", "-f", os.path.join(tmp, "no-such-file")], 2, "no-such-file"),
    ]
    runs = [(SMOL, args, code, want) for args, code, want in cases]
    failures = 0
    for model, args, code, want in runs:
        rc, stdout, err = bench(args, model)
        ok = rc == code and want in err and last_json(stdout) is None
        print(f"{'ok  ' if ok else 'FAIL'} {os.path.basename(model)} {args}: exit {rc}, {err.strip()!r}")
        failures += not ok
    return failures


def check_gemma(tmp):
    if not os.path.exists(GEMMA):
        print(f"skip Gemma case: {GEMMA} not cached")
        return 0
    # 1024 real tokens: the sliding-window layers (512) have released pages 0-1 and keep 2-3
    args = ["--depth", "2048", "-n", STEPS, "--fill", "replicate", "--fill-tokens", "512" if SLOW else "1024",
            "--kv-codec", "tq3.5", "-t", "2"]
    rc, stdout, err = bench(args, GEMMA)
    f, ram = check_common("Gemma 3 replicated in RAM", rc, stdout, err)
    disk = os.path.join(tmp, "kv-gemma")
    os.mkdir(disk)
    rc, stdout, err = bench(args + ["--kv-disk", disk], GEMMA)
    g, tiered = check_common("Gemma 3 replicated with a disk tier", rc, stdout, err)
    f += g
    if ram and tiered:
        ok = (ram["kv_bytes_source"] != "counted" and tiered["kv_bytes_source"] == "counted"
              and ram["kv_bytes_per_token_read"] == tiered["kv_bytes_per_token_read"])
        if not ok:
            print(f"FAIL Gemma KV bytes read: computed {ram['kv_bytes_per_token_read']} "
                  f"({ram['kv_bytes_source']}), counted {tiered['kv_bytes_per_token_read']} ({tiered['kv_bytes_source']})")
            f += 1
    return f


def main():
    if not os.path.exists(SMOL):
        print(f"{SMOL} not cached")
        return 77
    with tempfile.TemporaryDirectory() as tmp:
        failures = check_bad_inputs(tmp) + check_replicate(tmp) + check_text() + check_gemma(tmp)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
