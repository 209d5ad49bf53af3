"""`vllm bench serve`'s datasets (--dataset-name), sampled as vLLM samples them.

  random    varcas's own prompts (token IDs of exact lengths): the workload's length
            distributions, or --random-input-len/--random-output-len, spread by
            --random-range-ratio, after a shared --random-prefix-len (varcas.schedule.build).
  sharegpt  real conversations (dataset_files.read_sharegpt): the first turn is the prompt,
            the second turn's token count the output length (--sharegpt-output-len overrides);
            vLLM's filter drops prompts under 4 or over 1024 tokens, outputs under 4 (unless
            overridden) and pairs over 2048 tokens; entries are shuffled with Python's
            random.seed(seed) as vLLM does (--disable-shuffle keeps file order), so a seed picks
            the same conversations in both tools, given the same tokenizer.
  custom    JSONL prompts, shuffled likewise; output length --custom-output-len (vLLM's default
            256), or the file's output_tokens with -1.
  sonnet    vLLM's sonnet dataset (no longer in vLLM 0.32): "Pick as many lines as you can from
            these poem lines:\\n", the file's first lines as a prefix shared by every request
            (about --sonnet-prefix-len tokens), then lines drawn at random (random.choices)
            up to about --sonnet-input-len tokens; a draw over that length is drawn again.
  burstgpt  the BurstGPT trace: its timestamps are the arrivals and its token counts the lengths
            (varcas.schedule.build); the prompts are varcas's own, of exact lengths.

Samplers take `count`, the served model's token count of each text (a local tokenizer, the
server's /tokenize or an estimate: varcas.load), so the schedule holds the real lengths, and
`special`, the tokens the tokenizer adds to a bare prompt (a BOS), which vLLM's filters count.
Both vLLM's length filters and its oversampling (requests drawn again, with random.choice, when
the dataset has fewer than the run needs) apply as vLLM applies them.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..errors import VarcasError
from ..resources import data_path
from .dataset_files import read_custom, read_lines, read_sharegpt

Count = Callable[[Sequence[str]], np.ndarray]  # texts -> token counts (no special tokens)


@dataclass(frozen=True)
class Dataset:
    """One --dataset-name: what it is, and whether it needs --dataset-path."""

    help: str
    needs_path: bool
    text: bool  # prompts are the dataset's texts (else varcas's token-ID prompts)


DATASETS = {
    "random": Dataset("varcas's prompts of exact lengths (the workload's, or --random-input-len)", False, False),
    "sharegpt": Dataset("ShareGPT conversations JSON: first turn as prompt, second turn's length as output", True,
                        True),
    "sonnet": Dataset("poem lines with a shared prefix (default: the shipped Shakespeare sonnets)", False, True),
    "burstgpt": Dataset("BurstGPT CSV trace: its timestamps as arrivals and token counts as lengths", True, False),
    "custom": Dataset("JSONL of {\"prompt\": text, \"output_tokens\": n}", True, True),
}
SONNET_BASE = "Pick as many lines as you can from these poem lines:\n"
SONNET_DRAWS = 100  # rounds of draws before too-long sonnet prompts are an error
SONNET_INPUT_LEN, SONNET_OUTPUT_LEN, SONNET_PREFIX_LEN = 550, 150, 200  # vLLM's defaults
CUSTOM_OUTPUT_LEN = 256  # vLLM's --custom-output-len default


@dataclass(frozen=True)
class TextSample:
    """Request i sends texts[index[i]] (n requests, memory: the distinct texts): its length in
    tokens (without the tokens the server adds) and its output length."""

    texts: list[str]
    index: np.ndarray  # int32, one per request
    text_tokens: np.ndarray  # int32, one per request
    output_len: np.ndarray  # int32, one per request
    record: dict  # what run.json says about the sample


@dataclass(frozen=True)
class TextDataset:
    """A text dataset's rows, read before the run, and its options; sample() picks the run's
    prompts once the token counter is known."""

    name: str
    path: str
    rows: list  # read_sharegpt's pairs, read_custom's rows or read_lines's lines
    seed: int
    shuffle: bool = True
    output_len: int | None = None  # sharegpt's override; custom's (None: the file's); sonnet's
    input_len: int = SONNET_INPUT_LEN  # sonnet's
    prefix_len: int = SONNET_PREFIX_LEN  # sonnet's

    def sample(self, n: int, count: Count, special: int, extra: int) -> TextSample:
        """n requests' prompts; `extra` is what the server adds to each prompt (special tokens
        for completions, a chat template for chat), counted against sonnet's input length."""
        if self.name == "sharegpt":
            return _sharegpt(self.rows, n, count, special, self)
        if self.name == "custom":
            return _custom(self.rows, n, count, self)
        return _sonnet(self.rows, n, count, special, extra, self)


def read_text_dataset(name: str, path: str | None, seed: int, **options) -> TextDataset:
    """A text dataset's file read (sonnet's default: the shipped sonnets); options are
    TextDataset's. One-line errors for a bad file or row."""
    if name == "sharegpt":
        rows: list = read_sharegpt(path or "")
    elif name == "custom":
        rows = read_custom(path or "", options.get("output_len") is None)
    else:
        path = path or str(data_path("sonnet.txt"))
        rows = read_lines(path)
    return TextDataset(name, path or "", rows, seed, **options)


