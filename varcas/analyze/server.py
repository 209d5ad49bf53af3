"""What the server itself said during a run (metrics.parquet): its figures over a window of the
run (the steady window, else the whole run), its per-second timeline over the whole run, and its
own TTFT and ITL beside the client's. The figures and the names that mean them are
catalog.SERVER_METRICS, older and newer vLLM names alike (KV cache: vllm:gpu_cache_usage_perc
before v1, vllm:kv_cache_usage_perc after; ITL: vllm:time_per_output_token_seconds, then
vllm:inter_token_latency_seconds). A run without the file, or a server without these metrics,
has no server section (None).

Over the window: per gauge (summed over label sets per scrape), mean / p10 / p50 / p90 / max of
the scrapes inside it, and for the running batch a histogram of those scrapes; per counter, its
increase (and rate) between the scrapes that bracket the window (metricsfile.bracket); per
histogram, its buckets' increase between the same scrapes: the mean is sum / count, percentiles
interpolate linearly inside a bucket as Prometheus' histogram_quantile does (so they are only as
fine as the buckets), and TTFT and ITL stand beside the client's figures of the same window (the
client's describe requests scheduled in it, the server's its observations in it): client minus
server is the time spent in the network and the API server.

The timeline's second k is [start_ns + k s, start_ns + (k+1) s), the client timeline's bins: a
gauge is its last sample in the second, a counter its increase per second (the count
interpolated linearly between scrapes, over the part of the second they span), a histogram its
mean observation per second (sum increase / count increase); NaN where the scrapes say nothing.
Samples without a number (NaN) are left out, counters that went down count from zero again, a
histogram without its +Inf bucket has no figures: each with a one-line warning.

Where the file holds GPU samples (a dcgm-exporter's, or NVML's from varcas.telemetry.nvml), the
section has a "gpu" block: per figure of GPU_METRICS, its mean and max over every GPU's samples
in the window."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import metricsfile
from .catalog import COUNTER, GAUGE, HISTOGRAM, SERVER_METRICS, ServerMetric
from .run import Run

NS_PER_S = 1_000_000_000
GAUGE_PERCENTS = (10, 50, 90)
HISTOGRAM_PERCENTS = (50, 90, 99)
BATCH = "running"  # the gauge whose distribution in the window is the batch the server ran
MAX_BATCH_BINS = 16


@dataclass(frozen=True)
class ServerTimeline:
    """The server's per-second series over the run, on the client timeline's seconds."""

    t_s: np.ndarray  # each second's start, after start_ns
    series: dict  # SERVER_METRICS name -> value per second, in the metric's unit (series_heading); NaN: unknown


@dataclass(frozen=True)
class ServerSide:
    """All metrics.parquet says of a run: the server section (None: nothing), its timeline
    (None: nothing) and one-line warnings about samples it had to leave out."""

    figures: dict | None
    timeline: ServerTimeline | None
    warnings: tuple


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


def server_side(run: Run, t0_ns: int, t1_ns: int, nbins: int, client: dict | None = None) -> ServerSide:
    """The server's figures over [t0_ns, t1_ns), its timeline of nbins seconds from start_ns,
    and warnings. client: the window's client latencies (metrics.Block.latency), shown beside
    the server's own TTFT and ITL."""
    run_dir = run.path if run.path.is_dir() else run.path.parent
    table = metricsfile.read(run_dir)
    if table is None:
        return ServerSide(None, None, ())
    exposed = set(pc.unique(table["name"].cast(pa.string())).to_pylist())
    edges = run.start_ns + np.arange(nbins + 1, dtype=np.int64) * NS_PER_S
    figures, series, notes = {}, {}, []
    for m in SERVER_METRICS:
        name = next((n for n in m.sources if (n + "_bucket" if m.kind == HISTOGRAM else n) in exposed), None)
        if name is None:
            continue
        measure = {GAUGE: _gauge, COUNTER: _counter, HISTOGRAM: _histogram}[m.kind]
        figure, line, said = measure(m, name, table, (t0_ns, t1_ns), edges, client or {})
        notes += said
        if figure is not None:
            figures[m.name] = figure
        if line is not None and m.timeline:
            series[m.name] = line
    scrapes = max((figures[m.name]["scrapes"] for m in SERVER_METRICS if m.kind == GAUGE and m.name in figures),
                  default=0)
    gpu = gpu_side(table, t0_ns, t1_ns)
    if gpu:
        figures["gpu"] = gpu
    if figures:
        figures["scrapes"] = scrapes
    timeline = ServerTimeline(np.arange(nbins, dtype=np.float64), series) if series else None
    return ServerSide(figures or None, timeline, tuple(notes))


