"""The request row is declared once (rundir.row): the schema is derived from it, the files keep
schema version 1's exact columns (version 2 changed the run directory, not the row), and the
recorder fills a row by name, every column required."""
from __future__ import annotations

import inspect

import numpy as np
import pyarrow as pa
import pytest

from varcas.rundir import (
    REQUEST_FIELDS,
    REQUEST_SCHEMA,
    SCHEMA_VERSION,
    convert_to_parquet,
    read_requests,
)
from varcas.rundir.recorder import Recorder

_LABEL = pa.dictionary(pa.int8(), pa.string())

# Schema version 1 as first written out by hand: the files must stay byte-compatible with it.
VERSION_1 = pa.schema(
    [
        pa.field("request_id", pa.int64(), nullable=False),
        pa.field("scheduled_ns", pa.int64(), nullable=False),
        pa.field("slot_wait_ns", pa.int64(), nullable=False),
        pa.field("sent_ns", pa.int64()),
        pa.field("first_byte_ns", pa.int64()),
        pa.field("first_token_ns", pa.int64()),
        pa.field("end_ns", pa.int64()),
        pa.field("token_ns", pa.list_(pa.int64())),
        pa.field("input_tokens", pa.int32()),
        pa.field("output_tokens", pa.int32()),
        pa.field("requested_input_tokens", pa.int32(), nullable=False),
        pa.field("requested_output_tokens", pa.int32(), nullable=False),
        pa.field("http_status", pa.int16(), nullable=False),
        pa.field("error", _LABEL),
        pa.field("finish_reason", _LABEL),
    ],
    metadata={b"varcas.schema_version": b"1"},
)

FULL = dict(request_id=3, scheduled_ns=1_000, slot_wait_ns=5, sent_ns=1_010, first_byte_ns=1_020,
            first_token_ns=1_100, end_ns=1_400, token_ns=[1_100, 1_200, 1_300], input_tokens=12,
            output_tokens=3, requested_input_tokens=12, requested_output_tokens=3, http_status=200,
            error=None, finish_reason="length")
# Every nullable column null: a request cancelled before it was sent.
EMPTY = dict(request_id=4, scheduled_ns=2_000, slot_wait_ns=70, sent_ns=None, first_byte_ns=None,
             first_token_ns=None, end_ns=None, token_ns=[], input_tokens=None, output_tokens=None,
             requested_input_tokens=8, requested_output_tokens=16, http_status=0, error="cancelled",
             finish_reason=None)


def test_the_schema_is_the_row_definition_field_by_field():
    assert len(REQUEST_FIELDS) == len(REQUEST_SCHEMA)
    for declared, field in zip(REQUEST_FIELDS, REQUEST_SCHEMA):
        assert (declared.name, declared.type, declared.nullable) == (field.name, field.type, field.nullable)
    assert REQUEST_SCHEMA.metadata == {b"varcas.schema_version": str(SCHEMA_VERSION).encode()}


def test_the_columns_are_still_version_1s_byte_for_byte():
    assert SCHEMA_VERSION == 3  # 2: one stream per load worker; 3: Ray workers; the row is version 1's
    version_3 = VERSION_1.with_metadata({b"varcas.schema_version": b"3"})
    assert REQUEST_SCHEMA.equals(version_3, check_metadata=True)
    assert REQUEST_SCHEMA.serialize().to_pybytes() == version_3.serialize().to_pybytes()


def test_record_takes_every_column_by_name_in_schema_order():
    params = list(inspect.signature(Recorder.record).parameters.values())[1:]
    assert [p.name for p in params] == REQUEST_SCHEMA.names
    assert all(p.kind is p.KEYWORD_ONLY and p.default is p.empty for p in params)


def _by_name(row: dict) -> dict:
    return {**row, "token_ns": np.array(row["token_ns"], np.int64)}


def test_a_row_written_by_name_reads_back_exactly(tmp_path):
    rec = Recorder(tmp_path)
    rec.record(**_by_name(FULL))
    rec.record(**_by_name(EMPTY))
    rec.close()
    convert_to_parquet(tmp_path)
    table = read_requests(tmp_path)
    assert table.schema.remove_metadata().equals(REQUEST_SCHEMA.remove_metadata())
    assert table.to_pylist() == [FULL, EMPTY]


def test_a_missing_or_misspelt_column_fails_at_the_call(tmp_path):
    rec = Recorder(tmp_path)
    row = _by_name(FULL)
    del row["finish_reason"]
    with pytest.raises(TypeError, match="missing 1 required keyword-only argument: 'finish_reason'"):
        rec.record(**row)
    with pytest.raises(TypeError, match="unexpected keyword argument 'first_tokens_ns'"):
        rec.record(**row, finish_reason=None, first_tokens_ns=1)
    with pytest.raises(TypeError, match="positional"):
        rec.record(*FULL.values())
    assert rec.pending == 0  # nothing half-appended
    rec.close()


def test_wall_clock_maps_the_run_clock_through_the_anchor():
    import numpy as np

    from varcas.rundir import wall_clock_ns

    manifest = {"clock_anchor": {"monotonic_ns": 5_000, "unix_ns": 1_700_000_000_000_000_000}}
    assert wall_clock_ns(manifest, 5_000) == 1_700_000_000_000_000_000
    assert np.array_equal(wall_clock_ns(manifest, np.array([5_000, 6_500], np.int64)),
                          np.array([1_700_000_000_000_000_000, 1_700_000_000_000_001_500]))
