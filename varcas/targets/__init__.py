"""Where a run goes: the user's server (--url), or the built-in vLLM simulator.

With no --url, varcas starts its simulator (varcas.sim: a vLLM-like server whose step times
come from the roofline model; llama-2-7b AWQ on a T4 with vLLM's default max-num-seqs unless
the --sim-* flags say otherwise) on a free loopback port, says so in one line, and records in
the manifest that the target was the simulator and with which parameters. This layer sits
above both the load generator and the simulator: it is where they meet (also offline.py, the
simulator in virtual time over the load generator's schedule, and the `varcas load` and
`varcas sim` commands).
"""
from __future__ import annotations

import contextlib
from pathlib import Path

from ..load import runner
from ..signals import interrupts_raise
from ..sim.spawn import spawn


@contextlib.contextmanager
def open_target(url: str | None, sim_settings: dict, console):
    """Yield (url, kind, params); kind is 'server' for --url, 'sim' for the simulator.

    sim_settings are varcas.sim.spawn's (model, gpu, quant, max_num_seqs, ...); the
    simulator's own defaults apply to those not given.
    """
    if url is not None:
        yield url, "server", None
        return
    with spawn(**sim_settings) as server:  # VarcasError if it cannot start
        if console is not None:
            console.print(f"no --url: load-testing varcas's simulated vLLM server at {server.url}: {server.describe()}")
        yield server.url, "sim", server.params


def run_load(cfg: runner.LoadConfig, console=None) -> Path:
    """varcas.load.run_load against cfg.url, or, without one, against the simulator started for
    this run (cfg.sim's settings) and stopped after it. Local inputs are checked first."""
    if cfg.url is not None:
        return runner.run_load(cfg, console)
    with interrupts_raise() as rearm:
        prep = runner.prepare(cfg)
        with open_target(None, cfg.sim, console) as (url, kind, params):
            return runner.run_prepared(prep, url, kind, params, console, rearm)
