"""What the server itself said during a run (metrics.parquet), over a window of the run: the
batch it really ran (vllm:num_requests_running), its queue (…_waiting), its KV-cache use, its
preemptions and its own token rates. Older and newer vLLM names both count (KV cache:
vllm:gpu_cache_usage_perc before v1, vllm:kv_cache_usage_perc after). A run without the file,
or a server without these metrics, has no server section (None)."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import metricsfile
from .run import Run

# What the section shows -> the exposed names that mean it, newest first.
GAUGES = {
    "running": ("vllm:num_requests_running",),
    "waiting": ("vllm:num_requests_waiting",),
    "kv_cache_usage": ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
}
COUNTERS = {
    "preemptions": ("vllm:num_preemptions_total",),
    "prompt_tokens": ("vllm:prompt_tokens_total",),
    "generation_tokens": ("vllm:generation_tokens_total",),
}


def _series(table: pa.Table, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray] | None:
    """(t_ns, value summed over label sets per scrape) of the first name the server exposes."""
    for name in names:
        rows = table.filter(pc.equal(table["name"].cast(pa.string()), name))
        if rows.num_rows:
            t = rows["t_ns"].to_numpy()
            times, index = np.unique(t, return_inverse=True)
            return times, np.bincount(index, weights=rows["value"].to_numpy(), minlength=times.size)
    return None


def server_side(run: Run, t0_ns: int, t1_ns: int) -> dict | None:
    """The server's figures over [t0_ns, t1_ns): per gauge, mean / p50 / p90 / max over the
    scrapes inside it; per counter, its increase (and rate) between the scrapes that bracket it
    (metricsfile.counter_deltas)."""
    run_dir = run.path if run.path.is_dir() else run.path.parent
    table = metricsfile.read(run_dir)
    if table is None:
        return None
    out, scrapes = {}, 0
    for key, names in GAUGES.items():
        found = _series(table, names)
        if found is None:
            continue
        times, values = found
        inside = values[(times >= t0_ns) & (times < t1_ns)]
        if inside.size:
            scrapes = max(scrapes, int(inside.size))
            p50, p90 = np.percentile(inside, [50, 90])
            out[key] = {"mean": float(inside.mean()), "p50": float(p50), "p90": float(p90), "max": float(inside.max())}
    span_s = (t1_ns - t0_ns) / 1e9
    exposed = set(pc.unique(table["name"].cast(pa.string())).to_pylist())
    for key, names in COUNTERS.items():
        name = next((n for n in names if n in exposed), None)
        if name is not None:
            grew = metricsfile.counter_deltas(table, (name,), t0_ns, t1_ns)[name]
            out[key] = {"delta": grew, "per_s": grew / span_s if span_s > 0 else None}
    if not out:
        return None
    out["scrapes"] = scrapes
    return out
