"""Find the ONNX initializer(s) that hold each trainable parameter of a module.

Rules (README.md, "Initializer matching"):

1. Candidates are the floating-point initializers of the ONNX graph (main
   graph, external data loaded). Parameters are the module's trainable
   parameters, one per tensor; a tied parameter has several names (aliases,
   ``named_parameters(remove_duplicate=False)``).
2. By name: an initializer whose name equals an alias of exactly one parameter
   (else: is ``PREFIX.alias`` or ``alias`` is ``PREFIX.name``, for exactly one
   parameter) and has the parameter's shape and dtype holds that parameter.
3. The name-matched initializers' values are loaded into the parameters.
4. By value: every other initializer that is bitwise equal to exactly one
   parameter (same shape and dtype), or, for a 2-D parameter, to its transpose,
   holds that parameter (a transposed copy when it equals the transpose; same
   layout wins for a symmetric matrix). An initializer bitwise equal to two or
   more parameters is ambiguous; one equal to none is a constant, not a weight.
   With ``derived=True`` (the family sweep), a parameter still without a
   holder may be held by an initializer the exporter computed from it alone
   (:func:`_derivations`): ``P + c``, rows ``P[a:b]`` (tiled), or ``P``
   reshaped and broadcast. Such a holder is never loaded into the parameter
   (the module's value is its source); :func:`state_by_initializer` gives it
   the derived value.
5. Every parameter must have at least one holder and no initializer is
   ambiguous, else :class:`RefError` lists the unmatched parameters and
   ambiguous initializers. A parameter can have several holders (a tied
   embedding / LM head: the embedding under its name plus the head's
   transposed copy); their values, in the parameter's layout, must be bitwise
   equal.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from .errors import RefError

_FLOAT_TYPES = {
    onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE,
}


@dataclass
class Holder:
    name: str  # ONNX initializer name
    transposed: bool  # the initializer holds param.T (2-D)
    how: str  # "name", "value" or "derived"
    derive: tuple | None = None  # how == "derived": (description, param -> initializer value)


@dataclass
class Binding:
    name: str  # canonical parameter name (first of named_parameters(remove_duplicate=False))
    aliases: list[str]
    param: torch.nn.Parameter
    holders: list[Holder] = field(default_factory=list)


def load_onnx(path: str) -> onnx.ModelProto:
    try:
        return onnx.load(path)
    except FileNotFoundError:
        raise RefError(f"ONNX file {path}: no such file") from None
    except Exception as e:  # noqa: BLE001
        raise RefError(f"cannot load ONNX file {path}: {type(e).__name__}: {e}") from None


def float_initializers(proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    out = {}
    for t in proto.graph.initializer:
        if t.data_type in _FLOAT_TYPES:
            out[t.name] = numpy_helper.to_array(t)
    return out


def trainable_params(module: torch.nn.Module) -> list[Binding]:
    by_id: dict[int, Binding] = {}
    for n, p in module.named_parameters(remove_duplicate=False):
        if not p.requires_grad:
            continue
        b = by_id.get(id(p))
        if b is None:
            by_id[id(p)] = Binding(n, [n], p)
        else:
            b.aliases.append(n)
    return list(by_id.values())


def _np(p: torch.Tensor) -> np.ndarray:
    return p.detach().cpu().numpy()


def _key(a: np.ndarray) -> tuple:
    a = np.ascontiguousarray(a)
    return (a.dtype.str, a.shape, hashlib.blake2b(a.tobytes(), digest_size=16).digest())


def _bitwise_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def _shape(a) -> str:
    return "[" + ",".join(str(d) for d in a.shape) + "]"


def _name_candidates(init: str, bindings: list[Binding]) -> list[Binding]:
    exact = [b for b in bindings if init in b.aliases]
    if exact:
        return exact
    return [
        b for b in bindings
        if any(init.endswith("." + a) or a.endswith("." + init) for a in b.aliases)
    ]


@dataclass
class Matching:
    """Steps 2-4 of the rules, before the check of step 5 (see :func:`find`)."""

    bindings: list[Binding]
    inits: dict[str, np.ndarray]
    ambiguous: list[str]  # one message per ambiguous initializer

    @property
    def unmatched(self) -> list[Binding]:
        return [b for b in self.bindings if not b.holders]

    def holder_names(self) -> set[str]:
        return {h.name for b in self.bindings for h in b.holders}


def find(module: torch.nn.Module, proto: onnx.ModelProto, onnx_path: str = "<onnx>",
         derived: bool = False) -> Matching:
    """Steps 2-4 without step 5: unmatched parameters and ambiguous initializers are
    reported in the result instead of raised, for tools that diagnose a file
    (the family sweep). Name-matched values are loaded into the parameters.
    """
    inits = float_initializers(proto)
    bindings = trainable_params(module)
    claimed: dict[str, Binding] = {}

    # 2. by name
    for iname, arr in inits.items():
        cands = _name_candidates(iname, bindings)
        if len(cands) != 1:
            continue
        b = cands[0]
        pa = _np(b.param)
        if arr.shape == pa.shape and arr.dtype == pa.dtype:
            b.holders.append(Holder(iname, False, "name"))
            claimed[iname] = b

    # 3. load the name-matched values (so value matching sees the file's values for them)
    for b in bindings:
        named = [h for h in b.holders if h.how == "name"]
        if named:
            _load(b, inits, named, onnx_path)

    # 4. by value
    index: dict[tuple, list[tuple[Binding, bool]]] = {}
    for b in bindings:
        pa = _np(b.param)
        index.setdefault(_key(pa), []).append((b, False))
        if pa.ndim == 2:
            index.setdefault(_key(pa.T), []).append((b, True))
    ambiguous: list[str] = []
    for iname, arr in inits.items():
        if iname in claimed:
            continue
        cands = [(b, t) for b, t in index.get(_key(arr), [])
                 if _bitwise_equal(arr, _np(b.param).T if t else _np(b.param))]
        by_param: dict[int, tuple[Binding, bool]] = {}
        for b, t in cands:  # same layout listed first: wins for a symmetric matrix
            by_param.setdefault(id(b.param), (b, t))
        if not by_param:
            continue
        if len(by_param) > 1:
            ambiguous.append(
                f"initializer {iname} {_shape(arr)} is bitwise equal to {len(by_param)} parameters: "
                + ", ".join(f"{b.name}{' (transposed)' if t else ''}" for b, t in by_param.values())
            )
            continue
        b, t = next(iter(by_param.values()))
        b.holders.append(Holder(iname, t, "value"))
        claimed[iname] = b

    # 4b. derived from one parameter that has no holder
    if derived:
        orphans = [b for b in bindings if not b.holders]
        for iname, arr in inits.items():
            if iname in claimed or not orphans:
                continue
            found = [(b, d) for b in orphans for d in _derivations(arr, _np(b.param))[:1]]
            if len(found) > 1:
                ambiguous.append(f"initializer {iname} {_shape(arr)} derives from {len(found)} parameters: "
                                 + ", ".join(f"{b.name} ({d[0]})" for b, d in found))
            elif found:
                b, d = found[0]
                b.holders.append(Holder(iname, False, "derived", d))
                claimed[iname] = b
    return Matching(bindings, inits, ambiguous)


def _derivations(a: np.ndarray, p: np.ndarray) -> list[tuple]:
    """The ways initializer ``a`` is parameter ``p`` folded by the exporter, bitwise:
    ``(description, fn)`` with ``fn(param tensor) -> a``. ``P + c`` (Gemma's ``1 + weight``
    norms), rows ``P[k:k+m]`` tiled (position rows at the static positions, repeated over
    the batch), ``P`` with its axes placed among ``a``'s and broadcast (a bias or gate
    reshaped to [1, 1, N] or expanded)."""
    if a.dtype != p.dtype or p.size == 0 or a.size == 0:
        return []
    out = []
    if a.shape == p.shape:
        c = p.dtype.type(np.round(np.float64(a.flat[0]) - np.float64(p.flat[0]), 4))  # a literal
        if c != 0 and _bitwise_equal(a, p + c):
            out.append((f"{float(c):g} + P", lambda t, c=float(c): t + c))
    if p.ndim == 2 and a.size % p.shape[1] == 0 and a.shape != p.shape:
        rows = a.reshape(-1, p.shape[1])
        n = len(rows)
        for m in (m for m in range(1, min(n, p.shape[0]) + 1) if n % m == 0):
            hit = next((k for k in range(p.shape[0] - m + 1)
                        if np.array_equal(rows, np.tile(p[k:k + m], (n // m, 1)))), None)
            if hit is not None:
                out.append((f"P[{hit}:{hit + m}]" + (f" tiled {n // m}x" if m < n else ""),
                            lambda t, k=hit, m=m, n=n, s=a.shape: t[k:k + m].repeat(n // m, 1).reshape(s)))
                break
    for s in _placements(p.shape, a.shape):
        if np.array_equal(np.broadcast_to(p.reshape(s), a.shape), a):
            out.append((f"P as {list(s)}" + (f" broadcast to {list(a.shape)}" if p.size != a.size else ""),
                        lambda t, s=s, to=a.shape: t.reshape(s).expand(to).contiguous()))
            break
    return out


def _placements(pshape: tuple, ashape: tuple):
    """Shapes of ``ashape``'s rank holding ``pshape``'s axes in order at axes of the same
    size, 1 elsewhere (the reshapes of P that broadcast to ``ashape``)."""
    def go(i: int, j: int, acc: list):
        if i == len(pshape):
            yield tuple(acc + [1] * (len(ashape) - j))
            return
        for k in range(j, len(ashape)):
            if ashape[k] == pshape[i]:
                yield from go(i + 1, k + 1, acc + [1] * (k - j) + [pshape[i]])
    if len(pshape) <= len(ashape):
        yield from go(0, 0, [])


def match(module: torch.nn.Module, proto: onnx.ModelProto, onnx_path: str = "<onnx>") -> tuple[list[Binding], dict[str, np.ndarray]]:
    """Match and load: returns the bindings (params now hold the ONNX values) and the float initializers.

    Raises RefError when a parameter has no holder, an initializer is ambiguous,
    or the holders of one parameter disagree.
    """
    return resolve(find(module, proto, onnx_path), onnx_path)


def resolve(found: Matching, onnx_path: str = "<onnx>") -> tuple[list[Binding], dict[str, np.ndarray]]:
    """Step 5 on a :func:`find` result, then load every parameter from its holders."""
    bindings, inits, ambiguous = found.bindings, found.inits, found.ambiguous

    # 5. every parameter held, nothing ambiguous
    unmatched = found.unmatched
    if unmatched or ambiguous:
        lines = []
        if unmatched:
            lines.append(
                f"{len(unmatched)} of {len(bindings)} trainable parameters have no ONNX initializer in {onnx_path} "
                "(none with their name, none bitwise equal to them or their transpose):"
            )
            for b in unmatched:
                lines.append(f"  unmatched parameter {b.name} {_shape(b.param)}")
        if ambiguous:
            lines.append(f"{len(ambiguous)} ambiguous initializer(s):")
            lines += ["  " + a for a in ambiguous]
        if unmatched:
            lines.append(
                "hint: value matching compares with the model that weipipe.models.build_model(NAME, SEED) builds: "
                "use the --model and --seed the file was exported with"
            )
        raise RefError("\n".join(lines))
    for b in bindings:
        held = [h for h in b.holders if h.how != "derived"]  # derived: the module's value is the source
        if held:
            _load(b, inits, held, onnx_path)
    return bindings, inits


def _load(b: Binding, inits: dict[str, np.ndarray], holders: list[Holder], onnx_path: str) -> None:
    vals = [(h, inits[h.name].T if h.transposed else inits[h.name]) for h in holders]
    h0, v0 = vals[0]
    for h, v in vals[1:]:
        if not _bitwise_equal(v0, v):
            raise RefError(
                f"parameter {b.name}: initializers {h0.name} and {h.name}{' (transposed)' if h.transposed else ''} "
                f"in {onnx_path} both hold it but their values differ"
            )
    with torch.no_grad():
        b.param.copy_(torch.from_numpy(np.array(v0, copy=True, order="C")))


def apply_weights(bindings: list[Binding], weights: dict[str, np.ndarray], source: str) -> None:
    """Overwrite parameters from ``{initializer name: array in the ONNX layout}`` (a saved .safetensors)."""
    holder_of = {h.name: (b, h) for b in bindings for h in b.holders if h.how != "derived"}
    unknown = [k for k in weights if k not in holder_of]
    if unknown:
        raise RefError(
            f"{source}: {len(unknown)} tensor(s) are not ONNX initializers that hold a parameter: "
            + ", ".join(sorted(unknown)[:10]) + (" ..." if len(unknown) > 10 else "")
        )
    tmp: dict[str, np.ndarray] = {}
    for k, v in weights.items():
        b, h = holder_of[k]
        want = tuple(reversed(b.param.shape)) if h.transposed else tuple(b.param.shape)
        if tuple(v.shape) != want or v.dtype != _np(b.param).dtype:
            raise RefError(f"{source}: tensor {k} is {v.dtype}{list(v.shape)}, the initializer is "
                           f"{_np(b.param).dtype}{list(want)}")
        tmp[k] = v
    for b in bindings:
        hs = [h for h in b.holders if h.name in tmp]
        if hs:
            _load(b, tmp, hs, source)


def state_by_initializer(bindings: list[Binding]) -> dict[str, torch.Tensor]:
    """Current parameter values keyed by every initializer that holds them, in the ONNX layout."""
    out = {}
    for b in bindings:
        p = b.param.detach().cpu()
        for h in b.holders:
            v = h.derive[1](p) if h.derive else (p.t() if h.transposed else p)
            out[h.name] = v.contiguous().clone()
    return out


def summary(bindings: list[Binding], inits: dict[str, np.ndarray]) -> str:
    nh = sum(len(b.holders) for b in bindings)
    by_name = sum(1 for b in bindings for h in b.holders if h.how == "name")
    derived = sum(1 for b in bindings for h in b.holders if h.how == "derived")
    trans = sum(1 for b in bindings for h in b.holders if h.transposed)
    tied = sum(1 for b in bindings if len(b.holders) > 1)
    return (
        f"matched {len(bindings)} parameters to {nh} of {len(inits)} float initializers "
        f"({by_name} by name, {nh - by_name - derived} by value, {trans} transposed"
        + (f", {derived} derived" if derived else "") + f", {tied} parameter(s) held by several)"
    )
