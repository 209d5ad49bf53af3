"""End-to-end load runs against the stub server: timestamps, open loop, caps, records."""
from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from varcas.testing.spawn import spawn

from .helpers import load


def test_rows_match_what_the_server_sent(tmp_path, server):
    run_dir, manifest, rows = load(tmp_path, server.url, num_requests=20, rps=200.0)
    assert manifest["status"] == "complete"
    assert manifest["counts"]["recorded"] == 20 and manifest["counts"]["ok"] == 20
    assert [r["request_id"] for r in rows] == list(range(20))
    srv = {str(rec["id"]): rec for rec in server.records()["requests"]}
    for r in rows:
        assert r["error"] is None and r["http_status"] == 200 and r["finish_reason"] == "length"
        assert r["output_tokens"] == 8 and r["input_tokens"] == 16
        assert r["requested_output_tokens"] == 8 and r["requested_input_tokens"] == 16
        toks = r["token_ns"]
        assert len(toks) == 8 and toks == sorted(toks)
        assert r["scheduled_ns"] <= r["sent_ns"] <= r["first_byte_ns"] <= r["first_token_ns"] <= r["end_ns"]
        assert r["first_token_ns"] == toks[0]
        # The client sees each token after the server wrote it, and not much later.
        sent_by_server = srv[str(r["request_id"])]["token_ns"]
        assert len(sent_by_server) == 8
        delay = np.array(toks) - np.array(sent_by_server)
        assert (delay > 0).all() and (delay < 20_000_000).all()


def test_constant_schedule_is_kept(tmp_path, server):
    _, manifest, rows = load(tmp_path, server.url, num_requests=50, rps=250.0)
    scheduled = np.array([r["scheduled_ns"] for r in rows])
    assert (np.diff(scheduled) == 4_000_000).all()  # constant arrivals: exactly 1/rps apart
    assert scheduled[0] == manifest["start_ns"]
    lag = np.array([r["sent_ns"] for r in rows]) - scheduled
    assert (lag >= 0).all() and np.median(lag) < 1_000_000


def test_open_loop_does_not_wait_for_slow_responses(tmp_path):
    with spawn(tokens=4, itl_ms=5, ttft_ms=300) as slow:
        _, _, rows = load(tmp_path, slow.url, num_requests=20, rps=100.0, output_len=4)
    lag = np.array([r["sent_ns"] - r["scheduled_ns"] for r in rows])
    ttft = np.array([r["first_token_ns"] - r["sent_ns"] for r in rows])
    assert (ttft > 290_000_000).all()  # every response took 300 ms to start ...
    assert lag.max() < 30_000_000  # ... yet every request left on schedule (20 in 200 ms)


def test_concurrency_cap_queues_and_records_the_wait(tmp_path):
    with spawn(tokens=4, itl_ms=5, ttft_ms=50) as slow:
        _, _, rows = load(tmp_path, slow.url, num_requests=12, rps=200.0, output_len=4, max_concurrency=2)
    assert all(r["error"] is None for r in rows)
    start = np.array([r["sent_ns"] for r in rows])
    end = np.array([r["end_ns"] for r in rows])
    for t in start:  # never more than 2 in flight
        assert ((start <= t) & (end > t)).sum() <= 2
    waits = np.array([r["slot_wait_ns"] for r in rows])
    assert waits[:2].tolist() == [0, 0] and (waits[4:] > 50_000_000).all()
    lag = start - np.array([r["scheduled_ns"] for r in rows]) - waits
    assert (lag >= 0).all() and lag.max() < 20_000_000


def test_chat_api_counts_content_not_the_role_chunk(tmp_path, server):
    _, manifest, rows = load(tmp_path, server.url, api="chat", num_requests=5, rps=100.0)
    assert manifest["config"]["api"] == "chat"
    for r in rows:
        assert r["error"] is None and len(r["token_ns"]) == 8 and r["output_tokens"] == 8
        assert r["input_tokens"] > 0


def test_parquet_reads_in_pandas_and_duckdb(tmp_path, server):
    run_dir, _, rows = load(tmp_path, server.url, num_requests=10, rps=100.0)
    df = pd.read_parquet(run_dir / "requests.parquet")
    assert len(df) == 10 and df["token_ns"].map(len).tolist() == [8] * 10
    path = str(run_dir / "requests.parquet")
    con = duckdb.connect()
    assert con.execute(f"select count(*), sum(len(token_ns)) from '{path}'").fetchall() == [(10, 80)]
    ttft = con.execute(f"select first_token_ns - sent_ns from '{path}' order by request_id").fetchall()
    assert [t for (t,) in ttft] == [r["first_token_ns"] - r["sent_ns"] for r in rows]


def test_manifest_records_target_and_clock_anchor(tmp_path, server):
    _, manifest, _ = load(tmp_path, server.url, num_requests=3)
    assert manifest["target"]["kind"] == "server" and manifest["target"]["url"] == server.url
    assert manifest["target"]["model"] == "test-model"
    anchor = manifest["clock_anchor"]
    assert anchor["monotonic_ns"] > 0 and anchor["unix_ns"] > 1_600_000_000 * 10**9
    assert manifest["client"]["cpu_s"] > 0 and manifest["seed"] == 0
