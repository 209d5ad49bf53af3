"""metrics.arrows / metrics.parquet, the run directory's server telemetry (beside rundir.py's
request rows): one row per sample per scrape, long format, of every source the scraper polls
(varcas.telemetry.scrape): the server's /metrics, a dcgm-exporter's (DCGM_FI_DEV_GPU_UTIL, ...)
and NVML's readings of this host's GPUs (nvml:gpu_utilization_percent, ...; telemetry/nvml.py).

  t_ns    int64      when the sample's answer arrived (CLOCK_MONOTONIC ns, the run's clock)
  name    string     the sample's name as exposed (vllm:prompt_tokens_total, ..._bucket, ...)
  labels  string     its labels as a JSON object with sorted keys ({"le":"0.5","model_name":"m"})
  value   float64
The scraper appends one record batch per sample to metrics.arrows (flushed at once, so a run
that dies keeps every sample so far); the run's end converts it to metrics.parquet, rows in
t_ns order. duckdb and pandas read it as is:
`select * from 'metrics.parquet' where name = 'vllm:num_requests_running'`.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from .errors import VarcasError

METRICS_ARROWS = "metrics.arrows"
METRICS_PARQUET = "metrics.parquet"
_STR = pa.dictionary(pa.int32(), pa.string())
METRICS_SCHEMA = pa.schema([pa.field("t_ns", pa.int64(), nullable=False), pa.field("name", _STR, nullable=False),
                            pa.field("labels", _STR, nullable=False), pa.field("value", pa.float64(), nullable=False)],
                           metadata={b"varcas.metrics_version": b"1"})


def batch(t_ns: int, names: list[str], labels: list[str], values: list[float]) -> pa.RecordBatch:
    """One scrape as a record batch of METRICS_SCHEMA."""
    return pa.RecordBatch.from_arrays(
        [pa.array([t_ns] * len(names), pa.int64()), pa.array(names, pa.string()).dictionary_encode().cast(_STR),
         pa.array(labels, pa.string()).dictionary_encode().cast(_STR), pa.array(values, pa.float64())],
        schema=METRICS_SCHEMA)


def finish(run_dir: Path) -> int | None:
    """metrics.arrows -> metrics.parquet (a torn last batch is dropped); rows written, None if
    the run has no scrape stream. VarcasError if the Parquet file cannot be written."""
    src, dst = Path(run_dir) / METRICS_ARROWS, Path(run_dir) / METRICS_PARQUET
    if not src.is_file():
        return None
    batches = []
    try:
        with pa.OSFile(str(src), "rb") as f:
            reader = ipc.open_stream(f)
            while True:
                try:
                    batches.append(reader.read_next_batch())
                except (StopIteration, pa.ArrowInvalid, OSError):
                    break
    except (pa.ArrowInvalid, OSError):
        pass  # no complete schema: the scraper died before its first scrape
    # the sources sample in threads of their own: their batches interleave (sort_by is stable)
    table = pa.Table.from_batches(batches, schema=METRICS_SCHEMA).sort_by("t_ns")
    tmp = dst.with_name(dst.name + ".tmp")
    try:
        pq.write_table(table, tmp, compression="zstd")
        tmp.replace(dst)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise VarcasError(f"cannot write {dst} ({exc})") from None
    return table.num_rows


def read(run_dir: Path) -> pa.Table | None:
    """A run's metrics table; None if it has no metrics.parquet (no /metrics, or not finished)."""
    path = Path(run_dir) / METRICS_PARQUET
    if not path.is_file():
        return None
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise VarcasError(f"{path}: corrupt or unreadable Parquet ({str(exc).splitlines()[0]})") from None
    if table.schema.metadata is None or table.schema.metadata.get(b"varcas.metrics_version") != b"1" \
            or table.column_names != METRICS_SCHEMA.names:
        raise VarcasError(f"{path}: not a varcas metrics table (version 1)")
    return table


class Samples(NamedTuple):
    """One exposed name's samples that carry a number, in t_ns order; dropped counts those that
    did not (NaN or infinite: no reading), which every figure leaves out."""

    t_ns: np.ndarray
    label_ids: np.ndarray  # index of each sample's label set in label_sets
    label_sets: list  # the label sets as JSON objects
    values: np.ndarray
    dropped: int


