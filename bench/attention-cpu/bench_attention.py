"""Causal attention forward + backward on the CPU: weipipe's kernels against
PyTorch's F.scaled_dot_product_attention, same shapes, same threads, best of
--repeats each. Prints one row per length and the ratio (PyTorch time /
weipipe time: above 1 is faster than PyTorch).

  bench_attention.py --bench build/bin/bench_attention [--seq 2048,4096,8192,16384]
                     [--batch 1] [--heads 4] [--kv-heads 4] [--head-dim 64]
                     [--threads N] [--repeats 3]
"""
import argparse
import json
import os
import subprocess
import time

import torch
import torch.nn.functional as F


def torch_times(b, h, hkv, s, d, repeats):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(b, h, s, d, generator=g, requires_grad=True)
    k = torch.randn(b, hkv, s, d, generator=g, requires_grad=True)
    v = torch.randn(b, hkv, s, d, generator=g, requires_grad=True)
    dout = torch.randn(b, h, s, d, generator=g)
    fwd = bwd = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=h != hkv)
        t1 = time.perf_counter()
        out.backward(dout)
        t2 = time.perf_counter()
        fwd, bwd = min(fwd, t1 - t0), min(bwd, t2 - t1)
        q.grad = k.grad = v.grad = None
    return fwd, bwd


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bench", required=True, help="the bench_attention binary")
    p.add_argument("--seq", default="2048,4096,8192,16384")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=4)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OPENBLAS_NUM_THREADS="1")
    print(f"causal attention fwd+bwd, B={a.batch} H={a.heads} Hkv={a.kv_heads} D={a.head_dim}, "
          f"{a.threads} thread(s), torch {torch.__version__}")
    print(f"{'S':>6} {'weipipe fwd':>12} {'bwd':>8} {'torch fwd':>10} {'bwd':>8} {'ratio':>7}")
    for s in map(int, a.seq.split(",")):
        out = subprocess.run([a.bench, str(a.batch), str(a.heads), str(a.kv_heads), str(s),
                              str(a.head_dim), str(a.repeats)], env=env, check=True,
                             capture_output=True, text=True).stdout
        ours = json.loads(out)
        tf, tb = torch_times(a.batch, a.heads, a.kv_heads, s, a.head_dim, a.repeats)
        of, ob = ours["forward_s"], ours["backward_s"]
        print(f"{s:>6} {of:>12.3f} {ob:>8.3f} {tf:>10.3f} {tb:>8.3f} {(tf + tb) / (of + ob):>6.2f}x",
              flush=True)


if __name__ == "__main__":
    main()
