"""--dataset-name and the workload-shape flags on a load run: which flags go together, the
schedule's arguments they give, and the prompts once the server is known.

Order, as for every local input: prepare() checks the flags (check_flags), reads a text
dataset's file (text_dataset) and builds the schedule (schedule_args) before the server is
contacted; run_prepared() then counts the texts' tokens with the best counter there is
(varcas.load.textlen) and samples the prompts (sample_texts), before anything is sent.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Callable

import httpx
import numpy as np

from ..errors import VarcasError
from ..schedule import Schedule
from ..schedule.datasets import (
    CUSTOM_OUTPUT_LEN,
    DATASETS,
    TextDataset,
    TextSample,
    read_text_dataset,
)
from ..schedule.shapes import Shape
from .shaped import DatasetTexts, ShapedPrompts
from .textlen import TokenCounter, estimate_counter, server_counter, tokenizer_counter

if TYPE_CHECKING:
    from .runner import LoadConfig, Prepared
    from .vocab import PromptPlan

# LoadConfig field -> (its flag, the datasets it applies to): given with another, it is an error
ONLY_FOR = {
    "input_len": ("--random-input-len", ("random",)),
    "output_len": ("--random-output-len", ("random",)),
    "random_range_ratio": ("--random-range-ratio", ("random",)),
    "shared_prefix_len": ("--shared-prefix-len", ("random",)),
    "turns": ("--turns", ("random",)),
    "trace": ("--trace", ("random",)),
    "sharegpt_output_len": ("--sharegpt-output-len", ("sharegpt",)),
    "custom_output_len": ("--custom-output-len", ("custom",)),
    "sonnet_input_len": ("--sonnet-input-len", ("sonnet",)),
    "sonnet_output_len": ("--sonnet-output-len", ("sonnet",)),
    "sonnet_prefix_len": ("--sonnet-prefix-len", ("sonnet",)),
    "disable_shuffle": ("--disable-shuffle", ("sharegpt", "custom")),
}
# LoadConfig field -> (its flag, the field it needs, and that field's flag)
NEEDS = {
    "shared_prefix_groups": ("--shared-prefix-groups", "shared_prefix_len", "--shared-prefix-len"),
    "think_time_s": ("--think-time", "turns", "--turns"),
    "think_time_dist": ("--think-time-dist", "turns", "--turns"),
}


def parse_range_ratio(text: str) -> float | dict:
    """argparse type of --random-range-ratio: a number, or vLLM's JSON {"input": r, "output": r}."""
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if isinstance(value, dict) and set(value) == {"input", "output"} or type(value) in (int, float):
        return value
    raise ValueError(f"not a number nor {{\"input\": r, \"output\": r}}: {text!r}")


def range_ratio(value: Any) -> tuple[float, float]:
    """(input, output) range ratios from the flag's value (one number applies to both)."""
    return (value["input"], value["output"]) if isinstance(value, dict) else (value, value)


def _given(cfg: LoadConfig, name: str) -> bool:
    return getattr(cfg, name) != type(cfg).__dataclass_fields__[name].default


def check_flags(cfg: LoadConfig) -> None:
    """One-line errors for a dataset without its file, and for flags that do not go together."""
    name = cfg.dataset_name
    if name not in DATASETS:
        raise VarcasError(f"unknown --dataset-name {name!r} (known: {', '.join(DATASETS)})")
    if DATASETS[name].needs_path and not cfg.dataset_path:
        raise VarcasError(f"--dataset-name {name} reads a file: give --dataset-path")
    if name == "random" and cfg.dataset_path:
        raise VarcasError("--dataset-path: the random dataset reads no file (give --dataset-name)")
    for field, (flag, datasets) in ONLY_FOR.items():
        if name not in datasets and _given(cfg, field):
            raise VarcasError(f"{flag} applies to --dataset-name {' or '.join(datasets)}, not {name}")
    for field, (flag, needed, needed_flag) in NEEDS.items():
        if _given(cfg, field) and not _given(cfg, needed):
            raise VarcasError(f"{flag} needs {needed_flag}")
    reshaped = DATASETS[name].text or cfg.shared_prefix_len or cfg.turns > 1
    if cfg.clip_to_context and reshaped:
        raise VarcasError("--clip-to-context shortens varcas's own single prompts: not dataset texts, shared "
                          "prefixes or conversations; shorten those instead")


