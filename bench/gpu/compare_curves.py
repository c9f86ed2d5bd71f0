"""Compare two weipipe-run loss curves that should agree only statistically:
a GPU run with bf16 tensor-core products against the CPU's fp32 run of the
same artifact, data and flags (bench/gpu/device-check.sh).

  compare_curves.py --ours GPU.jsonl --ref CPU.jsonl [--step-rtol 0.05]
                    [--tail 10 --tail-rtol 0.02]

bf16 rounds every GEMM input to 8 significant bits (relative 2^-9 each), so
the two trajectories separate by noise that training does not amplify much
in 50 steps of a small model; a wrong kernel moves the loss by far more. Each
step's loss must be within --step-rtol of the reference, and the mean of the
last --tail steps within --tail-rtol. Prints one line per check; exits 1 on a
failure, naming it.
"""
import argparse
import json
import sys


def losses(path):
    with open(path) as f:
        return [float(json.loads(line)["loss"]) for line in f if line.strip()]


p = argparse.ArgumentParser()
p.add_argument("--ours", required=True)
p.add_argument("--ref", required=True)
p.add_argument("--step-rtol", type=float, default=0.05)
p.add_argument("--tail", type=int, default=10)
p.add_argument("--tail-rtol", type=float, default=0.02)
a = p.parse_args()
ours, ref = losses(a.ours), losses(a.ref)
if len(ours) != len(ref) or not ref:
    sys.exit(f"FAIL: {len(ours)} steps against {len(ref)}")
worst, at = max((abs(o - r) / abs(r), i) for i, (o, r) in enumerate(zip(ours, ref)))
print(f"loss curves of {len(ref)} steps: max rel diff {worst:.3e} at step {at} "
      f"(allowed {a.step_rtol}); ref {ref[0]:.4f} -> {ref[-1]:.4f}, "
      f"ours {ours[0]:.4f} -> {ours[-1]:.4f}")
k = min(a.tail, len(ref))
tail_o, tail_r = sum(ours[-k:]) / k, sum(ref[-k:]) / k
tail = abs(tail_o - tail_r) / abs(tail_r)
print(f"mean of the last {k} steps: ours {tail_o:.5f}, ref {tail_r:.5f}, "
      f"rel diff {tail:.3e} (allowed {a.tail_rtol})")
if worst > a.step_rtol:
    sys.exit(f"FAIL: step {at} differs by {worst:.3e}")
if tail > a.tail_rtol:
    sys.exit(f"FAIL: the last {k} steps differ by {tail:.3e}")
