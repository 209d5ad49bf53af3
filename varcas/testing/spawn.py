"""Start the test server in a subprocess for tests and benchmarks: spawn() -> ServerProcess.

The server runs in its own process (as a real target would), so its event loop, its clock
reads and its CPU are separate from the client's. spawn() waits, bounded, for the one
`varcas-testserver listening on URL` line, which is how it learns the port picked by
--port 0; leaving the `with` block sends SIGTERM (the server writes --records and exits)
and kills the process if it is still alive 5 s later.
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

import varcas
from ..errors import VarcasError

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
_LISTENING = re.compile(rb"varcas-testserver listening on (http://\S+:(\d+))\r?\n")


class ServerProcess:
    """A running test server: .url, .port, .records(), .stats(); a context manager."""

    def __init__(self, proc: subprocess.Popen, url: str, port: int, stderr):
        self.proc, self.url, self.port = proc, url, port
        self._stderr = stderr

    def records(self) -> dict:
        """GET /_records: {"requests": [{"id", "recv_ns", "fault", "token_ns": [...]}, ...]}."""
        return self._get("/_records")

    def stats(self) -> dict:
        """GET /_stats: request, stream, token, connection and fault counts, max lag."""
        return self._get("/_stats")

    def _get(self, path: str) -> dict:
        import httpx  # here, not at the top: the server process imports this module too

        resp = httpx.get(self.url + path, timeout=30.0, trust_env=False)  # no proxy for loopback
        resp.raise_for_status()
        return resp.json()

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

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def spawn(tokens: int = 16, itl_ms: float = 10.0, ttft_ms: float = 0.0,
          extra_args: Sequence[str] = ()) -> ServerProcess:
    """Start `python -m varcas.testing.server --port 0 ...`; VarcasError if it is not up in 10 s."""
    cmd = [sys.executable, "-m", "varcas.testing.server", "--port", "0", "--tokens", str(tokens),
           "--itl-ms", str(itl_ms), "--ttft-ms", str(ttft_ms), *extra_args]
    # The child must import this same varcas, installed or not.
    root = str(Path(varcas.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    stderr = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=stderr, env=env, bufsize=0)
    try:
        url, port = _wait_listening(proc)
    except VarcasError:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
        stderr.seek(0)
        lines = stderr.read().decode(errors="replace").strip().splitlines()
        stderr.close()
        raise VarcasError(f"test server did not start ({' '.join(cmd[1:])}): "
                          f"{lines[-1] if lines else 'no output'}") from None
    return ServerProcess(proc, url, port, stderr)


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
                raise VarcasError("exited")
            out += data
            if match := _LISTENING.search(out):
                return match.group(1).decode(), int(match.group(2))
    raise VarcasError("timed out")
