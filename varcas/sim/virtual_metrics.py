"""What a /metrics scraper would have recorded from the simulator in virtual time: the offline
driver's metrics.parquet, so that every downstream reader (analyze's server section, its trust
checks, the roofline's achieved batch) works on simulated runs as on served ones.

Samples every interval_ns from the run's start to its end, with the names, labels and bucket
bounds the served simulator exposes (metrics.py): gauges as the step in progress planned them
(0 while the engine is idle), counters as they stood after the last step that ended, and the
TTFT, per-token and end-to-end histograms from the recorded rows, each observation counted at
the moment it happened (the first token, every later token, the last token). Vectorized: a
sample time is one searchsorted per series.
"""
from __future__ import annotations

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from ..metricsfile import METRICS_SCHEMA
from .metrics import E2E_BUCKETS, TPOT_BUCKETS, TTFT_BUCKETS

GAUGES = (("vllm:num_requests_running", "running"), ("vllm:num_requests_waiting", "waiting"))
COUNTERS = (("vllm:prompt_tokens_total", "prompt_tokens_total"),
            ("vllm:generation_tokens_total", "generation_tokens_total"),
            ("vllm:num_preemptions_total", "preemptions_total"))


def sample_times(t0_ns: int, t1_ns: int, interval_ns: int) -> np.ndarray:
    """t0, t0 + interval, ... up to the first sample at or after t1 (the run's last moment)."""
    n = max(1, -(-(t1_ns - t0_ns) // interval_ns) + 1)
    return t0_ns + interval_ns * np.arange(n, dtype=np.int64)


def scrapes(steps: dict, requests: pa.Table, t0_ns: int, t1_ns: int, interval_ns: int,
            model_name: str, total_blocks: int) -> pa.Table:
    """metrics.parquet's rows (METRICS_SCHEMA) for one offline run: steps is StepLog.arrays(),
    requests the run's rows (requests.parquet)."""
    t = sample_times(t0_ns, t1_ns, interval_ns)
    label = {"model_name": model_name}
    series: list[tuple[str, dict, np.ndarray]] = []
    start, end = steps["start_ns"], steps["start_ns"] + steps["dur_ns"]
    planned = np.searchsorted(start, t, side="right") - 1  # the step that started last (-1: none yet)
    planned[(planned >= 0) & (t >= np.append(end, 0)[planned])] = -1  # it ended: the engine is idle
    for name, column in GAUGES:
        series.append((name, label, _at(steps[column], planned)))
    series.append(("vllm:gpu_cache_usage_perc", label, _at(steps["used_blocks"], planned) / max(total_blocks, 1)))
    done = np.searchsorted(end, t, side="right") - 1  # the last step that ended
    for name, column in COUNTERS:
        series.append((name, label, _at(steps[column], done)))
    series.append(("vllm:request_success_total", {"finished_reason": "length", **label},
                   _at(steps["finished_total"], done)))
    for name, bounds, (when, value) in _observations(requests):
        series += _histogram(name, bounds, when, value, t, label)
    return _table(t, series)


def _at(column: np.ndarray, index: np.ndarray) -> np.ndarray:
    """A step column's value at each sample's step index; 0 where the index is -1 (no step)."""
    return np.append(column, 0)[index].astype(float)


def _observations(requests: pa.Table):
    """(histogram name, bounds, (observation times, values in seconds)) of the served rows."""
    ok = requests.filter(pc.is_null(requests["error"]))
    tokens = ok["token_ns"].combine_chunks()
    offsets = tokens.offsets.to_numpy()
    flat = tokens.values.to_numpy()
    some = np.diff(offsets) > 0  # rows with tokens (all of a simulator's served rows)
    sent, first = ok["sent_ns"].to_numpy()[some], ok["first_token_ns"].to_numpy(zero_copy_only=False)[some]
    last = flat[offsets[1:][some] - 1]
    later = np.ones(flat.size, bool)
    later[offsets[:-1][some]] = False  # every token but each request's first
    gaps = np.diff(flat, prepend=flat[:1])
    return (("vllm:time_to_first_token_seconds", TTFT_BUCKETS, (first, (first - sent) / 1e9)),
            ("vllm:time_per_output_token_seconds", TPOT_BUCKETS, (flat[later], gaps[later] / 1e9)),
            ("vllm:e2e_request_latency_seconds", E2E_BUCKETS, (last, (last - sent) / 1e9)))


def _histogram(name: str, bounds: tuple, when: np.ndarray, value: np.ndarray, t: np.ndarray, label: dict):
    """The _bucket (cumulative, le inclusive), _count and _sum series of one histogram at times t."""
    order = np.argsort(when, kind="stable")
    when, value = when[order], value[order]
    slot = np.searchsorted(np.asarray(bounds), value, side="left")  # value <= bound: that bucket
    out, below = [], np.zeros(t.size)
    for i, bound in enumerate((*bounds, float("inf"))):
        below = below + np.searchsorted(when[slot == i], t, side="right")
        le = "+Inf" if bound == float("inf") else repr(float(bound))
        out.append((f"{name}_bucket", {"le": le, **label}, below.copy()))
    seen = np.searchsorted(when, t, side="right")
    out.append((f"{name}_count", label, seen.astype(float)))
    out.append((f"{name}_sum", label, np.concatenate(([0.0], np.cumsum(value)))[seen]))
    return out


def _table(t: np.ndarray, series: list) -> pa.Table:
    """Long format, one row per (sample time, series), in t_ns order."""
    k = len(series)
    names = [name for name, _, _ in series]
    labels = [orjson.dumps(lab, option=orjson.OPT_SORT_KEYS).decode() for _, lab, _ in series]
    values = np.stack([v for _, _, v in series], axis=1).ravel()  # sample-major
    return pa.table({
        "t_ns": pa.array(np.repeat(t, k), pa.int64()),
        "name": pa.array(names * t.size, pa.string()).dictionary_encode(),
        "labels": pa.array(labels * t.size, pa.string()).dictionary_encode(),
        "value": pa.array(values, pa.float64()),
    }).cast(METRICS_SCHEMA)
