"""optimize, sweep-rate and pipeline starting a real `vllm serve` per configuration (CPU build,
tiny model): restarts, readiness, comparison and recommendation, resume after Ctrl-C, a server
that fails to start, and never a vLLM process left behind."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.load.helpers import REPO
from tests.optimize.test_sweep_served import gone
from tests.real.vllm_server import serve_env, server_cmd_template
from varcas import rundir


def short_workload(tmp_path) -> str:
    path = tmp_path / "short.json"
    path.write_text(json.dumps({"name": "short", "description": "real-vLLM test", "rps": 4,
                                "input": {"kind": "fixed", "value": 32}, "output": {"kind": "fixed", "value": 8}}))
    return str(path)


def varcas(*args, **popen) -> subprocess.Popen:
    env = {**os.environ, **serve_env()}
    return subprocess.Popen([sys.executable, "-m", "varcas.cli", *map(str, args)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def finish(proc: subprocess.Popen, timeout: float) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"timed out; stderr: {err[-2000:]}")
    assert "Traceback" not in err, err
    return proc.returncode, out, err


def vllm_pids() -> set[int]:
    """Processes that are vLLM's (by command line or title: vLLM renames its engine process)."""
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().lower()
            with open(f"/proc/{entry}/comm", "rb") as f:
                comm = f.read().lower()
        except OSError:
            continue
        if b"vllm" in cmdline or b"vllm" in comm:
            pids.add(int(entry))
    return pids


@pytest.fixture
def no_vllm_left():
    """A check that every vLLM process started since the test began is gone (within 15 s);
    the test calls it where it matters, and it runs once more after the test."""
    before = vllm_pids()

    def check() -> None:
        deadline = time.monotonic() + 15
        while (left := vllm_pids() - before) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not left, f"vLLM processes left behind: {sorted(left)}"

    yield check
    check()


def test_optimize_over_max_num_seqs_resumes_after_ctrl_c_and_recommends(tmp_path, vllm_venv, vllm_models, no_vllm_left):
    model = vllm_models / "tiny-32k"
    cmd = server_cmd_template(vllm_venv, model, "--max-num-seqs {max_num_seqs}")
    out = tmp_path / "sw"
    args = ("optimize", "--server-cmd", cmd, "--param", "max_num_seqs=1,4", "--workload", short_workload(tmp_path),
            "--duration", "16", "--rps", "3", "--warmup", "2", "--drain-timeout", "20", "--ready-timeout", "300",
            "--goodput", "ttft:10000", "tpot:2000",  # SLOs a CPU build meets on a busy 2-core machine too
            "--quiet", "--out", out)
    proc = varcas(*args)
    second = out / "max_num_seqs-4" / "config.json"
    deadline = time.monotonic() + 420
    while time.monotonic() < deadline and proc.poll() is None:  # until the second server is up
        if second.is_file() and "server" in json.loads(second.read_text()):
            break
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    code, stdout, _ = finish(proc, 120)
    assert code == 130 and "rerun the same command to resume" in " ".join(stdout.split())
    first = json.loads((out / "max_num_seqs-1" / "config.json").read_text())
    assert first["status"] == "complete" and gone(first["server"]["pid"], 1.0)
    interrupted = json.loads(second.read_text())
    assert interrupted["status"] == "interrupted" and gone(interrupted["server"]["pid"], 15.0)
    no_vllm_left()
    code, stdout, err = finish(varcas(*args), 420)  # the same command resumes: only max_num_seqs-4 runs
    assert code == 0, err
    assert json.loads((out / "max_num_seqs-1" / "config.json").read_text())["started_at"] == first["started_at"]
    for cid in ("max_num_seqs-1", "max_num_seqs-4"):
        state = json.loads((out / cid / "config.json").read_text())
        assert state["status"] == "complete", state
        argv = state["server"]["argv"]
        assert argv[argv.index("--max-num-seqs") + 1] == cid.rsplit("-", 1)[1]
        manifest = rundir.read_manifest(out / cid / "short")
        assert manifest["status"] == "complete" and manifest["counts"]["ok"] == manifest["counts"]["scheduled"] > 0
        assert manifest["prompts"]["source"] == "server /tokenize"
        assert gone(state["server"]["pid"], 1.0)
    result = json.loads((out / "comparison.json").read_text())
    rows = result["workloads"]["short"]["rows"]
    assert [(r["config"], r["status"], r["overloaded"]) for r in rows] == [
        ("max_num_seqs-1", "complete", False), ("max_num_seqs-4", "complete", False)]
    assert all(r["steady"] is not None for r in rows)  # 16 s at 3 req/s: a steady window each
    recs = {r["use_case"]: r for r in result["workloads"]["short"]["recommendations"]}
    assert set(recs) == {"interactive", "balanced", "throughput", "cost"}
    for rec in recs.values():  # a configuration and its real vLLM flag, for every use case
        assert rec["flags"] == "--max-num-seqs " + rec["config"].rsplit("-", 1)[1], rec
    assert "recommendation" in stdout
    no_vllm_left()


