"""Pipelines on this machine: tokens/s of every schedule against single-rank.

Exports a model, compiles it single-rank and for every schedule at each rank
count, trains each for --steps steps with weipipe-run on the same data, batch,
micro-batches and threads (the ranks of a pipeline share them), and prints the
median step time after --warmup steps as tokens/s and as a ratio against
single-rank training measured in the same run. Every run's final loss is
printed too: the pipelines train the same model on the same batches, so it
must agree with single-rank's (to ~1e-6).

On one machine the ranks are threads sharing its cores: the ratio is the
runtime's multi-rank overhead (transfers by memcpy, waits, duplicated
replicated work), not the paper's speedup, which needs one device per rank
and real links.

  python bench/pipeline-cpu/bench_pipeline_cpu.py --weipipe-opt build/bin/weipipe-opt \
      --weipipe-run build/bin/weipipe-run [--model llama --layers 8] [--ranks 2,4]
      [--batch 4 --seq 64 --microbatches 8] [--steps 12 --warmup 4] [--threads 2]
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
SCHEDULES = ["gpipe", "1f1b", "interleaved-1f1b", "zb-h1", "fsdp", "weipipe-naive",
             "weipipe-interleave", "weipipe-zb1", "weipipe-zb2", "tawpipe"]


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"error: {' '.join(map(str, cmd))} exited {p.returncode}:\n{p.stderr[-2000:]}")
    return p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weipipe-opt", required=True)
    ap.add_argument("--weipipe-run", required=True)
    ap.add_argument("--model", default="llama")
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--ranks", default="2,4")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--microbatches", type=int, default=8)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ends", default="replicated")
    a = ap.parse_args()

    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
    work = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    onnx = work / "m.onnx"
    subprocess.run([sys.executable, "-m", "weipipe.models", "export", a.model, "--layers",
                    str(a.layers), "--seq", str(a.seq), "--batch", str(a.batch), "--no-verify",
                    "-o", str(onnx)], check=True, env=env, capture_output=True)
    vocab = {"llama": 128, "gpt2": 96, "gpt2-bytes": 256}.get(a.model, 128)
    data = work / "d.bin"
    subprocess.run([sys.executable, str(ROOT / "test/reference/Inputs/make_data.py"), "tokens",
                    str(data), "--vocab", str(vocab), "--count", "200000"], check=True,
                   capture_output=True)
    shape = f"--input-shape=input_ids={a.batch},{a.seq}"
    tokens = a.batch * a.seq * a.microbatches

    def measure(tag, flags):
        wpp = work / f"{tag}.wpp"
        run([a.weipipe_opt, str(onnx), shape, "--emit=artifact",
             f"--microbatches={a.microbatches}", "-o", str(wpp)] + flags)
        log = work / f"{tag}.jsonl"
        p = run([a.weipipe_run, str(wpp), "--data", str(data), "--steps", str(a.steps),
                 "--threads", str(a.threads), "--log", str(log)])
        rows = [json.loads(line) for line in open(log)]
        ms = statistics.median(r["ms"] for r in rows[a.warmup:])
        waits = [float(w) for w in re.findall(r"waited ([0-9.]+)s", p.stderr)]
        sent = re.findall(r"sent \d+ messages, ([^;]+);", p.stderr)
        return ms, rows[-1]["loss"], waits, sent

    print(f"{a.model} with {a.layers} layers, {a.microbatches} micro-batches of "
          f"[{a.batch}, {a.seq}] per step, {a.threads} threads, ends {a.ends}, "
          f"median of steps {a.warmup}..{a.steps - 1}")
    base_ms, base_loss, _, _ = measure("single", [])
    print(f"{'schedule':20s} {'P':>2s} {'tok/s':>9s} {'vs single':>9s} {'final loss':>12s} "
          f"{'max wait s':>10s}  sent per rank")
    print(f"{'single-rank':20s} {1:2d} {tokens / base_ms * 1e3:9.0f} {1.0:8.2f}x "
          f"{base_loss:12.6f} {0.0:10.3f}")
    ratios = []
    for ranks in [int(x) for x in a.ranks.split(",") if x]:
        for sched in SCHEDULES:
            n = a.microbatches
            flags = [f"--ranks={ranks}", f"--schedule={sched}", f"--ends={a.ends}"]
            if sched == "weipipe-zb2":
                n = ranks
            if sched == "weipipe-zb1" and ranks % 2:
                continue
            if sched == "interleaved-1f1b":
                flags.append(f"--chunks-per-rank={2 if 2 * ranks <= a.layers else 1}")
            if sched == "tawpipe":
                flags.append(f"--node-size={2 if ranks % 2 == 0 else 1}")
            flags.append(f"--microbatches={n}")
            ms, loss, waits, sent = measure(f"{sched}-{ranks}", flags)
            # WZB2 steps after N = P micro-batches: compare per token.
            tps = a.batch * a.seq * n / ms * 1e3
            ratio = tps / (tokens / base_ms * 1e3)
            ratios.append(ratio)
            print(f"{sched:20s} {ranks:2d} {tps:9.0f} {ratio:8.2f}x {loss:12.6f} "
                  f"{max(waits) if waits else 0:10.3f}  {', '.join(sent)}")
    g = statistics.geometric_mean(ratios) if ratios else 0
    print(f"geometric mean of the pipelines' tokens/s against single-rank: {g:.2f}x")


if __name__ == "__main__":
    main()
