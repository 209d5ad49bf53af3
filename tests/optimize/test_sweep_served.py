"""`varcas optimize` with servers it starts: the simulator, a server that will not start, one that
crashes mid-run, and an interrupted sweep (no server left behind)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.load.helpers import REPO
from varcas import rundir
from varcas.optimize.backend import BackendSpec
from varcas.optimize.params import parse_param
from varcas.optimize.sweep import SweepSpec, run_sweep
from varcas.results.comparison import comparison

FAKE = str(Path(__file__).with_name("fake_server.py"))
FAST_SIM = {"gpu": "h100", "model": "llama-2-7b", "quant": "fp16"}


def short_workload(tmp_path) -> str:
    """A workload whose requests finish in well under a second on the simulated H100."""
    path = tmp_path / "short.json"
    path.write_text(json.dumps({"name": "short", "description": "test", "rps": 4,
                                "input": {"kind": "fixed", "value": 32}, "output": {"kind": "fixed", "value": 16}}))
    return str(path)


def served(out, backend, values="2,8", **kw):
    base = dict(backend=backend, params=[parse_param(f"max_num_seqs={values}")],
                workloads=(short_workload(out.parent),),
                out=str(out), duration_s=3.0, rps=4.0, warmup=2, quiet=True, drain_timeout_s=10.0)
    return SweepSpec(**{**base, **kw})


def gone(pid: int, within_s: float = 10.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_simulator_sweep_starts_one_server_per_configuration(tmp_path):
    out = tmp_path / "sw"
    run_sweep(served(out, BackendSpec(sim=FAST_SIM)), say=lambda _: None)
    for cid, n in (("max_num_seqs-2", "2"), ("max_num_seqs-8", "8")):
        state = json.loads((out / cid / "config.json").read_text())
        assert state["status"] == "complete", state
        argv = state["server"]["argv"]
        assert argv[argv.index("--max-num-seqs") + 1] == n and argv[1:3] == ["-m", "varcas.sim"]
        assert gone(state["server"]["pid"], 1.0)
        log = (out / cid / "server.log").read_text()
        assert log.startswith("# varcas: started") and "varcas-sim listening on" in log
        manifest = rundir.read_manifest(out / cid / "short")
        assert manifest["status"] == "complete" and manifest["target"]["url"] == state["server"]["url"]
        assert manifest["counts"]["ok"] == manifest["counts"]["scheduled"] > 0
        warm = rundir.read_manifest(out / cid / "warmup")
        assert warm["counts"]["scheduled"] == 2
    result = comparison(out)
    assert [r["status"] for r in result["workloads"]["short"]["rows"]] == ["complete", "complete"]


def test_a_server_that_does_not_start_fails_its_configuration_and_the_sweep_goes_on(tmp_path):
    out = tmp_path / "sw"
    cmd = f"{sys.executable} {FAKE} --mode exit --port {{port}} --pidfile {tmp_path}/pid-{{max_num_seqs}}"
    lines = []
    run_sweep(served(out, BackendSpec(server_cmd=cmd, ready_timeout_s=10.0)), say=lines.append)
    assert "    | ValueError: bad flag" in lines  # the server log's last lines, on the console too
    for cid in ("max_num_seqs-2", "max_num_seqs-8"):
        state = json.loads((out / cid / "config.json").read_text())
        assert state["status"] == "failed"
        assert "exited with status 1" in state["reason"], state["reason"]
        assert any("ValueError" in line or "Error" in line for line in state["log_tail"])
    rows = comparison(out)["workloads"]["short"]["rows"]
    assert [r["status"] for r in rows] == ["failed", "failed"] and all("metrics" not in r for r in rows)


def test_a_server_that_crashes_mid_run_fails_its_configuration(tmp_path):
    out = tmp_path / "sw"
    script = (f"{sys.executable} -m varcas.sim --gpu h100 --quant fp16 --port {{port}} --max-num-seqs {{max_num_seqs}}"
              " & sleep 4; kill -9 $!; wait $!")
    cmd = f"sh -c '{script}'"
    run_sweep(served(out, BackendSpec(server_cmd=cmd, ready_timeout_s=20.0), values="4", duration_s=5.0),
              say=lambda _: None)
    state = json.loads((out / "max_num_seqs-4" / "config.json").read_text())
    assert state["status"] == "failed" and "(during short)" in state["reason"], state
    assert "status 137" in state["reason"]
    manifest = rundir.read_manifest(out / "max_num_seqs-4" / "short")
    assert manifest["counts"]["failed"] > 0  # requests after the crash failed, and were recorded


def test_interrupted_sweep_exits_130_keeps_results_and_stops_the_server(tmp_path):
    out = tmp_path / "sw"
    argv = [sys.executable, "-m", "varcas.cli", "optimize", "--param", "max_num_seqs=2,8", "--workload", short_workload(tmp_path),
            "--duration", "30", "--rps", "4", "--warmup", "0", "--sim-gpu", "h100", "--sim-quant", "fp16",
            "--drain-timeout", "5", "--quiet", "--out", str(out)]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    state_file = out / "max_num_seqs-2" / "config.json"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait until the first run is under way
        if (out / "max_num_seqs-2" / "short" / "run.json").is_file():
            break
        time.sleep(0.1)
    time.sleep(3.0)  # connections warm up first (up to 1 s), then ~4 requests a second
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "rerun the same command to resume" in " ".join(stdout.split())
    state = json.loads(state_file.read_text())
    assert state["status"] == "interrupted"
    assert gone(state["server"]["pid"], 5.0)
    manifest = rundir.read_manifest(out / "max_num_seqs-2" / "short")
    assert manifest["status"] == "interrupted" and manifest["counts"]["sent"] > 0
    assert not (out / "max_num_seqs-8").exists()  # the sweep stopped


def test_a_port_taken_fails_the_configuration_without_starting_a_server(tmp_path, monkeypatch):
    import socket

    from varcas.optimize import backend

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setattr(backend, "free_port", lambda: port)  # as if another program took it first
        out = tmp_path / "sw"
        run_sweep(served(out, BackendSpec(sim=FAST_SIM), values="2"), say=lambda _: None)
    state = json.loads((out / "max_num_seqs-2" / "config.json").read_text())
    assert state["status"] == "failed"
    assert state["reason"] == f"port {port} on 127.0.0.1 is already in use by another process"
    assert "server" not in state and not (out / "max_num_seqs-2" / "short").exists()
