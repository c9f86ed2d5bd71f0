#!/usr/bin/env bash
# Prepares, on this (CPU) machine, what the GPU machine lacks for
# bench/gpu/device-check.sh, under .gpu-deps/ (git-ignored; pass it in the
# device tool's `carry`):
#   googletest/  Debian's GoogleTest sources (built there by the runtime's CMake)
#   openblas/    OpenBLAS's library (xz-compressed) and cblas headers (the
#                CPU kernels, which the GPU tests compare against, call
#                cblas_sgemm)
#   models/      artifacts compiled here (the GPU machine has no MLIR) for the
#                end-to-end checks: the truth-test models gpt2 and llama at
#                [2, 16] x 2 micro-batches with their token data, and the
#                bundled gpt2-bytes at [8, 64] x 2 with English text; the
#                pipeline checks' llama at 8 layers; bench_model.py's sdpa
#                at 4 layers, single-rank and 4-rank WeiPipe-Interleave. The
#                models sit next to their artifacts, whose storage paths are
#                then relative: the folder works wherever it is carried.
# Idempotent; run scripts/setup.sh first (it installs both packages). About
# 32 MB, within the 64 MiB a device call carries (the working tree too). Debian 12's OpenBLAS needs
# glibc 2.34 or newer there.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
deps="$root/.gpu-deps"
mkdir -p "$deps"
if [ ! -f "$deps/googletest/CMakeLists.txt" ]; then
  [ -f /usr/src/googletest/CMakeLists.txt ] || {
    echo "prepare.sh: /usr/src/googletest is missing: run scripts/setup.sh" >&2
    exit 1
  }
  rm -rf "$deps/googletest"
  cp -r /usr/src/googletest "$deps/googletest"
fi
if [ ! -f "$deps/openblas/include/cblas.h" ] ||
  [ ! -f "$deps/openblas/lib/libopenblas.so.0.xz" ]; then
  lib=$(readlink -f /usr/lib/x86_64-linux-gnu/libopenblas.so)
  inc=$(dirname "$(readlink -f /usr/include/x86_64-linux-gnu/cblas.h)")
  [ -f "$lib" ] && [ -f "$inc/cblas.h" ] || {
    echo "prepare.sh: OpenBLAS is missing: run scripts/setup.sh" >&2
    exit 1
  }
  rm -rf "$deps/openblas"
  mkdir -p "$deps/openblas/lib" "$deps/openblas/include"
  # No libopenblas.so link here (device-check.sh makes it there): the device
  # tool carries plain files.
  # Compressed (36 MB -> 4 MB; device-check.sh unpacks it): the carry holds
  # 64 MiB in all, the models' weights included.
  xz -T0 -6 -c "$lib" >"$deps/openblas/lib/libopenblas.so.0.xz"
  cp "$inc"/*.h "$deps/openblas/include/"
  # The library's own needs that a foreign image may lack (libgfortran).
  for need in $(ldd "$lib" | awk '/=>/ {print $3}' | grep -E 'gfortran|quadmath'); do
    cp "$(readlink -f "$need")" "$deps/openblas/lib/$(basename "$need")"
  done
fi
if [ ! -f "$deps/models/done" ] || [ ! -f "$deps/models/sdpa4-wi4.wpp" ]; then
  py=${WEIPIPE_VENV:-$HOME/.cache/weipipe/venv}/bin/python
  opt=${BUILD_DIR:-$root/build}/bin/weipipe-opt
  [ -x "$py" ] && [ -x "$opt" ] || {
    echo "prepare.sh: needs the venv and build/bin/weipipe-opt: run scripts/test.sh or scripts/example.sh first" >&2
    exit 1
  }
  rm -rf "$deps/models"
  mkdir -p "$deps/models"
  (
    cd "$deps/models"
    export PYTHONPATH="$root/python"
    for m in gpt2:96 llama:128; do
      name=${m%%:*}
      "$py" -m weipipe.models export "$name" --no-verify -o "$name.onnx" >/dev/null 2>&1
      "$opt" "$name.onnx" --input-shape=input_ids=2,16 --emit=artifact \
        --microbatches=2 -o "$name.wpp" >>compile.log 2>&1
      "$py" "$root/test/reference/Inputs/make_data.py" tokens "$name.bin" \
        --vocab "${m##*:}" --count 4000
    done
    # Pipelines on one GPU: 4-rank WeiPipe-Interleave (owned ends) and the
    # single-rank artifact with the same micro-batches, bit-identical on the
    # CPU (test/pipeline/llama.test): the llama at 8 layers (4 ranks cut the
    # layers into 4 chunks at least).
    "$py" -m weipipe.models export llama --layers 8 --no-verify \
      -o llama8.onnx >/dev/null 2>&1
    "$opt" llama8.onnx --input-shape=input_ids=2,16 --emit=artifact \
      --microbatches=4 -o llama-single4.wpp >>compile.log 2>&1
    "$opt" llama8.onnx --input-shape=input_ids=2,16 --emit=artifact \
      --microbatches=4 --ranks=4 --schedule=weipipe-interleave --ends=owned \
      -o llama-wi4.wpp >>compile.log 2>&1
    # NCCL at one rank: a one-rank pipeline (no links; the world's sums).
    "$opt" llama8.onnx --input-shape=input_ids=2,16 --emit=artifact \
      --microbatches=2 --ranks=1 --schedule=1f1b -o llama-p1.wpp \
      >>compile.log 2>&1
    # Whole-model throughput and the pipeline's overhead on one GPU
    # (bench_model.py): sdpa at 4 layers (13 MB of weights, the largest that
    # fits the device tool's carry), 4 micro-batches of 2 x 4096 tokens,
    # single-rank and 4-rank WeiPipe-Interleave.
    "$py" -m weipipe.models export sdpa --layers 4 --batch 2 --seq 4096 \
      --no-verify -o sdpa4.onnx >/dev/null 2>&1
    "$opt" sdpa4.onnx --input-shape=input_ids=2,4096 --emit=artifact \
      --microbatches=4 -o sdpa4-single4.wpp >>compile.log 2>&1
    "$opt" sdpa4.onnx --input-shape=input_ids=2,4096 --emit=artifact \
      --microbatches=4 --ranks=4 --schedule=weipipe-interleave --ends=owned \
      -o sdpa4-wi4.wpp >>compile.log 2>&1
    "$py" "$root/test/reference/Inputs/make_data.py" tokens sdpa.bin \
      --vocab 256 --count 100000
    "$py" -m weipipe.models export gpt2-bytes -o gpt2-bytes.onnx >/dev/null 2>&1
    "$opt" gpt2-bytes.onnx --input-shape=input_ids=8,64 --emit=artifact \
      --microbatches=2 -o gpt2-bytes.wpp >>compile.log 2>&1
    cat /usr/share/common-licenses/{GPL-3,GPL-2,LGPL-2.1,Apache-2.0} >english.txt
  )
  touch "$deps/models/done"
fi
du -sh "$deps"/* | sed 's/^/prepare.sh: /'