def _dropped(name: str, s: metricsfile.Samples) -> list[str]:
    """The warning for samples without a number, if there were any."""
    return [f"{name}: {s.dropped} samples without a number (NaN) left out"] if s.dropped else []


def _reset(name: str, resets: int) -> list[str]:
    """The warning for a counter that went down, if it did."""
    return [f"{name} went down during the run ({resets}x: a server restart?): counted from zero again"
            ] if resets else []


def _gauge(m: ServerMetric, name: str, table: pa.Table, window, edges, client) -> tuple:
    """A gauge's spread over the window's scrapes (the running batch's also as a histogram) and
    its last sample in each second."""
    s = metricsfile.samples(table, name)
    times, values = metricsfile.summed(s)
    inside = values[(times >= window[0]) & (times < window[1])]
    figure: dict[str, object] | None = None
    if inside.size:
        p10, p50, p90 = np.percentile(inside, GAUGE_PERCENTS)
        figure = {"mean": float(inside.mean()), "p10": float(p10), "p50": float(p50), "p90": float(p90),
                  "max": float(inside.max()), "scrapes": int(inside.size)}
        if m.name == BATCH:
            figure["histogram"] = batch_histogram(inside)
    return figure, metricsfile.last_in_bins(times, values, edges) * m.scale, _dropped(name, s)


def _grew(s: metricsfile.Samples, window) -> float:
    """A counter's increase between the scrapes that bracket the window."""
    return float(metricsfile.increases(metricsfile.bracket(s, *window))[2].sum())


def _counter(m: ServerMetric, name: str, table: pa.Table, window, edges, client) -> tuple:
    """A counter's increase over the window (and per second of it) and per second of the run."""
    s = metricsfile.samples(table, name)
    grew, span_s = _grew(s, window), (window[1] - window[0]) / NS_PER_S
    times, total, resets = metricsfile.cumulative(s)
    figure = {"delta": grew, "per_s": grew / span_s if span_s > 0 else None}
    return figure, metricsfile.rates(times, total, edges), _dropped(name, s) + _reset(name, resets)


def _histogram(m: ServerMetric, name: str, table: pa.Table, window, edges, client) -> tuple:
    """A histogram's mean and percentiles over the window, beside the client's figure where
    there is one, and (for a timeline metric) its mean observation per second of the run."""
    buckets, total, count = (metricsfile.samples(table, name + part) for part in ("_bucket", "_sum", "_count"))
    notes = _dropped(name + "_bucket", buckets) + _dropped(name + "_sum", total) + _dropped(name + "_count", count)
    notes += _reset(name, metricsfile.increases(count)[3])
    line = _per_observation(total, count, edges) * m.scale if m.timeline else None
    bounds, counts = _bucket_deltas(metricsfile.bracket(buckets, *window))
    wrong = _malformed(bounds, counts)
    if wrong:
        return None, line, notes + [f"{name}: {wrong}: the server's {m.label} is left out"]
    if counts[-1] <= 0:  # nothing observed in the window
        return None, line, notes
    n = _grew(count, window)
    figure = {"name": name, "observations": int(counts[-1]),
              m.key("mean"): _grew(total, window) / n * m.scale if n > 0 and total.values.size else None}
    values = bucket_percentiles(bounds, counts, HISTOGRAM_PERCENTS) * m.scale
    figure.update({m.key(p): float(v) for p, v in zip(HISTOGRAM_PERCENTS, values)})
    if client.get(m.client) is not None:
        figure.update(_beside(m, figure, client[m.client]))
    return figure, line, notes


