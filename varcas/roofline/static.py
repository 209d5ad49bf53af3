"""static(): the static roofline of a model on a GPU, as text lines and a JSON document: what
`varcas roofline` prints and writes, and what `varcas pipeline` keeps as its first step.
Kernels measured by Nsight Compute (an `ncu --csv --page raw` file, ncu.py) join it as a
"kernels" section, or stand alone on the GPU's roofline (kernel_roofline) when there is no model."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import analysis, ncu, render
from .gpus import Hardware
from .models import Model


@dataclass(frozen=True)
class Static:
    """The text (lines, as printed) and the JSON document (render.to_json) of one roofline."""

    lines: list[str]
    doc: dict


def static(hw: Hardware, m: Model, batches: list[int], prompts: list[int], contexts: list[int], *,
           gpu_memory_utilization: float = analysis.DEFAULT_GPU_MEMORY_UTILIZATION, max_batch: int = 512,
           latency_target_s: float | None = None, ops: bool = False, sweep: bool = False,
           ncu_csv: str | Path | None = None) -> Static:
    """Phase table at every (batch, prompt, context), KV memory and the decode sweep per context;
    ops adds the per-operator breakdown to the text, sweep the whole batch sweep, ncu_csv the
    measured kernels (kernels without tensor-core work are bounded at the model's matmul dtype)."""
    results = analysis.phase_table(hw, m, batches, prompts, contexts)
    mems = [analysis.memory(hw, m, c, gpu_memory_utilization) for c in contexts]
    sweeps = [analysis.decode_sweep(hw, m, c, max_batch, latency_target_s, gpu_memory_utilization) for c in contexts]
    lines = render.card(hw, m, mems[-1]) + [""] + render.phase_rows(results) + [""]
    for s in sweeps:
        lines += render.sweep_summary(s, sweep)
    if ops:
        for r in results:
            lines += [""] + render.op_rows(r)
    out = Static(lines, render.to_json(hw, m, mems, results, sweeps))
    return _with_kernels(out, hw, ncu_csv, m.precision.act) if ncu_csv is not None else out


def kernel_roofline(hw: Hardware, ncu_csv: str | Path, dtype: str = "fp16") -> Static:
    """Measured kernels on the GPU's roofline without a model: the GPU line and the kernel tables;
    JSON {"gpu", "kernels"}. Kernels without tensor-core work are bounded at `dtype`'s peak."""
    return _with_kernels(Static(render.gpu_line(hw, dtype), {"gpu": render.gpu_json(hw, dtype)}), hw, ncu_csv, dtype)


def _with_kernels(out: Static, hw: Hardware, ncu_csv: str | Path, dtype: str) -> Static:
    """`out` plus the kernels of an ncu CSV: their tables after the text, "kernels" in the JSON."""
    report = ncu.kernel_report(hw, ncu.read_ncu(ncu_csv), dtype, Path(ncu_csv).name)
    return Static(out.lines + [""] + render.kernel_rows(report), out.doc | {"kernels": render.kernels_json(report)})
