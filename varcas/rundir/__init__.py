"""The run directory: the one contract between load, analyze, optimize and report.

A run is a directory holding
  run.json           manifest (config with secrets removed, target, versions, seed, clock anchor,
                     status, counts, the load workers and their health)
  requests.arrows    Arrow IPC stream, appended and flushed during the run (crash-safe); with N
                     load worker processes, one stream per worker instead: requests-w0.arrows ..
                     requests-w{N-1}.arrows (worker k holds the requests it sent)
  requests.parquet   the same rows, one file in request_id order whatever the number of workers,
                     written at the end or recovered from the stream(s), which are then removed
  errors.log         short excerpts of error bodies (never in the rows; every worker appends)

run.json's status: "running" (being written, or its process died: `varcas recover`), then one of
  complete      every planned request was sent (or its sending ended as planned) and recorded
  interrupted   a signal, a full disk or a dead worker process ended it early; every row so far kept
  failed        fail-fast tripped, or every request failed (`failure` says why)
  partial       a Ray load worker was lost mid-run (`lost_workers`: which, its node, when); the
                others went on to the end, the lost one's rows up to its last batch are kept
Readers treat any status but "complete" as a run that did not finish normally.

Schema history (SCHEMA_VERSION, checked by every reader):
  1  first version: columns of REQUEST_SCHEMA (declared in row.py).
  2  load workers: one Arrow stream per worker process (requests-wK.arrows) while a run with
     --workers N > 1 is running or after it died; run.json's `workers` (count, how it was chosen,
     cores, per-worker health). Rows and requests.parquet are unchanged.
  3  Ray load workers (--ray): status "partial" and run.json's `lost_workers`; per worker in
     `workers`: node, host, clock, offset_ns, offset_uncertainty_ns (its instants are shifted to
     the driver's clock before they are written). Rows and requests.parquet are unchanged.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from ..errors import VarcasError
from .row import REQUEST_FIELDS

SCHEMA_VERSION = 3
MANIFEST = "run.json"
ARROWS = "requests.arrows"
WORKER_ARROWS = re.compile(r"requests-w(\d+)\.arrows")  # a load worker's stream (format version 2)
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
                   "command": list, "workers": dict, "lost_workers": list}
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


def worker_arrows(k: int) -> str:
    """The file name of load worker k's Arrow stream (a run with --workers N > 1)."""
    return f"requests-w{k}.arrows"


def request_streams(run_dir: Path) -> list[Path]:
    """The run directory's Arrow streams of rows: requests.arrows, then the load workers'
    (requests-wK.arrows) in worker order; [] when there is none (the Parquet file holds the rows)."""
    run_dir = Path(run_dir)
    single = run_dir / ARROWS
    parts = sorted((int(m.group(1)), p) for p in run_dir.iterdir()
                   if (m := WORKER_ARROWS.fullmatch(p.name)) and p.is_file())
    return ([single] if single.is_file() else []) + [p for _, p in parts]


def read_streams(paths: list[Path]) -> pa.Table:
    """The rows of one or more streams of a run (every complete batch) as one table; the rows
    of several streams (load workers) are put in request_id order."""
    tables = [read_arrows(p) for p in paths]
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables).sort_by("request_id")


def read_requests(path: Path) -> pa.Table:
    """The per-request table of a run directory or a requests.parquet file.

    Falls back to the Arrow stream(s) when the Parquet file is missing (a run that died).
    """
    path = Path(path)
    if not path.exists():
        raise VarcasError(f"{path}: no such file or directory")
    if path.is_dir():
        parquet = path / PARQUET
        if parquet.is_file():
            path = parquet
        elif streams := request_streams(path):
            return read_streams(streams)
        else:
            raise VarcasError(f"{path}: not a varcas run directory (no {PARQUET} or {ARROWS})")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise VarcasError(f"{path}: corrupt or unreadable Parquet ({str(exc).splitlines()[0]})") from None
    _schema_version_of(table.schema, path)
    return table


