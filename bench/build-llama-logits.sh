#!/usr/bin/env bash
# Builds bench/llama-logits.c (llama.cpp's logits for a token list, in `ringkv eval logits`'s
# format) against the llama.cpp that bench/build-llama-cpp.sh built under .cache/llama.cpp,
# into .cache/llama.cpp/build/bin/llama-logits, with an rpath to the libraries beside it.
#
#     bench/build-llama-logits.sh
#     .cache/llama.cpp/build/bin/llama-logits -m MODEL.gguf --tokens 1,2,3 --out OUT.f32
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache="$root/.cache/llama.cpp"
bin="$cache/build/bin"
if [ ! -f "$bin/libllama.so" ] || [ ! -f "$cache/src/include/llama.h" ]; then
  echo "build-llama-logits: no llama.cpp build in $cache; run bench/build-llama-cpp.sh first" >&2
  exit 1
fi
"${CC:-cc}" -std=c11 -O2 -Wall -Wextra -D_POSIX_C_SOURCE=200809L \
  -I"$cache/src/include" -I"$cache/src/ggml/include" \
  "$root/bench/llama-logits.c" -o "$bin/llama-logits" \
  -L"$bin" -lllama -lggml -lggml-base -Wl,-rpath,"$bin"
echo "build-llama-logits: built $bin/llama-logits"
