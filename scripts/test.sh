#!/usr/bin/env bash
# The test command: set up (idempotent), configure, build, run every test with ctest.
#   scripts/test.sh [extra ctest args]
# Environment: BUILD_DIR (default: build), JOBS (default: nproc), WEIPIPE_VENV (see setup.sh).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/setup.sh
build=${BUILD_DIR:-build}
jobs=${JOBS:-$(nproc)}
venv=${WEIPIPE_VENV:-$HOME/.cache/weipipe/venv}
cmake -G Ninja -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DWEIPIPE_PYTHON="$venv/bin/python"
cmake --build "$build" -j "$jobs"
cd "$build"
ctest -j "$jobs" --output-on-failure "$@"
