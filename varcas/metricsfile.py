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


def counter_deltas(table: pa.Table, names, t0_ns: int | None = None, t1_ns: int | None = None) -> dict[str, float]:
    """Each counter's increase, summed over its label sets: over the whole table, or between the
    scrapes that bracket [t0_ns, t1_ns) (the last at or before t0, the first at or after t1).
    A counter that went down restarted (a server restart) and counts from zero again."""
    name_col = table["name"].cast(pa.string())
    out = {}
    for name in names:
        rows = table.filter(pc.equal(name_col, name))
        t, v = rows["t_ns"].to_numpy(), rows["value"].to_numpy()
        labels = rows["labels"].cast(pa.string()).to_numpy(zero_copy_only=False)
        if t0_ns is not None and t.size:
            times = np.unique(t)
            lo = times[max(np.searchsorted(times, t0_ns, side="right") - 1, 0)]
            hi = times[min(np.searchsorted(times, t1_ns, side="left"), times.size - 1)]
            keep = (t >= lo) & (t <= hi)
            t, v, labels = t[keep], v[keep], labels[keep]
        order = np.lexsort((t, labels))  # by label set, then by scrape time
        v, labels = v[order], labels[order]
        steps = np.where(np.diff(v) >= 0, np.diff(v), v[1:])
        out[name] = float(steps[labels[1:] == labels[:-1]].sum())
    return out
