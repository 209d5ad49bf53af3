"""Request bytes are exact; recorded rows survive the Arrow stream and Parquet unchanged."""
from __future__ import annotations

import numpy as np
import orjson
import pyarrow.parquet as pq
import pytest

from varcas import rundir
from varcas.errors import VarcasError
from varcas.load.request import RequestBuilder, Target, parse_header
from varcas.rundir import (
    PARQUET,
    convert_to_parquet,
    read_arrows,
    read_requests,
    recover,
    write_manifest,
)
from varcas.rundir.recorder import Recorder


def test_completions_request_bytes():
    b = RequestBuilder(Target.parse("http://127.0.0.1:8000/v1"), "m", headers=[("X-A", "1")], api_key="k")
    raw = b.build(7, b"[1,2,3]", 16)
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /v1/completions HTTP/1.1"
    assert "Host: 127.0.0.1:8000" in lines and "Authorization: Bearer k" in lines and "X-A: 1" in lines
    assert "X-Request-Id: 7" in lines and f"Content-Length: {len(body)}" in lines
    assert orjson.loads(body) == {
        "model": "m", "prompt": [1, 2, 3], "max_tokens": 16, "temperature": 0.0, "stream": True,
        "stream_options": {"include_usage": True}, "ignore_eos": True,
    }


def test_chat_request_body_without_ignore_eos():
    b = RequestBuilder(Target.parse("https://h.example"), "m", api="chat", ignore_eos=False)
    body = orjson.loads(b.build(0, b'"hi \\"there\\""', 5).split(b"\r\n\r\n", 1)[1])
    assert body["messages"] == [{"role": "user", "content": 'hi "there"'}]
    assert "ignore_eos" not in body and body["max_tokens"] == 5
    assert b.build(0, b'"x"', 5).startswith(b"POST /v1/chat/completions HTTP/1.1\r\nHost: h.example:443\r\n")


@pytest.mark.parametrize("bad", ["nocolon", ": v", "a b: c", "X: a\r\nInjected: 1"])
def test_bad_headers(bad):
    with pytest.raises(VarcasError):
        parse_header(bad)


def test_a_non_latin1_header_is_refused_before_the_run_directory_exists(tmp_path):
    with pytest.raises(VarcasError, match="^bad --header X-Name: only Latin-1 characters can be sent in a header$"):
        parse_header("X-Name: \u5f20\u4e09")
    assert parse_header("X-Name: caf\u00e9") == ("X-Name", "caf\u00e9")  # Latin-1 is fine
    from varcas.load.runner import LoadConfig, run_load

    with pytest.raises(VarcasError, match="Latin-1"):
        run_load(LoadConfig(url="http://127.0.0.1:9", headers=["X-Name: \u5f20"], out=str(tmp_path / "r")))
    assert not (tmp_path / "r").exists()


def _row(i, tokens, error=None):
    return dict(request_id=i, scheduled_ns=1000 + i, slot_wait_ns=0, sent_ns=1010 + i, first_byte_ns=1020 + i,
                first_token_ns=tokens[0] if tokens else None, end_ns=5000 + i,
                token_ns=np.array(tokens, np.int64), input_tokens=16, output_tokens=len(tokens),
                requested_input_tokens=16, requested_output_tokens=8, http_status=200 if error is None else 500,
                error=error, finish_reason="length" if error is None else None)


def test_rows_round_trip_through_arrows_and_parquet(tmp_path):
    write_manifest(tmp_path, {"schema_version": 1, "status": "running"})
    rec = Recorder(tmp_path)
    rec.record(**_row(0, [1100, 1200, 1300]))
    rec.record(**_row(1, [], "http"))
    assert rec.flush() == 2
    rec.record(**_row(2, [2100]))
    rec.flush()  # second batch, new dictionaries
    assert read_arrows(tmp_path / "requests.arrows").num_rows == 3
    rec.close()
    assert convert_to_parquet(tmp_path, {"schema_version": 1}) == 3
    rows = read_requests(tmp_path).to_pylist()
    assert [r["token_ns"] for r in rows] == [[1100, 1200, 1300], [], [2100]]
    assert [r["error"] for r in rows] == [None, "http", None]
    assert [r["finish_reason"] for r in rows] == ["length", None, "length"]
    assert rows[1]["first_token_ns"] is None and rows[2]["http_status"] == 200
    meta = pq.read_schema(tmp_path / PARQUET).metadata
    assert meta[b"varcas.schema_version"] == str(rundir.SCHEMA_VERSION).encode() and b"varcas.run" in meta


def test_parquet_rows_are_in_request_order_and_the_stream_goes(tmp_path, monkeypatch):
    """Rows recorded in completion order come back in request order; a stream too large to sort
    in memory is kept in completion order (streamed, one row group at a time)."""
    write_manifest(tmp_path, {"schema_version": 1, "status": "running"})
    for limit, expected in ((1 << 30, [0, 1, 2, 3, 4]), (0, [3, 1, 4, 0, 2])):
        monkeypatch.setattr(rundir, "SORT_LIMIT_BYTES", limit)
        rec = Recorder(tmp_path)
        for i in (3, 1, 4):
            rec.record(**_row(i, [i]))
        rec.flush()
        for i in (0, 2):
            rec.record(**_row(i, [i]))
        rec.close()
        assert convert_to_parquet(tmp_path, {"schema_version": 1}, row_group_rows=2) == 5
        rows = read_requests(tmp_path).to_pylist()
        assert [r["request_id"] for r in rows] == expected and [r["token_ns"] for r in rows] == [[i] for i in expected]
        assert not (tmp_path / "requests.arrows").exists()
        (tmp_path / PARQUET).unlink()


def test_torn_arrows_tail_is_dropped_on_recover(tmp_path):
    write_manifest(tmp_path, {"schema_version": 1, "status": "running"})
    rec = Recorder(tmp_path)
    for i in range(3):
        rec.record(**_row(i, [10 * i + 1]))
        rec.flush()
    rec._sink.flush()
    data = (tmp_path / "requests.arrows").read_bytes()
    (tmp_path / "requests.arrows").write_bytes(data[:-40])  # a crash in the middle of the last batch
    assert recover(tmp_path) == 2
    assert [r["request_id"] for r in read_requests(tmp_path).to_pylist()] == [0, 1]


def test_corrupt_parquet_is_a_one_line_error(tmp_path):
    (tmp_path / PARQUET).write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(VarcasError, match="corrupt"):
        read_requests(tmp_path)
