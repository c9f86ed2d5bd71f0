"""The exhaustive sweep that --schedule=auto must agree with, done the slow
way: one weipipe-opt --simulate per plan, each a separate compile with its
own flags (schedules given, micro-batch counts N from P up that divide the
step's rows with the size rows / N, recompute or not, --ends replicated or
owned; interleaved-1f1b with 2, 3 or 4 chunks per rank). Prints the best
plan's tokens/s per device and flags, and "sweep: K plans simulated".

usage: sweep_plans.py --weipipe-opt W --onnx M --machine NAME --ranks P
         --rows R --seq S --schedules a,b,c [--memory-limit BYTES]
"""
import argparse
import re
import subprocess

p = argparse.ArgumentParser()
for a in ("--weipipe-opt", "--onnx", "--machine", "--schedules"):
    p.add_argument(a, required=True)
for a in ("--ranks", "--rows", "--seq"):
    p.add_argument(a, type=int, required=True)
args = p.parse_args()

counts = [n for n in range(args.ranks, args.rows + 1) if args.rows % n == 0][:6]
best, simulated = None, 0
for name in args.schedules.split(","):
    for v in ([2, 3, 4] if name == "interleaved-1f1b" else [1]):
        for n in counts:
            for recompute in (False, True):
                for ends in ("replicated", "owned"):
                    flags = [f"--ranks={args.ranks}", f"--schedule={name}", f"--microbatches={n}",
                             f"--ends={ends}"] + (["--recompute"] if recompute else []) + \
                            ([f"--chunks-per-rank={v}"] if v > 1 else [])
                    cmd = [args.weipipe_opt, args.onnx, "--emit=artifact",
                           f"--input-shape=input_ids={args.rows // n},{args.seq}",
                           f"--simulate={args.machine}"] + flags
                    r = subprocess.run(cmd, capture_output=True, text=True)
                    if r.returncode != 0:
                        continue  # not a valid plan for this model or schedule
                    simulated += 1
                    if "does not fit" in r.stdout:
                        continue
                    tps = float(re.search(r"tokens/s per device: ([\d.]+)", r.stdout).group(1))
                    if best is None or tps > best[0]:
                        best = (tps, " ".join(flags))
print(f"sweep: {simulated} plans simulated")
print(f"best: {best[0]:.1f} tokens/s per device with {best[1]}")
