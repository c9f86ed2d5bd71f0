"""The sweep driver: one worker process per family, with a timeout and a memory limit,
so that a hang, a crash or an allocation storm ends only that family."""
from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from . import STAGES, outcome

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REPO = os.path.dirname(PYTHON_DIR)


class SweepError(Exception):
    """Bad arguments (an unknown family, a missing tool): exit status 2."""


def log(msg: str) -> None:
    print(f"[sweep] {msg}", file=sys.stderr, flush=True)


def families(spec: str | None) -> list[str]:
    """``None``: every family; else the comma-separated names, each checked against transformers."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from .families import all_families

    known = all_families()
    if spec is None:
        return known
    want = [f.strip() for f in spec.split(",") if f.strip()]
    unknown = [f for f in want if f not in known]
    if unknown:
        raise SweepError(f"not a *ForCausalLM of the installed transformers: {', '.join(unknown)}")
    return want


def find_tools(opt: str | None, run: str | None, experts: str | None = None):
    from .worker import Tools

    def resolve(given: str | None, name: str) -> str:
        path = shutil.which(given or name) or (
            None if given else shutil.which(os.path.join(REPO, "build", "bin", name)))
        if path is None:
            raise SweepError(f"{name}: {given or name} not found (give --{name})")
        return os.path.abspath(path)

    return Tools(resolve(opt, "weipipe-opt"), resolve(run, "weipipe-run"), experts)


def worker_main(family: str, workdir: str, tools, memory_gb: float) -> int:
    """The worker process: one family, result in ``workdir/result.json``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if memory_gb > 0:
        import resource

        limit = int(memory_gb * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from .worker import run_family

    run_family(family, workdir, tools)
    return 0


def _dead_worker(rec: dict, why: str) -> dict:
    """A worker that was killed or died: the stage it was in fails with ``why``."""
    done = [s for s, st in rec.get("stages", {}).items() if st.get("status") == "ok"]
    stage = rec.get("running") or next((s for s in STAGES if s not in done), STAGES[-1])
    rec.update(result=outcome(stage), stage=stage, reason=why)
    rec.pop("running", None)
    return rec


def run_one(family: str, tools, famdir: str, timeout: float, memory_gb: float) -> dict:
    os.makedirs(famdir, exist_ok=True)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=os.pathsep.join([PYTHON_DIR] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    cmd = [sys.executable, "-m", "weipipe.sweep", "--worker", family, "--workdir", famdir,
           "--weipipe-opt", tools.opt, "--weipipe-run", tools.run, "--memory-limit-gb", str(memory_gb)]
    if tools.experts:
        cmd += ["--experts-implementation", tools.experts]
    t0 = time.perf_counter()
    with open(os.path.join(famdir, "worker.log"), "w") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
            why = None if rc == 0 else (f"worker died (signal {-rc})" if rc < 0 else f"worker exited {rc}")
        except subprocess.TimeoutExpired:
            why = f"timed out after {timeout:g} s"
        finally:  # also when the sweep itself is interrupted
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)  # the worker's own session: it and its tools
                proc.wait()
    wall = time.perf_counter() - t0
    rec = {"family": family, "stages": {}}
    try:
        with open(os.path.join(famdir, "result.json")) as f:
            rec = json.load(f)
    except (OSError, ValueError):
        pass
    if why is not None or rec.get("result") is None:
        why = why or "worker ended without a result"
        tail = _last_line(os.path.join(famdir, "worker.log"))
        rec = _dead_worker(rec, why + (f": {tail}" if tail and "timed out" not in why else ""))
    rec["wall_s"] = round(wall, 1)
    return rec


def _last_line(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            lines = [ln.strip() for ln in f if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def sweep(fams: list[str], tools, workdir: str | None, keep: bool, timeout: float, memory_gb: float,
          jsonl: str | None, markdown: str | None) -> list[dict]:
    # SIGTERM (kill, nohup's end) unwinds like Ctrl-C: the running worker is killed, files cleaned
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    own = workdir is None
    root = tempfile.mkdtemp(prefix="weipipe-sweep-") if own else os.path.abspath(workdir)
    os.makedirs(root, exist_ok=True)
    if jsonl:
        open(jsonl, "w").close()
    results = []
    try:
        for i, fam in enumerate(fams, 1):
            famdir = os.path.join(root, fam)
            shutil.rmtree(famdir, ignore_errors=True)
            rec = run_one(fam, tools, famdir, timeout, memory_gb)
            results.append(rec)
            reason = f": {rec['reason']}" if rec.get("reason") else ""
            log(f"{i}/{len(fams)} {fam}: {rec['result']}{reason} ({rec['wall_s']:.0f} s)")
            if jsonl:
                with open(jsonl, "a") as f:
                    f.write(json.dumps(rec, default=str) + "\n")
            if markdown:
                write_markdown(results, markdown)
            if not keep:
                shutil.rmtree(famdir, ignore_errors=True)
    finally:
        if own and not keep:
            shutil.rmtree(root, ignore_errors=True)
        elif keep:
            log(f"files kept in {root}")
    log(summary(results))
    return results


def summary(results: list[dict]) -> str:
    c = collections.Counter(r["result"] for r in results)
    parts = [f"{n} {k}" for k, n in sorted(c.items(), key=lambda kv: (kv[0] != "pass", kv[0]))]
    n = len(results)
    return f"{n} famil{'y' if n == 1 else 'ies'}: " + ", ".join(parts)


def write_markdown(results: list[dict], path: str) -> None:
    import torch
    import transformers

    lines = [
        f"transformers {transformers.__version__}, torch {torch.__version__.split('+')[0]}: {summary(results)}.",
        "",
        "| family | result | reason |",
        "| --- | --- | --- |",
    ]
    for r in results:
        reason = (r.get("reason") or "").replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {r['family']} | {r['result']} | {reason} |")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
