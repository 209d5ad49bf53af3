"""Per-request failures are rows with the right error kind; the run always finishes."""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import pyarrow.parquet as pq
import pytest

from varcas.rundir import read_manifest
from varcas.testing.spawn import spawn

from .helpers import REPO, load


@pytest.mark.parametrize(
    "fault, kind, status",
    [
        ("http_500", "http", 500),
        ("http_400", "http", 400),
        ("close_midstream", "truncated", 200),
        ("reset", "truncated", 200),
        ("no_done", "truncated", 200),
        ("malformed", "protocol", 200),
        ("error_event", "server", 200),
    ],
)
def test_fault_becomes_an_error_row(tmp_path, server, fault, kind, status):
    run_dir, manifest, rows = load(tmp_path, server.url, num_requests=4, rps=100.0, headers=[f"X-Fault: {fault}"])
    assert manifest["status"] == "failed"  # every request failed
    assert manifest["failure"].startswith(f"every request failed; the first: {kind}")
    assert [r["error"] for r in rows] == [kind] * 4
    assert [r["http_status"] for r in rows] == [status] * 4
    assert manifest["counts"]["errors"] == {kind: 4} and manifest["counts"]["failed"] == 4
    assert all(r["end_ns"] >= r["sent_ns"] for r in rows)
    log = (run_dir / "errors.log").read_text()
    if kind in ("http", "server", "protocol"):
        assert log.count("\n") == 4 and kind in log
    if fault == "close_midstream":  # the tokens that did arrive are kept
        assert all(len(r["token_ns"]) == 3 for r in rows)


def test_stalled_stream_times_out(tmp_path, server):
    _, manifest, rows = load(tmp_path, server.url, num_requests=3, rps=100.0, headers=["X-Fault: stall"],
                             request_timeout_s=0.4)
    assert [r["error"] for r in rows] == ["timeout"] * 3
    for r in rows:
        assert 0.4e9 <= r["end_ns"] - r["sent_ns"] < 1.5e9
        assert len(r["token_ns"]) == 1


def test_server_dying_mid_run_keeps_every_result(tmp_path):
    srv = spawn(tokens=4, itl_ms=2, ttft_ms=2)
    with srv:
        killer = threading.Timer(0.5, srv.proc.kill)
        killer.start()
        try:  # no /metrics scraper: its start-up would take part of the 0.5 s before the crash
            _, manifest, rows = load(tmp_path, srv.url, num_requests=60, rps=60.0, output_len=4,
                                     metrics_interval_s=0)
        finally:
            killer.cancel()
    assert manifest["status"] == "complete" and len(rows) == 60
    errors = [r["error"] for r in rows]
    served = next(i for i, e in enumerate(errors) if e is not None)  # served before the crash ...
    assert served >= 5 and errors[:served] == [None] * served
    assert set(errors[served:]) <= {"truncated", "connect"}  # ... streams cut by it ...
    assert set(errors[-20:]) == {"connect"}  # ... and every one after it is a connect error
    for r in rows[served:]:
        if r["error"] == "truncated":
            assert r["first_byte_ns"] is not None
    assert all(r["first_byte_ns"] is None for r in rows if r["error"] == "connect")


def test_drain_after_the_schedule_is_bounded(tmp_path, server):
    _, manifest, rows = load(tmp_path, server.url, num_requests=3, rps=100.0, headers=["X-Fault: stall"],
                             drain_timeout_s=0.5)
    assert manifest["status"] == "failed"
    assert manifest["failure"] == "every request failed; the first: cancelled at the drain timeout"
    assert [r["error"] for r in rows] == ["cancelled"] * 3
    last_sent = max(r["sent_ns"] for r in rows)
    for r in rows:  # cancelled drain_timeout after the last send, not after request_timeout
        assert 0.45e9 <= r["end_ns"] - last_sent < 1.5e9


def test_fail_fast_stops_sending_when_the_first_requests_all_fail_alike(tmp_path, server):
    run_dir, manifest, rows = load(tmp_path, server.url, num_requests=200, rps=100.0, fail_fast=10,
                                   headers=["X-Fault: error_event"])
    assert manifest["status"] == "failed"
    assert manifest["failure"].startswith("the first 10 requests all failed: server")
    sent = manifest["counts"]["sent"]
    assert 10 <= sent < 30  # stopped within a few sends of the 10th failure, not after 200
    assert len(rows) == sent and {r["error"] for r in rows} == {"server"}


def test_fail_fast_zero_sends_the_whole_schedule(tmp_path, server):
    _, manifest, rows = load(tmp_path, server.url, num_requests=30, rps=300.0, fail_fast=0,
                             headers=["X-Fault: http_500"])
    assert manifest["counts"]["sent"] == 30 and len(rows) == 30
    assert manifest["status"] == "failed" and manifest["failure"].startswith("every request failed")


def test_requests_waiting_for_a_slot_when_sending_stops_get_cancelled_rows(tmp_path, server):
    """One slot, a stalled stream in it, the rest queue; Ctrl-C: each queued request was due,
    so each gets its row (cancelled, never sent), and the counts add up."""
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "varcas.load", "--url", server.url, "--rps", "50", "--duration", "30",
                             "--arrival", "constant", "--max-concurrency", "1", "--header", "X-Fault: stall",
                             "--drain-timeout", "0.5", "--input-len", "8", "--output-len", "8", "--quiet",
                             "--out", str(out)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not (out / "run.json").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(1.5)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    manifest = read_manifest(out)
    rows = sorted(pq.read_table(out / "requests.parquet").to_pylist(), key=lambda r: r["request_id"])
    waiting = [r for r in rows if r["sent_ns"] is None]
    assert manifest["counts"]["sent"] == 1 and len(rows) > 40  # ~75 due in 1.5 s at 50/s
    assert {r["error"] for r in rows} == {"cancelled"} and len(waiting) == len(rows) - 1
    for r in waiting:
        assert r["slot_wait_ns"] == r["end_ns"] - r["scheduled_ns"] > 0 and r["http_status"] == 0
    assert [r["request_id"] for r in rows] == list(range(len(rows)))  # every due request has its row
    assert manifest["counts"]["errors"] == {"cancelled": len(rows)} and manifest["counts"]["recorded"] == len(rows)
