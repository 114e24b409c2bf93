#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine: installs what is missing (packages,
# Kafka broker jars, Python test dependencies), builds with warnings as errors, runs every
# test under ctest (unit tests, the demo, integration tests against a real Kafka broker and a
# real redis-server), then the unit tests and the demo again under ASan + UBSan.
#
# usage: scripts/test.sh            (SKIP_SANITIZERS=1 leaves out the sanitizer pass)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
JOBS="$(nproc)"

scripts/install-deps.sh

echo "== build (RelWithDebInfo, -Werror)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWERROR=ON >/dev/null
cmake --build build -j"$JOBS"

echo "== tests"
ctest --test-dir build --output-on-failure -j"$JOBS"

if [[ "${SKIP_SANITIZERS:-0}" != "1" ]]; then
  echo "== unit tests and demo under ASan + UBSan"
  TW_INTEGRATION=0 cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DWERROR=ON \
    -DSANITIZE=address,undefined >/dev/null
  cmake --build build-asan -j"$JOBS"
  # deploy and dockerfile checks do not exercise our code under the sanitizers
  ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan --output-on-failure -j"$JOBS" \
    -E "^(deploy|dockerfile)$"
fi
