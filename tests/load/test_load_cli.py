"""The command line: one-line errors with exit 2, interrupts, recovery, secrets."""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from varcas.rundir import read_manifest

from .helpers import REPO, varcas_cli, wait_for_rows

LOAD = ("-m", "varcas.load")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--rps", "0"], "--rps"),
        (["--rps", "nan"], "--rps"),
        (["--rps", "-3"], "--rps"),
        (["--duration", "-1"], "--duration"),
        (["--workload", "no_such_workload"], "chat_medium"),
        (["--arrival", "trace", "--trace", "/nonexistent/trace.jsonl"], "trace"),
        (["--header", "NoColonHere"], "--header"),
        (["--max-concurrency", "0"], "--max-concurrency"),
        (["--url", "ftp://example"], "--url"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(args, needle, tmp_path):
    res = varcas_cli(*LOAD, *args, "--out", str(tmp_path / "r"))
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in res.stderr
    assert not (tmp_path / "r").exists()  # nothing was started


def test_unreachable_server_fails_before_any_load(tmp_path):
    port = _free_port()
    res = varcas_cli(*LOAD, "--url", f"http://127.0.0.1:{port}", "--num-requests", "5", "--out", str(tmp_path / "r"))
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1 and "cannot connect" in res.stderr
    assert not (tmp_path / "r").exists()


def test_unknown_model_lists_the_served_ones(tmp_path, server):
    res = varcas_cli(*LOAD, "--url", server.url, "--model", "gpt-17", "--num-requests", "2", "--out", str(tmp_path / "r"))
    assert res.returncode == 2 and "gpt-17" in res.stderr and "test-model" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_api_key_never_lands_in_the_run_directory(tmp_path, server):
    secret = "sk-varcas-test-5f1e2d3c4b5a"
    out = tmp_path / "r"
    res = varcas_cli(*LOAD, "--url", server.url, "--num-requests", "5", "--rps", "50", "--out", str(out), "--quiet",
                     "--api-key-env", "VARCAS_TEST_KEY", "--header", f"X-Api-Key: {secret}",
                     "--header", "X-Fault: http_400", env={"VARCAS_TEST_KEY": secret})
    assert res.returncode == 1, res.stderr  # every request failed (the injected 400)
    assert secret not in res.stdout + res.stderr
    files = list(out.iterdir())
    assert {f.name for f in files} >= {"run.json", "requests.parquet", "errors.log"}
    assert "requests.arrows" not in {f.name for f in files}  # removed once the Parquet file holds every row
    for f in files:
        assert secret.encode() not in f.read_bytes(), f.name
    assert read_manifest(out)["config"]["headers"][0] == "X-Api-Key: ***"


def test_custom_header_values_never_land_in_the_run_directory(tmp_path, server):
    secret = "azure-key-0a1b2c3d4e5f"
    out = tmp_path / "r"
    res = varcas_cli(*LOAD, "--url", server.url, "--num-requests", "3", "--rps", "50", "--out", str(out), "--quiet",
                     "--header", f"Ocp-Apim-Subscription-Key: {secret}", f"--header=X-Tenant: {secret}")
    assert res.returncode == 0, res.stderr
    for f in out.iterdir():
        assert secret.encode() not in f.read_bytes(), f.name
    manifest = read_manifest(out)
    assert manifest["config"]["headers"] == ["Ocp-Apim-Subscription-Key: ***", "X-Tenant: ***"]
    assert "Ocp-Apim-Subscription-Key: ***" in manifest["command"] and "--header=X-Tenant: ***" in manifest["command"]


def _start_load(server_url: str, out, *extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *LOAD, "--url", server_url, "--rps", "40", "--duration", "30",
                             "--output-len", "8", "--input-len", "8", "--quiet", "--out", str(out), *extra],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigint_stops_sending_drains_and_keeps_everything(tmp_path, server):
    out = tmp_path / "r"
    proc = _start_load(server.url, out)
    wait_for_rows(out, proc, 4096)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    manifest = read_manifest(out)
    assert manifest["status"] == "interrupted"
    rows = pq.read_table(out / "requests.parquet").to_pylist()
    assert 20 <= len(rows) == manifest["counts"]["sent"] < manifest["counts"]["scheduled"]
    assert all(r["error"] is None for r in rows)  # drained: in-flight requests finished


def test_second_sigint_cancels_in_flight_requests(tmp_path, server):
    out = tmp_path / "r"
    proc = _start_load(server.url, out, "--header", "X-Fault: stall")
    wait_for_rows(out, proc, 0)  # the recorder is up: sending starts within a second
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 130
    rows = pq.read_table(out / "requests.parquet").to_pylist()
    assert rows and {r["error"] for r in rows} == {"cancelled"}
    assert all(len(r["token_ns"]) == 1 for r in rows)


def test_recover_after_the_process_is_killed(tmp_path, server):
    out = tmp_path / "r"
    proc = _start_load(server.url, out)
    wait_for_rows(out, proc, 16384)
    proc.kill()
    proc.communicate(timeout=10)
    assert read_manifest(out)["status"] == "running" and not (out / "requests.parquet").exists()
    res = varcas_cli("-m", "varcas.cli", "recover", str(out))
    assert res.returncode == 0, res.stderr
    manifest = read_manifest(out)
    rows = pq.read_table(out / "requests.parquet").to_pylist()
    assert manifest["status"] == "interrupted" and manifest["counts"]["recorded"] == len(rows) >= 40
    assert sorted(r["request_id"] for r in rows) == sorted({r["request_id"] for r in rows})
    before = (out / "requests.parquet").read_bytes()
    res = varcas_cli("-m", "varcas.cli", "recover", str(out))  # again: now there is nothing to recover
    assert res.returncode == 2 and res.stderr.strip() == (
        f"varcas recover: error: {out}: nothing to recover: the run ended (interrupted) and its "
        "requests.parquet was written")
    assert (out / "requests.parquet").read_bytes() == before


def test_recover_refuses_what_is_not_a_run(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"schema_version": 99}))
    res = varcas_cli("-m", "varcas.cli", "recover", str(tmp_path))
    assert res.returncode == 2 and "newer" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = varcas_cli("-m", "varcas.cli", "recover", str(tmp_path / "missing"))
    assert res.returncode == 2 and "Traceback" not in res.stderr


def test_no_url_load_tests_the_simulator_and_says_so(tmp_path):
    out = tmp_path / "r"
    res = varcas_cli(*LOAD, "--rps", "20", "--duration", "1", "--input-len", "32", "--output-len", "4",
                     "--sim-gpu", "h100-sxm", "--sim-max-num-seqs", "16", "--quiet", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "simulated vLLM server" in res.stdout.splitlines()[0]
    manifest = read_manifest(out)
    target = manifest["target"]
    assert target["kind"] == "sim" and target["url"].startswith("http://127.0.0.1:")
    assert target["params"]["gpu"] == "h100-sxm" and target["params"]["max_num_seqs"] == 16
    rows = pq.read_table(out / "requests.parquet").to_pylist()
    assert len(rows) >= 10 and all(r["error"] is None and r["output_tokens"] == 4 for r in rows)