def test_a_vllm_that_cannot_start_fails_its_configuration_and_leaves_nothing(tmp_path, vllm_venv, vllm_models, no_vllm_left):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "no-such-architecture"}')
    cmd = server_cmd_template(vllm_venv, broken, "--max-num-seqs {max_num_seqs}")
    out = tmp_path / "sw"
    code, stdout, err = finish(varcas("optimize", "--server-cmd", cmd, "--param", "max_num_seqs=2",
                                      "--workload", short_workload(tmp_path), "--duration", "4", "--quiet",
                                      "--ready-timeout", "300", "--out", out), 360)
    state = json.loads((out / "max_num_seqs-2" / "config.json").read_text())
    assert state["status"] == "failed" and "exited with status" in state["reason"], state
    assert state["log_tail"] and "server" not in state
    assert "failed" in stdout


def test_sweep_rate_and_pipeline_with_a_vllm_command(tmp_path, vllm_venv, vllm_models, no_vllm_left):
    model = vllm_models / "tiny-32k"
    workload = short_workload(tmp_path)
    cap = tmp_path / "cap"
    long = tmp_path / "long.json"  # 600-token prompts: over the server's 512, so clipped
    long.write_text(json.dumps({"name": "long", "description": "over the context", "rps": 2,
                                "input": {"kind": "fixed", "value": 600}, "output": {"kind": "fixed", "value": 8}}))
    code, stdout, err = finish(varcas(
        "sweep-rate", "--server-cmd", server_cmd_template(vllm_venv, model), "--workload", long, "--clip-to-context",
        "--goodput", "ttft:20000", "--attainment", "0.9", "--start", "2", "--max-steps", "2", "--duration", "11",
        "--ready-timeout", "300", "--out", cap), 420)
    assert code == 0, err
    capacity = json.loads((cap / "capacity.json").read_text())
    assert len(capacity["steps"]) == 2 and capacity["steps"][0]["rate_rps"] == 2
    for step in capacity["steps"]:
        manifest = rundir.read_manifest(step["run_dir"])
        assert manifest["counts"]["ok"] > 0 and manifest["counts"]["failed"] == 0
        assert manifest["warnings"][0].startswith("--clip-to-context: ")
    no_vllm_left()

    study = tmp_path / "study"
    code, stdout, err = finish(varcas(
        "pipeline", "--model", model / "config.json", "--gpu", "t4", "--quant", "fp16",
        "--server-cmd", server_cmd_template(vllm_venv, model, "--max-num-seqs {max_num_seqs}"),
        "--workload", workload, "--batch-sizes", "2", "--duration", "6", "--rps", "3", "--quiet",
        "--out", study), 480)
    assert code == 0, err
    pipeline = json.loads((study / "pipeline.json").read_text())
    steps = pipeline["steps"]
    assert [steps[s]["status"] for s in ("roofline", "sweep", "report")] == ["complete"] * 3, steps
    assert steps["load"]["short"]["status"] == "complete", steps
    assert rundir.read_manifest(study / steps["load"]["short"]["run"])["counts"]["failed"] == 0
    assert (study / "report.html").is_file() and (study / "REPORT.md").is_file()
