"""Per-request rows, appended during the run and flushed to requests.arrows at least once a second.

Recording is hot (once per finished request), so a row is a handful of list appends and one
memcpy of the parser's timestamp buffer into a bytearray; Arrow arrays are built only at
flush time. Memory is bounded by the rows since the last flush, not by the run's length.
If the process dies, requests.arrows holds every batch flushed so far (varcas recover).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from . import ARROWS, REQUEST_SCHEMA

_INT_COLUMNS = (
    ("request_id", pa.int64()),
    ("scheduled_ns", pa.int64()),
    ("slot_wait_ns", pa.int64()),
    ("sent_ns", pa.int64()),
    ("first_byte_ns", pa.int64()),
    ("first_token_ns", pa.int64()),
    ("end_ns", pa.int64()),
)
_COUNT_COLUMNS = (
    ("input_tokens", pa.int32()),
    ("output_tokens", pa.int32()),
    ("requested_input_tokens", pa.int32()),
    ("requested_output_tokens", pa.int32()),
    ("http_status", pa.int16()),
)
_DICT_COLUMNS = ("error", "finish_reason")
_DICT_TYPE = pa.dictionary(pa.int8(), pa.string())


class Recorder:
    """Appends rows in memory and writes them as Arrow record batches to run_dir/requests.arrows."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / ARROWS
        # Written under a temporary name until it holds its schema (see below), so that
        # requests.arrows, once it exists, is always a readable stream.
        starting = self.path.with_name(ARROWS + ".tmp")
        self._sink = pa.OSFile(str(starting), "wb")
        self._writer = ipc.new_stream(self._sink, REQUEST_SCHEMA)
        self.rows_written = 0
        self._reset()
        # pyarrow initialises its compute kernels (dictionary_encode, cast) lazily, which
        # costs ~0.4 s on first use: pay it now, not in the middle of the schedule.
        self.record((0,) * 12 + ("x", "x"), b"")
        self._reset_and_build()
        # The stream's schema reaches the disk only with its first batch: write an empty one
        # now, so that a run killed in its first second leaves a readable (empty) stream.
        self._writer.write_batch(self._reset_and_build())
        self._sink.flush()
        os.replace(starting, self.path)

    def _reset(self) -> None:
        self._cols = {name: [] for name, _ in _INT_COLUMNS + _COUNT_COLUMNS}
        self._cols.update({name: [] for name in _DICT_COLUMNS})
        self._offsets = [0]
        self._values = bytearray()
        # bound methods: record() is on the hot path
        c = self._cols
        self._appends = tuple(c[name].append for name, _ in _INT_COLUMNS + _COUNT_COLUMNS) + tuple(
            c[name].append for name in _DICT_COLUMNS
        )

    @property
    def pending(self) -> int:
        return len(self._offsets) - 1

    def record(self, row: tuple, tokens) -> None:
        """Append one request: row holds the values of the int, count and dict columns in
        schema order (None for null); tokens is a buffer of int64 content-event times."""
        for append, value in zip(self._appends, row):
            append(value)
        self._values += memoryview(tokens)
        self._offsets.append(len(self._values) >> 3)

    def flush(self) -> int:
        """Write the pending rows as one record batch and flush it to the OS; returns rows written."""
        n = self.pending
        if n == 0:
            return 0
        self._writer.write_batch(self._reset_and_build())
        self._sink.flush()
        self.rows_written += n
        return n

    def _reset_and_build(self) -> pa.RecordBatch:
        """Turn the pending rows into a record batch and start empty buffers."""
        cols, offsets, values = self._cols, self._offsets, self._values
        self._reset()
        arrays = [pa.array(cols[name], type=t) for name, t in _INT_COLUMNS]
        token_values = pa.array(np.frombuffer(values, dtype=np.int64))
        arrays.append(pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), token_values))
        arrays += [pa.array(cols[name], type=t) for name, t in _COUNT_COLUMNS]
        arrays += [pa.array(cols[name], type=pa.string()).dictionary_encode().cast(_DICT_TYPE) for name in _DICT_COLUMNS]
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
