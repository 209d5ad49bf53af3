"""Per-request rows, appended during the run and flushed to requests.arrows at least once a second.

Recording is hot (once per finished request), so a row, given to record() column by column by
name (its keywords are generated from row.py), is a handful of list appends and one memcpy of
the parser's timestamp buffer into a bytearray; Arrow arrays are built only at flush time. Memory is bounded by the rows since the last flush, not by the run's length.
If the process dies, requests.arrows holds every batch flushed so far (varcas recover).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from . import ARROWS, REQUEST_SCHEMA
from .row import REQUEST_FIELDS

# The row's one list column (token_ns) is filled from a buffer of int64 times; every other
# column is a scalar appended to a Python list.
(_LIST_FIELD,) = [f for f in REQUEST_FIELDS if pa.types.is_list(f.type)]
_SCALAR_FIELDS = tuple(f for f in REQUEST_FIELDS if f is not _LIST_FIELD)


def _make_record():
    """Recorder.record, generated from REQUEST_FIELDS (as namedtuple does): one keyword-only
    parameter per column, so a missing or misspelt column is a TypeError at the call, and
    straight-line appends, so the hot path has no loop and no dict or tuple per row."""
    appends = [f"_a{i}" for i in range(len(_SCALAR_FIELDS))]
    source = "\n".join([
        f"def record(self, *, {', '.join(f.name for f in REQUEST_FIELDS)}):",
        f"    {', '.join(appends)}, _values, _offsets_append = self._hot",
        *(f"    {a}({f.name})" for a, f in zip(appends, _SCALAR_FIELDS)),
        f"    _values += memoryview({_LIST_FIELD.name})",
        "    _offsets_append(len(_values) >> 3)",
    ])
    namespace = {}
    exec(compile(source, "<generated Recorder.record>", "exec"), namespace)
    record = namespace["record"]
    record.__qualname__ = "Recorder.record"
    record.__doc__ = (f"Append one request, every column by name ({', '.join(f.name for f in REQUEST_FIELDS)}); "
                      f"None for null; {_LIST_FIELD.name} is a buffer of int64 content-event times.")
    return record


def _placeholder(field: pa.Field):
    """A value of the field's kind for the warm-up row: no tokens, a label, a zero."""
    if field is _LIST_FIELD:
        return b""
    return "x" if pa.types.is_dictionary(field.type) else 0


class Recorder:
    """Appends rows in memory and writes them as Arrow record batches to run_dir/requests.arrows
    (or, in a load worker, to its own stream: name=rundir.worker_arrows(k))."""

    record = _make_record()  # record(self, *, request_id, scheduled_ns, ..., finish_reason)

    def __init__(self, run_dir: Path, name: str = ARROWS) -> None:
        self.path = Path(run_dir) / name
        # Written under a temporary name until it holds its schema (see below), so that
        # the stream, once it exists, is always a readable stream.
        starting = self.path.with_name(name + ".tmp")
        self._sink = pa.OSFile(str(starting), "wb")
        self._writer = ipc.new_stream(self._sink, REQUEST_SCHEMA)
        self.rows_written = 0
        self.tap = None  # called with each batch once flushed (a Ray worker ships them to its driver)
        self._reset()
        # pyarrow initialises its compute kernels (dictionary_encode, cast) lazily, which
        # costs ~0.4 s on first use: pay it now, not in the middle of the schedule.
        self.record(**{f.name: _placeholder(f) for f in REQUEST_FIELDS})
        self._reset_and_build()
        # The stream's schema reaches the disk only with its first batch: write an empty one
        # now, so that a run killed in its first second leaves a readable (empty) stream.
        self._writer.write_batch(self._reset_and_build())
        self._sink.flush()
        os.replace(starting, self.path)

    def _reset(self) -> None:
        self._cols: dict[str, list] = {f.name: [] for f in _SCALAR_FIELDS}
        self._offsets = [0]
        self._values = bytearray()
        # what record() unpacks, in _SCALAR_FIELDS order: bound methods, as it is on the hot path
        self._hot = (*(c.append for c in self._cols.values()), self._values, self._offsets.append)

    @property
    def pending(self) -> int:
        return len(self._offsets) - 1

    def flush(self) -> int:
        """Write the pending rows as one record batch and flush it to the OS; returns rows written."""
        n = self.pending
        if n == 0:
            return 0
        self.write(self._reset_and_build())
        return n

    def write(self, batch: pa.RecordBatch) -> None:
        """Append a built batch (flush's, or one a Ray worker shipped to its driver) and flush it to the OS."""
        self._writer.write_batch(batch)
        self._sink.flush()
        self.rows_written += batch.num_rows
        if self.tap is not None:
            self.tap(batch)

    def _reset_and_build(self) -> pa.RecordBatch:
        """Turn the pending rows into a record batch and start empty buffers."""
        cols, offsets, values = self._cols, self._offsets, self._values
        self._reset()
        arrays = [_list_array(offsets, values) if f is _LIST_FIELD else _scalar_array(cols[f.name], f.type)
                  for f in REQUEST_FIELDS]
        return pa.RecordBatch.from_arrays(arrays, schema=REQUEST_SCHEMA)

    def close(self) -> None:
        """Flush what is pending and end the stream cleanly; a write error (a full disk) is
        raised once the file is closed (the batches flushed before stay readable)."""
        try:
            self.flush()
        finally:
            for end in (self._writer.close, self._sink.close):
                try:
                    end()
                except OSError:
                    pass


def _list_array(offsets: list, values: bytearray) -> pa.Array:
    """The token_ns column: row i's times are values[offsets[i]:offsets[i + 1]] (int64 LE)."""
    times = pa.array(np.frombuffer(values, dtype=np.int64))
    return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), times)


def _scalar_array(values: list, type_: pa.DataType) -> pa.Array:
    """A scalar column; labels are dictionary-encoded, so each batch stores each string once."""
    if pa.types.is_dictionary(type_):
        return pa.array(values, type=type_.value_type).dictionary_encode().cast(type_)
    return pa.array(values, type=type_)
