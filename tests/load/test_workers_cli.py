"""`varcas load --workers N` as a process: signals drain every worker and keep their rows, a
kill -9 of the parent takes the workers with it and `varcas recover` merges their streams, bad
values are one line, and the embedded simulator is a target as for one process."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from varcas.rundir import read_arrows, read_manifest, request_streams

from .helpers import REPO, varcas_cli
from .test_load_kill import alive


def start(url: str, out: Path, *extra: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "varcas.load", "--url", url, "--rps", "50", "--duration", "30",
                             "--input-len", "8", "--output-len", "8", "--quiet", "--no-metrics", "--workers", "2",
                             "--out", str(out), *extra],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def wait_for_worker_rows(out: Path, proc: subprocess.Popen, timeout_s: float = 30.0) -> None:
    """Until both workers' streams hold flushed rows (bounded; fails if the run ended first)."""
    deadline = time.monotonic() + timeout_s
    while not (len(streams := request_streams(out) if out.is_dir() else []) == 2
               and all(read_arrows(s).num_rows for s in streams)):
        assert time.monotonic() < deadline and proc.poll() is None, "the workers flushed no rows in time"
        time.sleep(0.05)


def assert_one_dataset(out: Path) -> list[int]:
    ids = pq.read_table(out / "requests.parquet")["request_id"].to_pylist()
    assert ids == sorted(set(ids)) and ids
    assert request_streams(out) == []
    return ids


@pytest.mark.parametrize("sig, to", [(signal.SIGINT, "parent"), (signal.SIGTERM, "parent"),
                                     (signal.SIGINT, "process group")])  # a terminal's Ctrl-C: counted once
def test_a_signal_drains_every_worker_and_keeps_their_rows(tmp_path, server, sig, to):
    out = tmp_path / "run"
    proc = start(server.url, out, start_new_session=True)
    try:
        wait_for_worker_rows(out, proc)
        workers = children(proc.pid)
        if to == "parent":
            proc.send_signal(sig)
        else:
            os.killpg(proc.pid, sig)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    manifest = read_manifest(out)
    assert manifest["status"] == "interrupted" and "interrupted_by" not in manifest
    ids = assert_one_dataset(out)
    assert manifest["counts"]["recorded"] == len(ids) == manifest["counts"]["sent"]
    assert {i % 2 for i in ids} == {0, 1}
    rows = pq.read_table(out / "requests.parquet").to_pylist()
    assert all(r["error"] is None for r in rows)  # in-flight requests finished (drained), none cancelled
    assert [w["ended"] for w in manifest["workers"]["per_worker"]] == ["ok", "ok"]
    assert not any(alive(pid) for pid in workers)


def test_kill_9_of_the_parent_ends_the_workers_and_recover_merges_their_streams(tmp_path, server):
    out = tmp_path / "run"
    proc = start(server.url, out)
    try:
        wait_for_worker_rows(out, proc)
        workers = children(proc.pid)
        assert len(workers) >= 2  # the two workers (and multiprocessing's resource tracker)
        proc.kill()
        proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.communicate()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in workers)
    assert read_manifest(out)["status"] == "running" and len(request_streams(out)) == 2
    res = varcas_cli("-m", "varcas.cli", "recover", str(out))
    assert res.returncode == 0, res.stderr
    ids = assert_one_dataset(out)
    assert {i % 2 for i in ids} == {0, 1}
    manifest = read_manifest(out)
    assert manifest["status"] == "interrupted" and manifest["recovered"] and manifest["counts"]["recorded"] == len(ids)


@pytest.mark.parametrize("flags, message", [
    (["--workers", "0"], "argument --workers: must be a number of processes >= 1 or auto, got 0"),
    (["--workers", "two"], "argument --workers: must be a number of processes >= 1 or auto, got 'two'"),
    (["--workers", "-3"], "argument --workers: must be a number of processes >= 1 or auto, got -3"),
    (["--workers", "2", "--worker-cores", "4096"], "argument --worker-cores: CPU 4096 is not one this process may use"),
])
def test_bad_workers_are_one_line_and_exit_2(tmp_path, flags, message):
    res = varcas_cli("-m", "varcas.load", "--url", "http://127.0.0.1:1", *flags, "--out", str(tmp_path / "r"))
    assert res.returncode == 2
    assert res.stderr.startswith(f"python -m varcas.load: error: {message}") and res.stderr.count("\n") == 1
    assert not (tmp_path / "r").exists()


def test_two_workers_against_the_embedded_simulator(tmp_path):
    out = tmp_path / "run"
    res = varcas_cli("-m", "varcas.load", "--workers", "2", "--rps", "40", "--num-requests", "40", "--input-len", "8",
                     "--output-len", "4", "--quiet", "--no-metrics", "--out", str(out), timeout=120)
    assert res.returncode == 0, res.stderr
    manifest = read_manifest(out)
    assert manifest["target"]["kind"] == "sim" and manifest["workers"]["n"] == 2
    assert assert_one_dataset(out) == list(range(40))
    assert [w["rows"] for w in manifest["workers"]["per_worker"]] == [20, 20]
