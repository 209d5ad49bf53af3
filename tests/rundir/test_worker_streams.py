"""A run of N load workers leaves one Arrow stream per worker; readers, conversion and recovery
see them as one dataset in request_id order (format version 2)."""
from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from varcas import rundir
from varcas.analyze import load_run
from varcas.errors import VarcasError
from varcas.rundir import (
    PARQUET,
    convert_to_parquet,
    read_requests,
    recover,
    request_streams,
    worker_arrows,
    write_manifest,
)
from varcas.rundir.recorder import Recorder


def _row(i: int) -> dict:
    return dict(request_id=i, scheduled_ns=1000 + i, slot_wait_ns=0, sent_ns=1010 + i, first_byte_ns=1020 + i,
                first_token_ns=2000 + i, end_ns=5000 + i, token_ns=np.array([2000 + i, 2100 + i], np.int64),
                input_tokens=16, output_tokens=2, requested_input_tokens=16, requested_output_tokens=2,
                http_status=200, error=None if i % 3 else "http", finish_reason="length")


def _two_workers(tmp_path, batches=((4, 0, 2), (6, 8))) -> None:
    """Worker 0 holds the even ids, worker 1 the odd, each recorded in completion order."""
    write_manifest(tmp_path, {"schema_version": rundir.SCHEMA_VERSION, "status": "running"})
    for k in (0, 1):
        rec = Recorder(tmp_path, worker_arrows(k))
        for batch in batches:
            for i in batch:
                rec.record(**_row(i + k))
            rec.flush()
        rec.close()


def test_the_streams_of_every_worker_are_found_in_worker_order(tmp_path):
    _two_workers(tmp_path)
    (tmp_path / "requests-w10.arrows").write_bytes((tmp_path / worker_arrows(1)).read_bytes())
    assert [p.name for p in request_streams(tmp_path)] == ["requests-w0.arrows", "requests-w1.arrows",
                                                           "requests-w10.arrows"]


def test_a_died_run_reads_as_one_table_in_request_order(tmp_path):
    _two_workers(tmp_path)
    rows = read_requests(tmp_path).to_pylist()
    assert [r["request_id"] for r in rows] == list(range(10))
    assert rows[3]["token_ns"] == [2003, 2103] and rows[3]["error"] == "http" and rows[4]["error"] is None
    run = load_run(tmp_path)  # what analyze and report read
    assert run.from_arrows and run.request_id.tolist() == list(range(10))
    assert run.token_ns[run.token_offsets[3]:run.token_offsets[4]].tolist() == [2003, 2103]


def test_recover_merges_the_streams_into_one_parquet_and_removes_them(tmp_path):
    _two_workers(tmp_path)
    data = (tmp_path / worker_arrows(1)).read_bytes()
    (tmp_path / worker_arrows(1)).write_bytes(data[:-40])  # worker 1 died in the middle of its last batch
    assert recover(tmp_path) == 8
    table = pq.read_table(tmp_path / PARQUET)
    assert table["request_id"].to_pylist() == [0, 1, 2, 3, 4, 5, 6, 8]
    assert request_streams(tmp_path) == []
    assert rundir.read_manifest(tmp_path)["status"] == "interrupted"
    with pytest.raises(VarcasError, match="nothing to recover"):
        recover(tmp_path)


def test_streams_too_large_to_sort_go_through_in_turn(tmp_path, monkeypatch):
    monkeypatch.setattr(rundir, "SORT_LIMIT_BYTES", 0)
    _two_workers(tmp_path)
    assert convert_to_parquet(tmp_path, row_group_rows=3) == 10
    # batch by batch, one worker's then the other's: about completion order, bounded memory
    assert pq.read_table(tmp_path / PARQUET)["request_id"].to_pylist() == [4, 0, 2, 5, 1, 3, 6, 8, 7, 9]


def test_a_run_with_no_stream_at_all_is_a_one_line_error(tmp_path):
    write_manifest(tmp_path, {"schema_version": rundir.SCHEMA_VERSION, "status": "running"})
    with pytest.raises(VarcasError, match=r"nothing to recover \(no requests.arrows, nor a worker's"):
        recover(tmp_path)
    with pytest.raises(VarcasError, match="requests.arrows: not a readable Arrow stream"):
        convert_to_parquet(tmp_path)
