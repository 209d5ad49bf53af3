"""Prompt builders: the JSON bytes of a request's prompt, built in O(1) Python operations.

The dispatcher splices fragment(i, n) into a request body just before sending request i,
so building a prompt must cost about the same for 10 tokens as for 10,000: no per-token
Python work. Both builders pre-encode a pool of items (token IDs, or corpus words) once,
as one bytes object with every item followed by a one-byte separator, plus an int64 array
of item start offsets. A prompt is a window of consecutive items, so it is a few slices of
that buffer joined into one bytes object (a memcpy). A window longer than the pool wraps
around the pool as many times as needed.

Windows of consecutive requests start far apart: request i starts at (shift + i*stride)
mod pool size, with stride near the golden ratio of the pool size and coprime with it, so
the first pool-size requests all start at different items. TokenPrompts also makes the
first token a function of i, so consecutive requests differ from their first token and a
server's prefix cache cannot serve one request from another's blocks by accident.

Everything is deterministic in (seed, i, length); nothing depends on call order.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from varcas.errors import VarcasError
from varcas.resources import WORDS_PER_TOKEN, data_path

_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0
_MASK64 = (1 << 64) - 1


def _mix64(x: int) -> int:
    """splitmix64's finaliser: a seed -> well-spread 64-bit integer."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def _check_int(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise VarcasError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


class _EncodedPool:
    """n items in one buffer, item k at data[offsets[k]:offsets[k+1]-sep] (then `sep` bytes of
    separator: 1 for token IDs and words, 0 for text pieces that carry their own spacing)."""

    def __init__(self, data: bytes, offsets: np.ndarray, seed: int, sep: int = 1) -> None:
        self.n = len(offsets) - 1
        self._sep = sep
        self._view = memoryview(data)
        self._offsets = offsets
        self._shift = _mix64(seed) % self.n
        stride = max(1, round(self.n * _GOLDEN))
        while math.gcd(stride, self.n) != 1:
            stride += 1
        self._stride = stride

    def __getstate__(self) -> dict:
        """Pickled (for load worker processes) with its buffer's bytes: a memoryview does not pickle."""
        return {**self.__dict__, "_view": self._view.obj}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _view=memoryview(state["_view"]))

    def start(self, i: int) -> int:
        """First item of request i's window; distinct for any n consecutive i."""
        return (self._shift + i * self._stride) % self.n

    def window(self, start: int, count: int) -> list[memoryview]:
        """Slices holding items start .. start+count-1 (wrapping), separators between them
        and none after the last. Python work is O(1 + count/n), never per item."""
        parts = []
        while count > 0:
            take = min(count, self.n - start)
            parts.append(self._view[self._offsets[start]:self._offsets[start + take]])
            count -= take
            start = 0
        if self._sep:
            parts[-1] = parts[-1][:-self._sep]
        return parts


