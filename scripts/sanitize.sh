#!/usr/bin/env bash
# The whole test suite under AddressSanitizer and UndefinedBehaviorSanitizer:
# set up (idempotent), build everything with -fsanitize=address,undefined in
# its own build directory, run ctest there. Any sanitizer report fails the
# test it happens in (UB is not recoverable, ASan stops at the first error).
#   scripts/sanitize.sh [ctest args]     default: -LE sweep; -LE models: skip the model exports
# The family sweep (label sweep) cannot run under ASan: its driver limits
# each worker's address space (RLIMIT_AS, 8 GiB), and ASan reserves terabytes
# of virtual memory for its shadow ("ReserveShadowMemoryRange failed").
# Environment: ASAN_BUILD_DIR (default: build-asan), JOBS (default: nproc),
# CC/CXX (default: gcc/g++), WEIPIPE_VENV (see setup.sh).
#
# Sanitizer options (each one a documented need, not a silenced finding):
#   allow_user_poisoning=0  LLVM's BumpPtrAllocator (an inline template) poisons
#       fresh slabs when compiled with ASan and unpoisons what it hands out;
#       the Debian MLIR/LLVM libraries are not instrumented, so a slab the
#       instrumented copy poisoned and an uninstrumented copy allocates from
#       reads as use-after-poison inside mlir::Dialect::addType.
#   abort_on_error=1        see below.
#   detect_leaks=1          kept on: LLVM's intentional leaks (ManagedStatic,
#       cl::opt, the global dialect registry) stay reachable from globals.
# Python, OpenBLAS, libgomp, protobuf and ONNX are not instrumented; ASan
# intercepts their allocations, which is all it needs from them.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/setup.sh
build=${ASAN_BUILD_DIR:-build-asan}
jobs=${JOBS:-$(nproc)}
venv=${WEIPIPE_VENV:-$HOME/.cache/weipipe/venv}
flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-sanitize=vptr"
flags+=" -fno-omit-frame-pointer -g1"
start=$SECONDS
# -O1: the build is half as long as at -O3, and the tests barely slower.
cmake -G Ninja -S . -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_COMPILER="${CC:-gcc}" -DCMAKE_CXX_COMPILER="${CXX:-g++}" \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_C_FLAGS_RELEASE="-O1 -DNDEBUG" -DCMAKE_CXX_FLAGS_RELEASE="-O1 -DNDEBUG" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DWEIPIPE_CUDA=OFF -DWEIPIPE_PYTHON="$venv/bin/python" >/dev/null
cmake --build "$build" -j "$jobs"
echo "[sanitize] build: $((SECONDS - start)) s"
# abort_on_error: a report ends the process with SIGABRT, which `not` in a
# lit test that expects a failure does not accept (an exit code 1 it would).
export ASAN_OPTIONS=${ASAN_OPTIONS:-allow_user_poisoning=0:detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:abort_on_error=1}
cd "$build"
status=0
(($#)) || set -- -LE sweep
ctest -j "$jobs" --output-on-failure "$@" || status=$?
echo "[sanitize] total: $((SECONDS - start)) s"
exit $status
