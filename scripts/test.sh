#!/usr/bin/env bash
# The test command: set up (idempotent), configure, build, run every test with ctest.
#   scripts/test.sh [extra ctest args]
# Environment: BUILD_DIR (default: build), JOBS (default: nproc), WEIPIPE_VENV (see setup.sh),
# FUZZ_SECONDS (default: 0, no fuzzing; see below).
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
# FUZZ_SECONDS=N: then every fuzzer for N seconds (scripts/fuzz.sh; its seed
# artifacts compiled with this build's weipipe-opt). Off by default.
if [ "${FUZZ_SECONDS:-0}" != 0 ]; then
  TOOLS_DIR="$build/bin" JOBS="$jobs" bash scripts/fuzz.sh "$FUZZ_SECONDS"
fi
