#!/usr/bin/env bash
# The long-context benchmark: KV codecs against each other and against llama.cpp (built from the
# llama-cpp-python 0.3.36 source distribution) in the same run, same GGUF files, 2 threads.
#   decode at depth   tg32 after DEPTH tokens of context (ringkv bench -d / llama-bench -d),
#                     ringkv with each codec, llama.cpp with flash attention and q4_0 and f16 KV
# Prints Markdown tables and appends them to bench/results/<date>-<host>-long.md.
#   bench/run-long.sh MODEL DEPTH[,DEPTH...] [CODEC,CODEC,...] [LLAMA_KV,...]
#   e.g. bench/run-long.sh models/gemma-3-270m-q4_k_m.gguf 16384,32768 f16,tq3.5 q4_0
# (llama-bench fills the depth for its warm-up and for each repetition: at 32K on 2 cores that
# is several minutes per llama.cpp configuration.) Peak memory: bench/run-memory.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
model=${1:?usage: bench/run-long.sh MODEL DEPTH[,DEPTH...] [CODECS]}
depths=${2:?usage: bench/run-long.sh MODEL DEPTH[,DEPTH...] [CODECS]}
codecs=${3:-f16,q8,tq4,tq3.5,tq3}
llama_kv=${4:-q4_0,f16}
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
IFS=, read -r -a llama_list <<< "$llama_kv"
for d in "${depth_list[@]}"; do
  lq4=""
  for kv in "${llama_list[@]}"; do
    ts=$(llama_tg "$d" -fa 1 -ctk "$kv" -ctv "$kv")
    [ "$kv" = q4_0 ] && lq4=$ts
    echo "| $d | llama.cpp | $kv (FA) | $ts | $(ratio "$ts" "$lq4") | - | - |" | tee -a "$out"
  done
  for c in "${codec_list[@]}"; do
    rk=$(./build/ringkv bench -m "$model" -t 2 -p 0 -n 32 -d "$d" -r 1 --kv-codec "$c")
    ts=$(echo "$rk" | awk -F, '/^tg/{print $6}')
    kvb=$(echo "$rk" | awk -F, '/^tg/{print $9}')
    mb=$(awk -v b="$kvb" -v d="$d" 'BEGIN{printf "%.0f", b*d/1e6}')
    echo "| $d | ringkv | $c | $ts | $(ratio "$ts" "$lq4") | $kvb | $mb |" | tee -a "$out"
  done
done
echo "written to $out"

