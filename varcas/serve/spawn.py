"""Start one of varcas's servers in a subprocess: start_server() -> ServerProcess.

A server runs in its own process (as a real target would), so its event loop, its clock reads
and its CPU are separate from the client's. start_server() runs `python -m MODULE ARGS...`
with this same varcas importable, and waits, bounded, for the server's one start-up line
(`NAME listening on URL`, protocol.banner), which is how it learns a port picked by --port 0.
A server that exits or stays silent is killed and reported as one VarcasError carrying the
last line of its stderr. Leaving the `with` block of a ServerProcess sends SIGTERM, and kills
the process if it is still alive STOP_TIMEOUT_S later; if varcas itself is killed, the kernel
sends the server SIGTERM (PR_SET_PDEATHSIG), so no server outlives its client. varcas.testing.spawn and
varcas.sim.spawn are the thin wrappers that know each server's flags.
"""
from __future__ import annotations

import ctypes
import os
import re
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Self, TypeVar, overload

import varcas

from ..errors import VarcasError
from .protocol import banner

STOP_TIMEOUT_S = 5.0
PR_SET_PDEATHSIG = 1   # linux/prctl.h


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A preexec_fn asking Linux to send the child `sig` when the thread that started it
    ends (so call from a thread that outlives the child); None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    prctl, parent = ctypes.CDLL(None, use_errno=True).prctl, os.getpid()

    def preexec() -> None:   # runs in the child between fork and exec: keep it tiny
        prctl(PR_SET_PDEATHSIG, int(sig))
        if os.getppid() != parent:   # the parent died before prctl took effect
            os.kill(os.getpid(), sig)

    return preexec


class ServerProcess:
    """A running server: .proc (Popen), .url, .port; get(path); a context manager."""

    def __init__(self, proc: subprocess.Popen, url: str, port: int, stderr):
        self.proc, self.url, self.port = proc, url, port
        self._stderr = stderr

    def get(self, path: str):
        """GET url + path (httpx.Response); raises for an HTTP error status."""
        import httpx  # here, not at the top: server processes import this module too

        resp = httpx.get(self.url + path, timeout=30.0, trust_env=False)  # no proxy for loopback
        resp.raise_for_status()
        return resp

    def close(self) -> int:
        """Stop the server (SIGTERM, then SIGKILL after 5 s); returns its exit status."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        assert self.proc.stdout is not None  # start_server opens it with stdout=PIPE
        self.proc.stdout.close()
        self._stderr.close()
        return self.proc.returncode

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def child_env() -> dict:
    """os.environ with PYTHONPATH leading to this varcas, so a `python -m varcas...` child imports it."""
    root = str(Path(varcas.__file__).resolve().parent.parent)
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}


P = TypeVar("P", bound=ServerProcess)


@overload
def start_server(module: str, args: Sequence[str], server_name: str, what: str,
                 timeout_s: float) -> ServerProcess: ...
@overload
def start_server(module: str, args: Sequence[str], server_name: str, what: str, timeout_s: float,
                 process_class: type[P], **attrs) -> P: ...
def start_server(module: str, args: Sequence[str], server_name: str, what: str, timeout_s: float,
                 process_class: type[ServerProcess] = ServerProcess, **attrs) -> ServerProcess:
    """Run `python -m module *args` and wait for its banner; process_class(proc, url, port,
    stderr, **attrs) once it listens. VarcasError naming `what` if it is not up in timeout_s."""
    cmd = [sys.executable, "-m", module, *args]
    env = child_env()
    stderr = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr,
                            env=env, bufsize=0, preexec_fn=die_with_parent())
    assert proc.stdout is not None  # stdout=PIPE
    # The URL ends at whitespace: the end of the line or the description that follows it.
    pattern = re.compile(re.escape(banner(server_name).encode()) + rb" (http://\S+:(\d+))\s")
    try:
        url, port = _wait_listening(proc, pattern, timeout_s)
    except VarcasError as exc:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
        stderr.seek(0)
        lines = stderr.read().decode(errors="replace").strip().splitlines()
        stderr.close()
        raise VarcasError(f"{what} did not start ({exc}; python -m {module} {' '.join(args)}): "
                          f"{lines[-1] if lines else 'no output'}") from None
    return process_class(proc, url, port, stderr, **attrs)


def _wait_listening(proc: subprocess.Popen, pattern: re.Pattern, timeout_s: float) -> tuple[str, int]:
    assert proc.stdout is not None  # start_server opens it with stdout=PIPE
    deadline = time.monotonic() + timeout_s
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
            if match := pattern.search(out):
                return match.group(1).decode(), int(match.group(2))
    raise VarcasError(f"no listening line in {timeout_s:g} s")
