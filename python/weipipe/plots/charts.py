"""The charts behind `python -m weipipe.plots`.

Traces are the project's one timeline format (runtime/include/weipipe/runtime/
train/Trace.h): Chrome trace JSON, one process per rank, thread 0 its compute,
thread 1 its sends, every event a complete event whose "cat" is the action.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

# One colour per action; bubbles are the white between bars.
COLOURS = {
    "forward": "#4c72b0",
    "backward_input": "#55a868",
    "backward_weight": "#dd8452",
    "backward": "#2a9d8f",
    "optimizer_step": "#8c8c8c",
    "send": "#8172b3",
    "all_reduce": "#c44e52",
}


class InputError(Exception):
    """Bad input: the message names the file and the problem."""


def read_trace(path: str) -> dict:
    """The trace at `path`, checked to be one of ours."""
    try:
        with open(path) as f:
            trace = json.load(f)
    except OSError as e:
        raise InputError(f"{path}: cannot read the trace: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not a trace: not JSON ({e.msg} at line {e.lineno})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a trace: not JSON (not UTF-8 text)") from None
    if not isinstance(trace, dict) or not isinstance(trace.get("traceEvents"), list):
        raise InputError(f"{path}: not a trace: no traceEvents list (write one with weipipe-opt "
                         "--simulate-trace or weipipe-run --trace)")
    for i, e in enumerate(trace["traceEvents"]):
        if not isinstance(e, dict) or "ph" not in e:
            raise InputError(f"{path}: not a trace: traceEvents[{i}] is not an event")
        if e["ph"] == "X":
            for key in ("pid", "tid", "ts", "dur", "cat"):
                if key not in e:
                    raise InputError(f"{path}: not a trace: traceEvents[{i}] has no '{key}'")
    return trace


def short_name(name: str) -> str:
    """"F c2 m5" -> "F5" (the micro-batch; the chunk is the rank's), others as they are."""
    m = re.fullmatch(r"(F|B|W|BW|opt) c\d+(?: m(\d+))?", name)
    return (m.group(1) + (m.group(2) or "")) if m else name


def gantt(paths: list[str], output: str, title: str | None = None) -> None:
    """One panel per trace, one row per rank (compute above, sends below)."""
    traces = [read_trace(p) for p in paths]
    fig, axes = plt.subplots(len(traces), 1, figsize=(14, 1.2 + 0.9 * max(
        1 + max((e["pid"] for e in t["traceEvents"] if e["ph"] == "X"), default=0) for t in traces)
        * len(traces)), squeeze=False)
    end = max((e["ts"] + e["dur"] for t in traces for e in t["traceEvents"] if e["ph"] == "X"),
              default=1.0)
    for ax, path, trace in zip(axes[:, 0], paths, traces):
        events = [e for e in trace["traceEvents"] if e["ph"] == "X"]
        ranks = sorted({e["pid"] for e in events})
        for e in events:
            y = e["pid"] + (0.35 if e["tid"] == 1 else 0.0)
            h = 0.25 if e["tid"] == 1 else 0.6
            ax.broken_barh([(e["ts"] / 1e3, e["dur"] / 1e3)], (y - 0.3, h),
                           facecolors=COLOURS.get(e["cat"], "#333333"), edgecolor="white",
                           linewidth=0.3)
            if e["tid"] == 0 and e["dur"] > end * 0.02 and e.get("name"):
                ax.text((e["ts"] + e["dur"] / 2) / 1e3, y, short_name(e["name"]), ha="center",
                        va="center", fontsize=6, color="white")
        info = trace.get("otherData", {})
        ax.set_yticks(ranks)
        ax.set_yticklabels([f"rank {r}" for r in ranks])
        ax.invert_yaxis()
        ax.set_xlim(0, end / 1e3)
        ax.set_xlabel("ms")
        label = f"{info.get('source', '?')}: {info.get('schedule', '')} {info.get('machine', '')}"
        if "iteration_seconds" in info:
            label += f", iteration {float(info['iteration_seconds']) * 1e3:.3f} ms"
        if "bubble_ratio" in info:
            label += f", bubble {float(info['bubble_ratio']):.3f}"
        ax.set_title(label + f"  ({os.path.basename(path)})", fontsize=9, loc="left")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in COLOURS.values()]
    fig.legend(handles, list(COLOURS), loc="lower center", ncol=len(COLOURS), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(output, dpi=120)
    plt.close(fig)


def read_log(path: str) -> list[tuple[int, float]]:
    steps = []
    try:
        lines = open(path).read().splitlines()
    except OSError as e:
        raise InputError(f"{path}: cannot read the log: {e.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a weipipe-run --log file (not UTF-8 text)") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            steps.append((int(rec["step"]), float(rec["loss"])))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise InputError(f"{path}:{n}: not a weipipe-run --log line (JSON with step and loss)") \
                from None
    if not steps:
        raise InputError(f"{path}: no steps")
    return steps


def loss(paths: list[str], output: str, labels: list[str] | None = None) -> None:
    if labels is not None and len(labels) != len(paths):
        raise InputError(f"--labels has {len(labels)} names for {len(paths)} logs")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, path in enumerate(paths):
        steps = read_log(path)
        ax.plot([s for s, _ in steps], [v for _, v in steps],
                label=labels[i] if labels else os.path.basename(path))
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(output, dpi=120)
    plt.close(fig)


def find_tool(name: str, given: str | None) -> str:
    if given:
        return given
    on_path = shutil.which(name)
    if on_path:
        return on_path
    here = os.path.dirname(os.path.abspath(__file__))
    built = os.path.join(here, "..", "..", "..", "build", "bin", name)
    if os.path.exists(built):
        return os.path.abspath(built)
    raise InputError(f"{name} not found: put it on PATH or pass --{name}")


def parse_report(text: str) -> dict:
    row = {}
    m = re.search(r"iteration time: ([\d.]+) (us|ms|s)\b", text)
    if not m:
        raise InputError("no iteration time in weipipe-opt's report")
    row["iteration_ms"] = float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
    row["tokens_per_s"] = float(re.search(r"tokens/s per device: ([\d.]+)", text).group(1))
    row["bubble"] = float(re.search(r"bubble ratio: ([\d.]+)", text).group(1))
    peaks = [float(v) * {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30}[u] for v, u in re.findall(
        r"^ +\d+ +[\d.]+ (?:us|ms|s) +[\d.]+ (?:us|ms|s) +([\d.]+) (KiB|MiB|GiB)", text, re.M)]
    row["peak_gib"] = max(peaks) / 2**30 if peaks else 0.0
    row["fits"] = "does not fit" not in text
    return row


def compare(onnx: str, machine: str, schedules: list[str], ranks: int, microbatches: int,
            input_shape: str, weipipe_opt: str | None, output: str) -> list[dict]:
    tool = find_tool("weipipe-opt", weipipe_opt)
    rows = []
    for s in schedules:
        cmd = [tool, onnx, f"--input-shape={input_shape}", "--emit=artifact", f"--ranks={ranks}",
               f"--schedule={s}", f"--microbatches={microbatches}", f"--simulate={machine}"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise InputError(f"schedule {s}: weipipe-opt failed: {r.stderr.strip()}")
        row = parse_report(r.stdout)
        row["schedule"] = s
        rows.append(row)
    fig, ax = plt.subplots(figsize=(1.6 * len(rows) + 2, 4))
    bars = ax.bar([r["schedule"] for r in rows], [r["tokens_per_s"] for r in rows],
                  color=["#4c72b0" if r["fits"] else "#c44e52" for r in rows])
    for b, r in zip(bars, rows):
        ax.text(b.get_x() + b.get_width() / 2, b.get_height(),
                f"bubble {r['bubble']:.2f}" + ("" if r["fits"] else "\nOOM"), ha="center",
                va="bottom", fontsize=8)
    ax.set_ylabel("simulated tokens/s per device")
    ax.set_title(f"{os.path.basename(onnx)} on {machine}: P={ranks}, N={microbatches}", fontsize=10)
    fig.tight_layout()
    fig.savefig(output, dpi=120)
    plt.close(fig)
    return rows


def table(rows: list[dict]) -> str:
    best = max(r["tokens_per_s"] for r in rows) or 1.0
    out = ["| schedule | iteration (ms) | tokens/s per device | vs best | bubble | peak memory (GiB) |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['schedule']} | {r['iteration_ms']:.3f} | {r['tokens_per_s']:.1f} | "
                   f"{r['tokens_per_s'] / best:.3f} | {r['bubble']:.4f} | {r['peak_gib']:.3f}"
                   f"{'' if r['fits'] else ' (OOM)'} |")
    return "\n".join(out)
