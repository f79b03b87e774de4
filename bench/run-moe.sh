#!/usr/bin/env bash
# Mixture-of-experts benchmark: ringkv against llama.cpp (bench/build-llama-cpp.sh) in the same
# run, on the same generated MoE GGUF, with 2 threads (or -t N):
#   prompt   pp512 from an empty context
#   decode   tg128 after a short prompt (llama-bench: from an empty context)
#   weights  bytes of weights ringkv's products really read per decoded token (counted as they
#            run: rk_context_weight_stats), next to the size of what a token routes to (attention,
#            router, output, embedding row and n_used of the experts: rk_model_decode_bytes) and
#            to the whole model, with the share of (layer, expert) pairs computed per step; and the
#            bytes one decode step reads from storage after the weights were dropped from memory
#            with readahead off, as the kernel counts them (ringkv bench --cold-step)
# The model is written by tests/python/make_moe_models.py --bench (qwen3moe shape: 12 layers,
# n_embd 768, 32 experts of 512, 4 used; Q4_K gate/up, Q6_K down; random weights, seeded) into
# .cache/bench/ unless -m names another GGUF. Prints a Markdown table and writes it to
# bench/results/<date>-<host>-moe.md.
#   bench/run-moe.sh [-m MODEL] [-t THREADS] [-r REPS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
model=""
threads=2
reps=3
while [ $# -gt 0 ]; do
  case "$1" in
    -m) model=$2; shift 2 ;;
    -t) threads=$2; shift 2 ;;
    -r) reps=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run-moe: unknown option $1" >&2; exit 2 ;;
  esac
done
./bench/build-llama-cpp.sh >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target ringkv-cli bench-membw >/dev/null
lcpp=.cache/llama.cpp/build/bin
mkdir -p .cache/bench bench/results
if [ -z "$model" ]; then
  model=.cache/bench/bench-qwen3moe.gguf
  [ -f "$model" ] || python3 tests/python/make_moe_models.py --bench "$model" >&2
fi

date_tag=$(date -u +%Y-%m-%d)
cpu=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
out="bench/results/${date_tag}-$(hostname | cut -c1-12)-moe.md"
bw=$(./build/bench-membw "$threads" | awk -F, -v t="$threads" '$1==t{print $2}')
file_bytes=$(stat -c %s "$model")
desc=$(./build/ringkv info -m "$model" 2>/dev/null | grep -m1 "experts" || true)

rk=$(./build/ringkv bench -m "$model" -t "$threads" -p 512 -n 128 -r "$reps" --cold-step)
lc=$("$lcpp/llama-bench" -m "$model" -t "$threads" -p 512 -n 128 -r "$reps" -o csv 2>/dev/null)
lc_ts() {
  echo "$lc" | python3 -c "
import csv, sys
for r in csv.DictReader(sys.stdin):
    if r['$1'] == '$2' and (r['n_prompt'] == '0' or r['n_gen'] == '0'):
        print('%.2f' % float(r['avg_ts'])); break
"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a / b; else print "-" }'; }
rk_pp=$(echo "$rk" | awk -F, '$1=="pp512"{print $6}')
rk_tg=$(echo "$rk" | awk -F, '$1=="tg128"{print $6}')
routed=$(echo "$rk" | awk -F, '$1=="tg128"{print $7}')
read_per_tok=$(echo "$rk" | awk -F, '$1=="tg128"{print $10}')
share=$(echo "$rk" | awk -F, '$1=="tg128"{print $11}')
cold_read=$(echo "$rk" | awk -F, '$1=="cold_step"{print $2}')
cold_counted=$(echo "$rk" | awk -F, '$1=="cold_step"{print $3}')
lc_pp=$(lc_ts n_prompt 512)
lc_tg=$(lc_ts n_gen 128)

{
echo "# ringkv vs llama.cpp on a mixture of experts — $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "Machine: $cpu, $(nproc) cores; measured read bandwidth ${bw} GB/s with $threads threads."
echo "Model: $(basename "$model") ($(awk -v b="$file_bytes" 'BEGIN{printf "%.1f", b/1048576}') MiB): $desc"
echo "llama.cpp: llama-cpp-python 0.3.36 sdist (vendor/llama.cpp), GGML_NATIVE=ON; llama-bench -r $reps (mean);"
echo "ringkv bench -r $reps (mean in the ratio, as llama-bench reports)."
echo
echo "| test | threads | ringkv tok/s | llama.cpp tok/s | ratio |"
echo "|---|---|---|---|---|"
echo "| pp512 | $threads | $rk_pp | $lc_pp | $(ratio "$rk_pp" "$lc_pp") |"
echo "| tg128 | $threads | $rk_tg | $lc_tg | $(ratio "$rk_tg" "$lc_tg") |"
echo
echo "Weights per decoded token (ringkv, tg128):"
echo
echo "| read (counted) | routed size (attention, router, output, k experts) | read / routed | one cold step: read from storage (kernel) | storage / counted | whole model file | experts computed | decode GB/s (% of measured) |"
echo "|---|---|---|---|---|---|---|---|"
awk -v r="$read_per_tok" -v s="$routed" -v f="$file_bytes" -v sh="$share" -v ts="$rk_tg" -v bw="$bw" \
    -v cr="$cold_read" -v cc="$cold_counted" 'BEGIN{
  g = r * ts / 1e9
  printf "| %.2f MiB | %.2f MiB | %.3f | %.2f MiB | %.3f | %.1f MiB | %.1f%% | %.1f (%.0f%%) |\n", r/1048576, s/1048576, r/s,
         cr/1048576, cr/cc, f/1048576, 100*sh, g, 100*g/bw }'
echo
echo "One cold step: after 8 tokens, the weights are dropped from memory with readahead off"
echo "(\`ringkv bench --cold-step\`: MADV_PAGEOUT + MADV_RANDOM), one token is decoded, and the kernel's"
echo "read_bytes (/proc/self/io) says how much came from storage: page-granular, independent of ringkv's count."
} | tee "$out"
echo
echo "written to $out"
