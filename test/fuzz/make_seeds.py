"""Writes the fuzzers' seed corpora (scripts/fuzz.sh runs it at test time;
nothing binary is committed):

  make_seeds.py OUT --weipipe-data BIN --weipipe-run BIN [--weipipe-opt BIN]

OUT/<target>/ for the targets artifact, onnx, onnx-text, data, safetensors,
and OUT/weights/, the parameter storage the artifact seeds load from
(fuzz-artifact resolves storage by file name there). From:

  artifact     weipipe-data --write-tiny-artifact (two shapes); with
               --weipipe-opt, the gpt2 and llama test models compiled for
               [2, 8] micro-batches: fused, split + recompute, and pipelines
               of 2 ranks (1f1b, weipipe-interleave, weipipe-zb2)
  onnx         the exported test models, and every test/Importer case that
               onnx.parser reads, as binary protobuf
  onnx-text    every test/Importer .onnxtext case (split-file sections; not
               those marked "not a fuzz seed") and
               test/robustness/Inputs/block.onnxtext
  data         raw uint16/uint32, llm.c v1/v2 and text token files, behind
               the 4 mode bytes fuzz-data.cpp reads
  safetensors  the tiny artifact's weights, weights saved by weipipe-run
               (aliases included) and a Python-written mixed-dtype file
"""
import argparse
import os
import pathlib
import shutil
import struct
import subprocess
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]


