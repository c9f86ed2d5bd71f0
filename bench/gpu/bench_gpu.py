"""GPU kernels against their peers, in one run on one GPU (bench/gpu/README.md).

Runs `bench_gpu_kernels gemm` (our cuBLASLt GEMMs next to cuBLASLt's best
algorithm for each shape, and the bf16 GEMM peak), PyTorch's flash SDPA on
the attention shapes (in a child process: this process never touches the
GPU), then `bench_gpu_kernels attention`, each under a share of --budget-s;
parses their RESULT lines and prints one table with the ratios ours / peer
and issue 10's targets (attention >= 0.8x PyTorch flash SDPA, each GEMM >=
0.95x cuBLASLt's best). The table (markdown) goes to --out, rewritten after
every stage so that a run cut short still leaves what it measured.

A missed target is reported, never a failure. The exit status is 1 when
anything failed (a tool's error or non-zero exit, a time limit, a result
missing), 0 otherwise; PyTorch running out of memory on a shape is reported
as "OOM" and is not a failure.

  bench_gpu.py --bench build-gpu/bin/bench_gpu_kernels --out bench.md
               [--budget-s 225] [--target-ms 200] [--repeats 3]
"""
import argparse
import datetime
import math
import os
import signal
import statistics
import subprocess
import sys
import threading
import time

GEMM_TARGET = 0.95
ATTN_TARGET = 0.8
# (B, H, HKV, S, D), causal, bf16: bench_gpu_kernels' defaults.
ATTN_CASES = [(1, 16, 4, 4096, 128), (1, 32, 32, 16384, 128), (1, 32, 32, 65536, 128)]
DEVICE = "cuda"  # the peer's (a test may point it elsewhere)


def case_name(b, h, hkv, s, d):
    return f"b{b}_h{h}_hkv{hkv}_s{s}_d{d}_causal"


def attn_flops(b, h, s, d):
    """Causal forward: 4 B H S^2 D halved; the backward is 2.5x that."""
    fwd = 4.0 * b * h * s * s * d / 2
    return fwd, 3.5 * fwd


# ---------------------------------------------------------------------------
# The PyTorch peer (child process: --torch-peer)
# ---------------------------------------------------------------------------

def torch_measure(fn, target_ms, repeats):
    """bench_gpu_kernels' protocol for PyTorch calls, timed by CUDA events on
    the current stream: a warm-up call, a sizing call, then `repeats` samples
    of N calls (about target_ms each; one sample when a call takes over 2 s).
    Returns (median ms per call, N, samples)."""
    import torch

    def time_calls(n):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(n):
            fn()
        stop.record()
        stop.synchronize()
        return start.elapsed_time(stop) / n

    time_calls(1)
    est = time_calls(1)
    iters = int(min(max(target_ms / max(est, 1e-3), 1), 1e5))
    samples, want = [], repeats
    if iters == 1:
        samples.append(est)
        if est > 2000:
            want = 1
    while len(samples) < want:
        samples.append(time_calls(iters))
    return statistics.median(samples), iters, len(samples)


def finish_report(path, lines, errors):
    """Writes a benchmark's markdown (its lines, then its errors) to `path`,
    prints it, and returns the exit status: 1 when anything failed."""
    if errors:
        lines = lines + ["", "## Errors", ""] + [f"- {e}" for e in errors]
    text = "\n".join(lines) + "\n"
    with open(path, "w") as fh:
        fh.write(text)
    print(text, end="")
    return 1 if errors else 0