def read_columns(run_dir: Path, names: list[str]) -> pa.Table:
    """Some columns of a finished run's requests.parquet (version-checked): a cheap read that
    skips the token times."""
    path = Path(run_dir) / PARQUET
    try:
        table = pq.read_table(path, columns=names)
    except (pa.ArrowInvalid, OSError) as exc:
        raise VarcasError(f"{path}: corrupt or unreadable Parquet ({str(exc).splitlines()[0]})") from None
    _schema_version_of(pq.read_schema(path), path)
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
    """The run's Arrow stream(s) (requests.arrows, or one per load worker) -> requests.parquet
    (manifest in the key-value metadata), rows in request_id order; a torn tail left by a crash
    is dropped. Written to a temp file and renamed, so a reader never sees half a file; the
    streams are then removed. Streams over SORT_LIMIT_BYTES together are streamed through in
    completion order instead (the workers' batches taken in turn), one row group in memory at a
    time. Returns the number of rows written."""
    run_dir = Path(run_dir)
    dst = run_dir / PARQUET
    tmp = Path(str(dst) + ".tmp")
    sources = request_streams(run_dir) or [run_dir / ARROWS]  # none: the error names requests.arrows
    with contextlib.ExitStack() as stack:
        readers = []
        for src in sources:
            try:
                reader = ipc.open_stream(stack.enter_context(pa.OSFile(str(src), "rb")))
                _schema_version_of(reader.schema, src)
            except (pa.ArrowInvalid, OSError) as exc:
                raise VarcasError(f"{src}: not a readable Arrow stream ({str(exc).splitlines()[0]})") from None
            readers.append(reader)
        in_order = sum(src.stat().st_size for src in sources) <= SORT_LIMIT_BYTES
        try:
            schema = _parquet_schema(readers[0].schema, manifest)
            with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
                groups = _sorted_groups if in_order else _row_groups
                rows = 0
                for table in groups(_in_turn([_complete_batches(r) for r in readers]), schema, row_group_rows):
                    writer.write_table(table)
                    rows += table.num_rows
            os.replace(tmp, dst)
        except OSError as exc:  # the batches were read (a torn tail ends the stream): writing failed
            tmp.unlink(missing_ok=True)
            kept = sources[0] if len(sources) == 1 else f"the workers' {len(sources)} streams"
            raise VarcasError(f"cannot write {dst} ({os_error_text(exc)}); {kept} keep{'s' * (len(sources) == 1)} every row: "
                              f"free space, then `varcas recover {run_dir}`") from None
    for src in sources:
        src.unlink(missing_ok=True)  # the Parquet file holds every row now
    return rows


def _in_turn(iterators: list):
    """The items of several iterators, one from each in turn (the workers' batches, which
    cover about the same second each, in about the order they were written)."""
    live = list(iterators)
    while live:
        for it in list(live):
            item = next(it, None)
            if item is None:
                live.remove(it)
            else:
                yield item


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
    """Turn the Arrow stream(s) of a run whose process died (requests.arrows, or the load
    workers' requests-wK.arrows) into requests.parquet; returns the row count."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    if manifest.get("status") != "running" and (run_dir / PARQUET).is_file():
        raise VarcasError(f"{run_dir}: nothing to recover: the run ended ({manifest.get('status')}) "
                          f"and its {PARQUET} was written")
    if not request_streams(run_dir):
        raise VarcasError(f"{run_dir}: nothing to recover (no {ARROWS}, nor a worker's {worker_arrows(0)}, ...)")
    if manifest.get("status") == "running":
        manifest["status"] = "interrupted"
        manifest["recovered"] = True
    rows = convert_to_parquet(run_dir, manifest)
    manifest.setdefault("counts", {})["recorded"] = rows
    write_manifest(run_dir, manifest)
    return rows
