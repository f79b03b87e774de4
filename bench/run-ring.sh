#!/usr/bin/env bash
# Ring attention benchmark (issue: ring attention over MPI): prefill of a long prompt on one
# process with one thread against N ranks with one thread each (mpirun --ring), and the KV bytes
# each rank holds. Prints a Markdown table, writes it to bench/results/<date>-<host>-ring.md and
# plots prefill time and per-rank KV memory against N (PNG, gnuplot) next to it.
#   bench/run-ring.sh [-m MODEL] [-n TOKENS] [--ranks "2 3 4"] [--tag NAME] [--no-budgets]
# --tag names the results file <date>-<host>-ring-NAME.md; --no-budgets skips the second part (a
# context beyond one process's KV budgets on 4 ranks without a disk tier).
# On a 2-core machine only N <= 2 timings mean anything (more ranks share the cores); the memory
# columns hold for any N. "network wait in attention" is the time a rank was blocked on a KV block
# or the decode partials: the communication not hidden behind attention.
set -euo pipefail
cd "$(dirname "$0")/.."
model=models/gemma-3-270m-q4_k_m.gguf
tokens=16384
ranks="2"
tag=""
budgets_part=yes
while [ $# -gt 0 ]; do
  case "$1" in
    -m) model=$2; shift 2 ;;
    -n) tokens=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --tag) tag="-$2"; shift 2 ;;
    --no-budgets) budgets_part=no; shift ;;
    *) echo "usage: bench/run-ring.sh [-m MODEL] [-n TOKENS] [--ranks \"2 3 4\"] [--tag NAME] [--no-budgets]" >&2
       exit 2 ;;
  esac
done
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cmake --build build -j"$(nproc)" --target ringkv-cli >/dev/null
mkdir -p .cache/bench bench/results
prompt=.cache/bench/ring-prompt.txt
# the essays, cut to about `tokens` tokens (English prose: about 4 bytes per token)
head -c $((tokens * 4)) < <(cat ../shared/testdata/haystack/pg-essays/*.txt) > "$prompt"
ctx=$((tokens * 5 / 4 + 512))
date_tag=$(date +%Y-%m-%d)
out="bench/results/${date_tag}-$(hostname | cut -c1-12)-ring${tag}.md"
table=$(mktemp)
run_one() { # N: prints "N,prefill_s,prompt_tokens,kv_mib_max,kv_mib_sum,attn_wait_max,sent_mib,attn_s_max,wait_all_max"
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
if n == 1:  # kv, attention s, wait in attention, wait in all, sent
    ranks = [(float(re.search(r"([\d.]+) MiB in use", text).group(1)), 0.0, 0.0, 0.0, 0.0)]
else:
    ranks = [tuple(map(float, r)) for r in re.findall(
        r"^ring rank \d+/\d+: KV ([\d.]+) MiB.*?attention ([\d.]+) s \| network wait ([\d.]+) s in attention, "
        r"([\d.]+) s in all \| sent ([\d.]+) MiB", text, re.M)]
print(f"{n},{m.group(2)},{m.group(1)},{max(r[0] for r in ranks)},{sum(r[0] for r in ranks)},"
      f"{max(r[2] for r in ranks)},{sum(r[4] for r in ranks)},{max(r[1] for r in ranks)},{max(r[3] for r in ranks)}")
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
  echo "round); $(nproc) cores. Command: bench/run-ring.sh -m $model -n $tokens --ranks \"$ranks\"${tag:+ --tag ${tag#-}}."
  echo "\"Network wait in attention\" is the communication not hidden behind attention (a rank blocked on a KV"
  echo "block or the decode partials); \"in all\" adds start-up, agreement and waiting for a slower rank."
  echo
  echo "| ranks | prefill s | vs 1 rank | KV MiB, largest rank | vs 1/N of one process | KV MiB, all ranks | attention s, busiest rank | network wait in attention s, longest | its share of prefill | network wait in all s, longest | MiB sent, all ranks |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  awk -F, -v b="$base" -v kv="$base_kv" '{printf "| %d | %.1f | %.2fx | %.1f | %.2fx | %.1f | %.1f | %.2f | %.1f%% | %.2f | %.0f |\n",
      $1, $2, $2 / b, $4, $4 / (kv / $1), $5, $8, $6, 100 * $6 / $2, $9, $7}' "$table"
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
[ "$budgets_part" = yes ] || exit 0

# A context beyond one rank's KV budgets (--kv-hot + --kv-warm): one process needs a disk tier,
# four ranks hold it in the same budgets in RAM. The text must be the same.
small=models/SmolLM2-135M-Instruct.Q4_1.gguf
budgets=(--kv-hot 32M --kv-warm 24M)
head -c 14000 ../shared/testdata/haystack/pg-essays/avg.txt > .cache/bench/ring-budget-prompt.txt
common=(run -m "$small" -f .cache/bench/ring-budget-prompt.txt -n 30 --temp 0 -c 4096 "${budgets[@]}")
disk_dir=$(mktemp -d)
nodisk_log=$(mktemp); disk_log=$(mktemp); ring_log=$(mktemp); disk_txt=$(mktemp); ring_txt=$(mktemp)
./build/ringkv "${common[@]}" -t 2 > /dev/null 2> "$nodisk_log" || true
./build/ringkv "${common[@]}" -t 2 --kv-disk "$disk_dir" > "$disk_txt" 2> "$disk_log"
mpirun -np 4 --oversubscribe ./build/ringkv "${common[@]}" -t 1 --ring --verbose 2> "$ring_log" | tr -d '\r' > "$ring_txt"
same=no
if [ "$(cat "$disk_txt")" = "$(cat "$ring_txt")" ]; then same=yes; fi
python3 - "$nodisk_log" "$disk_log" "$ring_log" "$same" <<'PY' | tee -a "$out"
import re, sys
nodisk, disk, ring = (open(p).read() for p in sys.argv[1:4])
def prompt(t):
    m = re.search(r"prompt: (\d+) tokens in ([\d.]+) s.*?generation: (\d+) tokens in ([\d.]+) s", t)
    return m.groups() if m else ("?", "?", "?", "?")
refused = re.search(r"run: (kv: .*)", nodisk)
tiers = re.search(r"of which from disk ([\d.]+) MiB", disk)
kv = [float(k) for k in re.findall(r"^ring rank \d+/\d+: KV ([\d.]+) MiB", ring, re.M)]
d, r = prompt(disk), prompt(ring)
print("\n## Beyond one rank's KV budgets\n")
print("SmolLM2-135M Q4_1, -c 4096, a %s-token prompt and 30 greedy tokens, KV f16, `--kv-hot 32M --kv-warm 24M` on" % d[0])
print("every process (one process needs 101 MiB of KV at this context).\n")
print("| run | result | prefill s | 30 tokens s | KV read from disk MiB | KV MiB per rank |")
print("|---|---|---|---|---|---|")
print("| 1 process, no disk tier | refused: %s | | | | |" % (refused.group(1) if refused else "ran (unexpected)"))
print("| 1 process, --kv-disk, 2 threads | ran | %s | %s | %s | |" % (d[1], d[3], tiers.group(1) if tiers else "?"))
print("| 4 ranks, no disk tier, 1 thread each | ran | %s | %s | 0 | %s |" % (r[1], r[3], " / ".join("%.1f" % k for k in kv)))
print("\nSame text from the 4 ranks as from the process with a disk tier: **%s**." % sys.argv[4])
PY
rm -rf "$disk_dir" "$nodisk_log" "$disk_log" "$ring_log" "$disk_txt" "$ring_txt"
