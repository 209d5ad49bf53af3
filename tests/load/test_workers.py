"""--workers N: one schedule split over N processes sends exactly the planned process and
records one dataset; the concurrency cap is global; fail-fast is decided over every worker."""
from __future__ import annotations

import copy

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from varcas.analyze import load_run
from varcas.errors import VarcasError
from varcas.load import workers
from varcas.load.runner import LoadConfig, prepare, run_load
from varcas.load.slots import NEVER, SharedSlots
from varcas.rundir import read_manifest
from varcas.testing.spawn import spawn

from .helpers import load


def _layout(**kw):
    cfg = LoadConfig(**{"url": "http://127.0.0.1:1", "input_len": 16, "output_len": 8, "seed": 7, **kw})
    prep = prepare(cfg)
    return prep.schedule, workers.plan(cfg, prep.schedule)


@pytest.mark.parametrize("n", [2, 3])
def test_the_merged_planned_sends_are_the_single_process_schedule(n):
    sched, layout = _layout(rps=500.0, num_requests=1000, workers=n)
    assert layout.n == n
    ids = [layout.ids(k) for k in range(n)]
    assert sorted(np.concatenate(ids).tolist()) == list(range(1000))  # every request once
    assert [len(i) for i in ids] == [len(range(k, 1000, n)) for k in range(n)]  # round robin
    merged = np.sort(np.concatenate([sched.offset_ns[i] for i in ids]))
    assert np.array_equal(merged, sched.offset_ns)
    single_sched, _ = _layout(rps=500.0, num_requests=1000, workers=1)  # the same seed, one process
    assert np.array_equal(merged, single_sched.offset_ns)
    assert np.array_equal(np.diff(merged), np.diff(single_sched.offset_ns))  # inter-arrivals, exactly


def test_a_conversation_stays_on_one_worker():
    sched, layout = _layout(rps=100.0, num_requests=30, turns=3, think_time_s=0.01, workers=2)
    assert layout.conversations == 10 and len(sched) == 30
    for k in range(2):
        ids = layout.ids(k)
        assert set(ids % 10) == set(range(k, 10, 2))  # whole conversations (i mod C), turn-major
        assert np.array_equal(ids, np.sort(ids))


def test_auto_picks_workers_from_the_planned_events_and_the_cores(monkeypatch):
    monkeypatch.setattr(workers, "parser_ns_per_read", lambda: workers.REF_PARSER_NS)
    monkeypatch.setattr(workers, "usable_cpus", lambda: 8)
    sched, layout = _layout(rps=2000.0, duration_s=10.0, output_len=64, arrival="constant", workers="auto")
    planned = 64 * len(sched) / sched.duration_s
    assert layout.n == int(np.ceil(planned / workers.REF_EVENTS_PER_CORE))
    assert layout.how.startswith(f"auto: {planned:,.0f} planned token events/s")
    monkeypatch.setattr(workers, "usable_cpus", lambda: 2)
    _, layout = _layout(rps=2000.0, duration_s=10.0, output_len=64, arrival="constant", workers="auto")
    assert layout.n == 1 and "at most 1 (CPUs - 1)" in layout.how


def test_more_workers_than_requests_is_as_many_as_requests():
    _, layout = _layout(rps=100.0, num_requests=3, workers=8)
    assert layout.n == 3 and "3 as there are no more requests" in layout.how


