#!/usr/bin/env bash
# Installs what ringkv needs on a fresh Debian machine, fetches the default models and builds.
# Safe to re-run: every step is skipped when already done.
#
#   Debian packages: cmake, a C compiler, pkg-config, PCRE2 (BPE pre-tokenizers), liburing (the
#   KV disk tier's reads in flight at once; optional, detected by CMake), clang and its
#   sanitizer runtime (fuzzing), gnuplot (NIAH heatmaps), Open MPI (ring attention across
#   processes and hosts; optional, detected by CMake)
#   PyPI packages (tests' reference implementations): numpy, gguf, tokenizers; openai (the
#   official client the server tests talk through)
#   Models: scripts/fetch-models.sh (SmolLM2-135M-Instruct, Gemma 3 270M) into models/
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

apt_packages=(build-essential cmake pkg-config libpcre2-dev clang libclang-rt-14-dev gnuplot-nox)
# the build detects these and works without them: liburing (KV disk tier); the server's
# libmicrohttpd (HTTP), jansson (JSON) and libsodium (ids, keys, sealed pages); chromium drives
# the web page's test headless (skipped without it); Open MPI (ring attention across processes
# and hosts, `src/dist-mpi`, and its tests)
optional_packages=(liburing-dev libmicrohttpd-dev libjansson-dev libsodium-dev chromium libopenmpi-dev
                   openmpi-bin)
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
  for p in "${missing_optional[@]}"; do # one by one: a package that fails leaves the others
    echo "setup: installing optional Debian package: $p"
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "$p" >/dev/null ||
      echo "setup: warning: could not install $p; building without it"
  done
fi

if ! python3 -c "import numpy, gguf, tokenizers, openai" 2>/dev/null; then
  echo "setup: installing Python packages for the reference tests"
  python3 -m pip install --quiet -r scripts/requirements.txt
fi

./scripts/fetch-models.sh

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
echo "setup: ok (binary: build/ringkv)"
