#!/usr/bin/env bash
# Runs the main job on embedded defaults: builds tidewatch (installing build packages when
# missing) and runs `tidewatch demo` against an in-process Kafka-protocol broker. No servers.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/install-deps.sh --no-kafka --no-python >&2
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target tidewatch >/dev/null
exec build/tidewatch demo "$@"
