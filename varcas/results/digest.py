"""digest(run_dir): everything the comparison and the report need from one run, as plain JSON.

A digest is `varcas analyze`'s summary (whole run, steady window, verdict, warnings) plus the
latency CDFs (201 quantiles each, of the window's requests), the per-second timeline and the
window's mean concurrency and token counts: a few kilobytes however large the run. It is
cached as digest.json in the run directory, keyed by the request file's size and mtime, the
SLOs and DIGEST_VERSION, so reading a sweep again costs a JSON read per run; a read-only
directory just goes uncached. A run whose requests file changed is digested again.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np

from .. import rundir
from ..analyze import kernels
from ..analyze.metrics import NS_PER_MS, request_metrics
from ..analyze.run import load_run
from ..analyze.summary import summarize
from ..errors import VarcasError

DIGEST_VERSION = 2  # bump whenever analysis results change (verdict rules, metrics), or caches go stale
DIGEST_FILE = "digest.json"
CDF_PERCENTS = np.linspace(0.0, 100.0, 201)
CDF_METRICS = ("ttft", "tpot", "itl", "e2el")


def _source_key(run_dir: Path) -> dict:
    for name in (rundir.PARQUET, rundir.ARROWS):
        path = run_dir / name
        if path.is_file():
            st = path.stat()
            return {"file": name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    raise VarcasError(f"{run_dir}: not a run directory (no {rundir.PARQUET} or {rundir.ARROWS})")


def _key(run_dir: Path, goodput: dict | None) -> dict:
    return {"version": DIGEST_VERSION, "goodput": goodput, "source": _source_key(run_dir)}


def cached(run_dir, goodput: dict | None = None) -> dict | None:
    """The run's digest.json if it is current, else None."""
    path = Path(run_dir) / DIGEST_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # missing, corrupt or unreadable: recompute
    return data if isinstance(data, dict) and data.get("key") == _key(Path(run_dir), goodput) else None


def digest(run_dir, goodput: dict | None = None, *, cache: bool = True) -> dict:
    """The digest of one run directory (from digest.json when it is current)."""
    run_dir = Path(run_dir)
    if cache and (hit := cached(run_dir, goodput)) is not None:
        return {**hit, "path": str(run_dir)}  # the directory may have moved since
    data = {"key": _key(run_dir, goodput), **compute(run_dir, goodput)}
    data = json.loads(json.dumps(data, allow_nan=False, default=_json_default))  # plain types, as if read back
    if cache:
        with contextlib.suppress(OSError):
            rundir.write_json(run_dir / DIGEST_FILE, data)
    return data


def digests(run_dirs: list, goodput: dict | None = None) -> list[dict]:
    """digest() of many runs, in order. One at a time: the kernels already use every core."""
    return [digest(p, goodput) for p in run_dirs]


def compute(run_dir: Path, goodput: dict | None) -> dict:
    """The digest's content, computed from the run's requests."""
    run = load_run(run_dir)
    summary = summarize(run, goodput=goodput)
    rm = request_metrics(run)
    if summary.window is not None:
        t0, t1 = summary.window.bounds_ns(run)
        chosen = (run.scheduled_ns >= t0) & (run.scheduled_ns < t1)
        first, last = int(summary.window.start_s), int(np.ceil(summary.window.end_s))
    else:
        chosen = np.ones(run.n, bool)
        first, last = 0, summary.timeline.t_s.size
    measured = rm.measured & chosen
    series = {
        "ttft": rm.ttft_ns[measured],
        "tpot": rm.tpot_ns[measured & ~np.isnan(rm.tpot_ns)],
        "itl": kernels.itl_gaps(run.token_offsets, run.token_ns, measured)[1],
        "e2el": rm.e2el_ns[measured],
    }
    tl = summary.timeline
    in_flight = tl.in_flight[first:last]
    config = run.manifest.get("config") or {}
    return {
        "run": run.name,
        "path": str(run_dir),
        "workload": config.get("workload"),
        "scope": "steady" if summary.steady is not None else "whole",
        "summary": summary.to_dict(),
        "offered_rps": _offered_rps(run),
        "mean_in_flight": float(in_flight.mean()) if in_flight.size else None,
        "mean_input_tokens": float(rm.input_tokens[rm.measured].mean()) if rm.measured.any() else None,
        "mean_output_tokens": float(rm.output_tokens[rm.measured].mean()) if rm.measured.any() else None,
        "cdf_percents": CDF_PERCENTS.tolist(),
        "cdf_ms": {name: (kernels.percentiles(v, CDF_PERCENTS) / NS_PER_MS).tolist() if v.size else None
                   for name, v in series.items()},
        "timeline": {
            "t_s": tl.t_s.tolist(), "sent": tl.sent.tolist(), "completed": tl.completed.tolist(),
            "in_flight": tl.in_flight.tolist(), "output_tokens": tl.output_tokens.tolist(),
            "errors": tl.errors.tolist(),
        },
    }


def _offered_rps(run) -> float | None:
    """Requests scheduled per second of the send phase (the rate the schedule asked for)."""
    if run.n < 2:
        return None
    span = (int(run.scheduled_ns.max()) - run.start_ns) / 1e9
    return run.n / span if span > 0 else None


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON: {type(value).__name__}")
