#!/usr/bin/env bash
# The long-context benchmark: KV codecs against each other and against llama.cpp (built from the
# llama-cpp-python 0.3.36 source distribution) in the same run, same GGUF files, 2 threads.
#   decode at depth   tg32 after DEPTH tokens of context (ringkv bench -d / llama-bench -d),
#                     ringkv with each codec, llama.cpp with flash attention and q4_0 and f16 KV
#   peak memory       a DEPTH-token prompt plus 16 generated tokens, peak RSS (/usr/bin/time)
# Prints Markdown tables and appends them to bench/results/<date>-<host>-long.md.
#   bench/run-long.sh MODEL DEPTH[,DEPTH...] [CODEC,CODEC,...]
#   e.g. bench/run-long.sh models/gemma-3-270m-q4_k_m.gguf 16384,32768 f16,tq3.5
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
model=${1:?usage: bench/run-long.sh MODEL DEPTH[,DEPTH...] [CODECS]}
depths=${2:?usage: bench/run-long.sh MODEL DEPTH[,DEPTH...] [CODECS]}
codecs=${3:-f16,q8,tq4,tq3.5,tq3}
[ -f "$model" ] || { echo "no such model: $model" >&2; exit 2; }
./bench/build-llama-cpp.sh >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target ringkv-cli bench-membw >/dev/null
lcpp=.cache/llama.cpp/build/bin
mkdir -p .cache/bench bench/results
cat ../shared/testdata/haystack/pg-essays/*.txt > .cache/bench/haystack.txt
name=$(basename "$model" .gguf)
out="bench/results/$(date -u +%Y-%m-%d)-$(hostname | cut -c1-12)-long.md"
cpu=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
membw=$(./build/bench-membw 2)
bw2=$(echo "$membw" | awk -F, '$1==2{print $2}')
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a / b; else print "-" }'; }

llama_tg() { # depth, extra llama-bench flags...
  local d=$1; shift
  "$lcpp/llama-bench" -m "$model" -t 2 -p 0 -n 32 -d "$d" -r 1 -o csv "$@" 2>/dev/null | python3 -c "
import csv, sys
for r in csv.DictReader(sys.stdin):
    if r['n_gen'] == '32':
        print(r['avg_ts'])
        break
"
}

{
echo
echo "## $name: decode at depth — $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "Machine: $cpu, $(nproc) cores, measured read bandwidth ${bw2} GB/s (2 threads). tg32 after DEPTH"
echo "tokens of random-token context, 2 threads. KV bytes read per token = depth x KV bytes/token"
echo "(every layer's keys and values once; sliding-window layers read only their window, so this"
echo "overstates Gemma's). llama.cpp: llama-bench -fa 1 with the KV cache type shown."
echo
echo "| depth | engine | KV | tok/s | vs llama.cpp q4_0 | KV bytes/token | KV MB at depth |"
echo "|---|---|---|---|---|---|---|"
} | tee -a "$out"
IFS=, read -r -a depth_list <<< "$depths"
IFS=, read -r -a codec_list <<< "$codecs"
for d in "${depth_list[@]}"; do
  lq4=$(llama_tg "$d" -fa 1 -ctk q4_0 -ctv q4_0)
  lf16=$(llama_tg "$d" -fa 1)
  echo "| $d | llama.cpp | q4_0 (FA) | $lq4 | 1.00 | - | - |" | tee -a "$out"
  echo "| $d | llama.cpp | f16 (FA) | $lf16 | $(ratio "$lf16" "$lq4") | - | - |" | tee -a "$out"
  for c in "${codec_list[@]}"; do
    rk=$(./build/ringkv bench -m "$model" -t 2 -p 0 -n 32 -d "$d" -r 1 --kv-codec "$c")
    ts=$(echo "$rk" | awk -F, '/^tg/{print $6}')
    kvb=$(echo "$rk" | awk -F, '/^tg/{print $9}')
    mb=$(awk -v b="$kvb" -v d="$d" 'BEGIN{printf "%.0f", b*d/1e6}')
    echo "| $d | ringkv | $c | $ts | $(ratio "$ts" "$lq4") | $kvb | $mb |" | tee -a "$out"
  done
done
echo "written to $out"

# Peak memory: a prompt of about DEPTH tokens (the haystack essays, cut by the model's own
# tokenizer) plus 16 generated tokens, peak RSS of the whole process by /usr/bin/time.
mem_depth=${depth_list[${#depth_list[@]}-1]}
prompt=.cache/bench/prompt-$name-$mem_depth.txt
python3 - "$prompt" "$mem_depth" "$model" <<'PY'
import subprocess, sys
out, depth, model = sys.argv[1], int(sys.argv[2]), sys.argv[3]
text = open(".cache/bench/haystack.txt", encoding="utf-8", errors="replace").read()
lo, hi = 0, len(text)
def count(n):  # tokens of text[:n]
    p = subprocess.run(["./build/ringkv", "tokenize", "-m", model, "--no-bos"], input=text[:n].encode(),
                       capture_output=True)
    return len(p.stdout.split())
while hi - lo > 2000:  # bisect on characters for depth - 64 tokens
    mid = (lo + hi) // 2
    if count(mid) <= depth - 64: lo = mid
    else: hi = mid
open(out, "w").write(text[:lo])
PY
rss() { /usr/bin/time -f "%M" "$@" 2>&1 >/dev/null | tail -1; }
{
echo
echo "Peak RSS, a $(./build/ringkv tokenize -m "$model" --no-bos < "$prompt" | wc -w)-token prompt + 16 tokens, -c $mem_depth, 2 threads:"
echo
echo "| engine | KV | peak RSS MiB |"
echo "|---|---|---|"
} | tee -a "$out"
for kv in q4_0 f16; do
  kb=$(rss "$lcpp/llama-completion" -m "$model" -f "$prompt" -n 16 -c "$mem_depth" -t 2 -fa on -ctk "$kv" -ctv "$kv" -no-cnv --no-warmup --temp 0)
  echo "| llama.cpp | $kv (FA) | $((kb / 1024)) |" | tee -a "$out"
done
for c in "${codec_list[@]}"; do
  kb=$(rss ./build/ringkv run -m "$model" -f "$prompt" -n 16 -c "$mem_depth" -t 2 --kv-codec "$c" --temp 0)
  echo "| ringkv | $c | $((kb / 1024)) |" | tee -a "$out"
done
echo "written to $out"
