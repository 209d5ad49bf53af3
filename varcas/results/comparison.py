"""comparison(sweep_dir): the sweep read back from its run directories, compared, explained
and recommended on; written to comparison.json for the report.

Runs are read through their digests (digest.py: cached per run, computed in parallel when
missing). The SLO that decides the interactive recommendation is the sweep's --goodput,
else compare.DEFAULT_SLO_MS. The roofline explanation needs the model and GPU: the
simulator's own settings for a simulated sweep, else --roofline-model/--roofline-gpu given to
`varcas optimize`; without them it is left out and the comparison says why.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

from ..errors import VarcasError
from ..sim.config import SimConfig
from . import compare, files, sweepdir
from .digest import digests
from .explain import explain


def roofline_target(spec: dict) -> dict | None:
    """{model, gpu, quant} for the explanation, or None when the sweep does not say."""
    backend = spec.get("backend") or {}
    if backend.get("kind") in ("sim", "offline"):
        sim = backend.get("sim") or {}
        return {"model": sim.get("model", SimConfig.model), "gpu": sim.get("gpu", SimConfig.gpu),
                "quant": sim.get("quant", SimConfig.quant), "sim": sim}
    return spec.get("roofline")


def comparison(sweep: Path, *, baseline: str | None = None, slo_ms: dict | None = None, write: bool = True) -> dict:
    """The sweep's comparison per workload (rows, Pareto front, recommendations, roofline)."""
    sweep = Path(sweep)
    spec = sweepdir.read_sweep(sweep)
    ents = sweepdir.entries(sweep)
    ids = [e["id"] for e in ents]
    if baseline is not None and baseline not in ids:
        raise VarcasError(f"--baseline {baseline}: not a configuration of this sweep (it has: {', '.join(ids)})")
    baseline = baseline or ids[0]
    goodput = spec.get("goodput")
    slo = slo_ms or goodput or compare.DEFAULT_SLO_MS
    keys = [(e["id"], w) for e in ents for w in sorted(e["runs"])]
    found = dict(zip(keys, digests([e["runs"][w] for e in ents for w in sorted(e["runs"])], goodput, store=write)))
    target = roofline_target(spec)
    workloads: dict[str, dict] = {}
    out = {"sweep": str(sweep), "baseline": baseline, "slo_ms": slo, "goodput": goodput,
           "configs": [{k: e[k] for k in ("id", "params", "status", "reason")} for e in ents],
           "roofline_target": target and {k: target[k] for k in ("model", "gpu", "quant")},
           "workloads": workloads}
    for w in spec["workloads"]:
        rows = compare.workload_rows(ents, found, w, baseline)
        entry = {"rows": rows, "pareto": compare.pareto(rows), "recommendations": compare.recommend(rows, slo)}
        if target:
            runs = {c: d for (c, of), d in found.items() if of == w}
            entry["roofline"] = explain(rows, runs, target["model"], target["gpu"], target["quant"], target.get("sim"))
        else:
            entry["roofline"] = None
            entry["roofline_note"] = ("no roofline explanation: pass --roofline-model and --roofline-gpu "
                                      "(and --roofline-quant) to say what the server runs")
        workloads[w] = entry
    if write:
        files.write(sweep, files.COMPARISON, out)
    return out


def read_comparison(sweep: Path, baseline: str | None = None) -> dict:
    """The sweep's comparison as comparison.json has it; computed afresh, not written, when the
    file is missing, of another format version or was made against another baseline (the report
    reads, never writes)."""
    if files.exists(sweep, files.COMPARISON):
        with contextlib.suppress(VarcasError):  # of another format version (or unreadable): computed below
            stored = files.read(sweep, files.COMPARISON)
            if baseline is None or stored.get("baseline") == baseline:
                return stored
    return comparison(sweep, baseline=baseline, write=False)
