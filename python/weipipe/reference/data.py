"""Token files and the windows the trainer reads from them.

Formats (see README.md, "Data"):

* raw ``.bin`` (nanoGPT style): little-endian token ids, no header; ``uint16``
  when the vocabulary fits (vocab <= 65536), else ``uint32``; ``token_dtype``
  overrides.
* llm.c ``.bin``: a 256 x int32 little-endian header, ``header[0] == 20240520``,
  ``header[1]`` the version (1: ``uint16`` tokens, 2: ``uint32``), ``header[2]``
  the number of tokens; the tokens follow the 1024-byte header. Recognised by
  the magic number whatever ``data_format`` says (except ``text``).
* text (``.txt``, or ``data_format="text"``): every byte is one token id 0..255.

Windows: window ``i`` is ``tokens[i*(S+1) : (i+1)*(S+1)]`` for
``i < n = len(tokens) // (S+1)`` (a trailing partial window is never used);
inputs are ``window[:-1]``, targets ``window[1:]``. The ``k``-th window the
trainer consumes (``k = 0, 1, ...``; step ``t``, micro-batch ``m``, row ``r``
give ``k = (t*M + m)*B + r``) is

* ``sequential``: window ``k % n``;
* ``shuffle``: window ``perm[e][k % n]`` with ``e = k // n``; ``perm[e]`` is a
  Fisher-Yates shuffle of ``0..n-1`` (for ``i`` from ``n-1`` down to 1:
  ``j = next() % (i+1)``, swap ``i`` and ``j``) drawing from one SplitMix64
  generator seeded with ``seed`` that continues across epochs (epoch 0 first).
  A simple spelled-out algorithm so that weipipe-run (C++) reproduces it exactly.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .errors import RefError

LLMC_MAGIC = 20240520
LLMC_HEADER_BYTES = 256 * 4
LLMC_VERSIONS = {1: "uint16", 2: "uint32"}
TOKEN_DTYPES = {"uint16": np.dtype("<u2"), "uint32": np.dtype("<u4")}
DATA_FORMATS = ("auto", "bin", "text")
DATA_ORDERS = ("sequential", "shuffle")
MASK64 = (1 << 64) - 1


class SplitMix64:
    """Vigna's SplitMix64 on Python ints masked to 64 bits; ``seed`` is taken mod 2**64."""

    def __init__(self, seed: int):
        self.state = seed & MASK64

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)


