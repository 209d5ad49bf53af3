"""static(): the static roofline of a model on a GPU, as text lines and a JSON document: what
`varcas roofline` prints and writes, and what `varcas pipeline` keeps as its first step."""
from __future__ import annotations

from dataclasses import dataclass

from . import analysis, render
from .gpus import Hardware
from .models import Model


@dataclass(frozen=True)
class Static:
    """The text (lines, as printed) and the JSON document (render.to_json) of one roofline."""

    lines: list[str]
    doc: dict


def static(hw: Hardware, m: Model, batches: list[int], prompts: list[int], contexts: list[int], *,
           gpu_memory_utilization: float = analysis.DEFAULT_GPU_MEMORY_UTILIZATION, max_batch: int = 512,
           latency_target_s: float | None = None, ops: bool = False, sweep: bool = False) -> Static:
    """Phase table at every (batch, prompt, context), KV memory and the decode sweep per context;
    ops adds the per-operator breakdown to the text, sweep the whole batch sweep."""
    results = analysis.phase_table(hw, m, batches, prompts, contexts)
    mems = [analysis.memory(hw, m, c, gpu_memory_utilization) for c in contexts]
    sweeps = [analysis.decode_sweep(hw, m, c, max_batch, latency_target_s, gpu_memory_utilization) for c in contexts]
    lines = render.card(hw, m, mems[-1]) + [""] + render.phase_rows(results) + [""]
    for s in sweeps:
        lines += render.sweep_summary(s, sweep)
    if ops:
        for r in results:
            lines += [""] + render.op_rows(r)
    return Static(lines, render.to_json(hw, m, mems, results, sweeps))
