"""`varcas sim`: serve the simulated vLLM server, or with --offline predict a load test's run
directory in virtual time. Flags are vLLM's (the engine's, varcas.sim.flags) and the load
generator's (offline, varcas.load.flags)."""
from __future__ import annotations

import uvloop
from rich.console import Console

from ..clikit import OneLineParser
from ..errors import VarcasError
from ..load.flags import WORKLOAD, add_load_flags
from ..load.runner import LoadConfig
from ..load.summary import print_summary
from ..sim.config import resolve
from ..sim.flags import add_engine_flags, from_args
from ..sim.server import serve
from .offline import simulate

OFFLINE_FLAGS = (*WORKLOAD, "request_timeout_s", "out")


def build_parser(prog: str) -> OneLineParser:
    p = OneLineParser(prog=prog, description="A vLLM server simulated on the roofline model: "
                      "served over HTTP (default), or run offline in virtual time.")
    add_engine_flags(p.add_argument_group("engine (vLLM's flags)"))
    s = p.add_argument_group("server")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8000, help="port; 0 picks a free one (default 8000)")
    o = p.add_argument_group("offline (virtual time; the load generator's flags)")
    o.add_argument("--offline", action="store_true", help="simulate a load test instead of serving")
    add_load_flags(o, OFFLINE_FLAGS, request_timeout_s={
        "help": "seconds a simulated client waits before giving up (default 600)"})
    return p


def run(args) -> int:
    setup = resolve(from_args(args))
    if args.offline:
        return _offline(setup, args)
    if not 0 <= args.port <= 65535:
        raise VarcasError(f"--port must be in [0, 65535], got {args.port}")
    uvloop.run(serve(setup, args.host, args.port, ready=lambda line: print(line, flush=True)))
    return 0


def _offline(setup, args) -> int:
    cfg = LoadConfig(quiet=True, **{k: getattr(args, k) for k in OFFLINE_FLAGS})
    console = Console(highlight=False)
    result = simulate(setup, cfg)
    sim = result.manifest["sim"]
    console.print(f"simulated {setup.describe()}: {sim['virtual_s']:.1f} s of serving in "
                  f"{sim['wall_s']:.1f} s ({sim['steps']} steps, {sim['preemptions']} preemptions)")
    return print_summary(result.run_dir, console)
