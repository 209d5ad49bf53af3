"""Start the simulated server in a subprocess: spawn(...) -> SimProcess, a context manager.

What `python -m varcas.load` with no --url uses, and what tests and benchmarks use. The
settings are parsed and resolved here first (config.resolve), so a bad model, GPU or flag is
a one-line VarcasError before any process starts, and .params are the exact parameters the
server runs with (for the run manifest). The server binds 127.0.0.1 on a free port; spawn()
waits, bounded, for its one `varcas-sim listening on URL` line. Leaving the `with` block
sends SIGTERM and kills the process if it is still alive 5 s later.
(varcas.testing.spawn does the same for the stub, but its start-up line and command are fixed.)
"""
from __future__ import annotations

import os
import re
import selectors
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

import varcas
from ..cli import OneLineParser
from ..errors import VarcasError
from .cli import build_parser, sim_config
from .config import Setup, resolve

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
_LISTENING = re.compile(rb"varcas-sim listening on (http://\S+:(\d+))")


class _RaisingParser(OneLineParser):
    """Flag errors as VarcasError: spawn() is library code, it must not exit the process."""

    def error(self, message: str):
        raise VarcasError(f"simulator flags: {message}")


class SimProcess:
    """A running simulator: .url, .port, .proc, .setup, .params; a context manager."""

    def __init__(self, proc: subprocess.Popen, url: str, port: int, setup: Setup, stderr):
        self.proc, self.url, self.port, self.setup = proc, url, port, setup
        self._stderr = stderr

    @property
    def params(self) -> dict:
        return self.setup.params()

    def describe(self) -> str:
        return self.setup.describe()

    def metrics_text(self) -> str:
        """GET /metrics (Prometheus text)."""
        resp = httpx.get(self.url + "/metrics", timeout=30.0, trust_env=False)
        resp.raise_for_status()
        return resp.text

    def close(self) -> int:
        """Stop the server (SIGTERM, then SIGKILL after 5 s); returns its exit status."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self._stderr.close()
        return self.proc.returncode

    def __enter__(self) -> SimProcess:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def spawn(model: str = "llama-2-7b", gpu: str = "t4", quant: str = "awq", max_num_seqs: int = 8,
          extra_args: Sequence[str] = ()) -> SimProcess:
    """Start `python -m varcas.sim` on a free loopback port; VarcasError if it cannot start."""
    argv = ["--model", model, "--gpu", gpu, "--quant", quant, "--max-num-seqs", str(max_num_seqs),
            *extra_args, "--host", "127.0.0.1", "--port", "0"]
    args = build_parser("varcas sim", _RaisingParser).parse_args(argv)
    if args.offline:
        raise VarcasError("spawn() starts a server; --offline is for simulate()")
    setup = resolve(sim_config(args))
    root = str(Path(varcas.__file__).resolve().parent.parent)  # the child imports this varcas
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    stderr = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, "-m", "varcas.sim", *argv], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=stderr, env=env, bufsize=0)
    try:
        url, port = _wait_listening(proc)
    except VarcasError as exc:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
        stderr.seek(0)
        lines = stderr.read().decode(errors="replace").strip().splitlines()
        stderr.close()
        raise VarcasError(f"the simulator did not start ({exc}): {lines[-1] if lines else 'no output'}") from None
    return SimProcess(proc, url, port, setup, stderr)


def _wait_listening(proc: subprocess.Popen) -> tuple[str, int]:
    deadline = time.monotonic() + START_TIMEOUT_S
    out = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not sel.select(left):
                continue
            data = os.read(proc.stdout.fileno(), 4096)
            if not data:
                raise VarcasError("it exited")
            out += data
            if match := _LISTENING.search(out):
                return match.group(1).decode(), int(match.group(2))
    raise VarcasError(f"no listening line in {START_TIMEOUT_S:g} s")
