#!/usr/bin/env bash
# Fuzzing: set up (idempotent), build the libFuzzer targets of test/fuzz with
# clang-22, ASan and UBSan, generate their seed corpora from the test models,
# then run every target for SECONDS each, two at a time.
#   scripts/fuzz.sh [SECONDS]          (default 60)
# Fails (exit 1) on any crash, sanitizer report, leak, timeout (a hang) or
# out-of-memory; prints per target the executions, coverage (libFuzzer's cov
# and ft) and what it found. A failing input is kept as
# FUZZ_BUILD_DIR/fuzz-out/<target>/crash-* (or leak-, timeout-, oom-);
# replay it with `FUZZ_BUILD_DIR/bin/fuzz-<target> FILE`. Fixed, it becomes
# a test of the normal suite (test/fuzz/README.md).
#
# Environment:
#   FUZZ_BUILD_DIR  the instrumented build (default: build-fuzz)
#   FUZZ_TARGETS    which targets (default: "artifact data safetensors onnx onnx-text")
#   FUZZ_PARALLEL   targets run at once (default: 2)
#   FUZZ_TIMEOUT    seconds one input may take before it is a hang (default:
#                   120: the importer's largest legal folds take about a
#                   minute under ASan, 3 s without)
#   FUZZ_RSS_MB     memory limit of a fuzzer process, MB (default: 2048)
#   FUZZ_SEEDS      regenerate the seed corpora: auto (when missing or stale), always
#   FUZZ_KEEP_GOING 1: do not stop at the first finding (libFuzzer's fork mode
#                   with -ignore_crashes/-ignore_timeouts/-ignore_ooms), for
#                   long runs that collect every distinct failure
#   JOBS            build jobs (default: nproc)
#   TOOLS_DIR       a normal build's bin/ whose weipipe-opt compiles the seed
#                   artifacts (default: build/bin, which scripts/test.sh
#                   builds); without one, weipipe-opt is built instrumented
#                   in FUZZ_BUILD_DIR (about 10 minutes more on one core)
#   WEIPIPE_VENV    see setup.sh
# The corpora grow in FUZZ_BUILD_DIR/fuzz-corpus/<target>/ from run to run.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
seconds=${1:-60}
build=${FUZZ_BUILD_DIR:-build-fuzz}
targets=${FUZZ_TARGETS:-"artifact data safetensors onnx onnx-text"}
parallel=${FUZZ_PARALLEL:-2}
timeout=${FUZZ_TIMEOUT:-120}
rss=${FUZZ_RSS_MB:-2048}
jobs=${JOBS:-$(nproc)}
venv=${WEIPIPE_VENV:-$HOME/.cache/weipipe/venv}
log() { printf '[fuzz] %s\n' "$*"; }
start=$SECONDS

bash scripts/setup.sh
clang=/usr/lib/llvm-22/bin/clang
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -G Ninja -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DWEIPIPE_FUZZ=ON \
    -DCMAKE_C_COMPILER="$clang" -DCMAKE_CXX_COMPILER="$clang++" \
    -DWEIPIPE_PYTHON="$venv/bin/python" >/dev/null
fi
tools=${TOOLS_DIR:-build/bin}
build_targets=(weipipe-data weipipe-run)
for t in $targets; do build_targets+=("fuzz-$t"); done
if [ ! -x "$tools/weipipe-opt" ]; then
  log "no weipipe-opt in $tools: building it (instrumented) in $build"
  tools=$build/bin
  build_targets+=(weipipe-opt)
fi
t0=$SECONDS
cmake --build "$build" -j "$jobs" --target "${build_targets[@]}"
log "build: $((SECONDS - t0)) s"

