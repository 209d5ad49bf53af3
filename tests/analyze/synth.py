"""Synthetic run directories with known values, for the analysis tests and bench/bench_analyze.py.

simulate() plays requests through a FIFO server with a fixed number of slots and fixed
prefill and per-token times, so every latency is known by hand; with few slots and fast
arrivals the queue grows (a saturated server), with enough slots it never forms (steady).
big_run() builds a large steady run with jittered token gaps, vectorised (no Python loop per
request or token). write_run() stores the columns through varcas.rundir exactly as the load
generator does. In the column dicts, NULL (-1) stands for a null value. metrics_table() and
write_metrics() build a run's metrics.parquet from scrapes given by hand; histogram() gives
the samples of a Prometheus histogram.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from varcas import metricsfile, rundir

START_NS = 5_000_000_000_000  # schedule time 0 on the synthetic monotonic clock
NULL = -1
MS = 1_000_000
S = 1_000_000_000
DONE_NS = 1 * MS  # from the last content event to the end of the stream ([DONE])


def simulate(arrivals_s, *, prefill_ms, itl_ms, tokens, slots=None, lag_ms=0.0, input_tokens=100) -> dict:
    """Requests scheduled at arrivals_s through a FIFO server with `slots` parallel slots.

    Request i is sent lag_ms after its schedule, starts when a slot frees, streams its first
    token prefill_ms later and one token every itl_ms after that; prefill_ms and tokens may
    be given per request.
    """
    scheduled = START_NS + np.round(np.asarray(arrivals_s, np.float64) * S).astype(np.int64)
    n = scheduled.size
    tokens = np.broadcast_to(np.asarray(tokens, np.int64), (n,))
    prefill = np.round(np.broadcast_to(np.asarray(prefill_ms, np.float64), (n,)) * MS).astype(np.int64)
    sent = scheduled + round(lag_ms * MS)
    service = prefill + (tokens - 1) * round(itl_ms * MS) + DONE_NS
    start = sent.copy()
    if slots is not None:
        for i in range(slots, n):  # a slot frees when request i - slots ends (FIFO, in order)
            start[i] = max(sent[i], start[i - slots] + service[i - slots])
    first = start + prefill
    offsets = np.concatenate(([0], np.cumsum(tokens)))
    step = np.arange(offsets[-1]) - np.repeat(offsets[:-1], tokens)
    token_ns = np.repeat(first, tokens) + step * round(itl_ms * MS)
    return columns(scheduled, sent, first, offsets, token_ns, input_tokens=input_tokens)


def big_run(n: int, tokens: int, *, rps: float, seed: int = 0) -> dict:
    """n Poisson-scheduled requests of `tokens` tokens each, jittered gaps around 20 ms."""
    rng = np.random.default_rng(seed)
    scheduled = START_NS + np.cumsum(rng.exponential(S / rps, n)).astype(np.int64)
    sent = scheduled + rng.integers(20_000, 200_000, n)
    first = sent + rng.integers(50 * MS, 400 * MS, n)
    gaps = rng.integers(15 * MS, 25 * MS, n * tokens, dtype=np.int64)
    gaps[::tokens] = 0  # each request's first event is its first token
    token_ns = np.cumsum(gaps)
    del gaps
    offsets = np.arange(0, n * tokens + 1, tokens, dtype=np.int64)
    token_ns -= np.repeat(token_ns[offsets[:-1]], tokens)
    token_ns += np.repeat(first, tokens)
    return columns(scheduled, sent, first, offsets, token_ns, input_tokens=rng.integers(50, 500, n))


def columns(scheduled, sent, first, offsets, token_ns, *, input_tokens=100) -> dict:
    """The column dict of successful requests; callers overwrite entries to add failures."""
    n = scheduled.size
    lengths = np.diff(offsets)
    last = token_ns[np.maximum(offsets[1:] - 1, 0)]
    return {
        "request_id": np.arange(n, dtype=np.int64),
        "scheduled_ns": scheduled,
        "slot_wait_ns": np.zeros(n, np.int64),
        "sent_ns": sent,
        "first_byte_ns": first - MS // 2,
        "first_token_ns": first,
        "end_ns": np.where(lengths > 0, last, first) + DONE_NS,
        "token_offsets": offsets,
        "token_ns": token_ns,
        "input_tokens": np.broadcast_to(np.asarray(input_tokens, np.int64), (n,)).copy(),
        "output_tokens": lengths.copy(),
        "requested_input_tokens": np.broadcast_to(np.asarray(input_tokens, np.int64), (n,)).copy(),
        "requested_output_tokens": lengths.copy(),
        "http_status": np.full(n, 200, np.int64),
        "error": [None] * n,
        "finish_reason": ["length"] * n,
    }


def manifest(cols: dict, **overrides) -> dict:
    """A complete run.json for the columns; keyword arguments replace top-level keys."""
    n = cols["request_id"].size
    failed = sum(e is not None for e in cols["error"])
    doc = {
        "schema_version": rundir.SCHEMA_VERSION,
        "varcas_version": "0.1.0",
        "status": "complete",
        "command": ["varcas", "load", "--rps", "10"],
        "config": {"rps": 10.0, "arrival": "poisson", "burstiness": 1.0, "num_requests": n,
                   "max_concurrency": None, "seed": 0},
        "target": {"url": "http://127.0.0.1:8000", "model": "synthetic", "kind": "sim"},
        "clock_anchor": {"monotonic_ns": START_NS, "unix_ns": 1_770_000_000 * S},
        "start_ns": START_NS,
        "end_ns": int(np.max(cols["end_ns"])) if n else START_NS,
        "counts": {"scheduled": n, "sent": n, "ok": n - failed, "failed": failed, "errors": {}},
        "client": {"cpu_s": 1.0, "wall_s": 10.0, "cpu_util": 0.1},
        "warnings": [],
    }
    doc.update(overrides)
    return doc


def table(cols: dict) -> pa.Table:
    """The request table of a column dict, with REQUEST_SCHEMA's types (NULL -> null)."""
    arrays = []
    for field in rundir.REQUEST_SCHEMA:
        if field.name == "token_ns":
            offsets = pa.array(cols["token_offsets"].astype(np.int32))
            arrays.append(pa.ListArray.from_arrays(offsets, pa.array(cols["token_ns"])))
        elif pa.types.is_dictionary(field.type):
            arrays.append(pa.array(cols[field.name], pa.string()).dictionary_encode().cast(field.type))
        else:
            values = np.asarray(cols[field.name])
            arrays.append(pa.array(values, field.type, mask=(values == NULL) if field.nullable else None))
    return pa.Table.from_arrays(arrays, schema=rundir.REQUEST_SCHEMA)


