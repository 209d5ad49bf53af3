"""Start a real vLLM server (CPU build, set up by .ci/real-vllm.sh) for tests; no pytest here.

    paths = vllm_paths()                      # None: not set up, the tests skip
    with VllmServer(paths[0], paths[1] / "tiny-4k", extra=["--max-num-seqs", "16"]) as srv:
        httpx.get(srv.url + "/v1/models")

The server is `VENV/bin/vllm serve MODEL ...` exactly as a user types it (serve_argv), with
the environment of serve_env() on top of os.environ, started by varcas's own launcher (the
one `optimize --server-cmd` uses): vLLM runs as a process tree (API server, engine core) in
a process group of its own, stopped as a whole, and a watchdog stops that group if the test
process dies first (a starting vLLM ignores SIGTERM and its engine core would live on).

For `varcas optimize --server-cmd`, server_cmd_template() gives the same command as one
string with {port}; varcas's launcher gives the server varcas's own environment, so the
variables of serve_env() must be set in varcas's process (or pass inline_env=True to put
them in the command through `env`).
"""
from __future__ import annotations

import os
import shlex
import signal
import tempfile
from pathlib import Path

from varcas.optimize.server import free_port, launch

VLLM_VERSION = "0.32.0"
DEFAULT_VENV = Path.home() / ".cache" / "varcas" / f"vllm-{VLLM_VERSION}"
DEFAULT_MODELS = Path.home() / ".cache" / "varcas" / "vllm-models"
STAMP = ".varcas-vllm-ok"   # written by .ci/real-vllm.sh once the venv serves
MAX_MODEL_LEN = 512
HOST = "127.0.0.1"
STOP_GRACE_S = 10.0

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


class VllmServer:
    """A vLLM server on a free loopback port, ready when __enter__ returns: varcas's own
    launcher (varcas.optimize.server.launch: own process group, readiness over /health and
    /v1/models, PR_SET_PDEATHSIG and a watchdog so nothing outlives the test process, SIGTERM
    then SIGKILL to the group), with the vLLM argv and environment above.

    .url, .port, .pid, .log_path, .ready_s; .kill() SIGKILLs the whole group (crash tests)."""

    def __init__(self, venv: Path, model_dir: Path, *, served_name: str = "tiny", extra=(),
                 log_path: Path | None = None, ready_timeout_s: float = 300.0):
        if not Path(model_dir, "config.json").is_file():
            raise FileNotFoundError(f"no model in {model_dir}: run .ci/real-vllm.sh")
        self.port = free_port()
        self.argv = serve_argv(venv, model_dir, self.port, served_name, extra)
        self.log_path = Path(log_path) if log_path else Path(tempfile.mkdtemp(prefix="varcas-vllm-")) / "server.log"
        self.ready_timeout_s = ready_timeout_s
        self._server = None

    url = property(lambda self: self._server.url)
    pid = property(lambda self: self._server.pid)
    ready_s = property(lambda self: self._server.ready_s)

    def __enter__(self) -> VllmServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._server = launch(self.argv, self.log_path, host=HOST, port=self.port, env=SERVE_ENV,
                              ready_timeout_s=self.ready_timeout_s, grace_s=STOP_GRACE_S)
        return self

    def __exit__(self, *exc) -> None:
        self._server.stop(STOP_GRACE_S)

    def kill(self) -> None:
        """SIGKILL the whole group now, as a crash would; returns once its leader is reaped."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._server.stop(0.0)