# Sanitizers: stop at the first report, symbolized. OpenBLAS and OpenMP stay
# on one thread (libFuzzer runs one input at a time).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-22/bin/llvm-symbolizer
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# The fuzzers' temporary files: a process that crashes leaves its own behind.
export TMPDIR=$root/$build/fuzz-tmp
[[ $build = /* ]] && TMPDIR=$build/fuzz-tmp
rm -rf "$TMPDIR" && mkdir -p "$TMPDIR"

seeds=$build/fuzz-seeds
# Regenerated when missing or older than a tool that makes them (a new
# artifact format makes old seed artifacts worthless).
fresh=1
for f in "$build/bin/weipipe-data" "$build/bin/weipipe-run" "$tools/weipipe-opt" \
    test/fuzz/make_seeds.py; do
  [ -e "$f" ] && [ "$f" -nt "$seeds/.done" ] && fresh=0
done
[ -f "$seeds/.done" ] || fresh=0
if [ "${FUZZ_SEEDS:-auto}" = always ] || [ $fresh = 0 ]; then
  t0=$SECONDS
  opt_arg=()
  [ -x "$tools/weipipe-opt" ] && opt_arg=(--weipipe-opt "$tools/weipipe-opt")
  # The tools run instrumented here: their leaks are not the fuzzers' (and
  # see allow_user_poisoning in scripts/sanitize.sh).
  ASAN_OPTIONS=detect_leaks=0:allow_user_poisoning=0 "$venv/bin/python" test/fuzz/make_seeds.py "$seeds" \
    --weipipe-data "$build/bin/weipipe-data" --weipipe-run "$build/bin/weipipe-run" \
    "${opt_arg[@]}"
  touch "$seeds/.done"
  log "seeds: $((SECONDS - t0)) s"
fi
export WEIPIPE_FUZZ_WEIGHTS=$root/$seeds/weights
[[ $seeds = /* ]] && export WEIPIPE_FUZZ_WEIGHTS=$seeds/weights

# The largest input a target's mutations may grow to: its largest seed, and
# at least this.
declare -A min_len=([artifact]=65536 [data]=16384 [safetensors]=16384
                    [onnx]=65536 [onnx-text]=16384)

status=0
# Fuzzing, FUZZ_PARALLEL targets at a time.
fuzz_one() {
  local t=$1 corpus=$build/fuzz-corpus/$1 out=$build/fuzz-out/$1
  mkdir -p "$corpus" "$out"
  rm -f "$out"/crash-* "$out"/leak-* "$out"/timeout-* "$out"/oom-* "$out"/slow-unit-*
  local len=${min_len[$t]} biggest
  biggest=$(find "$seeds/$t" "$corpus" -type f -printf '%s\n' | sort -n | tail -n 1)
  ((${biggest:-0} > len)) && len=$biggest
  local rc=0 keep=()
  [ "${FUZZ_KEEP_GOING:-0}" = 1 ] &&
    keep=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  "$build/bin/fuzz-$t" "$corpus" "$seeds/$t" -max_total_time="$seconds" \
    -timeout="$timeout" -rss_limit_mb="$rss" -max_len="$len" "${keep[@]}" \
    -print_final_stats=1 -report_slow_units=$((timeout + 1)) \
    -artifact_prefix="$out/" >"$build/fuzz-$t.log" 2>&1 || rc=$?
  echo "$rc" >"$out.rc"
}
names=()
for t in $targets; do
  rm -f "$build/fuzz-out/$t.rc"
  fuzz_one "$t" &
  names+=("$t")
  while (($(jobs -rp | wc -l) >= parallel)); do wait -n || true; done
done
wait
rcs=()
for t in "${names[@]}"; do rcs+=("$(cat "$build/fuzz-out/$t.rc" 2>/dev/null || echo '?')"); done

printf '%-12s %10s %8s %8s %8s  %s\n' target execs exec/s cov ft result
for i in "${!names[@]}"; do
  t=${names[$i]} l=$build/fuzz-${names[$i]}.log
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$l" 2>/dev/null | tail -n 1)
  # Fork mode prints no final stats: its last "#N: cov: ..." line.
  [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\):\? .*cov: .*/\1/p' "$l" 2>/dev/null | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$l" 2>/dev/null | tail -n 1)
  [ -n "$rate" ] || [ -z "$execs" ] || rate=$((execs / seconds))
  covft=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$l" 2>/dev/null | tail -n 1 || true)
  cov=$(awk '{print $2}' <<<"$covft") ft=$(awk '{print $4}' <<<"$covft")
  found=$(find "$build/fuzz-out/$t" -type f | sort | head -n 1)
  nfound=$(find "$build/fuzz-out/$t" -type f | wc -l)
  if [ "${rcs[$i]}" = 0 ] && [ -z "$found" ]; then
    result="ok, no crash"
  else
    result="FAILED (exit ${rcs[$i]}, $nfound inputs): ${found:-see $l}${found:+ ...}"
    status=1
  fi
  printf '%-12s %10s %8s %8s %8s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" \
    "${ft:-?}" "$result"
done
for i in "${!names[@]}"; do
  if [ "${rcs[$i]}" != 0 ]; then
    log "${names[$i]}: the end of $build/fuzz-${names[$i]}.log:"
    grep -v -E '^#[0-9]+ +(NEW|REDUCE|pulse|RELOAD)|^\s+NEW_FUNC|# Uses: ' \
      "$build/fuzz-${names[$i]}.log" | tail -n 40 || true
    log "reproduce: $build/bin/fuzz-${names[$i]} FILE (with WEIPIPE_FUZZ_WEIGHTS=$WEIPIPE_FUZZ_WEIGHTS for artifact)"
  fi
done
rm -rf "$TMPDIR"
log "total: $((SECONDS - start)) s"
exit $status
