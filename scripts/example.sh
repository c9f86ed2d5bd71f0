#!/usr/bin/env bash
# The main job on the bundled model: set up (idempotent), build, export the
# small GPT-2-style model with PyTorch's default ONNX exporter, import it with
# weipipe-opt, tie its embedding and head, fuse it, and append the loss.
#   scripts/example.sh [MODEL] [extra weipipe-opt flags]
# MODEL is any name from `python -m weipipe.models list` (default: gpt2).
# Environment: BUILD_DIR (default: build), JOBS (default: nproc), WEIPIPE_VENV.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
model=${1:-gpt2}
shift || true
bash scripts/setup.sh
build=${BUILD_DIR:-build}
venv=${WEIPIPE_VENV:-$HOME/.cache/weipipe/venv}
cmake -G Ninja -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DWEIPIPE_PYTHON="$venv/bin/python" >/dev/null
cmake --build "$build" -j "${JOBS:-$(nproc)}" --target weipipe-opt
out="$build/example"
mkdir -p "$out"
echo "[example] exporting '$model' with torch.onnx.export (dynamo) to $out/$model.onnx"
PYTHONPATH="$root/python" "$venv/bin/python" -m weipipe.models export "$model" -o "$out/$model.onnx"
passes="-nn-tie-parameters -nn-fuse -nn-append-loss"
echo "[example] importing and preparing for training: weipipe-opt $out/$model.onnx --input-shape=input_ids=2,16 $passes $*"
"$build/bin/weipipe-opt" "$out/$model.onnx" --input-shape=input_ids=2,16 $passes "$@" -o "$out/$model.mlir"
echo "[example] wrote $out/$model.mlir:"
grep -c "nn.parameter" "$out/$model.mlir" | sed 's/^/  parameters: /'
grep -o "= nn\.[a-z_]*" "$out/$model.mlir" | grep -v "nn.param$" | sort | uniq -c | sort -rn | sed 's/= //; s/^/  /'
grep "func.func @main" "$out/$model.mlir" | sed 's/^ */  signature: /'
