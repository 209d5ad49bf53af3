"""load_run: a run directory (or its requests.parquet) as numpy arrays, ready for the kernels.

Reading goes through varcas.rundir (schema-version checks, fallback to requests.arrows when
the Parquet file is missing); this module only turns the Arrow table into flat numpy arrays.
Conventions of the arrays:
  *_ns        int64 CLOCK_MONOTONIC ns; NO_TIME where the column was null (never happened)
  *_tokens    int64; NO_COUNT where the server reported nothing
  token_ns    all requests' content-event times concatenated; request i's events are
              token_ns[token_offsets[i]:token_offsets[i + 1]] (no per-request Python objects)
  error       int64 code into error_names, NO_ERROR (-1) for a successful request
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import rundir
from ..errors import VarcasError

NO_TIME = np.iinfo(np.int64).min  # sorts before every real timestamp, so bins ignore it
NO_COUNT = -1
NO_ERROR = -1

# The row's int64 times (the _ns columns but the token_ns list) and token counts, in schema order.
_TIME_COLUMNS = tuple(f.name for f in rundir.REQUEST_FIELDS if f.name.endswith("_ns") and pa.types.is_int64(f.type))
_COUNT_COLUMNS = tuple(f.name for f in rundir.REQUEST_FIELDS if f.name.endswith("_tokens"))


@dataclass(frozen=True, eq=False)
class Run:
    """One run: its manifest and one numpy array per request column."""

    path: Path
    manifest: dict
    from_arrows: bool  # rows came from requests.arrows: the run's Parquet file was missing
    start_ns: int  # schedule time 0 (manifest start_ns, else the first scheduled send)
    request_id: np.ndarray
    scheduled_ns: np.ndarray
    slot_wait_ns: np.ndarray
    sent_ns: np.ndarray
    first_byte_ns: np.ndarray
    first_token_ns: np.ndarray
    end_ns: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    requested_input_tokens: np.ndarray
    requested_output_tokens: np.ndarray
    http_status: np.ndarray
    error: np.ndarray
    error_names: tuple[str, ...]
    token_offsets: np.ndarray
    token_ns: np.ndarray

    @property
    def n(self) -> int:
        return self.request_id.size

    @property
    def name(self) -> str:
        return self.path.parent.name if self.path.suffix == ".parquet" else self.path.name


def load_run(path) -> Run:
    """Read a run directory or a requests.parquet file; bad input raises VarcasError."""
    path = Path(path)
    table = rundir.read_requests(path)
    missing = [f.name for f in rundir.REQUEST_SCHEMA if f.name not in table.column_names]
    if missing:
        raise VarcasError(f"{path}: not a varcas request table (missing columns: {', '.join(missing)})")
    _check_types(table, path)
    manifest = _manifest(path, table)
    from_arrows = path.is_dir() and not (path / rundir.PARQUET).is_file()
    columns = {name: _int_column(table[name], NO_TIME) for name in _TIME_COLUMNS}
    columns.update({name: _int_column(table[name], NO_COUNT) for name in _COUNT_COLUMNS})
    error, error_names = _codes(table["error"])
    token_offsets, token_ns = _list_column(table["token_ns"], path)
    scheduled = columns["scheduled_ns"]
    start_ns = manifest.get("start_ns")
    if not isinstance(start_ns, int):
        start_ns = int(scheduled.min()) if scheduled.size else 0
    _check_times(columns, token_ns, start_ns, path)
    return Run(
        path=path,
        manifest=manifest,
        from_arrows=from_arrows,
        start_ns=start_ns,
        request_id=_int_column(table["request_id"], 0),
        http_status=_int_column(table["http_status"], 0),
        error=error,
        error_names=error_names,
        token_offsets=token_offsets,
        token_ns=token_ns,
        **columns,
    )


def _manifest(path: Path, table: pa.Table) -> dict:
    """run.json of the directory; for a bare Parquet file, the copy in its metadata."""
    if path.is_dir():
        return rundir.read_manifest(path)
    embedded = (table.schema.metadata or {}).get(b"varcas.run")
    if embedded is not None:
        try:
            manifest = json.loads(embedded)
        except ValueError:
            manifest = None
        if isinstance(manifest, dict):
            return rundir.check_manifest(manifest, path)
    if (path.parent / rundir.MANIFEST).is_file():
        return rundir.read_manifest(path.parent)
    raise VarcasError(f"{path}: no run manifest (neither in the Parquet metadata nor a {rundir.MANIFEST} beside it)")


def _check_types(table: pa.Table, path: Path) -> None:
    """Every column the analysis reads has the kind of type the schema gives it (integers of
    any width, a list of integers, strings), else one VarcasError naming the column."""
    for field in rundir.REQUEST_SCHEMA:
        t = table.schema.field(field.name).type
        if pa.types.is_dictionary(t):
            t = t.value_type
        if pa.types.is_integer(field.type):
            ok = pa.types.is_integer(t) or pa.types.is_null(t)
        elif pa.types.is_list(field.type):
            ok = (pa.types.is_list(t) or pa.types.is_large_list(t)) and pa.types.is_integer(t.value_type)
        else:
            ok = pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t)
        if not ok:
            raise VarcasError(f"{path}: column {field.name} is {t}, expected {field.type} (a corrupt or foreign table)")


# Timestamps further than this from the run's start cannot come from a run: reading them as
# times would overflow the arithmetic (int64 ns spans +-292 years) or the timeline's memory.
MAX_SPAN_NS = 100 * 365 * 24 * 3600 * 1_000_000_000


def _check_times(columns: dict, token_ns: np.ndarray, start_ns: int, path: Path) -> None:
    i64 = np.iinfo(np.int64)
    lo, hi = max(start_ns - MAX_SPAN_NS, i64.min + 1), min(start_ns + MAX_SPAN_NS, i64.max)
    for name in _TIME_COLUMNS[:1] + _TIME_COLUMNS[2:]:
        values = columns[name]
        real = values[values != NO_TIME]
        if real.size and (real.min() < lo or real.max() > hi):
            raise VarcasError(f"{path}: column {name} holds times more than 100 years from the run's start "
                              "(corrupt timestamps)")
    if token_ns.size and (token_ns.min() < lo or token_ns.max() > hi):
        raise VarcasError(f"{path}: column token_ns holds times more than 100 years from the run's start "
                          "(corrupt timestamps)")
    slot_wait = columns["slot_wait_ns"]
    if slot_wait.size and (slot_wait.min() < 0 or slot_wait.max() > MAX_SPAN_NS):
        raise VarcasError(f"{path}: column slot_wait_ns holds negative or impossible waits (corrupt)")


def _int_column(column: pa.ChunkedArray, null_as: int) -> np.ndarray:
    return column.fill_null(null_as).to_numpy().astype(np.int64, copy=False)


def _codes(column: pa.ChunkedArray) -> tuple[np.ndarray, tuple[str, ...]]:
    """Dictionary codes of a string column (NO_ERROR for null) and the code names."""
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    names = tuple(str(x) for x in array.dictionary.to_pylist())
    return array.indices.fill_null(NO_ERROR).to_numpy().astype(np.int64), names


def _list_column(column: pa.ChunkedArray, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, values) of a list<int64> column; null lists become empty lists."""
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    values = array.flatten()  # honours slicing and drops values behind null lists
    if values.null_count:
        raise VarcasError(f"{path}: corrupt request table (null inside token_ns)")
    lengths = pc.list_value_length(array).fill_null(0).to_numpy()
    offsets = np.zeros(lengths.size + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets, values.to_numpy().astype(np.int64, copy=False)
