"""Start the simulated server in a subprocess: spawn(...) -> SimProcess, a context manager.

What `python -m varcas.load` with no --url uses, and what tests and benchmarks use. The
settings are parsed and resolved here first (config.resolve), so a bad model, GPU or flag is
a one-line VarcasError before any process starts, and .params are the exact parameters the
server runs with (for the run manifest). The server binds 127.0.0.1 on a free port; starting,
the bounded wait for its one `varcas-sim listening on URL` line and stopping are
varcas.serve.spawn's (leaving the `with` block sends SIGTERM, then SIGKILL 5 s later).
"""
from __future__ import annotations

from collections.abc import Sequence

from ..cli import OneLineParser
from ..errors import VarcasError
from ..serve.spawn import ServerProcess, start_server
from .cli import build_parser, sim_config
from .config import SERVER_NAME, Setup, SimConfig, resolve

START_TIMEOUT_S = 20.0


class _RaisingParser(OneLineParser):
    """Flag errors as VarcasError: spawn() is library code, it must not exit the process."""

    def error(self, message: str):
        raise VarcasError(f"simulator flags: {message}")


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


def parse_flags(argv: Sequence[str]):
    """`varcas sim` flags parsed as its CLI does; a bad flag is a VarcasError, not an exit."""
    return build_parser("varcas sim", _RaisingParser).parse_args(list(argv))


def spawn(model: str = SimConfig.model, gpu: str = SimConfig.gpu, quant: str = SimConfig.quant,
          max_num_seqs: int = SimConfig.max_num_seqs, extra_args: Sequence[str] = ()) -> SimProcess:
    """Start `python -m varcas.sim` on a free loopback port; VarcasError if it cannot start."""
    argv = ["--model", model, "--gpu", gpu, "--quant", quant, "--max-num-seqs", str(max_num_seqs),
            *extra_args, "--host", "127.0.0.1", "--port", "0"]
    args = parse_flags(argv)
    if args.offline:
        raise VarcasError("spawn() starts a server; --offline is for simulate()")
    setup = resolve(sim_config(args))
    return start_server("varcas.sim", argv, SERVER_NAME, "the simulator", START_TIMEOUT_S, SimProcess,
                        setup=setup)