def _per_observation(total: metricsfile.Samples, count: metricsfile.Samples, edges) -> np.ndarray:
    """A histogram's mean observation in each second: its sum's increase / its count's."""
    grew = metricsfile.rates(*metricsfile.cumulative(total)[:2], edges)
    seen = metricsfile.rates(*metricsfile.cumulative(count)[:2], edges)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(seen > 0, grew / seen, np.nan)


def _beside(m: ServerMetric, figure: dict, dist) -> dict:
    """The client's mean and median of the same figure, and client minus server at each (the
    network and the API server's time); None where the server has no mean."""
    mine = {"mean": figure[m.key("mean")], "p50": figure[m.key(50)]}
    theirs = {"mean": dist.mean, "p50": dist.percentiles[50]}
    out: dict[str, float | None] = {m.key(f"client_{k}"): float(v) for k, v in theirs.items()}
    out.update({m.key(f"gap_{k}"): None if mine[k] is None else float(theirs[k] - mine[k]) for k in theirs})
    return out


def _le(labels: str) -> float:
    """A bucket's upper bound from its label set; NaN where it has none."""
    try:
        return float(json.loads(labels)["le"])
    except (ValueError, KeyError, TypeError):
        return math.nan


def _bucket_deltas(s: metricsfile.Samples) -> tuple[np.ndarray, np.ndarray]:
    """(upper bounds ascending, each bucket's cumulative count increase summed over the other
    labels) of a histogram's _bucket samples."""
    _, ids, grew, _ = metricsfile.increases(s)
    per_set = np.bincount(ids, weights=grew, minlength=len(s.label_sets))
    le = np.array([_le(labels) for labels in s.label_sets], dtype=np.float64)
    known = ~np.isnan(le)
    bounds, at = np.unique(le[known], return_inverse=True)
    return bounds, np.bincount(at, weights=per_set[known], minlength=bounds.size)


def _malformed(bounds: np.ndarray, counts: np.ndarray) -> str:
    """Why bucket counts cannot be read as a histogram; "" when they can."""
    if not bounds.size or bounds[-1] != math.inf:
        return "no +Inf bucket"
    if (np.diff(counts) < 0).any():
        return "bucket counts fall as the bound rises (not cumulative)"
    return ""


def bucket_percentiles(bounds: np.ndarray, counts: np.ndarray, percents) -> np.ndarray:
    """Percentiles of a histogram (cumulative counts at ascending upper bounds, the last +Inf) as
    Prometheus' histogram_quantile: linear inside the bucket that holds the rank, from 0 below
    the first bound; a rank in the +Inf bucket is the highest finite bound."""
    rank = np.asarray(percents, dtype=np.float64) / 100.0 * counts[-1]
    i = np.minimum(np.searchsorted(counts, rank, side="left"), counts.size - 1)
    lower = np.concatenate(([0.0], bounds))[i]
    below = np.concatenate(([0.0], counts))[i]
    with np.errstate(invalid="ignore", divide="ignore"):
        inside = np.where(counts[i] > below, (rank - below) / (counts[i] - below), 1.0)
    return np.where(np.isinf(bounds[i]), lower, lower + (bounds[i] - lower) * inside)


def batch_histogram(running: np.ndarray) -> list[dict]:
    """Scrapes per running-batch size (rounded), in at most MAX_BATCH_BINS bins of equal width
    from the smallest size seen to the largest: [{"from", "to", "scrapes"}, ...]."""
    sizes = np.rint(running).astype(np.int64)
    lo, hi = int(sizes.min()), int(sizes.max())
    width = -(-(hi - lo + 1) // MAX_BATCH_BINS)
    counts = np.bincount((sizes - lo) // width)
    return [{"from": lo + k * width, "to": min(lo + (k + 1) * width - 1, hi), "scrapes": int(c)}
            for k, c in enumerate(counts)]


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
