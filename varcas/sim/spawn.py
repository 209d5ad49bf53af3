"""Start the simulated server in a subprocess: spawn(...) -> SimProcess, a context manager.

What `python -m varcas.load` with no --url uses, and what tests and benchmarks use. The
settings are checked and resolved here first (config.resolve), so a bad model, GPU or value is
a one-line VarcasError before any process starts, and .params are the exact parameters the
server runs with (for the run manifest). The server binds 127.0.0.1 on a free port; starting,
the bounded wait for its one `varcas-sim listening on URL` line and stopping are
varcas.serve.spawn's (leaving the `with` block sends SIGTERM, then SIGKILL 5 s later).
"""
from __future__ import annotations

from ..serve.spawn import ServerProcess, start_server
from . import flags
from .config import SERVER_NAME, Setup, resolve

START_TIMEOUT_S = 20.0


class SimProcess(ServerProcess):
    """A running simulator: .url, .port, .proc, .setup, .params; a context manager."""

    def __init__(self, proc, url: str, port: int, stderr, setup: Setup):
        super().__init__(proc, url, port, stderr)
        self.setup = setup

    @property
    def params(self) -> dict:
        return self.setup.params()

    def describe(self) -> str:
        return self.setup.describe()

    def metrics_text(self) -> str:
        """GET /metrics (Prometheus text)."""
        return self.get("/metrics").text


def spawn(**settings) -> SimProcess:
    """Start `python -m varcas.sim` with these engine settings (SimConfig field names: model,
    gpu, quant, max_num_seqs, ...; SimConfig's defaults for the rest) on a free loopback port;
    VarcasError for a bad setting or a server that cannot start."""
    setup = resolve(flags.config(settings))
    argv = [*flags.argv(settings), "--host", "127.0.0.1", "--port", "0"]
    return start_server("varcas.sim", argv, SERVER_NAME, "the simulator", START_TIMEOUT_S, SimProcess,
                        setup=setup)
