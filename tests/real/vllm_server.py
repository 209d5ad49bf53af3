"""Start a real vLLM server (CPU build, set up by .ci/real-vllm.sh) for tests; no pytest here.

    paths = vllm_paths()                      # None: not set up, the tests skip
    with VllmServer(paths[0], paths[1] / "tiny-4k", extra=["--max-num-seqs", "16"]) as srv:
        httpx.get(srv.url + "/v1/models")

The server is `VENV/bin/vllm serve MODEL ...` exactly as a user types it (serve_argv), with
the environment of serve_env() on top of os.environ. vLLM runs as a process tree (API
server, engine core); VllmServer starts it as its own process group, so stopping or
killing the group leaves nothing behind; if the test process dies first, the API server
gets SIGKILL (PR_SET_PDEATHSIG) and a watchdog process SIGKILLs the rest of the group.

For `varcas optimize --server-cmd`, server_cmd_template() gives the same command as one
string with {port}; varcas's launcher gives the server varcas's own environment, so the
variables of serve_env() must be set in varcas's process (or pass inline_env=True to put
them in the command through `env`).
"""
from __future__ import annotations

import ctypes
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

VLLM_VERSION = "0.32.0"
DEFAULT_VENV = Path.home() / ".cache" / "varcas" / f"vllm-{VLLM_VERSION}"
DEFAULT_MODELS = Path.home() / ".cache" / "varcas" / "vllm-models"
STAMP = ".varcas-vllm-ok"   # written by .ci/real-vllm.sh once the venv serves
MAX_MODEL_LEN = 512
HOST = "127.0.0.1"
STOP_GRACE_S = 10.0
PR_SET_PDEATHSIG = 1

# Every variable vLLM needs here, and why. Values are strings (an environment).
SERVE_ENV = {
    # Platform detection otherwise looks for "cpu" in the version of the distribution
    # "vllm" (the alias of .ci/real-vllm.sh says 0.32.0+cpu; a plain alias would fail).
    "VLLM_TARGET_DEVICE": "cpu",
    "VLLM_CPU_KVCACHE_SPACE": "1",    # GiB of KV cache (default 4): 524,288 tokens here
    # The model runs inside the engine-core process instead of a third, spawned worker
    # process: ready in ~15 s instead of ~25 s on 2 cores, ~0.4 GiB less memory.
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "VLLM_NO_USAGE_STATS": "1",       # no usage report over the network
    "DO_NOT_TRACK": "1",
    "HF_HUB_OFFLINE": "1",            # local models only: never the Hugging Face hub
    "TRANSFORMERS_OFFLINE": "1",
}


def vllm_paths() -> tuple[Path, Path] | None:
    """(venv, models) from VARCAS_VLLM_VENV / VARCAS_VLLM_MODELS (defaults as in
    .ci/real-vllm.sh), or None when the venv has no stamp of a finished setup."""
    venv = Path(os.environ.get("VARCAS_VLLM_VENV") or DEFAULT_VENV)
    models = Path(os.environ.get("VARCAS_VLLM_MODELS") or DEFAULT_MODELS)
    return (venv, models) if (venv / STAMP).is_file() else None


def serve_argv(venv: Path, model_dir: Path, port: int | str, served_name: str = "tiny",
               extra=()) -> list[str]:
    """The argv of `vllm serve` for a tiny model, with the flags that start fastest on CPU:
    --enforce-eager (no torch.compile: the default compiles with inductor, ~48 s to ready
    and ~9 s more on the first request) and bfloat16 (the models' dtype)."""
    return [str(Path(venv) / "bin" / "vllm"), "serve", str(model_dir),
            "--host", HOST, "--port", str(port), "--served-model-name", served_name,
            "--max-model-len", str(MAX_MODEL_LEN), "--dtype", "bfloat16", "--enforce-eager",
            *map(str, extra)]


def serve_env() -> dict[str, str]:
    """The variables to set on top of os.environ for every vLLM start (a copy)."""
    return dict(SERVE_ENV)


def server_cmd_template(venv: Path, model_dir: Path, extra: str = "", *,
                        inline_env: bool = False) -> str:
    """serve_argv as one string for `varcas optimize --server-cmd`: shlex-quoted words,
    literal braces doubled, `{port}` left for varcas; `extra` is appended as written (e.g.
    "--max-num-seqs {max_num_seqs}"). inline_env: start with `env K=V ...` so the command
    needs nothing from varcas's environment."""
    words = [w if w == "{port}" else shlex.quote(w).replace("{", "{{").replace("}", "}}")
             for w in serve_argv(venv, model_dir, "{port}")]
    if inline_env:
        words[:0] = ["env", *(f"{k}={shlex.quote(v)}" for k, v in SERVE_ENV.items())]
    return " ".join(words + ([extra] if extra else []))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _die_with_parent():
    """A preexec_fn: SIGKILL the child when the thread that started it ends (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl, parent = ctypes.CDLL(None, use_errno=True).prctl, os.getpid()

    def preexec() -> None:   # between fork and exec: keep it tiny
        prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
        if os.getppid() != parent:   # the parent died before prctl took effect
            os._exit(1)
    return preexec


# PR_SET_PDEATHSIG reaches the API server only: its engine core, spawned by it, lives on
# when it is SIGKILLed (measured: forever, with ~1.7 GiB), and SIGTERM does not help either
# while the engine starts (the API server does not act on it until it is up). So a watchdog
# process, outside the server's group, SIGKILLs the group when the test process is gone and
# exits when the group is gone.
_WATCHDOG = """
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
parent, pgid = int(sys.argv[1]), int(sys.argv[2])
while True:
    try:
        os.killpg(pgid, signal.SIGKILL if os.getppid() != parent else 0)
    except ProcessLookupError:
        break
    time.sleep(0.2)
