"""Where the load goes: the user's server (--url), or the built-in vLLM simulator.

With no --url, varcas starts its simulator (varcas.sim: a vLLM-like server whose step times
come from the roofline model; llama-2-7b AWQ on a T4 with vLLM's default max-num-seqs unless
the --sim-* flags say otherwise) on a free loopback port, says so in one line, and records in
the manifest that the target was the simulator and with which parameters.
"""
from __future__ import annotations

import contextlib


@contextlib.contextmanager
def open_target(url: str | None, sim_flags: dict, console):
    """Yield (url, kind, params); kind is 'server' for --url, 'sim' for the simulator.

    sim_flags are keyword arguments of varcas.sim.spawn (model, gpu, quant, max_num_seqs);
    the simulator's own defaults apply to those not given.
    """
    if url is not None:
        yield url, "server", None
        return
    from ..sim.spawn import spawn  # imported here: varcas.sim imports the load runner

    with spawn(**sim_flags) as server:  # VarcasError if it cannot start
        if console is not None:
            console.print(f"no --url: load-testing varcas's simulated vLLM server at {server.url}: {server.describe()}")
        yield server.url, "sim", server.params
