"""The prompt corpus as the served model tokenizes it, so prompts hold only real token IDs.

A completions prompt of token IDs must use IDs that exist in the model's vocabulary (vLLM
rejects the whole request otherwise: "Token id N is out of vocabulary"), and its length in
tokens must be exact. Two sources give the corpus's real tokenization:
  from_tokenizer(PATH)  a local Hugging Face tokenizer (tokenizer.json, read with the
                        `tokenizers` package): token IDs and each token's text span, so chat
                        prompts get exact lengths too;
  from_server(...)      vLLM's POST /tokenize: the IDs only (no text spans), so chat prompts
                        use the measured words per token of this corpus.
chat_template_tokens(...) asks /tokenize how many tokens the chat template adds to one user
message, so a chat prompt's total length can match the planned one.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import numpy as np
import orjson

from ..bounded import read_bounded
from ..errors import VarcasError
from .prompts import TextPrompts, TokenPrompts, corpus_words

if TYPE_CHECKING:
    from tokenizers import Tokenizer

# The corpus tokenizes to ~12k tokens: its /tokenize answer is ~100 KB. Anything past this
# is not a tokenization of it, and is not read.
MAX_TOKENIZE_BYTES = 8 << 20


@dataclass(frozen=True)
class CorpusTokens:
    """The shipped corpus tokenized by the served model's tokenizer."""

    ids: np.ndarray  # int64 token IDs, in corpus order
    pieces: list[str] | None  # each token's text up to the next token's start; None if unknown
    words_per_token: float  # corpus words / corpus tokens
    source: str  # where the tokenization came from, for the manifest
    vocab_size: int | None

    def describe(self) -> dict:
        """What run.json records about the prompts' tokens."""
        return {"source": self.source, "vocab_size": self.vocab_size, "corpus_tokens": int(len(self.ids)),
                "exact_text_lengths": self.pieces is not None}


def corpus_text() -> str:
    """The corpus with whitespace normalised to single spaces, ending in one (so a window
    that wraps from the end to the start keeps a word boundary)."""
    return " ".join(corpus_words()) + " "


def open_tokenizer(path: str) -> Tokenizer:
    """A local Hugging Face tokenizer: a directory holding tokenizer.json, or the file."""
    p = Path(path)
    file = p / "tokenizer.json" if p.is_dir() else p
    if not file.is_file():
        raise VarcasError(f"--tokenizer {path}: no tokenizer.json there (give a Hugging Face tokenizer "
                          "directory or its tokenizer.json)")
    from tokenizers import Tokenizer  # imported on use: most runs have no --tokenizer

    try:
        return Tokenizer.from_file(str(file))
    except Exception as exc:  # tokenizers raises a bare Exception for unreadable files
        first = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise VarcasError(f"--tokenizer {path}: not a readable tokenizer.json ({first[:200]})") from None


def from_tokenizer(path: str) -> CorpusTokens:
    """Tokenize the corpus with a local tokenizer: a directory holding tokenizer.json, or the file."""
    tok = open_tokenizer(path)
    text = corpus_text()
    enc = tok.encode(text, add_special_tokens=False)
    if not enc.ids:
        raise VarcasError(f"--tokenizer {path}: the tokenizer turns the prompt corpus into no tokens")
    starts = [start for start, _ in enc.offsets]
    pieces = [text[a:b] for a, b in zip(starts, starts[1:] + [len(text)])]
    pieces[0] = text[: starts[1] if len(starts) > 1 else len(text)]  # text before the first token
    return CorpusTokens(np.asarray(enc.ids, dtype=np.int64), pieces, len(text.split()) / len(enc.ids),
                        f"tokenizer {path}", tok.get_vocab_size())


def _post_json(client: httpx.Client, url: str, body: dict) -> dict | None:
    """POST JSON and parse the answer; None for any failure (the endpoint is optional)."""
    try:
        status, answer = read_bounded(client, "POST", url, MAX_TOKENIZE_BYTES, content=orjson.dumps(body),
                                      headers={"Content-Type": "application/json"})
        data = orjson.loads(answer) if status == 200 else None
    except (httpx.HTTPError, VarcasError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _token_list(data: dict | None) -> list[int] | None:
    tokens = data.get("tokens") if data else None
    if not isinstance(tokens, list) or not tokens:
        return None
    if not all(type(t) is int and 0 <= t < 1 << 31 for t in tokens):
        return None
    return tokens


def from_server(client: httpx.Client, url: str, model: str) -> CorpusTokens | None:
    """Tokenize the corpus with the server's POST /tokenize (vLLM's); None if it has none."""
    text = corpus_text()
    tokens = _token_list(_post_json(client, url, {"model": model, "prompt": text, "add_special_tokens": False}))
    if tokens is None:
        return None
    return CorpusTokens(np.asarray(tokens, dtype=np.int64), None, len(text.split()) / len(tokens),
                        "server /tokenize", None)


def chat_template_tokens(client: httpx.Client, url: str, model: str) -> int | None:
    """Tokens the chat template adds around one user message (with the generation prompt),
    from /tokenize; None if the server cannot say."""
    word = corpus_words()[0]
    bare = _token_list(_post_json(client, url, {"model": model, "prompt": word, "add_special_tokens": False}))
    chat = _token_list(_post_json(client, url, {"model": model, "add_generation_prompt": True,
                                                "messages": [{"role": "user", "content": word}]}))
    if bare is None or chat is None or len(chat) < len(bare):
        return None
    return len(chat) - len(bare)


@dataclass(frozen=True)
class PromptPlan:
    """How a run's prompts are made: the builder, the chat template's share of each prompt,
    and what run.json records about both."""

    prompts: TokenPrompts | TextPrompts  # .fragment(i, length) -> JSON bytes
    template_tokens: int
    record: dict


def plan_prompts(api: str, seed: int, corpus: CorpusTokens | None, client: httpx.Client,
                 tokenize_url: str, model: str) -> PromptPlan:
    """Choose the prompt builder for `api`: the local tokenizer's corpus if given, else the
    server's /tokenize, else random IDs (completions) or a words-per-token estimate (chat)."""
    if corpus is None:
        corpus = from_server(client, tokenize_url, model)
    template = chat_template_tokens(client, tokenize_url, model) if api == "chat" else 0
    record = corpus.describe() if corpus is not None else {"source": "none", "vocab_size": None}
    if api == "chat":
        if corpus is None:
            prompts = TextPrompts(seed)
        else:
            prompts = TextPrompts(seed, words_per_token=corpus.words_per_token, pieces=corpus.pieces)
        record.update(kind="text", chat_template_tokens=template, words_per_token=prompts.words_per_token)
        return PromptPlan(prompts, template or 0, record)
    token_prompts = TokenPrompts(seed) if corpus is None else TokenPrompts(seed, ids=corpus.ids)
    record.update(kind="token_ids", id_range=[token_prompts.vocab_low, token_prompts.vocab_high])
    return PromptPlan(token_prompts, 0, record)
