#!/usr/bin/env bash
# The test command: sets up (idempotent), builds, runs every CTest test, then rebuilds with
# AddressSanitizer + UndefinedBehaviorSanitizer and runs the tests again.
#   ./scripts/test.sh            both
#   ./scripts/test.sh --fast     the release build only
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
./scripts/setup.sh
jobs=$(nproc)
ctest --test-dir build --output-on-failure -j"$jobs"
if [ "${1:-}" != "--fast" ]; then
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DRINGKV_SANITIZE=ON >/dev/null
  cmake --build build-asan -j"$jobs"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j"$jobs" -LE slow
fi
echo "test: all passed"
