#!/usr/bin/env bash
# NIAH and passkey grids of several KV codecs side by side (issue: "tq3.5 scores the same grids
# as f16; report tq3, tq2.5, q4, q8 too"). For each codec, `ringkv eval niah` runs the classic
# needle (the San Francisco sandwich in the essays) and, with --passkey, RULER's pass-key in
# filler text, over the same lengths and depths; each grid's results.csv and heatmap.png are
# copied to OUT, and a Markdown table (OUT/grids.md) puts every codec's cells, its score, the
# cells f16 gets right that it misses, and its KV bytes per token side by side.
#   bench/run-niah-grids.sh [-m MODEL] [--codecs "f16 tq3.5 q8 q4 tq3 tq2.5"] [--lengths 1k,2k,4k,8k]
#                           [--depths 0,25,50,75,100] [--out DIR] [--no-build]
# f16 comes first: it is the reference the others are compared with. SmolLM2 at 1k-8k takes
# about 6 minutes per codec and grid on this 2-core machine.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
model=models/SmolLM2-135M-Instruct.Q4_1.gguf codecs="f16 tq3.5 q8 q4 tq3 tq2.5"
lengths=1k,2k,4k,8k depths=0,25,50,75,100 out=bench/results/niah-$(date -u +%Y-%m-%d) build=1
while [ $# -gt 0 ]; do
  case "$1" in
    -m) model=${2:?}; shift ;;
    --codecs) codecs=${2:?}; shift ;;
    --lengths) lengths=${2:?}; shift ;;
    --depths) depths=${2:?}; shift ;;
    --out) out=${2:?}; shift ;;
    --no-build) build=0 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run-niah-grids: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ -f "$model" ] || { echo "run-niah-grids: no $model (run scripts/setup.sh)" >&2; exit 2; }
if [ "$build" = 1 ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j"$(nproc)" --target ringkv-cli >/dev/null
fi
mkdir -p "$out"
name=$(basename "$model" .gguf | cut -d- -f1 | tr 'A-Z' 'a-z')
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for grid in niah passkey; do
  flag=()
  [ "$grid" = passkey ] && flag=(--passkey)
  for codec in $codecs; do
    ./build/ringkv eval niah -m "$model" "${flag[@]}" --lengths "$lengths" --depths "$depths" --kv-codec "$codec" \
      -t "$(nproc)" --out "$tmp/$grid-$codec" > "$tmp/$grid-$codec.json"
    cp "$tmp/$grid-$codec/results.csv" "$out/$name-$grid-$codec.csv"
    [ -f "$tmp/$grid-$codec/heatmap.png" ] && cp "$tmp/$grid-$codec/heatmap.png" "$out/$name-$grid-$codec.png"
    tail -1 "$tmp/$grid-$codec.json" > "$out/$name-$grid-$codec.json"
  done
done
python3 bench/niah_table.py "$out" "$name" $codecs > "$out/grids.md"
cat "$out/grids.md"
