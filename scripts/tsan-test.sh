#!/bin/sh
# The pipeline's worker threads under ThreadSanitizer (ctest tsan.pipeline): builds
# test_pipeline with -fsanitize=thread in a build directory of its own and runs it.
# usage: scripts/tsan-test.sh SOURCE_DIR BUILD_DIR C_COMPILER
# Exits 77 (ctest: skipped) when the compiler cannot build or run a ThreadSanitizer program.
set -eu
src=$1
bin=$2
cc=$3
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'int main(void) { return 0; }\n' >"$probe/probe.c"
if ! "$cc" -fsanitize=thread "$probe/probe.c" -o "$probe/probe" 2>/dev/null || ! "$probe/probe"; then
    echo "tsan.pipeline: skipped: $cc cannot build or run a ThreadSanitizer program here"
    exit 77
fi
cmake -S "$src" -B "$bin" -DCMAKE_BUILD_TYPE=Debug -DWERROR=ON -DSANITIZE=thread \
    -DCMAKE_C_COMPILER="$cc" >/dev/null
cmake --build "$bin" -j2 --target test_pipeline
# A reported race fails the test even when every assertion held.
TSAN_OPTIONS="halt_on_error=1 ${TSAN_OPTIONS:-}" "$bin/tests/test_pipeline"
