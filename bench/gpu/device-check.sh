#!/usr/bin/env bash
# Every check of the CUDA backend that needs a GPU, for a short window of
# GPU time (issue 10). Run it on the GPU machine from the repository root;
# that machine has nvcc, CMake and ninja but no GoogleTest or OpenBLAS, which
# bench/gpu/prepare.sh puts under .gpu-deps/ here, to be carried:
#
#   bench/gpu/prepare.sh                         # here, once
#   device run, carry [".gpu-deps"]:  bash bench/gpu/device-check.sh tests
#   device run, carry [".gpu-deps"]:  bash bench/gpu/device-check.sh bench
#
# `tests` (about 6 minutes on one H100: the build, the CUDA tests, the end to
# end and pipeline checks) and `bench` (about 6 more: the benchmarks, the
# build reused when the machine is still warm) fit the device tool's 10
# minutes a command each; `all` (the default) runs both in one go.
#
# It builds the runtime alone (cmake -S runtime: no MLIR there) for the
# machine's architecture, runs the CUDA tests and the benchmarks
# (bench/gpu/README.md; about 3 minutes of the run), and writes everything to
# $OUT (the device tool's folder; ./gpu-results elsewhere): nvidia-smi.txt,
# one log per step, cuda-tests.xml, bench.md, and summary.txt with each
# step's exit status and seconds. A failed step does not stop the later ones
# unless they need it.
#
# Environment: CUDA_ARCH (default: the GPU's, from nvidia-smi; 90 for H100 and
# H200), JOBS (default: all cores).
set -uo pipefail
part=${1:-all}
case "$part" in
all | tests | bench) ;;
*)
  echo "usage: device-check.sh [all|tests|bench]" >&2
  exit 2
  ;;
esac
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
out=${OUT:-$root/gpu-results}
mkdir -p "$out"
deps="$root/.gpu-deps"
jobs=${JOBS:-$(nproc)}
summary="$out/summary.txt"
: >"$summary"

# step NAME LIMIT_S CMD...: runs CMD under a time limit, logs to NAME.log.
step() {
  local name=$1 limit=$2
  shift 2
  local start rc
  start=$(date +%s)
  timeout "$limit" "$@" >"$out/$name.log" 2>&1
  rc=$?
  printf '%-14s rc=%-3s %4ss  %s\n' "$name" "$rc" "$(($(date +%s) - start))" \
    "$(tail -n 1 "$out/$name.log")" | tee -a "$summary"
  return $rc
}

nvidia-smi >"$out/nvidia-smi.txt" 2>&1
arch=${CUDA_ARCH:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null |
  head -n 1 | tr -d '. ')}
arch=${arch:-90}

cmake_args=(-G Ninja -S runtime -B build-gpu -DCMAKE_BUILD_TYPE=Release
  "-DCMAKE_CUDA_ARCHITECTURES=$arch")
if [ -f "$deps/googletest/CMakeLists.txt" ]; then
  cmake_args+=("-DWEIPIPE_GTEST_SOURCE=$deps/googletest")
fi
if [ -f "$deps/openblas/include/cblas.h" ]; then
  # Found by FindBLAS through the prefix (which wants the unversioned name);
  # its libgfortran through the path.
  # prepare.sh carries the library xz-compressed (Python's lzma: no xz tool
  # needed here).
  xzlib="$deps/openblas/lib/libopenblas.so.0.xz"
  if [ -f "$xzlib" ] && [ ! -f "$deps/openblas/lib/libopenblas.so.0" ]; then
    python3 -c 'import lzma, shutil, sys
with lzma.open(sys.argv[1]) as i, open(sys.argv[2], "wb") as o:
    shutil.copyfileobj(i, o)' "$xzlib" "$deps/openblas/lib/libopenblas.so.0"
  fi
  ln -sf libopenblas.so.0 "$deps/openblas/lib/libopenblas.so"
  cmake_args+=("-DCMAKE_PREFIX_PATH=$deps/openblas")
  export LD_LIBRARY_PATH="$deps/openblas/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

