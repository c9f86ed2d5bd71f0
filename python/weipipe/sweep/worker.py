"""One family through every stage, in its own process (``python -m weipipe.sweep --worker``).

The result is rewritten to ``result.json`` in the family's directory before
each stage starts and after each ends, so that the driver can still tell which
stage a killed worker was in. The stages are weipipe.sweep.STAGES (README.md);
each compares with a relative tolerance of :data:`RTOL` and the family stops at
its first failure, except that train and trained-set are both measured: a wrong
trained set explains a training mismatch, so it is the one reported.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass

import numpy as np

from . import outcome
from .families import first_line

RTOL = 1e-5
ORT_RTOL = 1e-4  # onnxruntime vs torch on torch's export: a sanity check of the export only
BATCH, SEQ, MICROBATCHES, STEPS = 2, 16, 2, 10
TOOL_WAIT_S = 180
TOKENS = 4000  # > STEPS * MICROBATCHES * BATCH windows of SEQ + 1 (680 tokens)
# The ten-step check of test/e2e/hf-llama.test (warm-up, cosine, clipping, decay), with
# AdamW eps 1e-5 as its one-step check: at eps 1e-8 AdamW moves an element by about
# lr * g / (|g| + eps), which turns float32 roundoff in a gradient that is zero in exact
# arithmetic (a key bias under softmax, an unused embedding row) into lr-sized updates
# that differ between any two float32 implementations.
TRAIN_FLAGS = {"lr": 3e-3, "lr_schedule": "cosine", "warmup_steps": 2, "grad_clip": 1.0, "weight_decay": 0.1,
               "eps": 1e-5}
# The experts implementation a family is rebuilt with when the default one
# (grouped_mm) does not export.
FALLBACK_EXPERTS = "batched_mm"
NOISE_FACTOR = 2.0  # a check within NOISE_FACTOR x torch float32's own error vs float64 is noise


class StageFailure(Exception):
    """Ends the family at ``stage`` with a one-line ``reason`` (and the stage's measurements)."""

    def __init__(self, stage: str, reason: str, measured: dict | None = None):
        super().__init__(f"{stage}: {reason}")
        self.stage = stage
        self.reason = reason
        self.measured = measured or {}


def rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    from weipipe.models.export import _rel_err

    return _rel_err(got, ref)


@dataclass
class Tools:
    """The tools under test, and the build option that goes with them to every worker."""

    opt: str
    run: str
    experts: str | None = None  # transformers' experts_implementation (None: its default)


class Family:
    """The state and the record of one family's run."""

    def __init__(self, family: str, workdir: str, tools: Tools):
        self.family = family
        self.dir = workdir
        self.tools = tools
        self.rec: dict = {"family": family, "result": None, "stage": None, "reason": "", "stages": {}}
        self.t0 = time.perf_counter()

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def save(self) -> None:
        self.rec["wall_s"] = round(time.perf_counter() - self.t0, 2)
        tmp = self.path("result.json.tmp")
        with open(tmp, "w") as f:
            json.dump(self.rec, f, default=str)
        os.replace(tmp, self.path("result.json"))

    def stage(self, name: str, fn) -> None:
        """Run ``fn() -> dict of measurements``; StageFailure or any exception ends the family."""
        self.rec["running"] = name
        self.save()
        t = time.perf_counter()
        st = {"status": "running"}
        self.rec["stages"][name] = st
        try:
            st.update(fn() or {})
            st["status"] = "ok"
        except StageFailure as e:
            st.update(e.measured, status="failed")
            raise
        except Exception as e:  # noqa: BLE001
            st["status"] = "failed"
            raise StageFailure(name, first_line(e, cause=True)) from e
        finally:
            st["seconds"] = round(time.perf_counter() - t, 2)
            self.rec.pop("running", None)
            self.save()

    # ------------------------------------------------------------------ tools

    def tool(self, what: str, args: list[str], log: str) -> subprocess.CompletedProcess:
        """Run weipipe-opt / weipipe-run; stdout and stderr to ``log`` in the family directory."""
        exe = self.tools.opt if what == "opt" else self.tools.run
        deadline = time.monotonic() + TOOL_WAIT_S
        while True:  # a binary being rebuilt is missing or busy for a moment: wait for it
            try:
                self.rec.setdefault("tools", {})[os.path.basename(exe)] = time.strftime(
                    "%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(exe)))
                with open(self.path(log), "w") as f:
                    return subprocess.run([exe, *args], stdout=f, stderr=subprocess.STDOUT, cwd=self.dir)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(5)

    def tool_error(self, stage: str, proc: subprocess.CompletedProcess, log: str,
                   graph_ops: list[str] = ()) -> StageFailure:
        """The first ``error:`` line of a tool's output. weipipe-opt names the first unsupported
        op and lists the supported ones: the reason names every unsupported op of the graph."""
        with open(self.path(log), errors="replace") as f:
            lines = [ln.rstrip() for ln in f if ln.strip()]
        err = next((ln for ln in lines if "error:" in ln), lines[-1] if lines else "(no output)")
        err = err.replace(self.dir + os.sep, "")
        err, _, supported = err.partition("; supported ops: ")
        code = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit {proc.returncode}"
        reason = f"{err.strip()[:400]} ({code})"
        missing = sorted(set(graph_ops) - {op.strip() for op in supported.split(",")}) if supported else []
        if missing:
            self.rec["unsupported_ops"] = missing
            reason += f"; unsupported ops in the graph: {', '.join(missing)}"
        return StageFailure(stage, reason)


def make_tokens(path: str, vocab: int, exclude: set[int], seed: int = 0) -> None:
    """Random ids in [1, vocab) minus ``exclude`` (padding rows PyTorch never updates).
    Id 0 stays out too: HF pad rows; packed language-model data holds no padding."""
    from weipipe.reference.data import TOKEN_DTYPES, default_token_dtype

    allowed = np.array([i for i in range(1, vocab) if i not in exclude], dtype=np.int64)
    rng = np.random.default_rng(seed)
    toks = allowed[rng.integers(0, len(allowed), TOKENS)]
    toks.astype(TOKEN_DTYPES[default_token_dtype(vocab)]).tofile(path)


def run_family(family: str, workdir: str, tools: Tools) -> dict:
    import torch

    torch.set_num_threads(1)  # as the reference trainer: deterministic and cheap at this size
    fam = Family(family, workdir, tools)
    state: dict = {}
    try:
        fam.stage("build", lambda: _build(fam, state))
        try:
            fam.stage("export", lambda: _export(fam, state))
        except StageFailure as e:
            # transformers' default mixture-of-experts kernel (grouped_mm) is a
            # custom op torch.onnx cannot translate; its documented alternative
            # exports. A user does the same.
            if fam.tools.experts is not None or "grouped_mm" not in e.reason:
                raise
            fam.tools.experts = FALLBACK_EXPERTS
            fam.rec["experts_implementation"] = FALLBACK_EXPERTS
            fam.stage("build", lambda: _build(fam, state))
            fam.stage("export", lambda: _export(fam, state))
        while True:
            try:
                _check(fam, state)
                break
            except StageFailure as e:
                if not _export_fallback(fam, state, e):
                    raise
            fam.rec.pop("trained_set", None)
            fam.rec.pop("reason", None)  # the failed attempt's
            fam.stage("build", lambda: _build(fam, state))
            fam.stage("export", lambda: _export(fam, state))
        fam.rec["result"] = "pass"
        fam.rec["reason"] = "; ".join(_fallbacks(fam.rec) + ([fam.rec["reason"]] if fam.rec.get("reason") else []))
    except StageFailure as e:
        reason = e.reason
        warned = fam.rec["stages"].get("compile", {}).get("warnings", [])
        if e.stage in ("train", "trained-set") and warned:  # what weipipe-opt was unsure of
            reason += f" [weipipe-opt warned: {warned[0].split('. ')[0][:200]}]"
        if _fallbacks(fam.rec):
            reason = f"({'; '.join(_fallbacks(fam.rec))}) {reason}"
        fam.rec.update(result=outcome(e.stage), stage=e.stage, reason=reason)
    fam.save()
    return fam.rec


def _check(fam: Family, state: dict) -> None:
    """The stages after the export; the first failure raises."""
    fam.stage("ort", lambda: _ort(fam, state))
    fam.stage("compile", lambda: _compile(fam))
    fam.stage("forward", lambda: _forward(fam, state))
    train_err = None
    try:
        fam.stage("train", lambda: _train(fam, state))
    except StageFailure as e:
        train_err = e
    if "weipipe_weights" in state and "matching" in state:  # both sides got that far
        fam.stage("trained-set", lambda: _trained_set(fam, state))
    if train_err is not None:
        raise train_err


def _export_fallback(fam: Family, state: dict, e: StageFailure) -> bool:
    """Choose the next documented export a user turns to after failure ``e``, in ``state``
    (cleared) and ``fam.rec``; False when none is left.

    1. optimize=False. torch.onnx's optimizer folds a function of a parameter that is no
       reshape of it (Mamba's -exp(A_log), softplus(p)) into a constant: the parameter is
       gone from the file. What it folds also loses the exporter's parameter/buffer
       record, so a folded buffer can pass for a parameter. Without the optimizer the
       computation and the record stay; weipipe-opt's warning says so.
    2. weipipe's export helper (weipipe.models.export.record_trainable), which records the
       trained set itself: what no exporter records (a parameter with requires_grad=False,
       HRM's z_L_init) is then known."""
    found = state.get("matching")
    folded = [b.name for b in found.unmatched] if found is not None else []
    optimize, helper = state.get("optimize", True), state.get("helper", False)
    extra = [x.split(" ")[0] for x in fam.rec.get("trained_set", {}).get("extra", [])]
    # weipipe-opt's warning about tensors the optimizer computed (a bias or an
    # attention sink broadcast into a folded copy, trained as one) says to do so.
    warned = [w for w in fam.rec["stages"].get("compile", {}).get("warnings", [])
              if "optimize=False" in w]
    if optimize and (folded or e.stage == "trained-set" or (warned and e.stage == "train")):
        fam.rec["export_optimize"] = False
        fam.rec["folded_params"] = folded
        fam.rec["unrecorded"] = extra
        if not folded and not fam.rec["unrecorded"]:
            fam.rec["optimize_warning"] = warned[0].split(". ")[0][:160]
    elif not helper and e.stage == "trained-set" and not folded:
        fam.rec["export_helper"] = extra
        helper = True
    else:
        return False
    state.clear()
    state["optimize"], state["helper"] = False, helper
    return True


def _fallbacks(rec: dict) -> list[str]:
    """The documented export workarounds a family needed, as the table names them."""
    out = []
    if rec.get("experts_implementation"):
        out.append(f"experts_implementation={rec['experts_implementation']} (grouped_mm does not export)")
    if rec.get("export_optimize") is False:
        why = []
        if rec.get("folded_params"):
            folded = rec["folded_params"]
            why.append(f"the default export folds {len(folded)} parameter(s) into constants: "
                       + ", ".join(folded[:2]) + (" ..." if len(folded) > 2 else ""))
        elif rec.get("optimize_warning"):
            why.append(f"weipipe-opt warned: {rec['optimize_warning']}")
        elif rec.get("unrecorded"):
            extra = rec["unrecorded"]
            why.append(f"its optimizer leaves {len(extra)} folded tensor(s) without the exporter's "
                       "parameter/buffer record, which weipipe trained: " + ", ".join(extra[:2])
                       + (" ..." if len(extra) > 2 else ""))
        out.append("optimize=False (" + "; ".join(why) + ")")
    if rec.get("export_helper") is not None:
        extra = rec["export_helper"]
        out.append("weipipe's export helper records the trained set (no exporter records "
                   f"requires_grad=False; weipipe trained {len(extra)} frozen parameter(s): "
                   + ", ".join(extra[:2]) + (" ..." if len(extra) > 2 else "") + ")")
    return out


# ---------------------------------------------------------------------- stages


def _build(fam: Family, state: dict) -> dict:
    import torch

    from weipipe.reference.data import Windows, load_tokens

    from .families import VOCAB, BuildError, build

    # the data first (the build runs the model on its first batch): ids < VOCAB fit any
    # family's vocabulary; the padding rows are checked against the built model below
    make_tokens(fam.path("tokens.bin"), VOCAB, set())
    state["windows"] = Windows(load_tokens(fam.path("tokens.bin"), VOCAB), SEQ)
    state["ids"] = state["windows"].batch(0, BATCH)[0]
    try:
        b = build(fam.family, torch.from_numpy(state["ids"]), experts=fam.tools.experts)
    except BuildError as e:
        raise StageFailure("build", str(e)[:500]) from e
    state["built"] = b
    if b.vocab != VOCAB or b.padding_ids() - {0}:  # remake the data for this vocabulary
        make_tokens(fam.path("tokens.bin"), b.vocab, b.padding_ids())
        state["windows"] = Windows(load_tokens(fam.path("tokens.bin"), b.vocab), SEQ)
        state["ids"] = state["windows"].batch(0, BATCH)[0]
        with torch.no_grad():
            b.logits = b.module(torch.from_numpy(state["ids"])).numpy()
    params = list(b.module.parameters())
    fam.rec.update(config_class=b.config_class, attn=b.attn, notes=b.notes)
    return {"params": sum(p.numel() for p in params), "tensors": len(params), "vocab": b.vocab,
            "overrides": b.overrides, "attn": b.attn, "padding_ids": sorted(b.padding_ids())}


def _export(fam: Family, state: dict) -> dict:
    """As a user does: dynamo, default opset and optimisation (unless ``state["optimize"]`` is
    False: the retry when the optimizer folded parameters away), static shapes, weights
    inline."""
    import torch

    from weipipe.models.export import model_opset, record_trainable, save

    module = state["built"].module
    ids = torch.from_numpy(state["ids"])
    with torch.no_grad():
        prog = torch.onnx.export(module, (ids,), dynamo=True, optimize=state.get("optimize", True))
    proto = prog.model_proto
    if state.get("helper") and not record_trainable(proto, module):
        raise StageFailure("export", "weipipe's export helper cannot match the initializers to the "
                                     "module's parameters")
    save(proto, fam.path("model.onnx"))
    state["proto"] = proto
    ops = sorted({n.op_type for n in proto.graph.node})
    return {"opset": model_opset(proto), "nodes": len(proto.graph.node), "ops": ops,
            "initializers": len(proto.graph.initializer), "bytes": os.path.getsize(fam.path("model.onnx"))}


def _ort(fam: Family, state: dict) -> dict:
    from weipipe.reference.ort import ort_logits

    got = ort_logits(fam.path("model.onnx"), state["ids"])
    state["ort_logits"] = got
    return _compare_logits(fam, "ort", got, "onnxruntime", state["built"].logits, "torch", ORT_RTOL,
                           "onnxruntime vs torch on torch's export")


def _compare_logits(fam: Family, stage: str, got, who: str, ref, ref_who: str, tol: float,
                    what: str) -> dict:
    """Logits of ``who`` against ``ref_who``'s: same shape, max-relative error within ``tol``
    (recorded as ``<stage>_rel_err``)."""
    if got.shape != ref.shape:
        raise StageFailure(stage, f"{who} logits {list(got.shape)} vs {ref_who} {list(ref.shape)}")
    err = rel_err(got, ref)
    fam.rec[f"{stage}_rel_err"] = err
    if not np.isfinite(err) or err > tol:
        raise StageFailure(stage, f"{what}: rel err {err:.3g} > {tol:g}")
    return {"rel_err": err}


def _compile(fam: Family) -> dict:
    log = "compile.log"
    p = fam.tool("opt", ["model.onnx", "--emit=artifact", f"--microbatches={MICROBATCHES}", "-o", "model.wpp"], log)
    if p.returncode != 0:
        raise fam.tool_error("compile", p, log, fam.rec["stages"]["export"]["ops"])
    with open(fam.path(log), errors="replace") as f:
        text = f.read()
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    summary = [ln.strip() for ln in lines if ln.strip().startswith(("parameters:", "step:"))]
    warnings = [ln.split("warning: ", 1)[1] for ln in lines if "warning: " in ln]
    return {"summary": summary, "warnings": warnings, "log": lines[:80]}  # what is trained and why


def _forward(fam: Family, state: dict) -> dict:
    log = "forward.log"
    p = fam.tool("run", ["model.wpp", "--data", "tokens.bin", "--steps", "0", "--dump-logits", "ours.npy",
                         "--quiet"], log)
    if p.returncode != 0:
        raise fam.tool_error("forward", p, log)
    return _compare_logits(fam, "forward", np.load(fam.path("ours.npy")), "weipipe", state["ort_logits"],
                           "onnxruntime", RTOL, "logits vs onnxruntime")


def _flags() -> list[str]:
    """TRAIN_FLAGS as weipipe-run options."""
    return [x for k, v in TRAIN_FLAGS.items() for x in (f"--{k.replace('_', '-')}", str(v))]


def _train(fam: Family, state: dict) -> dict:
    """weipipe-run and torch.optim.AdamW, ten steps each on the same data: every step's loss
    and gradient norm, and every final weight (norm-wise, as test/e2e/Inputs/compare_runs.py).

    When a check fails, torch also trains the module in float64. A model whose float32
    training is chaotic passes when the first step agrees (loss and gradient norm within
    RTOL: the computation is right) and weipipe's worst error against float64 is within
    NOISE_FACTOR x torch float32's own (roundoff amplified by the training, as much as
    PyTorch's); the reason says so."""
    ours, ours_w = _weipipe_train(fam)
    state["weipipe_weights"] = ours_w
    module = _prepare_reference(fam, state)
    pristine = _pristine(fam, state, module)  # for the float64 run
    ref, ref_w, loaded = _torch_train(fam, state, module, "torch")
    out = {"steps": len(ours), "loss_first": ours[0]["loss"] if ours else None,
           "loss_last": ours[-1]["loss"] if ours else None}
    errs = _errors(ours, ref, ours_w, ref_w)
    out.update(_summarise(errs))
    fam.rec.update({k: out[k] for k in ("loss_rel_err", "grad_norm_rel_err", "weight_rel_err")})
    bad = _first_bad(errs, lambda k: RTOL)
    if bad is None:
        return out
    ref64, ref64_w = _torch_train64(fam, state, pristine, loaded)
    e32 = _errors(ref, ref64, ref_w, ref64_w)
    e_ours = _errors(ours, ref64, ours_w, ref64_w)
    worst32, worst_ours = max(e32.values(), default=0.0), max(e_ours.values(), default=0.0)
    fam.rec["float64"] = {"torch32_vs_64": worst32, "weipipe_vs_64": worst_ours}
    # The first step shows the computation is right: within RTOL of torch float32, or of
    # float64 when torch float32 itself is further off (a long reduction torch sums coarsely).
    first = {k: min(e, e_ours.get(k, e)) for k, e in errs.items() if k[0] != "weight" and k[1] == 0}
    first_bad = _first_bad(first, lambda k: RTOL)
    if first_bad is None and worst_ours <= max(RTOL, NOISE_FACTOR * worst32):
        fam.rec["reason"] = (f"float32 noise: torch float32 is {worst32:.1e} from float64, weipipe "
                             f"{worst_ours:.1e}; vs torch float32 {bad}")
        return out
    raise StageFailure("train", f"{bad} (vs torch float64: weipipe {worst_ours:.1e}, torch float32 "
                                f"{worst32:.1e}" + (f"; {first_bad}" if first_bad else "") + ")", out)


def _pristine(fam: Family, state: dict, module):
    """An untrained copy of ``module``. A module holding a non-leaf tensor (RecurrentGemma's,
    after a forward) refuses deepcopy: then the family is built again and given the module's
    state."""
    import copy

    import torch

    from .families import build

    try:
        return copy.deepcopy(module)
    except RuntimeError:
        fresh = build(fam.family, torch.from_numpy(state["ids"]), experts=fam.tools.experts).module
        fresh.load_state_dict(module.state_dict())
        frozen = {n for n, p in module.named_parameters() if not p.requires_grad}
        for n, p in fresh.named_parameters():
            p.requires_grad_(n not in frozen)
        return fresh


def _weipipe_train(fam: Family):
    """weipipe-run for STEPS steps: (log records, final weights by initializer name)."""
    from safetensors.numpy import load_file

    log = "train-ours.log"
    p = fam.tool("run", ["model.wpp", "--data", "tokens.bin", "--steps", str(STEPS), *_flags(),
                         "--log", "ours.jsonl", "--save-weights", "ours.safetensors", "--quiet"], log)
    if p.returncode != 0:
        raise fam.tool_error("train", p, log)
    with open(fam.path("ours.jsonl")) as f:
        return [json.loads(ln) for ln in f if ln.strip()], load_file(fam.path("ours.safetensors"))


def _prepare_reference(fam: Family, state: dict):
    """The built module with its unused parameters frozen, matched to the ONNX initializers
    (derived holders allowed: match.find).

    Parameters that get no gradient (unused by the forward) are not in the export; torch's
    AdamW skips them too, so they leave the matching (recorded as ``unused_params``)."""
    import torch

    from weipipe.reference import match as M

    module = state["built"].module
    module.zero_grad(set_to_none=True)
    module(torch.from_numpy(state["ids"])).float().sum().backward()
    fam.rec["unused_params"] = [n for n, p in module.named_parameters() if p.grad is None]
    for p in module.parameters():
        if p.grad is None:
            p.requires_grad_(False)
    module.zero_grad(set_to_none=True)
    found = M.find(module, state["proto"], fam.path("model.onnx"), derived=True)
    state["matching"] = found
    derived = {h.name: f"{h.derive[0].replace('P', b.name, 1)}" for b in found.bindings for h in b.holders
               if h.how == "derived"}
    if derived:
        fam.rec["derived_holders"] = derived
    if found.unmatched or found.ambiguous:
        raise StageFailure("train", "the torch reference cannot load the ONNX weights: " + _matching_problem(found))
    return module


def _torch_config():
    from weipipe.reference import train as T

    return T.TrainConfig(steps=STEPS, microbatches=MICROBATCHES, **TRAIN_FLAGS)


def _torch_run(fam: Family, state: dict, m, tag: str):
    from weipipe.reference import match as M
    from weipipe.reference import train as T

    with open(fam.path(f"{tag}.jsonl"), "w") as f:  # next to weipipe-run's, for --keep
        records = T.train(m, state["windows"], BATCH, _torch_config(), f, echo=False)
    return records, {k: v.numpy() for k, v in M.state_by_initializer(m.bindings).items()}


def _torch_train(fam: Family, state: dict, module, tag: str):
    """The reference trainer (weipipe.reference.train) on ``module``, weights from the ONNX file."""
    from weipipe.reference import train as T

    m = T.from_module(fam.family, "plain", module, fam.path("model.onnx"), state["proto"],
                      found=state["matching"])
    records, weights = _torch_run(fam, state, m, tag)
    return records, weights, m


def _torch_train64(fam: Family, state: dict, pristine, loaded32):
    """The reference trainer on a float64 copy of the module, taken before training (the
    file's values: the module is the one exported), with the float32 run's bindings."""
    import dataclasses

    from weipipe.reference import match as M

    module = pristine.double()
    params = dict(module.named_parameters(remove_duplicate=False))
    bindings = [M.Binding(b.name, b.aliases, params[b.name], b.holders) for b in loaded32.bindings]
    m = dataclasses.replace(loaded32, module=module, bindings=bindings)
    return _torch_run(fam, state, m, "torch64")


def _errors(ours: list[dict], ref: list[dict], ours_w: dict, ref_w: dict) -> dict:
    """Relative error of every check: ``("loss", step)``, ``("grad_norm", step)`` and
    ``("weight", name)`` (norm-wise). A saved weight with unit leading axes where the
    initializer has more (a slice the importer trains once, repeated where read) is
    compared broadcast. A missing step or a shape mismatch is an infinite error."""
    errs: dict = {}
    for s in range(max(len(ours), len(ref))):
        for k in ("loss", "grad_norm"):
            if s >= len(ours) or s >= len(ref):
                errs[(k, s)] = float("inf")
                continue
            o, r = ours[s][k], ref[s][k]
            e = abs(o - r) / max(abs(r), 1e-30)
            errs[(k, s)] = e if np.isfinite(e) else float("inf")
    for k in sorted(set(ours_w) & set(ref_w)):  # the trained-set stage reports the others
        o, r = ours_w[k].astype(np.float64), ref_w[k].astype(np.float64)
        if o.shape != r.shape:
            try:
                o = np.broadcast_to(o, r.shape) if np.broadcast_shapes(o.shape, r.shape) == r.shape else o
            except ValueError:
                pass
        if o.shape != r.shape:
            errs[("weight", k)] = float("inf")
            continue
        e = float(np.linalg.norm(o - r)) / max(float(np.linalg.norm(r)), 1e-30)
        errs[("weight", k)] = e if np.isfinite(e) else float("inf")
    return errs


def _summarise(errs: dict) -> dict:
    out = {"loss_rel_err": 0.0, "grad_norm_rel_err": 0.0, "weight_rel_err": 0.0, "worst_weight": ""}
    for (kind, key), e in errs.items():
        if e >= out[f"{kind}_rel_err"]:
            out[f"{kind}_rel_err"] = e
            if kind == "weight":
                out["worst_weight"] = key
    return out


def _first_bad(errs: dict, tol) -> str | None:
    """The first check over ``tol(key)``: steps in order (loss before gradient norm), then
    the worst final weight; None when all are within."""
    steps = sorted((k for k in errs if k[0] != "weight"), key=lambda k: (k[1], k[0] != "loss"))
    for k in steps:
        if errs[k] > tol(k):
            return f"step {k[1]} {k[0]} rel err {errs[k]:.3g} > {tol(k):.3g}"
    bad = [k for k in errs if k[0] == "weight" and errs[k] > tol(k)]
    if bad:
        k = max(bad, key=lambda k: errs[k] / tol(k))
        return f"final weight {k[1]} rel err {errs[k]:.3g} > {tol(k):.3g}"
    return None


def _matching_problem(found) -> str:
    parts = []
    if found.unmatched:
        parts.append(f"{len(found.unmatched)} parameter(s) held by no initializer: "
                     + ", ".join(f"{b.name} {list(b.param.shape)}" for b in found.unmatched[:4]))
    if found.ambiguous:
        parts.append(f"{len(found.ambiguous)} ambiguous initializer(s): {found.ambiguous[0]}")
    return "; ".join(parts)


def _describe_extra(name: str, saved: np.ndarray, found) -> str:
    """``name [initializer shape]``, how it derives from a parameter (one already held
    elsewhere: the exporter folded a copy that weipipe trains separately), and the shape
    weipipe-run saved it in when that differs."""
    from weipipe.reference import match as M

    init = found.inits.get(name)
    shape = list(init.shape) if init is not None else list(saved.shape)
    out = f"{name} {shape}"
    if init is not None:
        for b in found.bindings:
            d = M._derivations(init, b.param.detach().numpy())  # noqa: SLF001
            if d:
                out += f" (= {d[0][0].replace('P', b.name, 1)})"
                break
    if list(saved.shape) != shape:
        out += f" (saved as {list(saved.shape)})"
    return out


def _trained_set(fam: Family, state: dict) -> dict:
    """What weipipe trains (the keys of its saved weights, tied copies under every name) =
    the initializers that hold the module's trainable parameters (held as stored, or derived
    from one parameter by the exporter: match.find), and every parameter trained."""
    ours = state["weipipe_weights"]
    found = state["matching"]
    expected = found.holder_names()
    extra = sorted(set(ours) - expected)
    missing = sorted(expected - set(ours))
    unmatched = [f"{b.name} {list(b.param.shape)}" for b in found.unmatched]
    ambiguous = list(found.ambiguous)
    rec = {"weipipe": len(ours), "expected": len(expected),
           "extra": [_describe_extra(k, ours[k], found) for k in extra],
           "missing": missing,
           "unmatched_params": unmatched, "ambiguous": ambiguous}
    fam.rec["trained_set"] = rec
    problems = []
    if extra:
        problems.append(f"trains {len(extra)} non-parameter initializer(s) as weights: "
                        + ", ".join(rec["extra"][:4]) + (" ..." if len(extra) > 4 else ""))
    if missing:
        problems.append(f"does not train {len(missing)} parameter initializer(s): "
                        + ", ".join(missing[:4]) + (" ..." if len(missing) > 4 else ""))
    if unmatched or ambiguous:
        problems.append(_matching_problem(found))
    if problems:
        raise StageFailure("trained-set", "; ".join(problems))
    return rec
