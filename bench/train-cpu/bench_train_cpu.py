"""Training throughput on the CPU: weipipe-run against the PyTorch reference.

For each model: export it (dynamo), compile it with `weipipe-opt --emit=artifact`,
train `--steps` optimizer steps with `weipipe-run` and with
`python -m weipipe.reference train` on the same data, batch shape and thread
count, and compare the median step time after `--warmup` steps (forward +
backward + AdamW; the reference's `time_s`, weipipe-run's `ms`). Prints
tokens/s of both and the ratio weipipe / PyTorch (> 1: weipipe is faster), and
the peak memory of both processes (max RSS) with weipipe's planned activation
arena.

  python bench/train-cpu/bench_train_cpu.py --weipipe-opt build/bin/weipipe-opt \
      --weipipe-run build/bin/weipipe-run [--models gpt2-bytes,llama] [--threads N]

Long-context rows: --models sdpa --batch 1 --seq 2048,4096,8192,16384
--microbatches 1 (the 'sdpa' model attends with PyTorch's
F.scaled_dot_product_attention, the PyTorch peer at long lengths).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VOCAB = {"gpt2": 96, "gpt2-bytes": 256, "llama": 128, "hf-gpt2": 128, "hf-llama": 128,
         "sdpa": 256}
# hf-llama's pad_token_id 0 is an embedding padding_idx in PyTorch (no
# gradient), which the ONNX file does not record: keep id 0 out of its data.
LOW = {"hf-llama": 1}


def run(cmd, env=None):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"error: {' '.join(map(str, cmd))} failed:\n{r.stderr[-3000:]}")
    return r


def run_measured(cmd, env):
    """run() under GNU time: (result, max RSS in MiB)."""
    r = run(["/usr/bin/time", "-f", "maxrss_kb=%M", *cmd], env)
    kb = [l for l in r.stderr.splitlines() if l.startswith("maxrss_kb=")]
    return r, int(kb[-1].split("=")[1]) / 1024 if kb else float("nan")


def arena_mib(compile_log: str) -> float:
    """The activation arena weipipe-opt printed ("activations 40.02 MiB")."""
    m = re.search(r"activations ([0-9.]+) (KiB|MiB|GiB)", compile_log)
    if not m:
        return float("nan")
    return float(m.group(1)) * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}[m.group(2)]


def step_seconds(log, key, scale, warmup):
    rows = [json.loads(l) for l in Path(log).read_text().splitlines() if l.strip()]
    times = [float(r[key]) * scale for r in rows[warmup:]]
    return statistics.median(times), rows


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weipipe-opt", required=True)
    p.add_argument("--weipipe-run", required=True)
    p.add_argument("--models", default="gpt2-bytes,llama")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", default="64", help="sequence length, or a comma list (one row each)")
    p.add_argument("--microbatches", type=int, default=2)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    a = p.parse_args()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"), OMP_NUM_THREADS=str(a.threads))
    py = sys.executable
    seqs = [int(s) for s in a.seq.split(",")]
    print(f"train-cpu: batch {a.microbatches} x [{a.batch}, S] tokens per step, S in {seqs}, "
          f"{a.steps} steps (median of the last {a.steps - a.warmup}), {a.threads} thread(s)")
    print(f"{'model':<12} {'S':>6} {'weipipe tok/s':>14} {'PyTorch tok/s':>14} {'ratio':>7} "
          f"{'arena MiB':>10} {'weipipe RSS':>12} {'PyTorch RSS':>12}  losses (last step)")
    ratios = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        for m in a.models.split(","):
            onnx, data = d / f"{m}.onnx", d / f"{m}.bin"
            run([py, "-m", "weipipe.models", "export", m, "--no-verify", "-o", onnx], env)
            need = (a.steps + 1) * a.microbatches * a.batch * (max(seqs) + 1)
            run([py, ROOT / "test/reference/Inputs/make_data.py", "tokens", data,
                 "--vocab", VOCAB.get(m, 96), "--count", max(200000, need), "--low", LOW.get(m, 0)], env)
            for seq in seqs:
                wpp = d / f"{m}-{seq}.wpp"
                compiled = run([a.weipipe_opt, onnx, f"--input-shape=input_ids={a.batch},{seq}",
                                "--emit=artifact", f"--microbatches={a.microbatches}", "-o", wpp], env)
                common = ["--data", data, "--steps", a.steps, "--lr", "1e-3", "--threads", a.threads]
                _, ours_rss = run_measured([a.weipipe_run, wpp, *common, "--log", d / "ours.jsonl",
                                            "--quiet"], env)
                _, ref_rss = run_measured([py, "-m", "weipipe.reference", "train", "--model", m,
                                           "--onnx", onnx, "--batch", a.batch, "--seq", seq,
                                           "--microbatches", a.microbatches, *common,
                                           "--log", d / "ref.jsonl", "--quiet"], env)
                ours, orows = step_seconds(d / "ours.jsonl", "ms", 1e-3, a.warmup)
                ref, rrows = step_seconds(d / "ref.jsonl", "time_s", 1.0, a.warmup)
                tokens = a.microbatches * a.batch * seq
                ratio = ref / ours
                ratios.append(ratio)
                print(f"{m:<12} {seq:>6} {tokens / ours:>14.0f} {tokens / ref:>14.0f} {ratio:>6.2f}x "
                      f"{arena_mib(compiled.stderr):>10.1f} {ours_rss:>12.0f} {ref_rss:>12.0f}  "
                      f"{orows[-1]['loss']:.4f} vs {rrows[-1]['loss']:.4f}", flush=True)
    print(f"geometric-mean ratio weipipe/PyTorch: {statistics.geometric_mean(ratios):.2f}x")


if __name__ == "__main__":
    main()