"""


def _start_watchdog(pgid: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-I", "-S", "-c", _WATCHDOG, str(os.getpid()), str(pgid)],
                            stdin=subprocess.DEVNULL, start_new_session=True)


class VllmServer:
    """A vLLM server on a free loopback port, ready when __enter__ returns.

    .url, .port, .pid, .log_path, .ready_s (start to first 200 from /v1/models);
    .kill() SIGKILLs the whole process group (crash tests); leaving the `with` block
    SIGTERMs the group, then SIGKILLs what is left after 10 s, also on exceptions.
    Not thread-safe; one start per instance."""

    def __init__(self, venv: Path, model_dir: Path, *, served_name: str = "tiny", extra=(),
                 log_path: Path | None = None, ready_timeout_s: float = 300.0,
                 env: dict[str, str] | None = None):
        if not Path(model_dir, "config.json").is_file():
            raise FileNotFoundError(f"no model in {model_dir}: run .ci/real-vllm.sh")
        self.venv, self.model_dir, self.served_name = Path(venv), Path(model_dir), served_name
        self.extra, self.ready_timeout_s, self.env = list(extra), ready_timeout_s, env or {}
        self.log_path = Path(log_path) if log_path else \
            Path(tempfile.mkdtemp(prefix="varcas-vllm-")) / "server.log"
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self._watchdog: subprocess.Popen | None = None
        self._started = 0.0
        self.ready_s = float("nan")

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def __enter__(self) -> VllmServer:
        try:
            self.start()
        except BaseException:
            self.kill()   # a vLLM that is still starting does not act on SIGTERM
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        """Start the server and wait until it answers; a port taken between free_port()
        and vLLM's bind is retried on another port."""
        for _ in range(3):
            self._spawn()
            if self._wait_ready():
                return
            self.kill()
        raise RuntimeError(f"vLLM found no free port; log {self.log_path}:\n{self.log_tail()}")

    def _spawn(self) -> None:
        self.port = free_port()
        argv = serve_argv(self.venv, self.model_dir, self.port, self.served_name, self.extra)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"== started {shlex.join(argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, **SERVE_ENV, **self.env}, start_new_session=True,
                preexec_fn=_die_with_parent())
        self._started = time.monotonic()
        self._watchdog = _start_watchdog(self.proc.pid)

    def _wait_ready(self) -> bool:
        """True once GET /v1/models answers 200; False if vLLM exited because the port
        was taken; raises if it exited otherwise or the timeout passed."""
        deadline = self._started + self.ready_timeout_s
        with httpx.Client(timeout=2.0) as client:
            while True:
                if self.proc.poll() is not None:
                    tail = self.log_tail()
                    if "address already in use" in tail.lower():
                        return False
                    raise RuntimeError(f"vLLM exited with status {self.proc.returncode} before "
                                       f"it was ready; log {self.log_path}:\n{tail}")
                try:
                    if client.get(self.url + "/v1/models").status_code == 200:
                        self.ready_s = time.monotonic() - self._started
                        return True
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"vLLM not ready after {self.ready_timeout_s:.0f} s; "
                                       f"log {self.log_path}:\n{self.log_tail()}")
                time.sleep(0.25)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL the whole group now, as a crash would (no graceful shutdown); returns
        once every process of it is gone."""
        if self.proc is not None:
            self._signal_group(signal.SIGKILL)
            self._reap(5.0)

    def stop(self) -> None:
        """SIGTERM the group; SIGKILL whatever is left after STOP_GRACE_S; reap."""
        if self.proc is None:
            return
        self._signal_group(signal.SIGTERM)
        if not self._reap(STOP_GRACE_S):
            self._signal_group(signal.SIGKILL)
            self._reap(5.0)

    def _reap(self, timeout_s: float) -> bool:
        """Wait up to timeout_s for the group to be gone; then reap the leader and the
        watchdog (which exits once the group is gone). False on timeout."""
        if not self._wait_group_gone(timeout_s):
            return False
        self.proc.wait()
        self._watchdog.wait()
        return True

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)   # start_new_session: the group id is the pid
        except ProcessLookupError:
            pass

    def _wait_group_gone(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while True:
            self.proc.poll()   # reap the leader so that a zombie does not keep the group
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