step configure 180 cmake "${cmake_args[@]}" || exit 1
step build 420 cmake --build build-gpu -j "$jobs" --target weipipe_cuda_tests \
  weipipe-run || exit 1
models="$deps/models"
run=build-gpu/bin/weipipe-run
if [ "$part" != bench ]; then
# The kernels against the CPU kernels (tolerances in the test files).
step cuda-tests 300 build-gpu/weipipe_cuda_tests \
  "--gtest_output=xml:$out/cuda-tests.xml"
# End to end (.gpu-deps/models, compiled by prepare.sh): the truth-test
# models trained 10 steps on the GPU in fp32 against the CPU, losses,
# gradient norms and every weight within 1e-5 (eps 1e-5: see
# test/e2e/llama.test on AdamW's amplified noise); the bundled gpt2-bytes 50
# steps in bf16 against the CPU's fp32 loss curve (compare_curves.py).
if [ -f "$models/done" ]; then
  flags=(--steps 10 --lr 3e-3 --lr-schedule cosine --warmup-steps 2
    --grad-clip 1.0 --weight-decay 0.1 --eps 1e-5 --quiet)
  for m in gpt2 llama; do
    for dev in cpu cuda; do
      extra=()
      [ "$dev" = cuda ] && extra=(--precision fp32)
      step "$m-$dev" 120 "$run" "$models/$m.wpp" --data "$models/$m.bin" \
        "${flags[@]}" --device "$dev" "${extra[@]}" \
        --log "$out/$m.$dev.jsonl" --save-weights "$out/$m.$dev.safetensors"
    done
    step "$m-fp32-check" 60 python3 test/e2e/Inputs/compare_runs.py \
      --ours-log "$out/$m.cuda.jsonl" --ref-log "$out/$m.cpu.jsonl" \
      --ours-weights "$out/$m.cuda.safetensors" \
      --ref-weights "$out/$m.cpu.safetensors" --rtol 1e-5
  done
  # Pipelines on one GPU (the 4 ranks' streams run concurrently there, which
  # the CI's emulation cannot show): 4-rank WeiPipe-Interleave against
  # single-rank on the GPU, to the last bit (--rtol 0) as on the CPU, in
  # fp32 and in bf16 (the same kernels on the same shapes either way).
  for prec in fp32 bf16; do
    for m in single4 wi4; do
      step "pipe-$m-$prec" 120 "$run" "$models/llama-$m.wpp" \
        --data "$models/llama.bin" "${flags[@]}" --device cuda \
        --precision "$prec" --log "$out/pipe-$m.$prec.jsonl" \
        --save-weights "$out/pipe-$m.$prec.safetensors"
    done
    step "pipe-check-$prec" 60 python3 test/e2e/Inputs/compare_runs.py \
      --ours-log "$out/pipe-wi4.$prec.jsonl" \
      --ref-log "$out/pipe-single4.$prec.jsonl" \
      --ours-weights "$out/pipe-wi4.$prec.safetensors" \
      --ref-weights "$out/pipe-single4.$prec.safetensors" --rtol 0
  done
  # The ranks as processes on the one GPU (tcp: slots through host memory),
  # against the same ranks as threads: to the last bit.
  step pipe-procs 180 python3 test/pipeline/Inputs/launch.py --world 4 \
    --one-gpu -- "$run" "$models/llama-wi4.wpp" --data "$models/llama.bin" \
    "${flags[@]}" --device cuda --precision fp32 --threads 2 \
    --save-weights "$out/pipe-procs.safetensors"
  step pipe-procs-check 10 cmp "$out/pipe-procs.safetensors" \
    "$out/pipe-wi4.fp32.safetensors"
  # NCCL at one rank (NCCL refuses two ranks on one GPU): a world of one
  # over --transport nccl against --transport local, to the last bit.
  step nccl-local 120 "$run" "$models/llama-p1.wpp" --data "$models/llama.bin" \
    "${flags[@]}" --device cuda --precision fp32 \
    --log "$out/nccl-local.jsonl" --save-weights "$out/nccl-local.safetensors"
  step nccl-one 120 env RANK=0 WORLD_SIZE=1 LOCAL_RANK=0 \
    MASTER_ADDR=127.0.0.1 MASTER_PORT=29517 "$run" "$models/llama-p1.wpp" \
    --data "$models/llama.bin" "${flags[@]}" --device cuda --precision fp32 \
    --transport nccl --log "$out/nccl-one.jsonl" \
    --save-weights "$out/nccl-one.safetensors"
  step nccl-check 60 python3 test/e2e/Inputs/compare_runs.py \
    --ours-log "$out/nccl-one.jsonl" --ref-log "$out/nccl-local.jsonl" \
    --ours-weights "$out/nccl-one.safetensors" \
    --ref-weights "$out/nccl-local.safetensors" --rtol 0
  bflags=(--steps 50 --lr 3e-3 --lr-schedule cosine --warmup-steps 5
    --grad-clip 1.0 --weight-decay 0.1 --data-order shuffle --quiet)
  step bytes-cpu 240 "$run" "$models/gpt2-bytes.wpp" \
    --data "$models/english.txt" "${bflags[@]}" --log "$out/bytes.cpu.jsonl"
  step bytes-bf16 120 "$run" "$models/gpt2-bytes.wpp" \
    --data "$models/english.txt" "${bflags[@]}" --device cuda \
    --precision bf16 --log "$out/bytes.bf16.jsonl"
  step bytes-check 60 python3 bench/gpu/compare_curves.py \
    --ours "$out/bytes.bf16.jsonl" --ref "$out/bytes.cpu.jsonl"