def _encode_ids(ids: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Non-negative int64 ids -> (ASCII decimal digits each followed by ',', start offsets),
    vectorised over ids with a loop over digit positions only."""
    digits = np.ones(len(ids), dtype=np.int64)
    width = len(str(int(ids.max()))) if len(ids) else 1
    for k in range(1, width):
        digits += ids >= 10**k
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(digits + 1, out=offsets[1:])
    buf = np.full(offsets[-1], ord(","), dtype=np.uint8)
    for d in range(width):
        has = digits > d
        place = 10 ** (digits[has] - 1 - d)
        buf[offsets[:-1][has] + d] = ord("0") + (ids[has] // place) % 10
    return buf.tobytes(), offsets


class TokenPrompts:
    """Prompts as JSON arrays of token IDs (vLLM's completions API accepts a list of ints as
    `prompt`). With `ids` (the corpus as the served model tokenizes it, varcas.load.vocab) the
    pool is that real text and first tokens come from its distinct IDs, so every ID exists in
    the model's vocabulary. Without, IDs are drawn uniformly from [vocab_low, vocab_high): the
    default range avoids the special and byte-level tokens at the bottom of common
    vocabularies and fits a 32k one, but a smaller vocabulary rejects them."""

    def __init__(self, seed: int, vocab_low: int = 1000, vocab_high: int = 29000,
                 pool_tokens: int = 1 << 20, ids: np.ndarray | None = None) -> None:
        seed = _check_int("seed", seed, 0)
        if ids is None:
            self.vocab_low = _check_int("vocab_low", vocab_low, 0)
            self.vocab_high = _check_int("vocab_high", vocab_high, self.vocab_low + 1)
            _check_int("pool_tokens", pool_tokens, 1)
            rng = np.random.default_rng(seed)
            ids = rng.integers(self.vocab_low, self.vocab_high, pool_tokens, dtype=np.int64)
            self._firsts = np.arange(self.vocab_low, self.vocab_high, dtype=np.int64)
        else:
            ids = np.asarray(ids, dtype=np.int64)
            if ids.ndim != 1 or not len(ids) or ids.min() < 0:
                raise VarcasError("prompt token IDs must be a non-empty list of non-negative integers")
            self._firsts = np.unique(ids)
            self.vocab_low, self.vocab_high = int(self._firsts[0]), int(self._firsts[-1]) + 1
        self._pool = _EncodedPool(*_encode_ids(ids), seed=seed)
        self._first_shift = _mix64(seed ^ 0x5EED) % len(self._firsts)

    def fragment(self, i: int, length: int) -> bytes:
        """JSON array bytes (b"[523,19,...]") of exactly `length` IDs for request i.
        The first ID is the ((shift + i) mod F)-th of the F possible first IDs, so consecutive
        requests differ at token 0; the rest is the pool window for request i."""
        i = _check_int("request index", i, 0)
        length = _check_int("prompt length", length, 1)
        first = self._firsts[(self._first_shift + i) % len(self._firsts)]
        head = b"[%d" % first
        if length == 1:
            return head + b"]"
        return b"".join([head, b",", *self._pool.window(self._pool.start(i), length - 1), b"]"])

    def inner(self, i: int, length: int) -> bytes:
        """fragment(i, length) without its brackets: one piece of a prompt made of several."""
        return self.fragment(i, length)[1:-1]

    def join(self, pieces: list[bytes]) -> bytes:
        """One prompt (a JSON array) of the pieces' IDs in order."""
        return b"[" + b",".join(pieces) + b"]"


def corpus_words(corpus_path: str | Path | None = None) -> list[str]:
    """The words of a corpus (default varcas/data/corpus.txt, ~50 KB, ~8,800 words of original
    prose on many topics written for varcas), whitespace-split."""
    path = Path(corpus_path) if corpus_path is not None else data_path("corpus.txt")
    try:
        words = path.read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError) as e:
        raise VarcasError(f"cannot read corpus {path}: {e}") from None
    if not words:
        raise VarcasError(f"corpus {path} has no words")
    return words


class TextPrompts:
    """Prompts as JSON string literals of plain English, for chat endpoints that take text.

    Two pools: the corpus's words (whitespace normalised to single spaces), a prompt of n
    tokens being round(n * words_per_token) words (an estimate; the server's usage says the
    truth); or, given `pieces` (the corpus cut at the served model's token boundaries,
    varcas.load.vocab), exactly n pieces, which that tokenizer reads back as n tokens except
    where a merge crosses the window's edges. Items are JSON-escaped (ASCII) once, at load."""

    def __init__(self, seed: int, corpus_path: str | Path | None = None,
                 words_per_token: float = WORDS_PER_TOKEN, pieces: list[str] | None = None) -> None:
        seed = _check_int("seed", seed, 0)
        if not words_per_token > 0:
            raise VarcasError(f"words per token must be > 0, got {words_per_token}")
        self.words_per_token = 1.0 if pieces else words_per_token
        sep = 0 if pieces else 1  # words are joined by one space; pieces carry their own
        self._joiner = b" " * sep
        items = pieces if pieces else corpus_words(corpus_path)
        escaped = [json.dumps(w)[1:-1].encode("ascii") for w in items]
        offsets = np.zeros(len(escaped) + 1, dtype=np.int64)
        np.cumsum([len(w) + sep for w in escaped], out=offsets[1:])
        self._pool = _EncodedPool(b" ".join(escaped) + b" " if sep else b"".join(escaped), offsets, seed=seed, sep=sep)

    def fragment(self, i: int, approx_tokens: int) -> bytes:
        """A JSON string literal (quotes included) of round(approx_tokens*words_per_token)
        items (at least one), starting at request i's own place in the corpus."""
        i = _check_int("request index", i, 0)
        approx_tokens = _check_int("prompt length", approx_tokens, 1)
        items = max(1, round(approx_tokens * self.words_per_token))
        return b"".join([b'"', *self._pool.window(self._pool.start(i), items), b'"'])

    def inner(self, i: int, approx_tokens: int) -> bytes:
        """fragment(i, approx_tokens) without its quotes: one piece of a prompt made of several."""
        return self.fragment(i, approx_tokens)[1:-1]

    def join(self, pieces: list[bytes]) -> bytes:
        """One prompt (a JSON string) of the pieces' text in order, words spaced as in the pool."""
        return b'"' + self._joiner.join(pieces) + b'"'
