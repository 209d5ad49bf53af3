"""A disk that fills up under a run: the run stops cleanly with every flushed row kept, says why
in one line, and `varcas recover` finishes it in place once there is room.

The full disk is a file-size limit (RLIMIT_FSIZE, with SIGXFSZ ignored) set in the child
process: its writes past the limit fail with an OSError (EFBIG) exactly where ENOSPC would,
with no privileges and no risk to the machine's real disk."""
from __future__ import annotations

import resource
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq

from varcas.rundir import read_arrows, read_manifest

from .helpers import REPO, wait_for_rows


def limited(limit_bytes: int):
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return preexec


def test_a_full_disk_mid_run_stops_cleanly_and_keeps_the_flushed_rows(tmp_path, server):
    out = tmp_path / "run"
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "varcas.load", "--url", server.url, "--rps", "300", "--duration", "20",
                          "--input-len", "8", "--output-len", "8", "--quiet", "--out", str(out)],
                         cwd=REPO, capture_output=True, text=True, timeout=60, preexec_fn=limited(96 << 10))
    assert time.monotonic() - t0 < 15  # it stopped at the full disk, not after the 20 s schedule
    assert "Traceback" not in res.stderr and res.returncode == 1, res.stderr
    assert res.stderr.strip().splitlines()[-1] == (
        "varcas: run interrupted: cannot write requests.arrows (File too large): the rows flushed before are kept")
    manifest = read_manifest(out)
    assert manifest["status"] == "interrupted" and manifest["interrupted_by"].startswith("cannot write requests.arrows")
    rows = pq.read_table(out / "requests.parquet").num_rows
    assert 0 < rows == manifest["counts"]["recorded"] < manifest["counts"]["scheduled"]
    assert not (out / "requests.arrows").exists()  # the Parquet file holds every flushed row


def test_recover_on_a_full_disk_says_so_and_works_in_place_later(tmp_path, server):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "varcas.load", "--url", server.url, "--rps", "100", "--duration",
                             "30", "--input-len", "8", "--output-len", "8", "--quiet", "--out", str(out)],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_rows(out, proc)
        time.sleep(1.0)
    finally:
        proc.kill()
        proc.wait()
    flushed = read_arrows(out / "requests.arrows").num_rows
    recover = [sys.executable, "-m", "varcas.cli", "recover", str(out)]
    full = subprocess.run(recover, cwd=REPO, capture_output=True, text=True, timeout=60, preexec_fn=limited(2048))
    assert full.returncode == 2 and "Traceback" not in full.stderr
    assert full.stderr.strip() == (
        f"varcas recover: error: cannot write {out / 'requests.parquet'} (File too large); "
        f"{out / 'requests.arrows'} keeps every row: free space, then `varcas recover {out}`")
    assert not (out / "requests.parquet").exists() and not (out / "requests.parquet.tmp").exists()
    assert read_manifest(out)["status"] == "running"
    ok = subprocess.run(recover, cwd=REPO, capture_output=True, text=True, timeout=60)  # room again
    assert ok.returncode == 0, ok.stderr
    assert read_manifest(out)["status"] == "interrupted"
    assert pq.read_table(out / "requests.parquet").num_rows == flushed > 50
    assert not (out / "requests.arrows").exists()