def shuffled(n: int, rng: SplitMix64) -> np.ndarray:
    """One epoch's permutation of 0..n-1: Fisher-Yates from the top, ``j = rng.next() % (i + 1)``."""
    perm = list(range(n))
    for i in range(n - 1, 0, -1):
        j = rng.next() % (i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    return np.array(perm, dtype=np.int64)


@dataclass
class TokenFile:
    path: str
    tokens: np.ndarray  # 1-D, uint8 / <u2 / <u4 (a read-only memmap for .bin files)
    format: str  # "raw", "llm.c" or "text"
    dtype: str  # "uint8" (text), "uint16", "uint32"
    offset: int  # byte offset of token 0 in the file

    def describe(self) -> str:
        return f"{self.path}: {len(self.tokens)} tokens, {self.format} {self.dtype}"


def default_token_dtype(vocab: int) -> str:
    return "uint16" if vocab <= 65536 else "uint32"


def load_tokens(path: str, vocab: int, token_dtype: str | None = None, data_format: str = "auto") -> TokenFile:
    """Read a token file and check every id is < ``vocab``. Raises RefError."""
    if data_format not in DATA_FORMATS:
        raise RefError(f"unknown data format {data_format!r}; choose from {', '.join(DATA_FORMATS)}")
    if token_dtype is not None and token_dtype not in TOKEN_DTYPES:
        raise RefError(f"unknown token dtype {token_dtype!r}; choose from {', '.join(TOKEN_DTYPES)}")
    if not os.path.exists(path):
        raise RefError(f"data file {path}: no such file")
    if os.path.isdir(path):
        raise RefError(f"data file {path} is a directory")
    size = os.path.getsize(path)
    if size == 0:
        raise RefError(f"data file {path} is empty")
    if data_format == "auto":
        data_format = "text" if path.lower().endswith(".txt") else "bin"

    if data_format == "text":
        if token_dtype is not None:
            raise RefError("--token-dtype does not apply to text data (one byte = one token)")
        if vocab < 256:
            raise RefError(
                f"text data {path} uses the byte tokenizer (ids 0..255), which needs a vocabulary of at "
                f"least 256; the model's vocabulary is {vocab}"
            )
        tf = TokenFile(path, np.memmap(path, dtype=np.uint8, mode="r"), "text", "uint8", 0)
    else:
        tf = _load_bin(path, size, vocab, token_dtype)
    if len(tf.tokens) == 0:
        raise RefError(f"data file {path} holds no tokens")
    check_vocab(tf, vocab)
    return tf


def _load_bin(path: str, size: int, vocab: int, token_dtype: str | None) -> TokenFile:
    with open(path, "rb") as f:
        head = f.read(LLMC_HEADER_BYTES)
    if len(head) >= 4 and int(np.frombuffer(head[:4], dtype="<i4")[0]) == LLMC_MAGIC:
        if len(head) < LLMC_HEADER_BYTES:
            raise RefError(
                f"data file {path} starts with the llm.c magic number {LLMC_MAGIC} but is only {size} bytes, "
                f"shorter than the {LLMC_HEADER_BYTES}-byte llm.c header"
            )
        hdr = np.frombuffer(head, dtype="<i4")
        version, ntok = int(hdr[1]), int(hdr[2])
        if version not in LLMC_VERSIONS:
            raise RefError(
                f"data file {path}: llm.c header version {version} is not supported (1: uint16 tokens, 2: uint32)"
            )
        dt = LLMC_VERSIONS[version]
        if token_dtype is not None and token_dtype != dt:
            raise RefError(
                f"data file {path}: --token-dtype {token_dtype} contradicts the llm.c header "
                f"(version {version}: {dt} tokens)"
            )
        item = TOKEN_DTYPES[dt].itemsize
        if ntok < 0:
            raise RefError(f"data file {path}: llm.c header gives a negative token count {ntok}")
        expect = LLMC_HEADER_BYTES + ntok * item
        if size != expect:
            raise RefError(
                f"data file {path}: llm.c header says {ntok} {dt} tokens ({expect} bytes with the header) "
                f"but the file has {size} bytes"
                + (" (truncated)" if size < expect else "")
            )
        if ntok == 0:
            raise RefError(f"data file {path} holds no tokens (llm.c header token count 0)")
        toks = np.memmap(path, dtype=TOKEN_DTYPES[dt], mode="r", offset=LLMC_HEADER_BYTES, shape=(ntok,))
        return TokenFile(path, toks, "llm.c", dt, LLMC_HEADER_BYTES)
    dt = token_dtype or default_token_dtype(vocab)
    item = TOKEN_DTYPES[dt].itemsize
    if size % item:
        raise RefError(
            f"data file {path}: size {size} bytes is not a multiple of {item} ({dt} tokens); "
            f"wrong --token-dtype, or not a token file?"
        )
    return TokenFile(path, np.memmap(path, dtype=TOKEN_DTYPES[dt], mode="r"), "raw", dt, 0)


def check_vocab(tf: TokenFile, vocab: int, chunk: int = 1 << 24) -> None:
    """Raise RefError naming the first token id >= vocab (position = token index in the file)."""
    toks = tf.tokens
    for start in range(0, len(toks), chunk):
        part = np.asarray(toks[start : start + chunk])
        bad = part >= vocab
        if bad.any():
            i = int(np.argmax(bad))
            pos = start + i
            raise RefError(
                f"data file {tf.path}: token {pos} (byte offset {tf.offset + pos * part.itemsize}) has id "
                f"{int(part[i])}, not < the model's vocabulary size {vocab}"
                + (f" (read as {tf.format} {tf.dtype}; wrong --token-dtype?)" if tf.format == "raw" else "")
            )


class Windows:
    """The windows of S+1 tokens and the order they are consumed in (module docstring)."""

    def __init__(self, tf: TokenFile, seq: int, order: str = "sequential", seed: int = 0):
        if order not in DATA_ORDERS:
            raise RefError(f"unknown data order {order!r}; choose from {', '.join(DATA_ORDERS)}")
        if seq < 1:
            raise RefError(f"sequence length must be >= 1, got {seq}")
        self.tokens = tf.tokens
        self.seq = seq
        self.order = order
        self.seed = seed
        self.n = len(tf.tokens) // (seq + 1)
        if self.n == 0:
            raise RefError(
                f"data file {tf.path} has {len(tf.tokens)} tokens, fewer than one window of seq+1 = {seq + 1}"
            )
        self._rng: SplitMix64 | None = None
        self._epoch = -1
        self._perm: np.ndarray | None = None

    def index(self, k: int) -> int:
        """The window index of the k-th window consumed."""
        if self.order == "sequential":
            return k % self.n
        epoch, i = divmod(k, self.n)
        if self._rng is None or epoch < self._epoch:  # (re)start the generator at epoch 0
            self._rng = SplitMix64(self.seed)
            self._epoch = -1
        while self._epoch < epoch:  # one permutation per epoch, drawn in order
            self._perm = shuffled(self.n, self._rng)
            self._epoch += 1
        return int(self._perm[i])

    def window(self, w: int) -> np.ndarray:
        L = self.seq + 1
        return np.asarray(self.tokens[w * L : (w + 1) * L]).astype(np.int64)

    def batch(self, k0: int, rows: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """Windows k0 .. k0+rows-1 as (inputs [rows, S], targets [rows, S], window indices)."""
        idx = [self.index(k0 + r) for r in range(rows)]
        win = np.stack([self.window(w) for w in idx])
        return win[:, :-1], win[:, 1:], idx

    def step(self, step: int, microbatches: int, batch: int) -> list[tuple[np.ndarray, np.ndarray, list[int]]]:
        """The micro-batches of 0-based step ``step``: windows k = (step*M + m)*B + r."""
        return [self.batch((step * microbatches + m) * batch, batch) for m in range(microbatches)]
