"""Every ending signal at every moment of a run leaves a consistent run directory (or none,
before it exists) and one line, never a traceback; a kill -9 leaves a recoverable stream."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from varcas.rundir import read_arrows, read_manifest

from .helpers import REPO, varcas_cli


def start(url: str, out) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "varcas.load", "--url", url, "--rps", "20", "--duration", "30",
                             "--input-len", "8", "--output-len", "8", "--quiet", "--out", str(out)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path, timeout_s=20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.001)


def assert_consistent(out, proc, stderr, sig) -> None:
    assert "Traceback" not in stderr, stderr
    if not out.exists():  # the signal came before the run directory existed
        # 130 with one line; or killed by the signal before varcas handled it (no output), or, at
        # the interpreter's exit, after it had (its line printed): CPython then ends by the signal
        assert proc.returncode == 130 or proc.returncode == -sig, (proc.returncode, stderr)
        assert stderr.strip() in ("", "python -m varcas.load: interrupted"), stderr
        assert proc.returncode != 130 or stderr.strip(), stderr
        return
    assert proc.returncode == 130, stderr
    manifest = read_manifest(out)
    assert manifest["status"] == "interrupted"
    rows = pq.read_table(out / "requests.parquet").num_rows
    assert manifest["counts"]["recorded"] == rows


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
@pytest.mark.parametrize("when", ["at once", "on run.json", "at 0.3 s", "mid-run"])
def test_an_ending_signal_at_any_moment_keeps_the_run_consistent(tmp_path, server, sig, when):
    out = tmp_path / "run"
    proc = start(server.url, out)
    try:
        if when == "on run.json":
            wait_for(out / "run.json")
        elif when == "at 0.3 s":
            time.sleep(0.3)
        elif when == "mid-run":
            wait_for(out / "run.json")
            time.sleep(1.5)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert_consistent(out, proc, stderr, sig)
    if when == "mid-run":
        assert read_manifest(out)["counts"]["recorded"] > 0


def test_a_kill_9_as_soon_as_the_run_exists_leaves_a_readable_stream(tmp_path, server):
    out = tmp_path / "run"
    proc = start(server.url, out)
    try:
        wait_for(out / "requests.arrows")
        proc.kill()
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert read_manifest(out)["status"] == "running"
    assert read_arrows(out / "requests.arrows").schema.names[0] == "request_id"  # never a 0-byte stream
    res = varcas_cli("-m", "varcas.cli", "recover", str(out))
    assert res.returncode == 0, res.stderr
    assert read_manifest(out)["status"] == "interrupted"
