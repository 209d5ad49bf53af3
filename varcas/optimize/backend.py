"""Where a sweep's load goes, for one configuration: open_backend(spec, params, log) -> Backend.

Four kinds, one interface (Backend.run(LoadConfig) -> run directory):
  server    --url: a server someone else runs; it cannot be restarted, so it takes no params
  command   --server-cmd: varcas starts the server per configuration (server.launch: own process
            group, log file, readiness over /health and /v1/models, SIGTERM then SIGKILL)
  sim       neither: varcas's simulated vLLM server, started the same way as a command, with the
            configuration's params as its vLLM-named flags (max_num_seqs -> --max-num-seqs)
  offline   --offline: the simulator in virtual time (varcas.targets.offline), seconds per run
The simulator's flags are checked before anything starts, so a bad value is a one-line error.
--calibration FILE (varcas calibrate's fit) sets the simulator's efficiencies and per-step overhead
under its --param values, which win per configuration.
"""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..clikit import positive_float
from ..errors import VarcasError
from ..load.runner import LoadConfig, run_load
from ..serve.spawn import child_env
from ..sim import flags as sim_flags
from ..sim.config import Setup, resolve
from ..sim.flags import add_sim_choice_flags, sim_choices
from ..targets import offline
from . import params as P
from .server import ManagedServer, free_port, launch


@dataclass
class BackendSpec:
    """What the backend flags say: a URL, a server command template, or the simulator."""

    url: str | None = None
    server_cmd: str | None = None
    offline: bool = False
    sim: dict = field(default_factory=dict)  # varcas.sim engine flags: model, gpu, quant, max_num_seqs
    ready_timeout_s: float = 600.0

    @property
    def kind(self) -> str:
        return "offline" if self.offline else "server" if self.url else "command" if self.server_cmd else "sim"

    def public(self) -> dict:
        """As stored in sweep.json."""
        return {"kind": self.kind, "url": self.url, "server_cmd": self.server_cmd, "sim": dict(self.sim)}

    def check(self, names: list[str]) -> None:
        """Fail early on a spec that cannot run with these parameter names."""
        if sum(map(bool, (self.url, self.server_cmd, self.offline))) > 1:
            raise VarcasError("--url, --server-cmd and --offline exclude each other")
        if self.url and names:
            raise VarcasError("--param needs --server-cmd or the simulator: a server at --url cannot be restarted with other settings")
        if self.server_cmd:
            P.command_template(self.server_cmd, names)
        if self.sim and (self.url or self.server_cmd):
            raise VarcasError("--sim-* flags apply to the simulator only, not to --url or --server-cmd")


class Backend:
    """One configuration's target: run(cfg) is one normal load run against it."""

    def __init__(self, kind: str, description: str, url: str | None = None,
                 server: ManagedServer | None = None, setup: Setup | None = None, console=None):
        self.kind, self._description, self.url = kind, description, url
        self.server, self.setup, self._console = server, setup, console

    def describe(self) -> str:
        return self._description

    def problem(self) -> str | None:
        """None while the backend is usable; else why not (a managed server that exited)."""
        return self.server.exit_reason() if self.server is not None else None

    def run(self, cfg: LoadConfig) -> Path:
        """One load run (cfg.out set by the caller); returns its run directory."""
        if self.setup is not None:
            return offline.simulate(self.setup, cfg).run_dir
        cfg.url = self.url
        return run_load(cfg, self._console if not cfg.quiet else None)


def sim_argv(sim: dict, params: dict[str, str]) -> list[str]:
    """`varcas sim` flags for the engine settings `sim` and a configuration's params (values, or
    {NAME} placeholders filled per configuration); VarcasError for a param the simulator lacks."""
    for name in params:
        if name not in sim_flags.BY_NAME:
            raise VarcasError(f"--param {name}: the simulator has no such setting (it has: {', '.join(sim_flags.BY_NAME)})")
    return sim_flags.argv({**sim, **params})


def sim_setup(sim: dict, params: dict[str, str]) -> Setup:
    """The simulator's resolved settings for one configuration (checks every value)."""
    sim_argv(sim, params)
    return resolve(sim_flags.config({**sim, **params}))


@contextlib.contextmanager
def open_backend(spec: BackendSpec, params: dict[str, str], log_path: Path, console=None) -> Iterator[Backend]:
    """Start what spec says for this configuration; stop it when the block ends (even on Ctrl-C)."""
    spec.check(list(params))
    if spec.url:
        yield Backend("server", f"the server at {spec.url}", url=spec.url, console=console)
        return
    if spec.offline:
        setup = sim_setup(spec.sim, params)
        yield Backend("offline", f"simulated offline (virtual time): {setup.describe()}", setup=setup)
        return
    if spec.server_cmd:
        template = P.command_template(spec.server_cmd, list(params))
        what = "server"
    else:
        sim_setup(spec.sim, params)  # a bad value fails here, not as a server that will not start
        words = [w.replace("{", "{{").replace("}", "}}") for w in sim_argv(spec.sim, params)]  # values, not placeholders
        template = [sys.executable, "-m", "varcas.sim", *words, "--host", "127.0.0.1", "--port", "{port}"]
        what = "simulator"
    port = free_port()
    argv = P.fill(template, params, port)
    with launch(argv, log_path, port=port, ready_timeout_s=spec.ready_timeout_s, env=child_env()) as server:
        desc = f"{what} {server.model} at {server.url} (ready in {server.ready_s:.1f} s, log {log_path})"
        yield Backend("command" if spec.server_cmd else "sim", desc, url=server.url, server=server, console=console)


def add_backend_flags(parser) -> None:
    """The flags that choose the backend, as one argument group."""
    g = parser.add_argument_group("target (default: varcas's simulated vLLM server)")
    g.add_argument("--url", help="a running server's base URL (it cannot be restarted, so no --param)")
    g.add_argument("--server-cmd", metavar="CMD",
                   help="server command template, e.g. 'vllm serve M --max-num-seqs {max_num_seqs} --port {port}' "
                        "(split with shlex, no shell)")
    g.add_argument("--offline", action="store_true", help="the simulator in virtual time: no server, seconds per run")
    g.add_argument("--ready-timeout", dest="ready_timeout_s", type=positive_float, default=600.0,
                   help="seconds a started server may take to become ready (default 600)")
    add_sim_choice_flags(g)
    g.add_argument("--calibration", metavar="FILE", help="the simulator's efficiencies and per-step overhead, "
                   "fitted by varcas calibrate (its --json file) for its model and GPU; a --param of the same "
                   "setting wins")


def backend_spec(args, sim: dict | None = None, *, own_roofline: bool = False) -> BackendSpec:
    """BackendSpec from the flags of add_backend_flags. sim: engine settings the command fixes for
    the simulator (the pipeline's model, GPU and quantization), used when the simulator is the
    target, as --calibration is (sim_flags.calibrated). own_roofline: the command also applies
    --calibration to a roofline of its own (pipeline), so a real server may come with it."""
    spec = BackendSpec(url=args.url, server_cmd=args.server_cmd, offline=args.offline, sim=sim_choices(args),
                       ready_timeout_s=args.ready_timeout_s)
    if spec.kind in ("sim", "offline"):
        spec.sim = sim_flags.calibrated({**spec.sim, **(sim or {})}, args.calibration)
    elif args.calibration and not own_roofline:
        raise VarcasError("--calibration sets the simulator's efficiencies and overhead: it does not apply to "
                          "--url or --server-cmd")
    return spec
