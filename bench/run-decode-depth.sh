#!/usr/bin/env bash
# Decode at depth with the tiered KV cache: `ringkv bench decode` for every depth x codec x tier
# setting, next to this machine's measured read bandwidth (bench-membw). Prints a Markdown table
# and appends it to bench/results/<date>-<host>-decode-depth.md.
#
#   bench/run-decode-depth.sh [options] DEPTHS [CODECS] [TIERS...]
#     DEPTHS   comma-separated context depths in tokens, K/M suffixes (e.g. 64K,1M)
#     CODECS   comma-separated KV codecs (default tq3)
#     TIERS    one argument per tier setting (default: ram):
#                ram                      every page in RAM, no tiers
#                "--kv-hot 3G --kv-warm 1G --kv-disk /tmp/rk [--kv-disk-direct]"   any ringkv
#                                         --kv-* flags; a --kv-disk directory is created
#   options:
#     -m MODEL        GGUF model (default models/SmolLM2-135M-Instruct.Q4_1.gguf)
#     -t THREADS      compute threads (default: all cores)
#     -n STEPS        decode steps timed per run (default 8)
#     --fill KIND     text or replicate (default: ringkv's choice, text up to 32K, else replicate)
#     --fill-tokens N real prefill before replication (default 4096)
#     --drop-caches   ringkv drops the OS page cache after each fill (sync; echo 1 >
#                     /proc/sys/vm/drop_caches, needs root), so buffered reads of the page files
#                     it just wrote come from the disk; the table says when that was not possible
#     --build DIR     build directory (default build); --no-build: use it as it is
#   e.g. the 1M-token goal: SmolLM2, tq3, 4 GiB of RAM for KV, the rest on disk:
#     bench/run-decode-depth.sh 1M tq3 "--kv-hot 3G --kv-warm 1G --kv-disk /tmp/ringkv-kv"
#   (1M tokens of tq3 SmolLM2 KV are about 4.8 GiB of page files: check the free space.)
#
# Achieved GB/s = (weight bytes + KV page bytes attention read) per token x tokens/s. KV bytes
# read are split by where the page was: hot RAM, warm RAM, or read back from disk (additive).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

model=models/SmolLM2-135M-Instruct.Q4_1.gguf
threads=$(nproc)
steps=8
fill=""
fill_tokens=""
drop=0
build=build
do_build=1
usage() { sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    -m) model=$2; shift 2 ;;
    -t) threads=$2; shift 2 ;;
    -n) steps=$2; shift 2 ;;
    --fill) fill=$2; shift 2 ;;
    --fill-tokens) fill_tokens=$2; shift 2 ;;
    --drop-caches) drop=1; shift ;;
    --build) build=$2; shift 2 ;;
    --no-build) do_build=0; shift ;;
    -h|--help) usage ;;
    -*) echo "unknown option $1" >&2; usage ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || usage
