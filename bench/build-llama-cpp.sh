#!/usr/bin/env bash
# Builds the llama.cpp anchor for the benchmarks from a package registry: the llama-cpp-python
# 0.3.36 source distribution on PyPI carries llama.cpp under vendor/llama.cpp. Produces
# llama-bench, llama-perplexity, llama-server and llama-completion (or llama-cli, whichever exists)
# under .cache/llama.cpp/build/bin. CPU only, native SIMD, like a user's own build.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache="$root/.cache/llama.cpp"
mkdir -p "$cache"
if [ -x "$cache/build/bin/llama-bench" ] && [ -x "$cache/build/bin/llama-perplexity" ] && \
   [ -x "$cache/build/bin/llama-server" ]; then
  echo "build-llama-cpp: cached in $cache/build/bin"
  exit 0
fi
if [ ! -d "$cache/src" ]; then
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --no-binary :all: --dest "$tmp" llama-cpp-python==0.3.36
  tar -xzf "$tmp"/llama_cpp_python-0.3.36.tar.gz -C "$tmp"
  mv "$tmp"/llama_cpp_python-0.3.36/vendor/llama.cpp "$cache/src"
  rm -rf "$tmp"
fi
cmake -S "$cache/src" -B "$cache/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
  -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON \
  -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_TOOLS=ON >/dev/null
# llama-server without its web page (no npm build, no download): the benchmarks only use the API.
targets=(llama-bench llama-perplexity llama-server)
for t in llama-completion llama-cli; do
  if grep -q "^$t:" "$cache/build/Makefile" 2>/dev/null || \
     cmake --build "$cache/build" --target help 2>/dev/null | grep -q " $t\$"; then
    targets+=("$t")
    break
  fi
done
cmake --build "$cache/build" -j"${JOBS:-$(nproc)}" --target "${targets[@]}"
echo "build-llama-cpp: built ${targets[*]} in $cache/build/bin"
