#!/usr/bin/env bash
# Installs what ringkv needs on a fresh Debian machine, fetches the default models and builds.
# Safe to re-run: every step is skipped when already done.
#
#   Debian packages: cmake, a C compiler, pkg-config, PCRE2 (BPE pre-tokenizers), liburing (the
#   KV disk tier's reads in flight at once; optional, detected by CMake), clang and its
#   sanitizer runtime (fuzzing), gnuplot (NIAH heatmaps)
#   PyPI packages (tests' reference implementations): numpy, gguf, tokenizers
#   Models: scripts/fetch-models.sh (SmolLM2-135M-Instruct, Gemma 3 270M) into models/
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

apt_packages=(build-essential cmake pkg-config libpcre2-dev clang libclang-rt-14-dev gnuplot-nox)
optional_packages=(liburing-dev) # the build detects them and works without
missing_packages() {
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}
mapfile -t missing < <(missing_packages "${apt_packages[@]}")
mapfile -t missing_optional < <(missing_packages "${optional_packages[@]}")
if [ ${#missing[@]} -gt 0 ] || [ ${#missing_optional[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq || [ ${#missing[@]} -eq 0 ]
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
  fi
  if [ ${#missing_optional[@]} -gt 0 ]; then
    echo "setup: installing optional Debian packages: ${missing_optional[*]}"
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing_optional[@]}" ||
      echo "setup: warning: could not install ${missing_optional[*]}; building without them"
  fi
fi

if ! python3 -c "import numpy, gguf, tokenizers" 2>/dev/null; then
  echo "setup: installing Python packages for the reference tests"
  python3 -m pip install --quiet -r scripts/requirements.txt
fi

./scripts/fetch-models.sh

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
echo "setup: ok (binary: build/ringkv)"