else
  echo "end-to-end: skipped (no $models: run bench/gpu/prepare.sh here)" |
    tee -a "$summary"
fi
fi # tests
if [ "$part" != tests ]; then
# Built after the tests ran, so that a benchmark that does not build costs
# only the benchmarks.
step bench-build 240 cmake --build build-gpu -j "$jobs" --target bench_gpu_kernels
# Our GEMMs against cuBLASLt's best algorithm per shape and our attention
# against PyTorch's flash SDPA, same run (bench/gpu/README.md); bench.md is
# the table. A missed target is reported there, not a failure.
[ -x build-gpu/bin/bench_gpu_kernels ] && step bench 240 python3 bench/gpu/bench_gpu.py \
  --bench build-gpu/bin/bench_gpu_kernels --out "$out/bench.md"
# A Llama layer's forward + backward at issue 10's three shapes against
# PyTorch eager (bench_layer.py; layer.md is the table).
[ -x build-gpu/bin/bench_gpu_kernels ] && step layer-bench 240 python3 \
  bench/gpu/bench_layer.py --bench build-gpu/bin/bench_gpu_kernels \
  --out "$out/layer.md"
# Whole-model training tokens/s on the sdpa model: ours single-rank and
# 4-rank WeiPipe-Interleave (the pipeline's overhead on one GPU, target
# <= 10 %) against PyTorch eager and torch.compile, MFU against the GEMM
# peak above; model.md is the table. Last: the longest to cut short.
if [ -f "$models/sdpa4-wi4.wpp" ] && [ -x "$run" ]; then
  step model-bench 240 python3 bench/gpu/bench_model.py --run "$run" \
    --models "$models" --out "$out/model.md" --peak-log "$out/bench.log"
fi
fi # bench
# Determinism and races: the tests again under compute-sanitizer's racecheck
# would take too long here; the tests themselves compare repeated runs bit
# for bit.
echo "done: $(date -u +%FT%TZ)" >>"$summary"
