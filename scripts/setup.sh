#!/usr/bin/env bash
# Installs everything weipipe needs on a fresh Debian 12 machine, idempotently:
#   1. the apt packages (LLVM/MLIR 22, ONNX C++, protobuf, OpenBLAS, Open MPI, GoogleTest, clang 22, ...);
#   2. the project's Python venv from PyPI with the pinned versions in python/requirements.txt.
# Both steps are skipped when already satisfied, so running it again costs a second.
#
# Environment:
#   WEIPIPE_VENV   where the venv lives (default: ~/.cache/weipipe/venv). It lives outside the
#                  checkout so that torch (large) is installed once per machine, not per clone.
#   WEIPIPE_PYTHON interpreter used to create the venv (default: the first python3 on PATH).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${WEIPIPE_VENV:-$HOME/.cache/weipipe/venv}
log() { printf '[setup] %s\n' "$*"; }

apt_packages=(
  cmake ninja-build git
  llvm-22-dev llvm-22-tools libmlir-22-dev mlir-22-tools
  libonnx-dev libprotobuf-dev protobuf-compiler
  libopenblas-dev libopenmpi-dev openmpi-bin
  libgtest-dev libgmock-dev libbenchmark-dev
  python3-venv
  clang-22 libclang-rt-22-dev   # scripts/fuzz.sh: libFuzzer, ASan, UBSan
)

missing=()
for p in "${apt_packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  log "installing apt packages: ${missing[*]}"
  # LLVM/MLIR 22 come from bookworm-security: the package lists must be fresh.
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  log "apt packages: all present"
fi

req="$root/python/requirements.txt"
stamp="$venv/.weipipe-requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  log "python venv: up to date at $venv"
else
  py=${WEIPIPE_PYTHON:-$(command -v python3)}
  if [ ! -x "$venv/bin/python" ]; then
    log "creating python venv at $venv with $py"
    mkdir -p "$(dirname "$venv")"
    "$py" -m venv "$venv"
  fi
  log "installing pinned python packages (torch is large; this happens once per machine)"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -r "$req"
  echo "$want" >"$stamp"
fi
log "done. venv python: $venv/bin/python"
