"""Start a user's inference server for one sweep configuration: launch(argv, log) -> ManagedServer.

A sweep measures one server per configuration (`vllm serve MODEL --max-num-seqs 8 --port P`),
so the server must be ours, ready, and entirely gone afterwards. launch() refuses a port that
already answers (we would measure a stranger), runs argv with no shell, in its own session so
the whole process group (vLLM's engine workers too) can be signalled, with its output appended
to a log file, and polls GET /health then GET /v1/models until the server answers with a model.
A server that exits, times out or answers nonsense is stopped and reported as ServerStartError,
with the log's last lines. stop() sends SIGTERM to the group, SIGKILL after a grace period, and
SIGKILL again to whatever of the group outlives its leader.

Two invariants make signalling the group safe. The leader is not reaped (waitid WNOWAIT) until
stop() has signalled the group for the last time, so its pid, which is the group's id, cannot be
reused by another process meanwhile. And on Linux the leader gets PR_SET_PDEATHSIG=SIGTERM, so
a SIGKILLed varcas does not leave a server holding a GPU; the kernel sends it when the *thread*
that called launch() ends, so call launch() from a thread that outlives the server.
That signal reaches the leader only, and a starting vLLM ignores SIGTERM while its engine
process (same group) would outlive it: so a watchdog process, in a session of its own, holds
the read end of a pipe whose write end only varcas has. EOF (varcas died) makes it SIGTERM the
whole group and SIGKILL it after the grace; stop() ends the watchdog before reaping the leader.
"""
from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import orjson

from ..bounded import read_bounded
from ..errors import VarcasError
from ..load.preflight import MAX_MODELS_BYTES
from ..serve.spawn import die_with_parent

POLL_S = 0.25          # between readiness probes
PROBE_TIMEOUT_S = 2.0  # one readiness request, at most
EXIT_POLL_S = 0.02     # between checks of whether the leader has exited, while stopping
KILL_WAIT_S = 30.0     # after SIGKILL: a process in the GPU driver can take a while to go
TAIL_BYTES = 65536     # log_tail reads at most this much of the log's end
HEADER = "# varcas: "  # prefix of the lines varcas itself writes to the log
# The watchdog (argv: group id, grace seconds): waits for EOF on stdin, then stops the group.
WATCHDOG = """
import os, signal, sys, time
pgid, grace = int(sys.argv[1]), float(sys.argv[2])
sys.stdin.buffer.read()
def alive():
    try:
        os.killpg(pgid, 0)
        return True
    except OSError:
        return False
if alive():
    os.killpg(pgid, signal.SIGTERM)
    end = time.monotonic() + grace
    while alive() and time.monotonic() < end:
        time.sleep(0.05)
    if alive():
        os.killpg(pgid, signal.SIGKILL)
"""


class ServerStartError(VarcasError):
    """The server did not become ready: the message is one line saying why, plus the last log lines."""

    def __init__(self, reason: str, log_tail: list[str] | None = None, log_path: Path | None = None):
        self.reason, self.log_tail = reason, list(log_tail or [])
        tail = f"; last lines of {log_path}:\n" + "\n".join(self.log_tail) if self.log_tail else ""
        super().__init__(reason + tail)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on host right now (bound to :0, read, closed)."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_in_use(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


