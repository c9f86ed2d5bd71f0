#!/usr/bin/env bash
# The main job on the bundled model: set up (idempotent), build, export the
# bundled byte-level GPT (`gpt2-bytes`: 4 layers x 128, vocabulary 256) with
# PyTorch's default ONNX exporter, compile it for training with weipipe-opt
# (tie, fuse, loss, autodiff, memory plan -> .wpp), and train it with
# weipipe-run on real English text: the license texts every Debian system
# ships in /usr/share/common-licenses (package base-files), read byte by byte.
#   scripts/example.sh [extra weipipe-run flags, e.g. --steps 600 --threads 4]
# Environment: BUILD_DIR (default: build), JOBS (default: nproc), WEIPIPE_VENV,
# STEPS (default 300).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/setup.sh
build=${BUILD_DIR:-build}
venv=${WEIPIPE_VENV:-$HOME/.cache/weipipe/venv}
cmake -G Ninja -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DWEIPIPE_PYTHON="$venv/bin/python" >/dev/null
cmake --build "$build" -j "${JOBS:-$(nproc)}" --target weipipe-opt weipipe-run
out="$build/example"
mkdir -p "$out"
model=gpt2-bytes

licenses=/usr/share/common-licenses
texts=()
for f in GPL-3 GPL-2 LGPL-2.1 Apache-2.0 MPL-2.0 GFDL-1.3 Artistic CC0-1.0; do
  [[ -f "$licenses/$f" ]] && texts+=("$licenses/$f")
done
if [[ ${#texts[@]} -eq 0 ]]; then
  echo "[example] error: no English text found in $licenses (Debian's base-files package)" >&2
  exit 1
fi
cat "${texts[@]}" > "$out/english.txt"
echo "[example] training text: $(wc -c < "$out/english.txt") bytes of English (${#texts[@]} license texts from $licenses)"

echo "[example] exporting '$model' with torch.onnx.export (dynamo) to $out/$model.onnx"
PYTHONPATH="$root/python" "$venv/bin/python" -m weipipe.models export "$model" -o "$out/$model.onnx"

echo "[example] compiling for training: weipipe-opt $out/$model.onnx --input-shape=input_ids=8,64 --emit=artifact --microbatches=2 -o $out/$model.wpp"
"$build/bin/weipipe-opt" "$out/$model.onnx" --input-shape=input_ids=8,64 \
  --emit=artifact --microbatches=2 -o "$out/$model.wpp"

steps=${STEPS:-300}
echo "[example] training: weipipe-run $out/$model.wpp --data $out/english.txt --steps $steps ..."
"$build/bin/weipipe-run" "$out/$model.wpp" --data "$out/english.txt" --steps "$steps" \
  --lr 3e-3 --lr-schedule cosine --warmup-steps 20 --grad-clip 1.0 --weight-decay 0.1 \
  --data-order shuffle --log "$out/train.jsonl" \
  --save-weights "$out/$model.trained.safetensors" "$@"

"$venv/bin/python" - "$out/train.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
first, last = rows[0]["loss"], rows[-1]["loss"]
k = max(1, len(rows) // 10)
head = sum(r["loss"] for r in rows[:k]) / k
tail = sum(r["loss"] for r in rows[-k:]) / k
print(f"[example] loss: step 0 {first:.4f} -> step {rows[-1]['step']} {last:.4f} "
      f"(mean of the first {k} steps {head:.4f}, of the last {k} {tail:.4f}; ln 256 = 5.545)")
if not tail < head:
    sys.exit("[example] error: the loss did not fall")
PY
echo "[example] wrote $out/train.jsonl and $out/$model.trained.safetensors"