def valid_sharegpt(prompt_len: int, output_len: int, check_output: bool) -> bool:
    """vLLM's is_valid_sequence with its defaults (min 4, prompt <= 1024, total <= 2048)."""
    too_short = prompt_len < 4 or check_output and output_len < 4
    return not too_short and prompt_len <= 1024 and prompt_len + output_len <= 2048


def _order(count: int, ds: TextDataset) -> list[int]:
    """The dataset's rows in the order vLLM visits them: shuffled by random.seed(seed)."""
    order = list(range(count))
    if ds.shuffle:
        random.Random(ds.seed).shuffle(order)
    return order


def _sharegpt(pairs: list[tuple[str, str]], n: int, count: Count, special: int, ds: TextDataset) -> TextSample:
    """The first n pairs (in vLLM's order) that pass vLLM's length filter; counted in batches
    so that only what is needed is tokenized (answers only when they set the output length)."""
    if not pairs:
        raise VarcasError(f"ShareGPT file {ds.path}: no conversation with two turns")
    order, looked = _order(len(pairs), ds), 0
    texts: list[str] = []
    lens: list[int] = []
    outs: list[int] = []
    while len(texts) < n and looked < len(order):
        batch = order[looked:looked + max(64, 2 * (n - len(texts)))]
        looked += len(batch)
        p_lens = count([pairs[k][0] for k in batch]) + special
        o_lens = count([pairs[k][1] for k in batch]) + special if ds.output_len is None else None
        for j, k in enumerate(batch):
            out = int(o_lens[j]) if o_lens is not None else int(ds.output_len or 0)
            if len(texts) < n and valid_sharegpt(int(p_lens[j]), out, o_lens is not None):
                texts.append(pairs[k][0])
                lens.append(int(p_lens[j]) - special)
                outs.append(out)
    if not texts:
        raise VarcasError(f"ShareGPT file {ds.path}: no conversation passes vLLM's length filter (prompt 4 to "
                          "1024 tokens, output at least 4, both at most 2048)")
    record = {"conversations": len(pairs), "looked_at": looked, "kept": len(texts)}
    return _finish(texts, lens, outs, n, ds, record)


def _custom(rows: list[tuple[str, int]], n: int, count: Count, ds: TextDataset) -> TextSample:
    """The first n rows in vLLM's order; output lengths from the file or the override."""
    chosen = [rows[k] for k in _order(len(rows), ds)[:n]]
    texts = [prompt for prompt, _ in chosen]
    outs = [out if ds.output_len is None else ds.output_len for _, out in chosen]  # 0 when not read
    return _finish(texts, count(texts).tolist(), outs, n, ds, {"rows": len(rows)})


def _sonnet(lines: list[str], n: int, count: Count, special: int, extra: int, ds: TextDataset) -> TextSample:
    """vLLM's sonnet prompts: the base instruction, the shared prefix lines, random lines; a
    prompt over the input length is drawn again (SONNET_DRAWS rounds at most)."""
    avg = float(np.mean(count(lines))) + special
    base = int(count([SONNET_BASE])[0]) + extra
    if ds.input_len <= base:
        raise VarcasError(f"--sonnet-input-len must be more than the base prompt's {base} tokens")
    n_input = round((ds.input_len - base) / avg)
    prefix = lines[:max(round((ds.prefix_len - base) / avg), 0)]
    head = SONNET_BASE + "".join(prefix)
    rng = random.Random(ds.seed)
    texts: list[str] = []
    lens: list[int] = []
    for _ in range(SONNET_DRAWS):
        draws = [head + "".join(rng.choices(lines, k=max(n_input - len(prefix), 0))) for _ in range(n - len(texts))]
        for text, tokens in zip(draws, count(draws).tolist()):
            if tokens + extra <= ds.input_len:
                texts.append(text)
                lens.append(tokens)
        if len(texts) == n:
            break
    else:
        raise VarcasError(f"sonnet: prompts of {n_input} lines keep exceeding --sonnet-input-len {ds.input_len}; "
                          "raise it")
    record = {"lines": len(lines), "prefix_lines": len(prefix), "input_lines": max(n_input, len(prefix))}
    return _finish(texts, lens, [ds.output_len or SONNET_OUTPUT_LEN] * n, n, ds, record)


def _finish(texts: list[str], lens: list[int], outs: list[int], n: int, ds: TextDataset, record: dict) -> TextSample:
    """The sample as arrays, oversampled to n requests as vLLM does (random.seed(seed), then
    random.choice) when the dataset had fewer."""
    index = list(range(len(texts)))
    if len(index) < n:
        rng = random.Random(ds.seed)
        index += [rng.choice(index[:len(texts)]) for _ in range(n - len(texts))]
        record = {**record, "oversampled": n - len(texts)}
    idx = np.asarray(index[:n], dtype=np.int32)
    tokens = np.asarray(lens, dtype=np.int64)[idx]
    if tokens.min() < 1:
        raise VarcasError(f"{ds.name} dataset: a prompt of no tokens (request {int(np.argmin(tokens))})")
    return TextSample(texts, idx, tokens.astype(np.int32), np.asarray(outs, dtype=np.int32)[idx],
                      {"dataset": ds.name, "path": ds.path, **record})