def shape(cfg: LoadConfig) -> Shape:
    """The schedule's shape from the shared-prefix and conversation flags."""
    return Shape(prefix_len=cfg.shared_prefix_len, prefix_groups=cfg.shared_prefix_groups, turns=cfg.turns,
                 think_s=cfg.think_time_s, think=cfg.think_time_dist or "exponential")


def text_dataset(cfg: LoadConfig) -> TextDataset | None:
    """A text dataset's rows, read now (None for random and burstgpt, whose prompts are varcas's)."""
    name = cfg.dataset_name
    if not DATASETS[name].text:
        return None
    output = {"sharegpt": cfg.sharegpt_output_len, "sonnet": cfg.sonnet_output_len,
              "custom": CUSTOM_OUTPUT_LEN if cfg.custom_output_len is None else cfg.custom_output_len}[name]
    sonnet = {k: v for k, v in (("input_len", cfg.sonnet_input_len), ("prefix_len", cfg.sonnet_prefix_len))
              if v is not None}
    return read_text_dataset(name, cfg.dataset_path, cfg.seed, shuffle=not cfg.disable_shuffle,
                             output_len=None if output == -1 else output, **sonnet)


def counter(cfg: LoadConfig, client: httpx.Client, tokenize_url: str, model: str) -> TokenCounter:
    """The best token counter there is: --tokenizer, else the server's /tokenize, else words."""
    if cfg.tokenizer:
        return tokenizer_counter(cfg.tokenizer)
    return server_counter(client, tokenize_url, model) or estimate_counter()


def sample_texts(prep: Prepared, plan: PromptPlan, count: TokenCounter) -> TextSample:
    """The text dataset's prompts for this run; prep's lengths become theirs, counted as the
    server counts the prompt it gets (special tokens for completions, the template for chat)."""
    assert prep.text is not None
    extra = plan.template_tokens if prep.config.api == "chat" else count.special
    sample = prep.text.sample(len(prep.offsets_ns), count.count, count.special, extra)
    prep.text = None  # the dataset's other rows are not needed during the run
    prep.input_len = (sample.text_tokens.astype(np.int64) + extra).astype(np.int32)
    prep.output_len = sample.output_len
    plan.record["dataset_lengths"] = count.source
    return sample


def record(cfg: LoadConfig, sched: Schedule, texts: TextSample | None) -> dict:
    """run.json's `workload_shape`: the dataset (and its sample) and the schedule's shape."""
    if texts is not None:
        dataset = texts.record
    elif cfg.dataset_name == "burstgpt":
        dataset = {"dataset": "burstgpt", "path": cfg.dataset_path, "timestamps_replayed": cfg.arrival == "trace"}
    else:
        dataset = {"dataset": "random", "range_ratio": cfg.random_range_ratio}
    return {"dataset": dataset, **sched.shape.describe(sched.timed)}


def prompt_source(prep: Prepared, plan: PromptPlan, texts: TextSample | None) -> Callable[[int], bytes]:
    """prompt(i) -> request i's prompt bytes: a dataset's text, a shaped prompt, or one window."""
    if texts is not None:
        return DatasetTexts(texts).fragment
    if not prep.schedule.shape.plain:
        return ShapedPrompts(plan.prompts, prep.schedule, prep.config.api == "chat", plan.template_tokens).fragment
    fragment = plan.prompts.fragment
    # A chat template adds its own tokens around the message: the message gets the rest.
    prompt_len = np.maximum(prep.input_len.astype(np.int64) - plan.template_tokens, 1)
    return lambda i: fragment(i, int(prompt_len[i]))