depths=$1
codecs=${2:-tq3}
shift $(( $# >= 2 ? 2 : 1 ))
tiers=("$@")
[ ${#tiers[@]} -gt 0 ] || tiers=(ram)
[ -f "$model" ] || { echo "no such model: $model" >&2; exit 2; }

if [ "$do_build" = 1 ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" -j"$(nproc)" --target ringkv-cli bench-membw >/dev/null
fi
mkdir -p bench/results
out="bench/results/$(date -u +%Y-%m-%d)-$(hostname | cut -c1-12)-decode-depth.md"
cpu=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
mem=$(awk '/MemTotal/{printf "%.0f", $2 / 1048576}' /proc/meminfo)
membw=$("./$build/bench-membw" "$threads" | awk -F, -v t="$threads" '$1==t{print $2}')
name=$(basename "$model" .gguf)

cache_line="The OS page cache was not dropped (pass --drop-caches): buffered reads of the page files written during the fill may come from it; --kv-disk-direct bypasses it."
[ "$drop" = 1 ] && cache_line="ringkv dropped the OS page cache after each fill (\`--drop-caches\`): decoding began with no page file in the page cache, though buffered reads may fill it again during the steps; O_DIRECT always reads the disk (rows marked 'cache kept' could not drop it)."

{
echo
echo "## $name: decode at depth with KV tiers — $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "Machine: $cpu, $(nproc) cores, ${mem} GiB RAM, load average $(cut -d' ' -f1-3 /proc/loadavg);"
echo "measured read bandwidth ${membw} GB/s ($threads threads). \`ringkv bench decode -t $threads -n $steps\`:"
echo "time per decoded token after the fill (one untimed warm-up token first); KV MiB read per token"
echo "by tier (hot RAM + warm RAM + read back from disk = all sealed pages attention read); achieved"
echo "GB/s = (weights + KV bytes read) per second. $cache_line"
echo
echo "| depth | KV | tiers | fill | ms/token | tok/s | KV MiB read/token | hot | warm | disk | GB/s (% of membw) | disk I/O ms/token (hidden) | pages hot/warm/cold | KV RAM MiB | peak RSS MiB |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
} | tee -a "$out"

IFS=, read -r -a depth_list <<< "$depths"
IFS=, read -r -a codec_list <<< "$codecs"
for d in "${depth_list[@]}"; do
  for c in "${codec_list[@]}"; do
    for t in "${tiers[@]}"; do
      flags=()
      [ "$t" = ram ] || read -r -a flags <<< "$t"
      for ((i = 0; i < ${#flags[@]}; i++)); do # the disk tier's directory must exist
        [ "${flags[$i]}" = --kv-disk ] && mkdir -p "${flags[$((i + 1))]}"
      done
      extra=()
      [ -n "$fill" ] && extra+=(--fill "$fill")
      [ -n "$fill_tokens" ] && extra+=(--fill-tokens "$fill_tokens")
      [ "$drop" = 1 ] && extra+=(--drop-caches)
      log=$(mktemp)
      if ! json=$("./$build/ringkv" bench decode -m "$model" -t "$threads" -n "$steps" --depth "$d" \
                    --kv-codec "$c" ${extra[@]+"${extra[@]}"} ${flags[@]+"${flags[@]}"} 2>"$log" | tail -n 1); then
        echo "| $d | $c | $t | failed: $(tail -n 1 "$log") |" | tee -a "$out"
        rm -f "$log"
        continue
      fi
      grep -E "^bench decode: fill|^KV tiers" "$log" >&2 || true
      rm -f "$log"
      echo "$json" | python3 -c "
import json, sys
r = json.loads(sys.stdin.read())
bw = float('$membw') if '$membw' else 0
gbs = r['achieved_gb_per_s']
pct = f' ({100 * gbs / bw:.0f}%)' if bw > 0 else ''
io = r['io_s_per_token'] * 1e3
hidden = '-' if r['io_hidden'] is None else f\"{100 * r['io_hidden']:.0f}%\"
if $drop and not r['page_cache_dropped']:
    hidden += ', cache kept'
if r['disk_direct']:
    hidden += ', O_DIRECT'

kv = r['kv_bytes_per_token_read'] / 1048576
src = '' if r['kv_bytes_source'] == 'counted' else ' (computed)'
print(f\"| {r['depth']} | {r['codec']} | $t | {r['fill']} | {r['ms_per_token']:.1f} | {r['tok_per_s']:.2f} \"
      f\"| {kv:.1f}{src} | {r['hot_mib_per_token']:.1f} | {r['warm_mib_per_token']:.1f} | {r['disk_mib_per_token']:.1f} \"
      f\"| {gbs:.2f}{pct} | {io:.0f} ({hidden}) | {r['pages_hot']}/{r['pages_warm']}/{r['pages_cold']} \"
      f\"| {r['kv_ram_mib']:.0f} | {r['peak_rss_mib']:.0f} |\")
" | tee -a "$out"
    done
  done
done
