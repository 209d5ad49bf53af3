"""What the server itself said during a run (metrics.parquet), over a window of the run: the
batch it really ran (vllm:num_requests_running), its queue (…_waiting), its KV-cache use, its
preemptions and its own token rates. Older and newer vLLM names both count (KV cache:
vllm:gpu_cache_usage_perc before v1, vllm:kv_cache_usage_perc after). A run without the file,
or a server without these metrics, has no server section (None). The figures and the names
that mean them are catalog.SERVER_METRICS. Where the file holds GPU samples (a dcgm-exporter's,
or NVML's from varcas.telemetry.nvml), the section has a "gpu" block: per figure of GPU_METRICS,
its mean and max over every GPU's samples in the window."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import metricsfile
from .catalog import COUNTER, GAUGE, SERVER_METRICS
from .run import Run

_GAUGES = tuple(m for m in SERVER_METRICS if m.kind == GAUGE)
_COUNTERS = tuple(m for m in SERVER_METRICS if m.kind == COUNTER)


@dataclass(frozen=True)
class GpuMetric:
    """One figure of the GPU block, from the names that carry it (first found wins), each with
    its factor to the figure's unit."""

    name: str  # its key in the gpu block
    label: str
    unit: str
    sources: tuple  # ((exposed name, factor to unit), ...)


# DCGM names and units as dcgm-exporter's default and DCP counter lists export them
# (DCGM_FI_PROF_* are ratios 0-1, DCGM_FI_DEV_FB_USED is MiB); nvml: names as the scraper writes them.
GPU_METRICS = (
    GpuMetric("util_pct", "GPU busy: a kernel running", "%",
              (("DCGM_FI_DEV_GPU_UTIL", 1.0), ("nvml:gpu_utilization_percent", 1.0))),
    GpuMetric("sm_active_pct", "SM active: cycles with a warp resident, mean over SMs", "%",
              (("DCGM_FI_PROF_SM_ACTIVE", 100.0), ("nvml:sm_utilization_percent", 1.0))),
    GpuMetric("tensor_active_pct", "tensor-core pipes active", "%",
              (("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", 100.0), ("nvml:tensor_utilization_percent", 1.0))),
    GpuMetric("dram_active_pct", "DRAM bandwidth used, of its peak", "%",
              (("DCGM_FI_PROF_DRAM_ACTIVE", 100.0), ("nvml:dram_bandwidth_utilization_percent", 1.0))),
    GpuMetric("memory_busy_pct", "memory busy: device memory read or written", "%",
              (("DCGM_FI_DEV_MEM_COPY_UTIL", 1.0), ("nvml:memory_utilization_percent", 1.0))),
    GpuMetric("sm_clock_mhz", "SM clock", "MHz", (("DCGM_FI_DEV_SM_CLOCK", 1.0), ("nvml:sm_clock_mhz", 1.0))),
    GpuMetric("power_w", "power draw", "W", (("DCGM_FI_DEV_POWER_USAGE", 1.0), ("nvml:power_watts", 1.0))),
    GpuMetric("memory_used_bytes", "device memory used", "bytes",
              (("DCGM_FI_DEV_FB_USED", float(1 << 20)), ("nvml:memory_used_bytes", 1.0))),
)


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
    for m in _GAUGES:
        found = _series(table, m.sources)
        if found is None:
            continue
        times, values = found
        inside = values[(times >= t0_ns) & (times < t1_ns)]
        if inside.size:
            scrapes = max(scrapes, int(inside.size))
            p50, p90 = np.percentile(inside, [50, 90])
            out[m.name] = {"mean": float(inside.mean()), "p50": float(p50), "p90": float(p90), "max": float(inside.max())}
    span_s = (t1_ns - t0_ns) / 1e9
    exposed = set(pc.unique(table["name"].cast(pa.string())).to_pylist())
    for m in _COUNTERS:
        name = next((n for n in m.sources if n in exposed), None)
        if name is not None:
            grew = metricsfile.counter_deltas(table, (name,), t0_ns, t1_ns)[name]
            out[m.name] = {"delta": grew, "per_s": grew / span_s if span_s > 0 else None}
    gpu = gpu_side(table, t0_ns, t1_ns)
    if gpu:
        out["gpu"] = gpu
    if not out:
        return None
    out["scrapes"] = scrapes
    return out


def gpu_side(table: pa.Table, t0_ns: int, t1_ns: int) -> dict | None:
    """The GPU block over [t0_ns, t1_ns): per GPU_METRICS figure found, the name it came from and
    the mean and max over every GPU's samples inside the window; how many GPUs and scrapes.
    None when the window has no GPU sample."""
    name_col = table["name"].cast(pa.string())
    inside = pc.and_(pc.greater_equal(table["t_ns"], t0_ns), pc.less(table["t_ns"], t1_ns))
    out, gpus, scrapes = {}, 0, 0
    for m in GPU_METRICS:
        for name, factor in m.sources:
            rows = table.filter(pc.and_(pc.equal(name_col, name), inside))
            if rows.num_rows:
                values = rows["value"].to_numpy() * factor
                out[m.name] = {"name": name, "mean": float(values.mean()), "max": float(values.max())}
                gpus = max(gpus, len(pc.unique(rows["labels"])))
                scrapes = max(scrapes, len(pc.unique(rows["t_ns"])))
                break
    return {"gpus": gpus, "scrapes": scrapes, **out} if out else None
