"""--ray: the workers as Ray actors on a local Ray instance (two CPUs, 127.0.0.1). One schedule
recorded as one dataset on the driver's clock, a worker killed mid-run leaves a partial run that
keeps its rows, and Ray is an optional extra (one line without it). Skipped without Ray unless
VARCAS_REQUIRE_RAY is set (CI installs .[test], which has it)."""
from __future__ import annotations

import os
import re
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from varcas._timing import monotonic_ns
from varcas.analyze import load_run, summarize
from varcas.analyze.run import NO_ERROR
from varcas.errors import VarcasError
from varcas.load import rayworkers
from varcas.load.runner import LoadConfig, run_load
from varcas.rundir import REQUEST_SCHEMA, read_arrows, worker_arrows
from varcas.rundir.row import INSTANT_COLUMNS

from .helpers import load, varcas_cli
from .test_workers_cli import assert_one_dataset, start, wait_for_worker_rows

try:
    import ray
except ImportError:
    if os.environ.get("VARCAS_REQUIRE_RAY"):
        raise
    ray = None
needs_ray = pytest.mark.skipif(ray is None, reason="ray is not installed (pip install 'varcas[ray]')")


def raylets(driver: int) -> set[int]:
    """The raylet processes of the Ray instances that process `driver` started (its pid ends
    their session's name), so that other Ray instances on the machine do not count."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                args = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"raylet" in args[0] and any(re.fullmatch(rb"--session-name=session_.*_%d" % driver, a) for a in args):
                found.add(int(entry.name))
    return found


def assert_no_raylet_left(driver: int) -> None:
    deadline = time.monotonic() + 10
    while raylets(driver) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not raylets(driver)  # ray.shutdown stopped the instance the driver started


def test_ray_not_installed_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(VarcasError, match=r"^--ray needs Ray, which is not installed: pip install 'varcas\[ray\]'$"):
        run_load(LoadConfig(url="http://127.0.0.1:1", ray="local", out=str(tmp_path / "r")))
    assert not (tmp_path / "r").exists()
    code = ("import runpy, sys; sys.modules['ray'] = None; "
            "sys.argv = ['varcas.load', '--ray', '--url', 'http://127.0.0.1:1', '--out', sys.argv[1]]; "
            "runpy.run_module('varcas.load', run_name='__main__')")
    result = varcas_cli("-c", code, str(tmp_path / "cli"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].endswith("--ray needs Ray, which is not installed: "
                                                           "pip install 'varcas[ray]'")
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "cli").exists()


def test_instants_are_shifted_to_the_driver_clock_durations_are_not():
    row = dict(request_id=[3, 4], scheduled_ns=[100, 200], slot_wait_ns=[7, 0], sent_ns=[110, None],
               first_byte_ns=[120, None], first_token_ns=[130, None], end_ns=[150, 260],
               token_ns=[[130, 140], []], input_tokens=[8, None], output_tokens=[2, None],
               requested_input_tokens=[8, 8], requested_output_tokens=[2, 2], http_status=[200, 0],
               error=[None, "cancelled"], finish_reason=["length", None])
    batch = pa.RecordBatch.from_pylist([dict(zip(row, v)) for v in zip(*row.values())], schema=REQUEST_SCHEMA)
    shifted = rayworkers.to_driver_clock(batch, 100).to_pydict()
    assert shifted["scheduled_ns"] == [0, 100] and shifted["sent_ns"] == [10, None] and shifted["end_ns"] == [50, 160]
    assert shifted["token_ns"] == [[30, 40], []] and shifted["slot_wait_ns"] == [7, 0]
    assert shifted["error"] == [None, "cancelled"] and shifted["request_id"] == [3, 4]
    assert set(INSTANT_COLUMNS) == {"scheduled_ns", "sent_ns", "first_byte_ns", "first_token_ns", "end_ns", "token_ns"}


@needs_ray
@pytest.mark.parametrize("to", ["parent", "process group"])  # a terminal's Ctrl-C reaches the group
def test_ctrl_c_drains_every_ray_worker_and_leaves_no_ray_process(tmp_path, server, to):
    out = tmp_path / "run"
    proc = start(server.url, out, "--ray", start_new_session=True)  # --workers 2, a local Ray instance
    try:
        wait_for_worker_rows(out, proc, timeout_s=60)
        if to == "parent":
            proc.send_signal(signal.SIGINT)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    manifest = load_run(out).manifest
    assert manifest["status"] == "interrupted" and "interrupted_by" not in manifest and "lost_workers" not in manifest
    ids = assert_one_dataset(out)
    assert {i % 2 for i in ids} == {0, 1} and manifest["counts"]["recorded"] == len(ids) == manifest["counts"]["sent"]
    assert np.all(load_run(out).error == NO_ERROR)  # in-flight requests drained, none cancelled
    assert manifest["workers"]["start_method"] == "ray actors"
    assert [w["ended"] for w in manifest["workers"]["per_worker"]] == ["ok", "ok"]
    assert_no_raylet_left(proc.pid)


@pytest.fixture(scope="module")
def cluster():
    """A local Ray instance of two CPUs for the module (runs use it: ray.is_initialized())."""
    if ray is None:
        pytest.skip("ray is not installed (pip install 'varcas[ray]'); CI sets VARCAS_REQUIRE_RAY")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    try:
        yield ray
    finally:
        ray.shutdown()
        assert_no_raylet_left(os.getpid())


@needs_ray
def test_two_ray_workers_record_one_dataset_on_the_driver_clock(tmp_path, server, cluster):
    kw = dict(arrival="poisson", rps=200.0, num_requests=300, seed=5)
    one_dir, one, _ = load(tmp_path, server.url, "one", **kw)
    run_dir, manifest, rows = load(tmp_path, server.url, "ray", workers=2, ray="auto", **kw)
    assert manifest["status"] == "complete" and manifest["counts"]["ok"] == 300
    assert [r["request_id"] for r in rows] == list(range(300))  # every request once, in request order
    planned = np.array([r["scheduled_ns"] for r in rows]) - manifest["start_ns"]
    single = load_run(one_dir).scheduled_ns - one["start_ns"]
    assert np.array_equal(planned, single)  # the single process's schedule, to the nanosecond
    sent = np.array([r["sent_ns"] for r in rows])
    assert np.all(sent >= manifest["start_ns"]) and np.all(sent < manifest["end_ns"])  # the driver's clock
    info = manifest["workers"]
    assert info["start_method"] == "ray actors" and info["how"] == "--workers 2"
    for k, w in enumerate(info["per_worker"]):
        assert w["rows"] == w["sent"] == 150 and w["ended"] == "ok" and w["node"] and w["worker"] == k
        assert w["clock"].startswith("shared") and w["offset_ns"] == 0 and w["offset_uncertainty_ns"] == 0
        assert abs(w["ping_offset_ns"]) < 3_000_000 and 0 < w["ping_uncertainty_ns"] < 3_000_000
        assert abs(w["ping_drift_ns"]) < 3_000_000 and w["pid"] != os.getpid()


@needs_ray
def test_the_ping_exchange_finds_another_clock(cluster):
    @ray.remote(num_cpus=0)
    class Skewed:
        def clock(self) -> int:
            return monotonic_ns() + 5_000_000_000  # a host whose clock is 5 s ahead

    actor = Skewed.remote()
    offset, uncertainty = rayworkers.measure_offset(ray, actor)
    assert abs(offset - 5_000_000_000) <= uncertainty < 3_000_000
    ray.kill(actor)


@needs_ray
def test_a_worker_killed_mid_run_leaves_a_partial_run_with_its_rows(tmp_path, server, cluster, monkeypatch):
    placed: list[dict] = []
    place = rayworkers.Cluster.place

    def place_and_tell(self, n):
        place(self, n)
        placed.extend(self.places)

    monkeypatch.setattr(rayworkers.Cluster, "place", place_and_tell)
    out = tmp_path / "run"

    def kill_worker_1():  # once the driver holds some of its rows
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            stream = out / worker_arrows(1)
            if placed and stream.is_file() and read_arrows(stream).num_rows >= 20:
                os.kill(placed[1]["pid"], signal.SIGKILL)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_worker_1, daemon=True)
    killer.start()
    run_dir, manifest, rows = load(tmp_path, server.url, workers=2, ray="auto", arrival="constant", rps=100.0,
                                   num_requests=400)
    killer.join()
    assert manifest["status"] == "partial"
    (lost,) = manifest["lost_workers"]
    assert lost["worker"] == 1 and lost["pid"] == placed[1]["pid"] and lost["node"] and lost["after_start_s"] > 0
    per = manifest["workers"]["per_worker"]
    assert per[0]["ended"] == "ok" and per[0]["rows"] == 200  # the other worker went on to the end
    assert per[1]["ended"].startswith("load worker 1 (Ray actor on") and "lost" in per[1]["ended"]
    mine = [r for r in rows if r["request_id"] % 2 == 1]
    assert 20 <= len(mine) < 200 and all(r["error"] is None for r in mine)  # its rows up to its last batch
    assert sum(r["request_id"] % 2 == 0 and r["error"] is None for r in rows) == 200
    warnings = summarize(load_run(run_dir)).warnings
    assert any(w.startswith("the run is partial: load worker 1 on ") for w in warnings)


@needs_ray
def test_fail_fast_is_decided_over_every_ray_worker(tmp_path, server, cluster):
    _, manifest, rows = load(tmp_path, server.url, workers=2, ray="auto", fail_fast=6, rps=50.0, num_requests=200,
                             headers=["X-Fault: http_500"])
    assert manifest["status"] == "failed"
    assert manifest["failure"].startswith("the first 3 requests of each of the 2 workers all failed: http (HTTP 500)")
    assert manifest["counts"]["sent"] < 100 and all(r["error"] in ("http", "cancelled") for r in rows)
    assert "HTTP 500" in (tmp_path / "run" / "errors.log").read_text()  # the workers' excerpts, gathered


@needs_ray
@pytest.mark.parametrize("kw, message", [
    (dict(max_concurrency=4), "--max-concurrency cannot be used with --ray: its global cap is shared memory"),
    (dict(worker_cores="0"), "--worker-cores cannot be used with --ray"),
    (dict(workers=3), "--workers 3: the Ray cluster offers 2 CPUs, one per worker"),
])
def test_what_ray_cannot_do_is_one_line_before_the_run(tmp_path, server, cluster, kw, message):
    with pytest.raises(VarcasError, match=message.replace("(", r"\(")):
        run_load(LoadConfig(url=server.url, ray="auto", num_requests=10, out=str(tmp_path / "r"), quiet=True, **kw))
    assert not (tmp_path / "r").exists()


def test_a_server_on_loopback_is_refused_when_workers_run_on_other_hosts():
    here = {"node": "10.0.0.1", "boot_id": rayworkers.boot_id()}
    cluster = rayworkers.Cluster(None, "auto", 4, places=[here, {"node": "10.0.0.2", "boot_id": "another host"}])
    for host in ("127.0.0.1", "localhost", "::1"):
        with pytest.raises(VarcasError, match=r"^--ray: the server is on this host's loopback .* workers on 10\.0\.0\.2"):
            cluster.check_reach(host)
    cluster.check_reach("10.0.0.5")
    cluster.check_reach("server.example")
    rayworkers.Cluster(None, "local", 2, places=[here, here]).check_reach("127.0.0.1")  # one host: fine


def test_without_workers_ray_uses_the_cluster_cpus_but_one():
    from varcas.load import workers
    from varcas.load.runner import prepare

    def layout(cpus: int, **kw):
        cfg = LoadConfig(url="http://127.0.0.1:1", num_requests=100, rps=10.0, **kw)
        cfg.workers = workers.parse_workers(cfg.workers)  # as prepare, without importing Ray
        return workers.plan(cfg, prepare(LoadConfig(url="http://127.0.0.1:1", num_requests=100, rps=10.0)).schedule,
                            cpus)

    assert (layout(8).n, layout(8).how) == (7, "--ray: the cluster's 8 CPUs - 1 (at least 1)")
    assert layout(1).n == 1 and layout(8, workers=3).n == 3
    with pytest.raises(VarcasError, match=r"^--workers 9: the Ray cluster offers 8 CPUs, one per worker$"):
        layout(8, workers=9)