@pytest.mark.parametrize("workers_, cores, message", [
    (0, None, "--workers: must be a number of processes >= 1 or auto, got 0"),
    ("many", None, "--workers: must be a number of processes >= 1 or auto, got 'many'"),
    (True, None, "--workers: must be"),
    (2, "0,0", "--worker-cores: each CPU once"),
    (2, "4096", "--worker-cores: CPU 4096 is not one this process may use"),
    (2, "a-b", "--worker-cores: must be CPU numbers such as 0,2,4-7"),
])
def test_bad_workers_or_cores_are_one_line_errors_before_anything_starts(tmp_path, workers_, cores, message):
    with pytest.raises(VarcasError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_load(LoadConfig(url="http://127.0.0.1:1", workers=workers_, worker_cores=cores, out=str(tmp_path / "r")))
    assert not (tmp_path / "r").exists()


def _ks(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic."""
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    return float(np.max(np.abs(np.searchsorted(a, grid, "right") / a.size - np.searchsorted(b, grid, "right") / b.size)))


def test_two_workers_send_the_planned_process_and_record_one_dataset(tmp_path, server):
    kw = dict(arrival="poisson", rps=300.0, num_requests=600, seed=3)
    one_dir, one, _ = load(tmp_path, server.url, "one", **kw)
    run_dir, manifest, rows = load(tmp_path, server.url, "two", workers=2, **kw)
    assert manifest["status"] == "complete" and manifest["counts"]["ok"] == 600
    # one dataset, every request once, in request order: pyarrow, analyze, duckdb
    table = pq.read_table(run_dir / "requests.parquet")
    assert table["request_id"].to_pylist() == list(range(600))
    assert load_run(run_dir).request_id.tolist() == list(range(600))
    ids = duckdb.sql(f"select request_id from '{run_dir / 'requests.parquet'}'").fetchnumpy()["request_id"]
    assert ids.tolist() == list(range(600))
    assert pd.read_parquet(run_dir / "requests.parquet")["request_id"].tolist() == list(range(600))
    assert sorted(p.name for p in run_dir.iterdir()) == ["errors.log", "requests.parquet", "run.json"]
    # the planned sends are the single process's, to the nanosecond
    planned = table["scheduled_ns"].to_numpy() - manifest["start_ns"]
    single = pq.read_table(one_dir / "requests.parquet")["scheduled_ns"].to_numpy() - one["start_ns"]
    assert np.array_equal(planned, single)
    # the actual sends, merged over both workers, have the planned inter-arrival statistics
    sent = np.sort(table["sent_ns"].to_numpy())
    gaps, planned_gaps = np.diff(sent), np.diff(planned)
    assert abs(gaps.mean() / planned_gaps.mean() - 1) < 0.05
    assert _ks(gaps, planned_gaps) < 0.1
    # run.json: the workers, their share and their health
    info = manifest["workers"]
    assert info["n"] == 2 and info["start_method"] == "spawn" and info["how"] == "--workers 2"
    for k, w in enumerate(info["per_worker"]):
        assert w["worker"] == k and w["rows"] == w["requests"] == w["sent"] == 300 and w["ended"] == "ok"
        assert w["cpu_s"] > 0 and w["send_lag_p99_us"] is not None and w["pid"] > 0
        assert np.all(table["request_id"].to_numpy()[k::2] % 2 == k)
    assert manifest["client"]["cpu_s"] >= sum(w["cpu_s"] for w in info["per_worker"])
    assert one["workers"]["n"] == 1 and one["workers"]["per_worker"][0]["rows"] == 600


def _max_overlap(rows) -> int:
    """Most requests in flight at once, from their sent and end times."""
    events = sorted([(r["sent_ns"], 1) for r in rows] + [(r["end_ns"], -1) for r in rows], key=lambda e: (e[0], e[1]))
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


def test_the_concurrency_cap_is_global_across_workers(tmp_path):
    with spawn(tokens=8, itl_ms=5, ttft_ms=5) as srv:
        _, manifest, rows = load(tmp_path, srv.url, workers=2, max_concurrency=4, arrival="poisson", rps=250.0,
                                 num_requests=200)
    assert manifest["status"] == "complete" and manifest["counts"]["ok"] == 200
    assert _max_overlap(rows) == 4  # reached, never passed, though each worker alone could have had 4
    waited = {r["request_id"] % 2 for r in rows if r["slot_wait_ns"] > 0}
    assert waited == {0, 1}  # both workers' requests queued for the one cap


def test_slots_pass_to_the_oldest_waiter_of_any_worker():
    import multiprocessing

    slots = SharedSlots(multiprocessing.get_context("spawn"), cap=2, workers=2)
    a, b = slots, copy.copy(slots)
    a.bind(0)
    b.bind(1)
    assert a.acquire(10, False) and a.acquire(11, False)
    assert not b.acquire(20, False) and not a.acquire(30, False)  # both queue: cap reached
    assert b.acquire(21, True) is False  # behind its own queue, whatever the count
    assert not a.release()  # worker 1's waiter (planned 20) is older than worker 0's (30): granted to it
    assert b.claim() == 1 and b.claim() == 0 and a.in_use() == 2
    b.set_head(21)
    assert not a.release()  # worker 1's next (21) before worker 0's (30)
    assert b.claim() == 1
    b.set_head(NEVER)
    assert a.release() is True  # now worker 0's own waiter: kept, sent at once
    a.set_head(NEVER)
    assert not b.release() and not b.release() and a.in_use() == 0
    assert b.acquire(40, False) and b.acquire(41, False) and not a.acquire(42, False)
    assert b.acquire(43, False) is False
    b.withdraw()  # worker 1 stopped: its waiter is gone
    assert not b.release()  # its slot goes to worker 0's waiter
    assert a.claim() == 1 and a.in_use() == 2


def test_fail_fast_needs_every_worker_to_have_failed_alike(tmp_path, server):
    _, manifest, rows = load(tmp_path, server.url, workers=2, fail_fast=6, rps=50.0, num_requests=200,
                             headers=["X-Fault: http_500"])
    assert manifest["status"] == "failed"
    assert manifest["failure"].startswith("the first 3 requests of each of the 2 workers all failed: http (HTTP 500)")
    assert manifest["counts"]["sent"] < 100 and all(r["error"] in ("http", "cancelled") for r in rows)
    assert read_manifest(tmp_path / "run")["workers"]["per_worker"][1]["ended"] == "ok"


def test_the_parent_shows_the_workers_combined():
    from varcas.load.engine import LiveStats
    from varcas.load.progress import SAMPLES, combine, snapshot

    a, b = LiveStats(sent=5, done=4, errors=1, events=40), LiveStats(sent=7, done=7, errors=0, events=70)
    a.lag_ns[:4], a.n_lag = [1, 2, 3, 4], 4
    b.lag_ns[:], b.n_lag = np.arange(len(b.lag_ns)), len(b.lag_ns) + 3  # wrapped around its ring
    stats, inflight = combine([snapshot(a, 1), snapshot(b, 0)])
    assert (stats.sent, stats.done, stats.errors, stats.events, inflight) == (12, 11, 1, 110, 1)
    lags = stats.recent(stats.lag_ns, stats.n_lag)
    assert len(lags) == 4 + SAMPLES and lags[:4].tolist() == [1, 2, 3, 4]
    assert lags[-1] == 2 and lags[-3] == 0  # b's latest samples, oldest first, across the wrap


def test_conversations_run_whole_on_their_worker(tmp_path, server):
    _, manifest, rows = load(tmp_path, server.url, workers=2, turns=2, think_time_s=0.01, arrival="poisson",
                             rps=100.0, num_requests=40, max_concurrency=3)
    assert manifest["status"] == "complete" and [r["request_id"] for r in rows] == list(range(40))
    for second in rows[20:]:  # a later turn leaves after its previous turn ended (on the same worker)
        assert second["scheduled_ns"] >= rows[second["request_id"] - 20]["end_ns"]
