"""kill -9 of `varcas load` with no --url: the simulator it started does not outlive it."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .helpers import REPO


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_the_built_in_simulator_dies_with_a_sigkilled_load(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "varcas.load", "--rps", "2", "--duration", "60", "--quiet",
                             "--sim-gpu", "h100-sxm", "--out", str(tmp_path / "run")],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()  # bounded: the simulator starts within its 20 s timeout or the load exits
        assert line.startswith("no --url: load-testing varcas's simulated vLLM server at http://127.0.0.1:"), line
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(children) == 1
        sim = int(children[0])
        assert alive(sim)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    deadline = time.monotonic() + 10
    while alive(sim) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(sim)
