#!/usr/bin/env bash
# The full fault campaign in one command (tests/RELIABILITY.md): builds the release binary when
# needed, then runs every scenario of tests/integration/test_faults.py at full size against a
# real broker and real redis-servers, appending one JSON line of figures per test to a report.
#
# usage: scripts/faults-full.sh [report.jsonl]     (default: build/faults-full.jsonl)
# env:   TW_FAULTS_KILLS (40), TW_FAULTS_RECORDS (40000), TW_FAULTS_FAULT_RECORDS (6000),
#        TW_FAULTS_SEED (12), BUILD_DIR (build), TW_TIMEOUT_SCALE (sanitizer builds: 3)
# Needs what the integration tests need (scripts/install-deps.sh, scripts/fetch-kafka.sh).
# About 3.3 s per kill plus the other scenarios: 5-6 minutes at the defaults on 2 cores.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BUILD_DIR="${BUILD_DIR:-build}"
REPORT="$(realpath -m "${1:-$BUILD_DIR/faults-full.jsonl}")"

if [[ ! -x "$BUILD_DIR/tidewatch" || -n "$(find common worker CMakeLists.txt -newer \
      "$BUILD_DIR/tidewatch" -print -quit)" ]]; then
  echo "== build ($BUILD_DIR, RelWithDebInfo)"
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWERROR=ON >/dev/null
  cmake --build "$BUILD_DIR" -j"$(nproc)" --target tidewatch
fi

mkdir -p "$(dirname "$REPORT")"
export TIDEWATCH_BIN="$(realpath "$BUILD_DIR/tidewatch")" TW_SOURCE_DIR="$ROOT" TW_FAULTS_REPORT="$REPORT"
export TW_FAULTS_KILLS="${TW_FAULTS_KILLS:-40}" TW_FAULTS_RECORDS="${TW_FAULTS_RECORDS:-40000}"
export TW_FAULTS_FAULT_RECORDS="${TW_FAULTS_FAULT_RECORDS:-6000}"
echo "== fault campaign: $TW_FAULTS_KILLS kills, $TW_FAULTS_RECORDS posts," \
     "seed ${TW_FAULTS_SEED:-12}; figures appended to $REPORT"
python3 -m pytest -q -s -p no:cacheprovider tests/integration/test_faults.py
