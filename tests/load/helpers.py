"""Helpers for load-generator tests: run a quiet load, run the CLI in a subprocess."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from varcas.load.runner import LoadConfig, run_load
from varcas.rundir import read_manifest

REPO = Path(__file__).resolve().parents[2]


def load(tmp_path: Path, url: str, name: str = "run", **kw):
    """Run a quiet load test and return (run_dir, manifest, rows as a list of dicts)."""
    defaults = dict(url=url, quiet=True, out=str(tmp_path / name), input_len=16, output_len=8,
                    arrival="constant", rps=200.0, num_requests=20, request_timeout_s=10.0)
    defaults.update(kw)
    run_dir = run_load(LoadConfig(**defaults), console=None)
    rows = pq.read_table(run_dir / "requests.parquet").to_pylist()
    return run_dir, read_manifest(run_dir), sorted(rows, key=lambda r: r["request_id"])


def varcas_cli(*args, env=None, timeout=60, **popen):
    """Run `python -m varcas.load`-style commands in a subprocess (exit codes, stderr)."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout,
                          env=full_env, cwd=popen.pop("cwd", REPO), **popen)


def wait_for_rows(out: Path, proc, min_bytes: int = 4096, timeout_s: float = 30.0) -> None:
    """Until the run's requests.arrows holds about min_bytes of flushed rows (a busy machine
    can take seconds to start a run), bounded; fails if the process ended first."""
    import time

    arrows, deadline = out / "requests.arrows", time.monotonic() + timeout_s
    while not (arrows.is_file() and arrows.stat().st_size > min_bytes):
        assert time.monotonic() < deadline and proc.poll() is None, "the run flushed no rows in time"
        time.sleep(0.05)