def write_run(run_dir, cols: dict, *, parquet: bool = True, arrows: bool = False, **manifest_overrides) -> Path:
    """Write run.json and requests.parquet (and/or requests.arrows) for the columns."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    doc = manifest(cols, **manifest_overrides)
    rows = table(cols)
    rundir.write_manifest(run_dir, doc)
    if parquet:
        rundir.write_parquet(rows, run_dir / rundir.PARQUET, doc)
    if arrows:
        with pa.OSFile(str(run_dir / rundir.ARROWS), "wb") as sink, pa.ipc.new_stream(sink, rows.schema) as writer:
            for batch in rows.to_batches(max_chunksize=1000):
                writer.write_batch(batch)
    return run_dir


def fail(cols: dict, index, kind: str, status: int = 0) -> dict:
    """Mark requests as failed with error `kind`: no content, no first token."""
    index = np.atleast_1d(index)
    chosen = set(index.tolist())
    cols["error"] = [kind if i in chosen else e for i, e in enumerate(cols["error"])]
    cols["http_status"][index] = status
    cols["first_token_ns"][index] = NULL
    cols["output_tokens"][index] = NULL
    cols["finish_reason"] = [None if e else f for e, f in zip(cols["error"], cols["finish_reason"])]
    keep = np.ones(cols["request_id"].size, bool)
    keep[index] = False
    lengths = np.where(keep, np.diff(cols["token_offsets"]), 0)
    cols["token_ns"] = cols["token_ns"][np.repeat(keep, np.diff(cols["token_offsets"]))]
    cols["token_offsets"] = np.concatenate(([0], np.cumsum(lengths)))
    return cols


def labels(**kv) -> str:
    """A label set as the scraper stores it: a JSON object with sorted keys."""
    return json.dumps(kv, sort_keys=True, separators=(",", ":"))


def histogram(name: str, buckets: dict, total: float, **kv) -> list:
    """The samples of a Prometheus histogram: cumulative counts per upper bound ({"0.5": 3,
    "+Inf": 4}: name_bucket{le=...}), name_sum (total) and name_count (the +Inf count)."""
    rows = [(f"{name}_bucket", labels(le=le, **kv), float(n)) for le, n in buckets.items()]
    count = buckets.get("+Inf", max(buckets.values(), default=0))
    return rows + [(f"{name}_sum", labels(**kv), float(total)), (f"{name}_count", labels(**kv), float(count))]


def metrics_table(scrapes) -> pa.Table:
    """A metrics table from [(t_ns, [(name, labels, value), ...]), ...]."""
    return pa.Table.from_batches([metricsfile.batch(t, [n for n, _, _ in s], [lb for _, lb, _ in s],
                                                    [v for _, _, v in s]) for t, s in scrapes],
                                 schema=metricsfile.METRICS_SCHEMA)


def write_metrics(run_dir, scrapes) -> Path:
    """Write the run's metrics.parquet from scrapes as metrics_table takes them."""
    path = Path(run_dir) / metricsfile.METRICS_PARQUET
    pq.write_table(metrics_table(scrapes), path)
    return path
