"""Token counts of a dataset's texts, as the served model counts them, so a schedule of real
prompts holds their real lengths (the context check, the analysis and the planned-vs-served
comparison all read them).

Three sources, best first, and run.json's `prompts.dataset_lengths` says which one was used:
  tokenizer PATH    the local Hugging Face tokenizer (--tokenizer): exact, batched in Rust;
  server /tokenize  vLLM's POST /tokenize, one request per text: exact, slower;
  estimate          words / WORDS_PER_TOKEN (varcas's simulator counts text the same way).
Counts exclude the special tokens a tokenizer adds to a bare prompt (a BOS); `special` says
how many those are, so a caller adds them where the server does (a completions prompt).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import httpx
import numpy as np

from ..errors import VarcasError
from ..resources import WORDS_PER_TOKEN
from .vocab import _post_json, _token_list, open_tokenizer

_PROBE = "hello"  # a one-word text: how many special tokens a prompt gets


@dataclass(frozen=True)
class TokenCounter:
    """count(texts) -> int64 token counts without special tokens; special: what a prompt adds."""

    count: Callable[[Sequence[str]], np.ndarray]
    special: int
    source: str


def tokenizer_counter(path: str) -> TokenCounter:
    """Counts from a local tokenizer.json (the --tokenizer that also makes the token IDs)."""
    tok = open_tokenizer(path)

    def count(texts: Sequence[str]) -> np.ndarray:
        encoded = tok.encode_batch(list(texts), add_special_tokens=False)
        return np.fromiter((len(e.ids) for e in encoded), dtype=np.int64, count=len(texts))

    special = len(tok.encode(_PROBE).ids) - len(tok.encode(_PROBE, add_special_tokens=False).ids)
    return TokenCounter(count, max(special, 0), f"tokenizer {path}")


def server_counter(client: httpx.Client, url: str, model: str) -> TokenCounter | None:
    """Counts from the server's POST /tokenize; None when it has none."""

    def tokens(text: str, special: bool) -> list[int] | None:
        return _token_list(_post_json(client, url, {"model": model, "prompt": text, "add_special_tokens": special}))

    bare, full = tokens(_PROBE, False), tokens(_PROBE, True)
    if bare is None or full is None:
        return None

    def count(texts: Sequence[str]) -> np.ndarray:
        out = np.empty(len(texts), dtype=np.int64)
        for k, text in enumerate(texts):
            ids = tokens(text, False)
            if ids is None:
                raise VarcasError(f"the server's /tokenize did not count a dataset text ({text[:60]!r}...)")
            out[k] = len(ids)
        return out

    return TokenCounter(count, max(len(full) - len(bare), 0), "server /tokenize")


def estimate_counter() -> TokenCounter:
    """Counts estimated from words (no tokenizer anywhere): round(words / WORDS_PER_TOKEN)."""

    def count(texts: Sequence[str]) -> np.ndarray:
        return np.fromiter((round(len(t.split()) / WORDS_PER_TOKEN) for t in texts), dtype=np.int64, count=len(texts))

    return TokenCounter(count, 0, f"estimate: words / {WORDS_PER_TOKEN}")
