"""The run directory: the one contract between load, analyze, optimize and report.

A run is a directory holding
  run.json           manifest (config with secrets removed, target, versions, seed, clock anchor,
                     status, counts)
  requests.arrows    Arrow IPC stream, appended and flushed during the run (crash-safe)
  requests.parquet   the same rows, written at the end or recovered from requests.arrows
  errors.log         short excerpts of error bodies (never in the rows)

Schema history (SCHEMA_VERSION, checked by every reader):
  1  first version: columns of REQUEST_SCHEMA (declared in row.py).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from ..errors import VarcasError
from .row import REQUEST_FIELDS

SCHEMA_VERSION = 1
MANIFEST = "run.json"
ARROWS = "requests.arrows"
PARQUET = "requests.parquet"
ERRORS_LOG = "errors.log"

# Error kinds recorded per request (null error = success).
ERROR_KINDS = ("connect", "timeout", "http", "protocol", "truncated", "cancelled", "server")

# One row per request: the columns are declared in row.py, the version and file metadata here.
REQUEST_SCHEMA = pa.schema(REQUEST_FIELDS, metadata={b"varcas.schema_version": str(SCHEMA_VERSION).encode()})


def wall_clock_ns(manifest: dict, t_ns):
    """Unix ns of CLOCK_MONOTONIC times of this run (a number or a numpy array), through the
    manifest's clock anchor: the pair of readings of both clocks taken together at its start."""
    anchor = manifest["clock_anchor"]
    return t_ns - anchor["monotonic_ns"] + anchor["unix_ns"]