def samples(table: pa.Table, name: str) -> Samples:
    """The samples of one exposed name (Samples: empty where the file has none)."""
    rows = table.filter(pc.equal(table["name"].cast(pa.string()), name))
    labels = rows["labels"].cast(pa.string()).combine_chunks().dictionary_encode()
    t, ids, v = rows["t_ns"].to_numpy(), labels.indices.to_numpy(), rows["value"].to_numpy()
    ok = np.isfinite(v)
    return Samples(t[ok], ids[ok], labels.dictionary.to_pylist(), v[ok], int(ok.size - np.count_nonzero(ok)))


def bracket(s: Samples, t0_ns: int, t1_ns: int) -> Samples:
    """The samples from the last scrape at or before t0_ns to the first at or after t1_ns: a
    counter's increase over [t0_ns, t1_ns) is measured between them."""
    times = np.unique(s.t_ns)
    if not times.size:
        return s
    lo = times[max(int(np.searchsorted(times, t0_ns, side="right")) - 1, 0)]
    hi = times[min(int(np.searchsorted(times, t1_ns, side="left")), times.size - 1)]
    keep = (s.t_ns >= lo) & (s.t_ns <= hi)
    return s._replace(t_ns=s.t_ns[keep], label_ids=s.label_ids[keep], values=s.values[keep])


def increases(s: Samples) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(t_ns, label_ids, increase, resets) in (label set, time) order: each sample's increase over
    its label set's previous one (0 at a set's first). A counter that went down restarted (a
    server restart) and counts from zero again; resets says how often that happened."""
    order = np.lexsort((s.t_ns, s.label_ids))
    t, ids, v = s.t_ns[order], s.label_ids[order], s.values[order]
    same, step = ids[1:] == ids[:-1], np.diff(v)
    grew = np.concatenate(([0.0], np.where(same, np.where(step >= 0, step, v[1:]), 0.0)))
    return t, ids, grew, int(np.count_nonzero(same & (step < 0)))


def counter_deltas(table: pa.Table, names, t0_ns: int | None = None, t1_ns: int | None = None) -> dict[str, float]:
    """Each counter's increase, summed over its label sets: over the whole table, or between the
    scrapes that bracket [t0_ns, t1_ns) (bracket). A reset counts from zero again (increases)."""
    if (t0_ns is None) != (t1_ns is None):
        raise TypeError("counter_deltas: give both t0_ns and t1_ns, or neither")
    out = {}
    for name in names:
        s = samples(table, name)
        out[name] = float(increases(s if t0_ns is None or t1_ns is None else bracket(s, t0_ns, t1_ns))[2].sum())
    return out


def cumulative(s: Samples) -> tuple[np.ndarray, np.ndarray, int]:
    """(scrape times, the counter's increase since its first scrape summed over label sets at
    each, resets): a reset counts from zero again (increases)."""
    t, _, grew, resets = increases(s)
    times, at = np.unique(t, return_inverse=True)
    return times, np.cumsum(np.bincount(at, weights=grew, minlength=times.size)), resets


def rates(times: np.ndarray, total: np.ndarray, edges_ns: np.ndarray) -> np.ndarray:
    """Per bin between edges_ns, a cumulative count's increase per second: the count linearly
    interpolated between scrapes, over the part of the bin the scrapes span; NaN where they span none."""
    if not times.size:
        return np.full(edges_ns.size - 1, np.nan)
    clipped = np.clip(edges_ns, times[0], times[-1])
    grew, span_s = np.diff(np.interp(clipped, times, total)), np.diff(clipped) / 1e9
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(span_s > 0, grew / span_s, np.nan)


def summed(s: Samples) -> tuple[np.ndarray, np.ndarray]:
    """(scrape times, a gauge's value summed over its label sets at each)."""
    times, at = np.unique(s.t_ns, return_inverse=True)
    return times, np.bincount(at, weights=s.values, minlength=times.size)


def last_in_bins(times: np.ndarray, values: np.ndarray, edges_ns: np.ndarray) -> np.ndarray:
    """Per bin between edges_ns, the value of the last sample taken inside it; NaN where none was."""
    if not times.size:
        return np.full(edges_ns.size - 1, np.nan)
    last = np.maximum(np.searchsorted(times, edges_ns[1:], side="left") - 1, 0)
    inside = (times[last] < edges_ns[1:]) & (times[last] >= edges_ns[:-1])
    return np.where(inside, values[last], np.nan)
