#!/usr/bin/env bash
# What sealing the warm tier costs: `ringkv serve` on SmolLM2 answers a question over a document
# in a session, then a follow-up (bench/server_load.py's sessions phase), with the session's KV
# pages (a) all hot (no budgets: nothing is sealed in RAM), (b) mostly warm (a small --kv-hot,
# no disk: every warm page is encrypted in RAM with the session's key and opened for each
# layer's attention), (c) mostly on disk (--kv-disk, the same --kv-hot, the least --kv-warm:
# page files and warm pages sealed). Prints a table: TTFT of both questions, decode tok/s of the
# follow-up, and the session's pages per tier at the end.
#   bench/run-warm-seal.sh [--doc-tokens N] [--hot "f16:32M tq3.5:14M"] [--out FILE] [--no-build]
# --hot lists the codecs to run and each one's --kv-hot: it must hold the open pages, the sinks
# and the pinned pages of every layer (the server refuses less with a disk tier and says how much
# it needs; without one, a budget below that keeps every page hot).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
doc=6000 hots="f16:32M tq3.5:14M" out="" build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --doc-tokens) doc=${2:?}; shift ;;
    --hot) hots=${2:?}; shift ;;
    --out) out=${2:?}; shift ;;
    --no-build) build=0 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run-warm-seal: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
[ -f "$model" ] || { echo "run-warm-seal: no $model (run scripts/setup.sh)" >&2; exit 2; }
if [ "$build" = 1 ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j"$(nproc)" --target ringkv-cli >/dev/null
fi
load="python3 bench/server_load.py"
mkdir -p .cache/bench
stamp=$(date -u +%Y%m%d-%H%M%S)
raw=.cache/bench/warm-seal-$stamp.jsonl
: > "$raw"
cold=$(mktemp -d /var/tmp/ringkv-warm-seal-XXXXXX)
srv_pid=""
stop_server() {
  [ -n "$srv_pid" ] || return 0
  kill -TERM "$srv_pid" 2>/dev/null || true
  wait "$srv_pid" 2>/dev/null || true
  srv_pid=""
}
trap 'stop_server; rm -rf "$cold"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url=http://127.0.0.1:$port

for ch in $hots; do
  codec=${ch%%:*} hot=${ch#*:}
  for mode in hot warm disk; do
    case $mode in
      hot) tiers=() ;;
      warm) tiers=(--kv-hot "$hot") ;;
      disk) tiers=(--kv-disk "$cold" --kv-hot "$hot") ;;
    esac
    log=.cache/bench/warm-seal-$stamp-$codec-$mode.log
    ./build/ringkv serve -m "$model" -t 2 --parallel 1 -c 8192 --kv-codec "$codec" "${tiers[@]}" \
      --host 127.0.0.1 --port "$port" >"$log" 2>&1 &
    srv_pid=$!
    sleep 1
    kill -0 "$srv_pid" 2>/dev/null && $load --url "$url" health --timeout 120 >/dev/null || { tail "$log" >&2; exit 1; }
    $load --url "$url" --label "$codec/$mode" --pid "$srv_pid" sessions --session --doc-tokens "$doc" \
      --max-tokens 64 | grep '^RESULT ' | sed "s/^RESULT //; s/}\$/, \"codec\": \"$codec\", \"mode\": \"$mode\", \"hot\": \"$hot\"}/" >> "$raw"
    stop_server
  done
done

python3 - "$raw" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores" "$doc" \
  "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)" > .cache/bench/warm-seal-$stamp.md <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
cpu, doc, when = sys.argv[2], sys.argv[3], sys.argv[4]
print("# Sealed warm tier: cost in a session (SmolLM2-135M Q4_1, ~%s-token document, 2 threads)" % doc)
print()
print("%s. Machine: %s. Pages in hot: no budgets; warm: --kv-hot H, no disk; disk: --kv-disk DIR --kv-hot H." % (when, cpu))
print()
print("| codec | pages in | H | Q1 TTFT s | Q2 TTFT s | Q2 decode tok/s | vs hot | pages hot / warm (sealed) / disk | other CPU % |")
print("|---|---|---|---|---|---|---|---|---|")
base = {}
for r in rows:
    if r["mode"] == "hot":
        base[r["codec"]] = r["q2_decode_tok_s"]
for r in rows:
    p = r.get("kv_pages") or {}
    b = base.get(r["codec"])
    rel = "%.2fx" % (r["q2_decode_tok_s"] / b) if b and r["q2_decode_tok_s"] else "-"
    print("| %s | %s | %s | %.2f | %.3f | %.1f | %s | %s / %s (%s) / %s | %.0f |" % (
        r["codec"], r["mode"], "-" if r["mode"] == "hot" else r["hot"], r["q1_ttft_s"], r["q2_ttft_s"], r["q2_decode_tok_s"] or 0, rel,
        p.get("hot", "-"), p.get("warm", "-"), p.get("warm_sealed", "-"), p.get("disk", "-"), r.get("other_cpu_pct") or 0))
PY
cat .cache/bench/warm-seal-$stamp.md
[ -z "$out" ] || cp .cache/bench/warm-seal-$stamp.md "$out"