def torch_peer(cases, target_ms, repeats):
    """Prints RESULT lines like bench_gpu_kernels'; returns the exit status."""
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    dev = torch.cuda.get_device_name(0)
    print(f"torch {torch.__version__} (CUDA {torch.version.cuda}) on {dev}", flush=True)
    print("peer: F.scaled_dot_product_attention, flash backend forced, bf16, causal; "
          f"median of {repeats} samples of N calls, ~{target_ms:.0f} ms each", flush=True)

    def measure(fn):
        return torch_measure(fn, target_ms, repeats)

    failed = False
    for (b, h, hkv, s, d) in cases:
        name = case_name(b, h, hkv, s, d)
        flop_f, flop_fb = attn_flops(b, h, s, d)
        tensors, printed = {}, set()
        try:
            g = torch.Generator(device=DEVICE).manual_seed(0)
            mk = lambda *shape: torch.rand(*shape, device=DEVICE, dtype=torch.bfloat16,
                                           generator=g) * 2 - 1
            q = mk(b, h, s, d).requires_grad_()
            k = mk(b, hkv, s, d).requires_grad_()
            v = mk(b, hkv, s, d).requires_grad_()
            dout = mk(b, h, s, d)
            tensors = dict(q=q, k=k, v=v, dout=dout)

            def sdpa_native(q, k, v):
                return F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                      enable_gqa=h != hkv)

            def sdpa_repeat(q, k, v):
                return F.scaled_dot_product_attention(
                    q, k.repeat_interleave(h // hkv, dim=1),
                    v.repeat_interleave(h // hkv, dim=1), is_causal=True)

            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                gqa = "none" if h == hkv else "enable_gqa"
                sdpa = sdpa_native
                if h != hkv:
                    try:
                        with torch.no_grad():
                            sdpa_native(q, k, v)
                        torch.cuda.synchronize()
                    except (TypeError, RuntimeError) as e:  # torch < 2.5, or flash refuses it
                        if isinstance(e, torch.cuda.OutOfMemoryError):
                            raise
                        print(f"  note: {name}: enable_gqa with flash failed ({e}); "
                              "K/V repeat_interleave'd inside the timed call instead", flush=True)
                        gqa, sdpa = "repeat_interleave", sdpa_repeat

                def fwd():
                    with torch.no_grad():
                        sdpa(q, k, v)

                def fwd_bwd():
                    out = sdpa(q, k, v)
                    torch.autograd.grad(out, (q, k, v), dout)

                for kind, fn, flop in (("torch_attn_fwd", fwd, flop_f),
                                       ("torch_attn_fwdbwd", fwd_bwd, flop_fb)):
                    ms, iters, reps = measure(fn)
                    print(f"RESULT kind={kind} shape={name} ms={ms:.4f} "
                          f"tflops={flop / (ms * 1e-3) / 1e12:.2f} iters={iters} "
                          f"repeats={reps} gqa={gqa}", flush=True)
                    printed.add(kind)
        except torch.cuda.OutOfMemoryError:
            for kind in ("torch_attn_fwd", "torch_attn_fwdbwd"):
                if kind not in printed:
                    print(f"RESULT kind={kind} shape={name} status=OOM", flush=True)
        except Exception as e:  # reported, the other shapes still run
            failed = True
            msg = " ".join(str(e).split())
            print(f"ERROR torch peer {name}: {type(e).__name__}: {msg}", flush=True)
        finally:
            tensors.clear()
            q = k = v = dout = None
            torch.cuda.empty_cache()
    return 1 if failed else 0


# ---------------------------------------------------------------------------
# Children, under time limits, their output kept line by line
# ---------------------------------------------------------------------------

_child = None  # the running child, ended with us (device-check's `timeout`)


def _on_term(signum, frame):
    if _child is not None and _child.poll() is None:
        _child.kill()
    print(f"bench_gpu.py: stopped by signal {signum}", flush=True)
    os._exit(128 + signum)


def run_child(cmd, limit_s, label):
    """Runs cmd, echoing its output; returns (status, lines). status is
    'ok', 'exit N' or 'timed out after N s'."""
    print(f"== {label}: {' '.join(cmd)} (limit {limit_s:.0f} s)", flush=True)
    if limit_s < 5:
        return f"not run: {limit_s:.0f} s of the budget left", []
    global _child
    lines = []
    try:
        proc = _child = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True, bufsize=1)
    except OSError as e:
        return f"cannot start: {e}", []

    def reader():
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            print(line, end="", flush=True)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    start = time.monotonic()
    try:
        rc = proc.wait(timeout=limit_s)
        status = "ok" if rc == 0 else f"exit {rc}"
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        status = f"timed out after {limit_s:.0f} s"
    t.join(timeout=10)
    _child = None
    print(f"== {label}: {status} ({time.monotonic() - start:.1f} s)", flush=True)
    return status, lines


def parse(lines):
    """RESULT lines -> {(kind, shape): {key: value}}; ERROR lines -> list."""
    results, errors = {}, []
    for line in lines:
        if line.startswith("RESULT "):
            fields = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
            results[(fields.get("kind"), fields.get("shape"))] = fields
        elif line.startswith("ERROR "):
            errors.append(line[len("ERROR "):])
    return results, errors


# ---------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------

def fnum(x, fmt, suffix=""):
    return "—" if x is None else format(x, fmt) + suffix


def get(results, kind, shape, key="tflops"):
    r = results.get((kind, shape))
    if r is None or key not in r:
        return None
    try:
        return float(r[key])
    except ValueError:
        return None


def gemm_rows(results):
    shapes = []
    for (kind, shape) in results:
        if kind == "gemm_ours" and shape not in shapes:
            shapes.append(shape)
    return shapes


def render(state):
    res, errs = state["results"], state["errors"]
    out = ["# GPU kernels against their peers (bench/gpu)", ""]
    out.append(f"- date: {state['date']}; commit: {state['commit']}")
    for line in state["info"]:
        out.append(f"- {line}")
    peak = None
    for (kind, shape), r in res.items():
        if kind == "gemm_peak":
            peak = float(r["tflops"])
            out.append(f"- bf16 GEMM peak (the MFU denominator): **{peak:.1f} TFLOP/s** "
                       f"(cuBLASLt's best on {shape})")
    out.append("")

    out.append(f"## GEMMs: ours (`cuda::Blas::gemm`) vs cuBLASLt's best, target >= {GEMM_TARGET}x")
    out.append("")
    out.append("bf16 inputs, fp32 compute and scale; fwd and dx write bf16, dw accumulates "
               "fp32 (beta = 1). TFLOP/s = 2 M N K / time.")
    out.append("")
    out.append("| shape | M x N x K | ours TFLOP/s | best TFLOP/s | best's algo | ratio | target |")
    out.append("|---|---|---|---|---|---|---|")
    missed = 0
    for shape in gemm_rows(res):
        o, b = get(res, "gemm_ours", shape), get(res, "gemm_best", shape)
        r = res.get(("gemm_ours", shape), {})
        algo = res.get(("gemm_best", shape), {}).get("algo", "—")
        ratio = o / b if o and b else None
        met = "—" if ratio is None else ("met" if ratio >= GEMM_TARGET else "**missed**")
        missed += ratio is not None and ratio < GEMM_TARGET
        out.append(f"| {shape} | {r.get('mnk', '—')} | {fnum(o, '.1f')} | {fnum(b, '.1f')} "
                   f"| {algo} | {fnum(ratio, '.3f', 'x')} | {met} |")
    if not gemm_rows(res):
        out.append(f"| (no results: {state['stage_status'].get('gemm', 'not run')}) |||||||")
    out.append("")

    out.append(f"## Attention: ours vs PyTorch flash SDPA, target >= {ATTN_TARGET}x")
    out.append("")
    out.append("bf16, causal, BHSD. FLOPs: forward 4 B H S^2 D / 2, forward + backward 3.5x "
               "that. Ratio = PyTorch time / our time (above 1: ours faster). "
               "'% peak': our TFLOP/s over the GEMM peak above.")
    out.append("")
    out.append("| case | pass | ours ms | ours TFLOP/s | % peak | PyTorch ms | PyTorch TFLOP/s "
               "| PyTorch GQA | ratio | target |")
    out.append("|---|---|---|---|---|---|---|---|---|---|")
    for c in state["cases"]:
        name = case_name(*c)
        for ours_kind, torch_kind, label in (("attn_fwd", "torch_attn_fwd", "fwd"),
                                             ("attn_fwdbwd", "torch_attn_fwdbwd", "fwd+bwd")):
            oms, otf = get(res, ours_kind, name, "ms"), get(res, ours_kind, name)
            tr = res.get((torch_kind, name), {})
            tms, ttf = get(res, torch_kind, name, "ms"), get(res, torch_kind, name)
            if oms is None:
                oms_s = state["stage_status"].get("attention", "not run")
                oms_s = "missing" if oms_s == "ok" else oms_s
            else:
                oms_s = f"{oms:.3f}"
            if "status" in tr:
                tms_s = tr["status"]
            elif tms is None:
                st = state["stage_status"].get("torch", "not run")
                tms_s = "missing" if st == "ok" else st
            else:
                tms_s = f"{tms:.3f}"
            ratio = tms / oms if tms and oms else None
            met = "—" if ratio is None else ("met" if ratio >= ATTN_TARGET else "**missed**")
            missed += ratio is not None and ratio < ATTN_TARGET
            pk = f"{100 * otf / peak:.1f}%" if otf and peak else "—"
            out.append(f"| {name} | {label} | {oms_s} | {fnum(otf, '.1f')} | {pk} | {tms_s} "
                       f"| {fnum(ttf, '.1f')} | {tr.get('gqa', '—')} | {fnum(ratio, '.3f', 'x')} "
                       f"| {met} |")
    out.append("")
    out.append("## Run")
    out.append("")
    for stage, st in state["stage_status"].items():
        out.append(f"- {stage}: {st}")
    out.append(f"- targets missed: {missed}")
    if errs:
        out.append("")
        out.append("## Errors")
        out.append("")
        for e in errs:
            out.append(f"- {e}")
    return "\n".join(out) + "\n"


def write(state, path):
    text = render(state)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return text


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bench", help="the bench_gpu_kernels binary")
    p.add_argument("--out", help="the markdown table to write")
    p.add_argument("--budget-s", type=float, default=225,
                   help="wall-clock seconds for everything (default 225)")
    p.add_argument("--target-ms", type=float, default=200, help="GPU time of one sample")
    p.add_argument("--repeats", type=int, default=3, help="samples per measurement (median)")
    p.add_argument("--torch-peer", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.target_ms <= 0 or a.repeats < 1:
        p.error("--target-ms and --repeats must be positive")
    if a.torch_peer:
        sys.exit(torch_peer(ATTN_CASES, a.target_ms, a.repeats))
    if not a.bench or not a.out:
        p.error("--bench and --out are required")

    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, _on_term)
    start = time.monotonic()
    left = lambda: a.budget_s - (time.monotonic() - start)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    state = dict(results={}, errors=[], info=[], stage_status={}, cases=ATTN_CASES,
                 commit=commit,
                 date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    common = ["--target-ms", f"{a.target_ms:g}", "--repeats", str(a.repeats)]
    cases = ",".join(":".join(map(str, c)) for c in ATTN_CASES)
    # Stages and their time limits: the GEMMs take about a minute, PyTorch
    # (import included) well under one, our attention the rest.
    stages = [
        ("gemm", [a.bench, "gemm"] + common, lambda: min(150, left() - 60)),
        ("torch", [sys.executable, os.path.abspath(__file__), "--torch-peer"] + common,
         lambda: min(100, left() - 30)),
        ("attention", [a.bench, "attention", "--cases", cases] + common, lambda: left() - 3),
    ]
    for stage, cmd, limit in stages:
        status, lines = run_child(cmd, limit(), stage)
        results, errors = parse(lines)
        state["results"].update(results)
        state["errors"] += [f"{stage}: {e}" for e in errors]
        for line in lines:
            if line.startswith(("device: ", "torch ")) and line not in state["info"]:
                state["info"].append(line)
        if status != "ok":
            state["errors"].append(f"{stage}: {status}")
            if not errors:  # the last words, when it said nothing as ERROR
                state["errors"] += [f"{stage}: {l}" for l in lines[-3:]]
        state["stage_status"][stage] = status
        write(state, a.out)

    # Everything that should be there and is not is an error too.
    res = state["results"]
    if state["stage_status"].get("gemm") == "ok" and not any(k == "gemm_peak" for k, _ in res):
        state["errors"].append("gemm: no peak measured")
    for c in ATTN_CASES:  # (what a failed stage left out is reported already)
        name = case_name(*c)
        for kind, stage in (("attn_fwd", "attention"), ("attn_fwdbwd", "attention"),
                            ("torch_attn_fwd", "torch"), ("torch_attn_fwdbwd", "torch")):
            if (kind, name) not in res and state["stage_status"].get(stage) == "ok":
                state["errors"].append(f"missing: {kind} {name}")
    text = write(state, a.out)
    print()
    print(text, end="")
    print(f"bench_gpu.py: {len(state['errors'])} error(s), {time.monotonic() - start:.0f} s; "
          f"table in {a.out}", flush=True)
    sys.exit(1 if state["errors"] else 0)


if __name__ == "__main__":
    main()
