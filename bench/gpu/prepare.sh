#!/usr/bin/env bash
# Prepares, on this (CPU) machine, what the GPU machine lacks for
# bench/gpu/device-check.sh, under .gpu-deps/ (git-ignored; pass it in the
# device tool's `carry`):
#   googletest/  Debian's GoogleTest sources (built there by the runtime's CMake)
#   openblas/    OpenBLAS's library and cblas headers (the CPU kernels, which
#                the GPU tests compare against, call cblas_sgemm)
# Idempotent; run scripts/setup.sh first (it installs both packages). About
# 43 MB, within the 64 MiB a device call carries. Debian 12's OpenBLAS needs
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
if [ ! -f "$deps/openblas/include/cblas.h" ]; then
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
  cp "$lib" "$deps/openblas/lib/libopenblas.so.0"
  cp "$inc"/*.h "$deps/openblas/include/"
  # The library's own needs that a foreign image may lack (libgfortran).
  for need in $(ldd "$lib" | awk '/=>/ {print $3}' | grep -E 'gfortran|quadmath'); do
    cp "$(readlink -f "$need")" "$deps/openblas/lib/$(basename "$need")"
  done
fi
du -sh "$deps"/* | sed 's/^/prepare.sh: /'
