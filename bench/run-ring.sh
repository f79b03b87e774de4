#!/usr/bin/env bash
# Ring attention benchmark (issue: ring attention over MPI): prefill of a long prompt on one
# process with one thread against N ranks with one thread each (mpirun --ring), and the KV bytes
# each rank holds. Prints a Markdown table, writes it to bench/results/<date>-<host>-ring.md and
# plots prefill time and per-rank KV memory against N (PNG, gnuplot) next to it.
#   bench/run-ring.sh [-m MODEL] [-n TOKENS] [--ranks "2 3 4"]
# On a 2-core machine only N <= 2 timings mean anything (more ranks share the cores); the memory
# columns hold for any N. "network wait" is the time a rank was blocked on the transport: the
# communication not hidden behind attention.
set -euo pipefail
cd "$(dirname "$0")/.."
model=models/gemma-3-270m-q4_k_m.gguf
tokens=16384
ranks="2"
while [ $# -gt 0 ]; do
  case "$1" in
    -m) model=$2; shift 2 ;;
    -n) tokens=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    *) echo "usage: bench/run-ring.sh [-m MODEL] [-n TOKENS] [--ranks \"2 3 4\"]" >&2; exit 2 ;;
  esac
done
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cmake --build build -j"$(nproc)" --target ringkv-cli >/dev/null
mkdir -p .cache/bench bench/results
prompt=.cache/bench/ring-prompt.txt
# the essays, cut to about `tokens` tokens (English prose: about 4 bytes per token)
cat ../shared/testdata/haystack/pg-essays/*.txt | head -c $((tokens * 4)) > "$prompt"
ctx=$((tokens * 5 / 4 + 512))
date_tag=$(date +%Y-%m-%d)
out="bench/results/${date_tag}-$(hostname | cut -c1-12)-ring.md"
table=$(mktemp)
run_one() { # N: prints "N,prefill_s,prompt_tokens,kv_mib_max,kv_mib_sum,wait_max,sent_mib"
  local n=$1 log
  log=$(mktemp)
  if [ "$n" = 1 ]; then
    ./build/ringkv run -m "$model" -f "$prompt" -n 1 --temp 0 -t 1 -c "$ctx" 2> "$log" >/dev/null
  else
    mpirun -np "$n" --oversubscribe ./build/ringkv run -m "$model" -f "$prompt" -n 1 --temp 0 -t 1 -c "$ctx" \
      --ring --verbose 2> "$log" >/dev/null
  fi
  python3 - "$n" "$log" <<'PY'
import re, sys
n, text = int(sys.argv[1]), open(sys.argv[2]).read()
m = re.search(r"prompt: (\d+) tokens in ([\d.]+) s", text)
if not m:
    sys.exit(f"bench/run-ring.sh: the run on {n} rank(s) failed:\n{text[-2000:]}")
if n == 1:
    ranks = [(float(re.search(r"([\d.]+) MiB in use", text).group(1)), 0.0, 0.0)]
else:
    ranks = [tuple(map(float, r)) for r in re.findall(
        r"^ring rank \d+/\d+: KV ([\d.]+) MiB.*?network wait ([\d.]+) s \| sent ([\d.]+) MiB", text, re.M)]
print(f"{n},{m.group(2)},{m.group(1)},{max(r[0] for r in ranks)},{sum(r[0] for r in ranks)},"
      f"{max(r[1] for r in ranks)},{sum(r[2] for r in ranks)}")
PY
  rm -f "$log"
}
{
  run_one 1
  for n in $ranks; do run_one "$n"; done
} > "$table"
base=$(awk -F, 'NR==1 {print $2}' "$table")
base_kv=$(awk -F, 'NR==1 {print $4}' "$table")
{
  echo "# Ring attention: prefill across ranks ($(date -u +%Y-%m-%d), $(hostname))"
  echo
  echo "Model $(basename "$model"), a $(awk -F, 'NR==1 {print $3}' "$table")-token prompt (essays from ../shared/testdata),"
  echo "KV f16, one thread per rank, the default micro-batch (a rank evaluates up to 4096 tokens per prefill"
  echo "round); $(nproc) cores. Command: bench/run-ring.sh -n $tokens --ranks \"$ranks\". \"network wait\" is the"
  echo "communication not hidden behind attention (time a rank was blocked on the transport)."
  echo
  echo "| ranks | prefill s | vs 1 rank | KV MiB, largest rank | vs 1/N of one process | KV MiB, all ranks | longest network wait s | wait share of prefill | MiB sent, all ranks |"
  echo "|---|---|---|---|---|---|---|---|---|"
  awk -F, -v b="$base" -v kv="$base_kv" '{printf "| %d | %.1f | %.2fx | %.1f | %.2fx | %.1f | %.2f | %.1f%% | %.0f |\n",
      $1, $2, $2 / b, $4, $4 / (kv / $1), $5, $6, 100 * $6 / $2, $7}' "$table"
} | tee "$out"
if command -v gnuplot >/dev/null; then
  gnuplot <<GP
set terminal png size 900,400
set output "${out%.md}.png"
set datafile separator ","
set multiplot layout 1,2
set xlabel "ranks"; set ylabel "prefill seconds"; set xtics 1
plot "$table" using 1:2 with linespoints title "prefill"
set ylabel "KV MiB"
plot "$table" using 1:4 with linespoints title "largest rank", "$table" using 1:(\$5/\$1) with linespoints title "mean per rank"
unset multiplot
GP
  echo "plot: ${out%.md}.png"
fi
rm -f "$table"
