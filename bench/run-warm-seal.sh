#!/usr/bin/env bash
# What sealing the warm tier costs: `ringkv serve` on SmolLM2 answers a question over a document
# in a session, then a follow-up (bench/server_load.py's sessions phase), with the session's KV
# pages (a) all hot (no budgets: nothing is sealed in RAM), (b) mostly warm (--kv-hot small,
# no disk: every warm page is encrypted in RAM with the session's key and opened for each
# layer's attention), (c) mostly on disk (--kv-disk with small budgets: page files and warm
# pages sealed). Prints a table per codec: TTFT of both questions, decode tok/s of the follow-up,
# and the session's pages per tier at the end.
#   bench/run-warm-seal.sh [--doc-tokens N] [--codecs "f16 tq3.5"] [--hot SIZE] [--out FILE] [--no-build]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
doc=3500 codecs="f16 tq3.5" hot=12M out="" build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --doc-tokens) doc=${2:?}; shift ;;
    --codecs) codecs=${2:?}; shift ;;
    --hot) hot=${2:?}; shift ;;
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

for codec in $codecs; do
  for mode in hot warm disk; do
    case $mode in
      hot) tiers=() ;;
      warm) tiers=(--kv-hot "$hot") ;;
      disk) tiers=(--kv-disk "$cold" --kv-hot "$hot" --kv-warm 8M) ;;
    esac
    log=.cache/bench/warm-seal-$stamp-$codec-$mode.log
    ./build/ringkv serve -m "$model" -t 2 --parallel 1 -c 8192 --kv-codec "$codec" "${tiers[@]}" \
      --host 127.0.0.1 --port "$port" >"$log" 2>&1 &
    srv_pid=$!
    $load --url "$url" health --timeout 120 >/dev/null || { tail "$log" >&2; exit 1; }
    $load --url "$url" --label "$codec/$mode" --pid "$srv_pid" sessions --session --doc-tokens "$doc" \
      --max-tokens 64 | grep '^RESULT ' | sed "s/^RESULT //; s/}\$/, \"codec\": \"$codec\", \"mode\": \"$mode\"}/" >> "$raw"
    stop_server
  done
done

python3 - "$raw" "$hot" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')" "$doc" > .cache/bench/warm-seal-$stamp.md <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
hot, cpu, doc = sys.argv[2], sys.argv[3], sys.argv[4]
print("# Sealed warm tier: cost in a session (SmolLM2-135M Q4_1, ~%s-token document, 2 threads)" % doc)
print()
print("Machine: %s. hot: no budgets; warm: --kv-hot %s (no disk); disk: --kv-disk, --kv-hot %s --kv-warm 8M." % (cpu, hot, hot))
print()
print("| codec | pages in | Q1 TTFT s | Q2 TTFT s | Q2 decode tok/s | vs hot | pages hot / warm (sealed) / disk | other CPU % |")
print("|---|---|---|---|---|---|---|---|")
base = {}
for r in rows:
    if r["mode"] == "hot":
        base[r["codec"]] = r["q2_decode_tok_s"]
for r in rows:
    p = r.get("kv_pages") or {}
    b = base.get(r["codec"])
    rel = "%.2fx" % (r["q2_decode_tok_s"] / b) if b and r["q2_decode_tok_s"] else "-"
    print("| %s | %s | %.2f | %.3f | %.1f | %s | %s / %s (%s) / %s | %.0f |" % (
        r["codec"], r["mode"], r["q1_ttft_s"], r["q2_ttft_s"], r["q2_decode_tok_s"] or 0, rel,
        p.get("hot", "-"), p.get("warm", "-"), p.get("warm_sealed", "-"), p.get("disk", "-"), r.get("other_cpu_pct") or 0))
PY
cat .cache/bench/warm-seal-$stamp.md
[ -z "$out" ] || cp .cache/bench/warm-seal-$stamp.md "$out"