def write_json(path: Path, data) -> None:
    """Write a JSON file atomically (temp file + rename), so a crash never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise VarcasError(f"cannot write {path} ({os_error_text(exc)})") from None


def write_manifest(run_dir: Path, manifest: dict) -> None:
    """Write run.json atomically."""
    write_json(Path(run_dir) / MANIFEST, manifest)


def read_manifest(run_dir: Path) -> dict:
    """Read and version-check run.json."""
    path = Path(run_dir) / MANIFEST
    if not path.is_file():
        raise VarcasError(f"{run_dir}: not a varcas run directory (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise VarcasError(f"{path}: unreadable manifest ({exc.__class__.__name__})") from None
    return check_manifest(manifest, path)


# The manifest's fields that readers use, and the JSON types each must have when present
# (null is allowed: older runs and runs that died lack some).
_MANIFEST_TYPES = {"config": dict, "target": dict, "counts": dict, "client": dict, "clock_anchor": dict,
                   "prompts": dict, "status": str, "start_ns": int, "end_ns": int, "warnings": list,
                   "command": list}
_JSON_NAMES = {dict: "an object", str: "a string", int: "an integer", list: "a list"}


def check_manifest(manifest, where) -> dict:
    """A manifest whose schema version this varcas reads and whose fields have their types;
    VarcasError naming the field otherwise (readers then use them without checks)."""
    if not isinstance(manifest, dict):
        raise VarcasError(f"{where}: unreadable manifest (not a JSON object)")
    _check_version(manifest.get("schema_version"), where)
    for key, kind in _MANIFEST_TYPES.items():
        value = manifest.get(key)
        if value is not None and (not isinstance(value, kind) or kind is int and isinstance(value, bool)):
            raise VarcasError(f"{where}: run.json field {key!r} must be {_JSON_NAMES[kind]}, "
                              f"got {type(value).__name__} {str(value)[:40]!r}")
    return manifest


def _check_version(version, where) -> None:
    try:
        version = int(version)
    except (TypeError, ValueError):
        raise VarcasError(f"{where}: no schema version") from None
    if version > SCHEMA_VERSION:
        raise VarcasError(
            f"{where}: schema version {version} is newer than this varcas reads ({SCHEMA_VERSION}); upgrade varcas"
        )
    if version < 1:
        raise VarcasError(f"{where}: unknown schema version {version}")


def _schema_version_of(schema: pa.Schema, where) -> None:
    meta = schema.metadata or {}
    _check_version(meta.get(b"varcas.schema_version", b"").decode() or None, where)


def read_arrows(path: Path) -> pa.Table:
    """Read every complete record batch of an Arrow IPC stream; a torn tail is dropped."""
    try:
        with pa.OSFile(str(path), "rb") as f:
            reader = ipc.open_stream(f)
            _schema_version_of(reader.schema, path)
            return pa.Table.from_batches(list(_complete_batches(reader)), schema=reader.schema)
    except (pa.ArrowInvalid, OSError) as exc:
        raise VarcasError(f"{path}: not a readable Arrow stream ({str(exc).splitlines()[0]})") from None


def read_requests(path: Path) -> pa.Table:
    """The per-request table of a run directory or a requests.parquet file.

    Falls back to requests.arrows when the Parquet file is missing (a run that died).
    """
    path = Path(path)
    if not path.exists():
        raise VarcasError(f"{path}: no such file or directory")
    if path.is_dir():
        parquet, arrows = path / PARQUET, path / ARROWS
        if parquet.is_file():
            path = parquet
        elif arrows.is_file():
            return read_arrows(arrows)
        else:
            raise VarcasError(f"{path}: not a varcas run directory (no {PARQUET} or {ARROWS})")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise VarcasError(f"{path}: corrupt or unreadable Parquet ({str(exc).splitlines()[0]})") from None
    _schema_version_of(table.schema, path)
    return table


def _parquet_schema(schema: pa.Schema, manifest: dict | None) -> pa.Schema:
    meta = dict(schema.metadata or {})
    meta[b"varcas.schema_version"] = str(SCHEMA_VERSION).encode()
    if manifest is not None:
        meta[b"varcas.run"] = json.dumps(manifest, sort_keys=True).encode()
    return schema.with_metadata(meta)


def write_parquet(table: pa.Table, path: Path, manifest: dict | None = None) -> None:
    """Write a whole request table as Parquet (synthetic runs, tools); runs stream via convert_to_parquet."""
    tmp = Path(str(path) + ".tmp")
    pq.write_table(table.cast(_parquet_schema(table.schema, manifest)), tmp, compression="zstd")
    os.replace(tmp, path)


SORT_LIMIT_BYTES = 1 << 30  # a stream this large is converted as it lies (completion order), in bounded memory


def convert_to_parquet(run_dir: Path, manifest: dict | None = None, row_group_rows: int = 131072) -> int:
    """requests.arrows -> requests.parquet (manifest in the key-value metadata), rows in
    request_id order; a torn tail left by a crash is dropped. Written to a temp file and
    renamed, so a reader never sees half a file; requests.arrows is then removed. A stream over
    SORT_LIMIT_BYTES is streamed through in completion order instead, one row group in memory
    at a time. Returns the number of rows written."""
    run_dir = Path(run_dir)
    src, dst = run_dir / ARROWS, run_dir / PARQUET
    tmp = Path(str(dst) + ".tmp")
    try:
        f = pa.OSFile(str(src), "rb")
        reader = ipc.open_stream(f)
        _schema_version_of(reader.schema, src)
        in_order = src.stat().st_size <= SORT_LIMIT_BYTES
    except (pa.ArrowInvalid, OSError) as exc:
        raise VarcasError(f"{src}: not a readable Arrow stream ({str(exc).splitlines()[0]})") from None
    try:
        schema = _parquet_schema(reader.schema, manifest)
        with f, pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            groups = _sorted_groups if in_order else _row_groups
            rows = 0
            for table in groups(_complete_batches(reader), schema, row_group_rows):
                writer.write_table(table)
                rows += table.num_rows
        os.replace(tmp, dst)
    except OSError as exc:  # the batches were read (a torn tail ends the stream): writing failed
        tmp.unlink(missing_ok=True)
        raise VarcasError(f"cannot write {dst} ({os_error_text(exc)}); {src} keeps every row: "
                          f"free space, then `varcas recover {run_dir}`") from None
    src.unlink(missing_ok=True)  # the Parquet file holds every row now
    return rows


def _row_groups(batches, schema: pa.Schema, rows_per_group: int):
    """The batches as tables of about rows_per_group rows, in the order they came."""
    pending, pending_rows = [], 0
    for batch in batches:
        pending.append(batch)
        pending_rows += batch.num_rows
        if pending_rows >= rows_per_group:
            yield pa.Table.from_batches(pending, schema=schema)
            pending, pending_rows = [], 0
    if pending:
        yield pa.Table.from_batches(pending, schema=schema)


def _sorted_groups(batches, schema: pa.Schema, rows_per_group: int):
    """Every batch, sorted by request_id, in row groups of rows_per_group."""
    table = pa.Table.from_batches(list(batches), schema=schema).sort_by("request_id")
    for start in range(0, table.num_rows, rows_per_group):
        yield table.slice(start, rows_per_group)


def os_error_text(exc: OSError) -> str:
    """A few words for an OS error: its strerror ('No space left on device'), also from
    pyarrow's '... Detail: [errno 28] ...' messages; else the message's first line."""
    text = str(exc.strerror or exc)
    if match := re.search(r"\[errno (\d+)\]", text):
        return os.strerror(int(match.group(1)))
    return text.splitlines()[0] if text else exc.__class__.__name__


def _complete_batches(reader):
    """Yield record batches until the end of the stream or a torn (partially written) batch."""
    while True:
        try:
            yield reader.read_next_batch()
        except StopIteration:
            return
        except (pa.ArrowInvalid, OSError):
            return


def recover(run_dir: Path) -> int:
    """Turn requests.arrows of a run whose process died into requests.parquet; returns row count."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    if manifest.get("status") != "running" and (run_dir / PARQUET).is_file():
        raise VarcasError(f"{run_dir}: nothing to recover: the run ended ({manifest.get('status')}) "
                          f"and its {PARQUET} was written")
    if not (run_dir / ARROWS).is_file():
        raise VarcasError(f"{run_dir}: nothing to recover (no {ARROWS})")
    if manifest.get("status") == "running":
        manifest["status"] = "interrupted"
        manifest["recovered"] = True
    rows = convert_to_parquet(run_dir, manifest)
    manifest.setdefault("counts", {})["recorded"] = rows
    write_manifest(run_dir, manifest)
    return rows
