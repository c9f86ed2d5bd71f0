#!/usr/bin/env bash
# The test command: set up (idempotent), configure, build, run every test with ctest.
#   scripts/test.sh [extra ctest args]
# Environment: BUILD_DIR (default: build), JOBS (default: nproc), WEIPIPE_VENV (see setup.sh),
# FUZZ_SECONDS (default: 60; 0 skips the fuzzers; see below).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/setup.sh
build=${BUILD_DIR:-build}
jobs=${JOBS:-$(nproc)}
venv=${WEIPIPE_VENV:-$HOME/.cache/weipipe/venv}
cmake -G Ninja -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DWEIPIPE_PYTHON="$venv/bin/python"
cmake --build "$build" -j "$jobs"
(cd "$build" && ctest -j "$jobs" --output-on-failure "$@")
# Then every fuzzer for FUZZ_SECONDS (scripts/fuzz.sh; its seed artifacts
# compiled with this build's weipipe-opt), all five at once: about 4 minutes
# with the instrumented build. Any crash, sanitizer report, hang or leak fails.
fuzz_seconds=${FUZZ_SECONDS:-60}
if [ "$fuzz_seconds" != 0 ]; then
  TOOLS_DIR="$build/bin" JOBS="$jobs" FUZZ_PARALLEL="${FUZZ_PARALLEL:-5}" \
    bash scripts/fuzz.sh "$fuzz_seconds"
fi