class ManagedServer:
    """A server started by launch(): .url, .model, .pid, .log_path, .ready_s; a context manager."""

    def __init__(self, proc: subprocess.Popen, argv: list[str], host: str, port: int,
                 log_path: Path, grace_s: float):
        self.argv, self.host, self.port, self.log_path = argv, host, port, log_path
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
        self.pid = proc.pid
        self.model = ""
        self.ready_s = float("nan")
        self._proc, self._grace_s = proc, grace_s
        self._status: int | None = None   # the leader's exit status, once known
        self._watchdog = _watchdog(proc.pid, grace_s)

    def exit_status(self) -> int | None:
        """None while the leader runs; else its status as Popen.returncode has it (-N: signal N)."""
        if self._status is None:   # not reaped either: stop() reaps only once this is known
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            if info is not None:
                self._status = info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
        return self._status

    def exit_reason(self) -> str | None:
        """None while running; else 'the server exited with status N: <last log line>' or similar."""
        status = self.exit_status()
        if status is None:
            return None
        lines = (line.strip() for line in reversed(self.log_tail()) if not line.startswith(HEADER))
        last = next((line for line in lines if line), "")
        return f"the server {_status_words(status)}" + (f": {last}" if last else "")

    def log_tail(self, n: int = 20) -> list[str]:
        """The log file's last n lines."""
        try:
            with open(self.log_path, "rb") as f:
                start = max(0, f.seek(0, os.SEEK_END) - TAIL_BYTES)
                f.seek(start)
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            return []
        return (lines[1:] if start else lines)[-n:]   # from mid-file, the first line is cut

    def stop(self, grace_s: float = 15.0) -> int | None:
        """SIGTERM the group, SIGKILL it after grace_s, reap; the exit status (None if it will not die)."""
        if self._proc.returncode is not None:
            return self._proc.returncode
        if self.exit_status() is None:
            self._signal_group(signal.SIGTERM)
            if not self._wait_exit(grace_s):
                self._signal_group(signal.SIGKILL)
                if not self._wait_exit(KILL_WAIT_S):
                    return None
        self._signal_group(signal.SIGKILL)   # members that outlived the leader, e.g. ignoring SIGTERM
        self._end_watchdog()                 # before the leader's pid (the group's id) may be reused
        return self._proc.wait()             # reaps the leader: only now may its pid be reused

    def _end_watchdog(self) -> None:
        if self._watchdog is not None:
            proc, write_end = self._watchdog
            proc.kill()
            proc.wait()
            os.close(write_end)
            self._watchdog = None

    def _signal_group(self, sig: signal.Signals) -> None:
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass

    def _wait_exit(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.exit_status() is None:
            if time.monotonic() >= deadline:
                return False
            time.sleep(EXIT_POLL_S)
        return True

    def __enter__(self) -> ManagedServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop(self._grace_s)


def launch(argv: list[str], log_path: Path, *, host: str = "127.0.0.1", port: int,
           ready_timeout_s: float = 600.0, env: dict | None = None, grace_s: float = 15.0) -> ManagedServer:
    """Start argv (its output appended to log_path) and wait until it serves a model on host:port.

    env: variables set on top of os.environ. grace_s: the SIGTERM grace when launch() itself
    stops the server (on failure) and when the `with` block ends. ServerStartError otherwise."""
    if port_in_use(host, port):
        raise ServerStartError(f"port {port} on {host} is already in use by another process")
    if not argv:
        raise ServerStartError("no server command given")
    log_path = Path(log_path)
    started = time.monotonic()
    try:
        log = open(log_path, "ab")
    except OSError as exc:
        raise ServerStartError(f"cannot write the server log {log_path}: {exc.strerror}") from None
    with log:
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        log.write(f"{HEADER}started {shlex.join(argv)} at {stamp}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    env={**os.environ, **(env or {})}, start_new_session=True,
                                    preexec_fn=die_with_parent())
        except OSError as exc:
            why = "no such program" if isinstance(exc, FileNotFoundError) else str(exc.strerror or exc).lower()
            raise ServerStartError(f"cannot run {argv[0]!r}: {why}") from None
    server = ManagedServer(proc, list(argv), host, port, log_path, grace_s)
    try:
        server.model = _wait_ready(server, started + ready_timeout_s, ready_timeout_s)
    except ServerStartError as exc:
        server.stop(grace_s)
        raise ServerStartError(exc.reason, server.log_tail(), log_path) from None
    except BaseException:   # KeyboardInterrupt included: never leave the server behind
        server.stop(grace_s)
        raise
    server.ready_s = time.monotonic() - started
    return server


def _wait_ready(server: ManagedServer, deadline: float, timeout_s: float) -> str:
    """Poll /health, then /v1/models, until a model is served; its id. ServerStartError (reason only)."""
    last = "no answer yet"
    with httpx.Client(trust_env=False) as client:   # no proxy for the server we started
        while True:
            left = deadline - time.monotonic()
            if (status := server.exit_status()) is not None:   # checked first: never measure a stranger
                raise ServerStartError(f"the server {_status_words(status)} before it was ready")
            if left <= 0:
                raise ServerStartError(f"not ready after {timeout_s:g} s ({last})")
            timeout = min(PROBE_TIMEOUT_S, left)
            path = "/health"
            try:
                status, body = _get(client, server.url + path, timeout)
                if status == 200:
                    path = "/v1/models"
                    status, body = _get(client, server.url + path, timeout)
                    if status == 200:
                        model = _first_model(body)
                        if server.exit_status() is None:
                            return model
                        continue   # it answered, but the leader is gone: reported at the loop's top
                    if 400 <= status < 500:
                        raise ServerStartError(f"GET /v1/models answered {status}: "
                                               "not an OpenAI-compatible server?")
                last = f"GET {path}: {status}"
            except httpx.HTTPError as exc:
                last = f"GET {path}: {_describe(exc)}"
            time.sleep(max(0.0, min(POLL_S, deadline - time.monotonic())))


def _get(client: httpx.Client, url: str, timeout: float) -> tuple[int, bytes]:
    """GET with the answer read up to a bound (a server is never trusted with our memory)."""
    try:
        return read_bounded(client, "GET", url, MAX_MODELS_BYTES, timeout=timeout)
    except VarcasError as exc:
        raise ServerStartError(str(exc)) from None


def _first_model(body: bytes) -> str:
    """The first model id of an OpenAI /v1/models answer; ServerStartError if there is none."""
    try:
        model = orjson.loads(body).get("data")[0]["id"]
    except (orjson.JSONDecodeError, AttributeError, LookupError, TypeError):
        model = None
    if not isinstance(model, str) or not model:
        raise ServerStartError('GET /v1/models has no model: expected {"data": [{"id": ...}]}, '
                               f"got {body[:80].decode(errors='replace')!r}")
    return model


def _describe(exc: httpx.HTTPError) -> str:
    """A few words for a failed probe."""
    if isinstance(exc, httpx.ConnectError):
        return "connection refused" if "refused" in str(exc).lower() else f"cannot connect ({exc})"
    if isinstance(exc, httpx.TimeoutException):
        return "no answer in time"
    return f"{type(exc).__name__}: {exc}"


def _status_words(status: int) -> str:
    """'exited with status N' or 'was killed by SIGNAME' for a Popen-style returncode."""
    if status >= 0:
        return f"exited with status {status}"
    try:
        return f"was killed by {signal.Signals(-status).name}"
    except ValueError:
        return f"was killed by signal {-status}"


def _watchdog(pgid: int, grace_s: float) -> tuple[subprocess.Popen, int] | None:
    """Start the watchdog of group pgid (see the module docstring): (process, pipe write end)."""
    read_end, write_end = os.pipe()   # not inheritable: later servers do not hold it open
    try:
        proc = subprocess.Popen([sys.executable, "-c", WATCHDOG, str(pgid), str(grace_s)], stdin=read_end,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    except OSError:
        os.close(write_end)
        return None   # PR_SET_PDEATHSIG still stops the leader
    finally:
        os.close(read_end)
    return proc, write_end


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