def run(cmd, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.stderr.write(f"make_seeds: {' '.join(map(str, cmd))} failed:\n{r.stderr[-4000:]}")
        raise SystemExit(1)
    return r


def export(name, out, *extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
    run([sys.executable, "-m", "weipipe.models", "export", name, "-o", out, "--no-verify", *extra],
        env=env)


def split_file(text):
    """The sections of an llvm split-file input ("#--- NAME" lines), or the
    whole text when it has none."""
    parts, cur = [], None
    for line in text.splitlines(keepends=True):
        if line.startswith("#--- "):
            cur = [line[5:].strip(), []]
            parts.append(cur)
        elif cur is not None:
            cur[1].append(line)
    if not parts:
        return [("whole", text)]
    return [(n, "".join(body)) for n, body in parts]


def tokens(vocab, count, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, vocab, count)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--weipipe-data", required=True)
    ap.add_argument("--weipipe-run", required=True)
    ap.add_argument("--weipipe-opt")
    a = ap.parse_args()
    out = pathlib.Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    d = {t: out / t for t in ["artifact", "onnx", "onnx-text", "data", "safetensors", "weights"]}
    for p in d.values():
        p.mkdir(parents=True)
    work = out / "work"
    work.mkdir()

    # --- artifact, safetensors: the hand-built tiny model -----------------
    for tag, args in [("a", ["--batch", "2", "--seq", "8", "--microbatches", "2"]),
                      ("b", ["--batch", "1", "--seq", "4"])]:
        t = work / f"tiny-{tag}"
        t.mkdir()
        run([a.weipipe_data, "--write-tiny-artifact", t, "--vocab", "64", "--hidden", "8", *args])
        shutil.copy(t / "tiny.wpp", d["artifact"] / f"tiny-{tag}.wpp")
    # Both shapes share one init.safetensors (same vocabulary and width).
    shutil.copy(work / "tiny-a" / "init.safetensors", d["weights"] / "init.safetensors")
    shutil.copy(work / "tiny-a" / "init.safetensors", d["safetensors"] / "init.safetensors")
    tok = work / "tok.bin"
    tokens(64, 4000, 0).astype("<u2").tofile(tok)
    run([a.weipipe_run, work / "tiny-a" / "tiny.wpp", "--data", tok, "--steps", "1",
         "--save-weights", d["safetensors"] / "tiny-trained.safetensors"])
    run([sys.executable, ROOT / "test/runtime/Inputs/write_safetensors.py",
         d["safetensors"] / "mixed.safetensors"])

    # --- onnx, artifact: the exported test models --------------------------
    models = {"gpt2": ["--exporter", "torchscript", "--opset", "17"], "llama": []}
    for name, extra in models.items():
        export(name, d["weights"] / f"{name}.onnx", *extra)
        shutil.copy(d["weights"] / f"{name}.onnx", d["onnx"] / f"{name}.onnx")
    if a.weipipe_opt:
        shape = "--input-shape=input_ids=2,8"
        compiles = {
            "gpt2.wpp": ["gpt2", "--microbatches=2"],
            "gpt2-split.wpp": ["gpt2", "--backward=split", "--recompute"],
            "llama.wpp": ["llama", "--microbatches=2"],
            "gpt2-1f1b.wpp": ["gpt2", "--ranks=2", "--schedule=1f1b", "--microbatches=2"],
            "llama-weipipe.wpp": ["llama", "--ranks=2", "--microbatches=2"],
            "llama-zb2.wpp": ["llama", "--ranks=2", "--schedule=weipipe-zb2",
                              "--microbatches=2", "--ends=owned"],
        }
        for wpp, (model, *flags) in compiles.items():
            run([a.weipipe_opt, d["weights"] / f"{model}.onnx", shape, "--emit=artifact", *flags,
                 "-o", d["artifact"] / wpp])
        tok96 = work / "tok96.bin"
        tokens(96, 4000, 1).astype("<u2").tofile(tok96)
        run([a.weipipe_run, d["artifact"] / "gpt2.wpp", "--data", tok96, "--steps", "1",
             "--save-weights", d["safetensors"] / "gpt2-trained.safetensors"])
    else:
        print("make_seeds: no weipipe-opt: artifact seeds are the hand-built ones only")

    # --- onnx-text, onnx: the importer's lit tests -------------------------
    import onnx
    import onnx.parser

    texts = sorted((ROOT / "test/Importer").glob("*.onnxtext"))
    texts.append(ROOT / "test/robustness/Inputs/block.onnxtext")
    n_text = n_bin = 0
    for f in texts:
        for name, body in split_file(f.read_text()):
            if not name.endswith(".onnxtext") and name != "whole":
                continue
            # Cases that are slow on purpose (gigabytes of folding) would be
            # libFuzzer timeouts under ASan before any mutation.
            if "not a fuzz seed" in body:
                continue
            stem = f"{f.stem}-{pathlib.Path(name).stem}"
            (d["onnx-text"] / f"{stem}.onnxtext").write_text(body)
            n_text += 1
            try:
                model = onnx.parser.parse_model(body)
            except Exception:  # noqa: BLE001 - the error cases do not parse
                continue
            (d["onnx"] / f"{stem}.onnx").write_bytes(model.SerializeToString())
            n_bin += 1

    # --- data: mode bytes + file (see fuzz-data.cpp) -----------------------
    # byte 0: format (0 auto .bin, 1 auto .txt, 2 bin, 3 text) | dtype << 2
    # (0 default, 1 uint16, 2 uint32) | order << 4; byte 1: vocabulary index
    # (5: 256, 8: 65536, 10: 50257); byte 2: sequence index (5: 8, 7: 64);
    # byte 3: batch - 1 | (microbatches - 1) << 2.
    def data_seed(name, mode, vocab_i, seq_i, bm, body):
        (d["data"] / name).write_bytes(bytes([mode, vocab_i, seq_i, bm]) + body)

    raw16 = tokens(256, 600, 2).astype("<u2").tobytes()
    raw32 = tokens(50257, 600, 3).astype("<u4").tobytes()
    data_seed("raw-u16", 0, 5, 5, 1 | 1 << 2, raw16)
    data_seed("raw-u16-shuffle", 0 | 1 << 2 | 1 << 4, 5, 7, 3, raw16)
    data_seed("raw-u32", 2 | 2 << 2, 10, 5, 2, raw32)
    for version, dt in [(1, "<u2"), (2, "<u4")]:
        t = tokens(256, 500, 4 + version).astype(dt).tobytes()
        header = struct.pack("<3i", 20240520, version, 500) + bytes(1024 - 12)
        data_seed(f"llmc-v{version}", 0, 5, 5, 0, header + t)
    prose = (ROOT / "README.md").read_bytes()[:3000]
    data_seed("text-name", 1, 5, 7, 1, prose)
    data_seed("text-format", 3 | 1 << 4, 8, 5, 0, prose)

    shutil.rmtree(work)
    counts = {t: len(list(p.iterdir())) for t, p in d.items() if t != "weights"}
    print("make_seeds: " + ", ".join(f"{t} {n}" for t, n in counts.items()) +
          f" (onnx-text sections {n_text}, {n_bin} of them as binary)")


if __name__ == "__main__":
    main()
