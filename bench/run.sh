#!/usr/bin/env bash
# The engine-core benchmark: ringkv against llama.cpp (built from the llama-cpp-python 0.3.36
# source distribution on PyPI) in the same run, same GGUF files, 1 and 2 threads.
#   decode       tg128 after a short prompt (llama-bench: tg128 from an empty context)
#   prompt       pp512 from an empty context
#   perplexity   first 32K tokens of the concatenated haystack essays, CTX 2048 (16 chunks)
#   bandwidth    decode weight bytes per token x tokens/s, against bench-membw's measured read
#                bandwidth of this machine
#   depth        tg32 after 4096 tokens of context (llama-bench -d)
# Prints a Markdown table and writes it to bench/results/<date>-<host>.md.
#   bench/run.sh [--quick]     --quick: skip perplexity
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
quick=${1:-}
./bench/build-llama-cpp.sh >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target ringkv-cli bench-membw >/dev/null
lcpp=.cache/llama.cpp/build/bin
mkdir -p .cache/bench bench/results
cat ../shared/testdata/haystack/pg-essays/*.txt > .cache/bench/haystack.txt

models=(models/SmolLM2-135M-Instruct.Q4_1.gguf models/gemma-3-270m-q4_k_m.gguf)
date_tag=$(date -u +%Y-%m-%d)
cpu=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
out="bench/results/${date_tag}-$(hostname | cut -c1-12).md"

membw=$(./build/bench-membw 2)
bw1=$(echo "$membw" | awk -F, '$1==1{print $2}')
bw2=$(echo "$membw" | awk -F, '$1==2{print $2}')

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a / b; else print "-" }'; }

{
echo "# ringkv vs llama.cpp — $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "Machine: $cpu, $(nproc) cores; measured read bandwidth ${bw1} GB/s (1 thread), ${bw2} GB/s (2 threads)."
echo "llama.cpp: llama-cpp-python 0.3.36 sdist (vendor/llama.cpp), GGML_NATIVE=ON. Same GGUF files."
echo
echo "| model | threads | test | ringkv tok/s | llama.cpp tok/s | ratio | ringkv decode GB/s (% of measured) |"
echo "|---|---|---|---|---|---|---|"
} | tee "$out"

for m in "${models[@]}"; do
  name=$(basename "$m" .gguf)
  for t in 1 2; do
    rk=$(./build/ringkv bench -m "$m" -t "$t" -p 512 -n 128 -r 3)
    lc=$("$lcpp/llama-bench" -m "$m" -t "$t" -p 512 -n 128 -r 3 -o csv 2>/dev/null)
    bytes=$(echo "$rk" | awk -F, '/^tg/{print $7}')
    for test in pp512 tg128; do
      rk_ts=$(echo "$rk" | awk -F, -v t="$test" '$1==t{print $6}')
      if [ "$test" = pp512 ]; then col='n_prompt'; want=512; else col='n_gen'; want=128; fi
      lc_ts=$(echo "$lc" | python3 -c "
import csv, sys
rows = list(csv.DictReader(sys.stdin))
for r in rows:
    if r['$col'] == '$want' and (r['n_prompt'] == '0' or r['n_gen'] == '0'):
        print(r['avg_ts'])
        break
")
      bw=$([ $t = 1 ] && echo "$bw1" || echo "$bw2")
      gbs="-"
      if [ "$test" = tg128 ]; then
        gbs=$(awk -v b="$bytes" -v ts="$rk_ts" -v bw="$bw" 'BEGIN{g=b*ts/1e9; printf "%.1f (%.0f%%)", g, 100*g/bw}')
      fi
      echo "| $name | $t | $test | $rk_ts | $lc_ts | $(ratio "$rk_ts" "$lc_ts") | $gbs |" | tee -a "$out"
    done
  done
done

{
echo
echo "Decode at depth (tg32 after 4096 tokens of context, 2 threads; ringkv f32 KV cache, llama.cpp defaults):"
echo
echo "| model | ringkv tok/s | llama.cpp tok/s | ratio | ringkv KV bytes/token |"
echo "|---|---|---|---|---|"
} | tee -a "$out"
for m in "${models[@]}"; do
  rk=$(./build/ringkv bench -m "$m" -t 2 -p 0 -n 32 -d 4096 -r 2)
  rk_ts=$(echo "$rk" | awk -F, '/^tg/{print $6}')
  kvb=$(echo "$rk" | awk -F, '/^tg/{print $9}')
  lc_ts=$("$lcpp/llama-bench" -m "$m" -t 2 -p 0 -n 32 -d 4096 -r 2 -o csv 2>/dev/null | python3 -c "
import csv, sys
for r in csv.DictReader(sys.stdin):
    if r['n_gen'] == '32':
        print(r['avg_ts'])
        break
")
  echo "| $(basename "$m" .gguf) | $rk_ts | $lc_ts | $(ratio "$rk_ts" "$lc_ts") | $kvb |" | tee -a "$out"
done

if [ "$quick" != "--quick" ]; then
  {
  echo
  echo "Perplexity, first 32K tokens of the haystack essays, CTX 2048 (16 chunks), 2 threads:"
  echo
  echo "| model | ringkv ppl | llama.cpp ppl | difference | ringkv s | llama.cpp s |"
  echo "|---|---|---|---|---|---|"
  } | tee -a "$out"
  for m in "${models[@]}"; do
    t0=$(date +%s.%N)
    rk=$(./build/ringkv eval ppl -m "$m" -f .cache/bench/haystack.txt -c 2048 --chunks 16 -t 2 2>/dev/null | awk '/^ppl =/{print $3}')
    t1=$(date +%s.%N)
    lc=$("$lcpp/llama-perplexity" -m "$m" -f .cache/bench/haystack.txt -c 2048 --chunks 16 -t 2 2>&1 | awk '/Final estimate/{for (i=1;i<=NF;i++) if ($i=="PPL") print $(i+2)}')
    t2=$(date +%s.%N)
    diff=$(awk -v a="$rk" -v b="$lc" 'BEGIN{printf "%+.3f%%", 100*(a-b)/b}')
    secs=$(awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN{printf "%.1f | %.1f", b-a, c-b}')
    echo "| $(basename "$m" .gguf) | $rk | $lc | $diff | $secs |" | tee -a "$out"
  done
fi
echo
echo "written to $out"
