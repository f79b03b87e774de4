#!/usr/bin/env python3
"""End-to-end test of `ringkv eval niah` (needle in a haystack) on SmolLM2-135M-Instruct.

1. Bad input fails before any work, with a message and exit code 2: an unknown KV codec, a
   haystack path that does not exist, a depth outside 0..100, a length beyond the model's
   context, an unparsable length list. No output directory appears.
2. A small grid (lengths 512,1k × depths 0,50,100) completes: results.csv has the header
   length,depth,correct,tokens,seconds and 6 rows whose `tokens` equal the length, the last
   stdout line is JSON with score in [0,1], cells = 6 and the model, one progress line per cell.
3. --passkey at 512 tokens runs (one cell) and reports its JSON line; with --prompt completion
   the summary says so (SmolLM2 carries a chat template, so the grid above says "chat").
4. Gemma 3 270M (a base model: its file has no chat template) gets the completion prompt by
   default and finds the needle at 1K tokens and depth 50% (given its chat turn instead, it copies
   the document from the start); skipped when that model is not cached or in a slow build.

In a Debug or sanitizer build (read from the CMakeCache.txt beside RINGKV_BIN), which runs the
model some 20 times slower, the lengths are 128,160 and 128 instead: the same checks, shorter
prompts. Scores are not checked (a 135M model may miss); `-n 24` is enough for either answer.

Exit 77 (skipped) when the model is not cached. Usage: test_niah.py (RINGKV_BIN, RINGKV_MODELS
and RINGKV_TESTDATA come from CTest).
"""
import csv
import json
import os
import re
import subprocess
import sys
import tempfile

from build_kind import slow_build

BIN = os.environ.get("RINGKV_BIN", "build/ringkv")
MODEL = os.path.join(os.environ.get("RINGKV_MODELS", "models"), "SmolLM2-135M-Instruct.Q4_1.gguf")
GEMMA = os.path.join(os.environ.get("RINGKV_MODELS", "models"), "gemma-3-270m-q4_k_m.gguf")




SLOW = slow_build(BIN)
LENGTHS = (128, 160) if SLOW else (512, 1024)
PASSKEY_LENGTH = 128 if SLOW else 512


def niah(args, out, model=MODEL):
    cmd = [BIN, "eval", "niah", "-m", model, "-n", "24", "--out", out] + args
    p = subprocess.run(cmd, capture_output=True, timeout=600)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def last_json(stdout):
    lines = [line for line in stdout.splitlines() if line.strip()]
    return json.loads(lines[-1]) if lines else None


def check_bad_inputs(tmp):
    cases = [
        (["--kv-codec", "q3"], "kv codec 'q3' is unknown"),
        (["--kv-codec", "tq5"], "tq offers the rates 2.5, 3, 3.5 and 4 bits"),
        (["--kv-codec", "tq3+qjl"], "the QJL sketch is for keys only"),
        (["--haystack", os.path.join(tmp, "no-such-dir")], "no-such-dir"),
        (["--depths", "0,150"], "depth 150 is outside 0..100"),
        (["--lengths", "1M"], "beyond the model's context"),
        (["--lengths", "1k,zz"], "cannot parse"),
        (["--prompt", "jinja"], "--prompt takes auto, chat or completion"),
    ]
    failures = 0
    for i, (args, want) in enumerate(cases):
        out = os.path.join(tmp, f"bad{i}")
        rc, stdout, err = niah(args, out)
        ok = rc == 2 and want in err and not os.path.exists(out) and stdout == ""
        print(f"{'ok  ' if ok else 'FAIL'} {args}: exit {rc}, {err.strip()!r}")
        failures += not ok
    return failures


def check_grid(tmp):
    out = os.path.join(tmp, "grid")
    rc, stdout, err = niah(["--lengths", ",".join(map(str, LENGTHS)), "--depths", "0,50,100"], out)
    print(err.strip())
    if rc != 0:
        print(f"FAIL grid: exit {rc}")
        return 1
    failures = 0
    with open(os.path.join(out, "results.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
        header = rows and list(rows[0].keys())
    cells = {(int(r["length"]), int(r["depth"])) for r in rows}
    want = {(length, depth) for length in LENGTHS for depth in (0, 50, 100)}
    if header != ["length", "depth", "correct", "tokens", "seconds"] or len(rows) != 6 or cells != want:
        print(f"FAIL results.csv: header {header}, {len(rows)} rows, cells {sorted(cells)}")
        failures += 1
    for r in rows:
        if r["correct"] not in ("0", "1") or int(r["tokens"]) != int(r["length"]) or float(r["seconds"]) <= 0:
            print(f"FAIL row {r}")
            failures += 1
    summary = last_json(stdout)
    if (not summary or not isinstance(summary.get("score"), (int, float)) or not 0 <= summary["score"] <= 1
            or summary.get("cells") != 6 or "SmolLM2" not in summary.get("model", "")
            or summary.get("prompt") != "chat"):
        print(f"FAIL summary: {stdout!r}")
        failures += 1
    else:
        found = sum(int(r["correct"]) for r in rows)
        if abs(summary["score"] - found / 6) > 1e-3:
            print(f"FAIL score {summary['score']} but {found}/6 rows correct")
            failures += 1
    progress = re.findall(r"^\[(\d+)/6\] length (\d+) depth (\d+)%: (correct|wrong) \([\d.]+ s\)$", err, re.M)
    if len(progress) != 6:
        print(f"FAIL progress lines: {progress}")
        failures += 1
    print(f"grid: {summary}")
    return failures


def check_passkey(tmp):
    out = os.path.join(tmp, "passkey")
    rc, stdout, err = niah(["--passkey", "--lengths", str(PASSKEY_LENGTH), "--depths", "50", "--seed", "7",
                            "--prompt", "completion"], out)
    summary = last_json(stdout) if rc == 0 else None
    if (not summary or summary.get("mode") != "passkey" or summary.get("cells") != 1
            or summary.get("prompt") != "completion"):
        print(f"FAIL passkey: exit {rc}, {stdout!r}, {err}")
        return 1
    with open(os.path.join(out, "results.csv")) as f:
        lines = f.read().splitlines()
    if len(lines) != 2 or not lines[1].startswith(f"{PASSKEY_LENGTH},50,"):
        print(f"FAIL passkey results.csv: {lines}")
        return 1
    print(f"passkey: {summary}")
    return 0


def check_gemma(tmp):
    if SLOW or not os.path.exists(GEMMA):
        print("skip Gemma case: " + ("slow build" if SLOW else f"{GEMMA} not cached"))
        return 0
    out = os.path.join(tmp, "gemma")
    rc, stdout, err = niah(["--lengths", "1k", "--depths", "50"], out, GEMMA)
    summary = last_json(stdout) if rc == 0 else None
    if not summary or summary.get("prompt") != "completion" or summary.get("score") != 1:
        replies = open(os.path.join(out, "responses.jsonl")).read() if rc == 0 else ""
        print(f"FAIL Gemma base model: exit {rc}, {stdout!r}, {replies}")
        return 1
    print(f"gemma: {summary}")
    return 0


def main():
    if not os.path.exists(MODEL):
        print(f"{MODEL} not cached")
        return 77
    with tempfile.TemporaryDirectory() as tmp:
        failures = check_bad_inputs(tmp) + check_grid(tmp) + check_passkey(tmp) + check_gemma(tmp)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
