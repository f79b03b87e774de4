#!/usr/bin/env bash
# Peak memory of a long prompt: ringkv with each KV codec against llama.cpp (llama-completion,
# flash attention) with q4_0 and f16 KV, same GGUF file, 2 threads. The prompt is the haystack
# essays cut to about DEPTH - 64 tokens by the model's own tokenizer; 16 tokens are generated;
# peak RSS of the whole process comes from /usr/bin/time. Appends a Markdown table to
# bench/results/<date>-<host>-long.md.
#   bench/run-memory.sh MODEL DEPTH [CODEC,CODEC,...] [LLAMA_KV,...]   (default f16,tq3.5 q4_0,f16)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
model=${1:?usage: bench/run-memory.sh MODEL DEPTH [CODECS]}
mem_depth=${2:?usage: bench/run-memory.sh MODEL DEPTH [CODECS]}
IFS=, read -r -a codec_list <<< "${3:-f16,tq3.5}"
IFS=, read -r -a llama_list <<< "${4:-q4_0,f16}"
./bench/build-llama-cpp.sh >/dev/null
cmake --build build -j"$(nproc)" --target ringkv-cli >/dev/null
lcpp=.cache/llama.cpp/build/bin
mkdir -p .cache/bench bench/results
cat ../shared/testdata/haystack/pg-essays/*.txt > .cache/bench/haystack.txt
name=$(basename "$model" .gguf)
out="bench/results/$(date -u +%Y-%m-%d)-$(hostname | cut -c1-12)-long.md"
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
echo "$name peak RSS, a $(./build/ringkv tokenize -m "$model" --no-bos < "$prompt" | wc -w)-token prompt + 16 tokens, -c $mem_depth, 2 threads:"
echo
echo "| engine | KV | peak RSS MiB |"
echo "|---|---|---|"
} | tee -a "$out"
for kv in "${llama_list[@]}"; do
  kb=$(rss "$lcpp/llama-completion" -m "$model" -f "$prompt" -n 16 -c "$mem_depth" -t 2 -fa on -ctk "$kv" -ctv "$kv" -no-cnv --no-warmup --temp 0)
  echo "| llama.cpp | $kv (FA) | $((kb / 1024)) |" | tee -a "$out"
done
for c in "${codec_list[@]}"; do
  kb=$(rss ./build/ringkv run -m "$model" -f "$prompt" -n 16 -c "$mem_depth" -t 2 --kv-codec "$c" --temp 0)
  echo "| ringkv | $c | $((kb / 1024)) |" | tee -a "$out"
done
echo "written to $out"
