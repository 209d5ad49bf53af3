"""varcas.sim: a vLLM server simulated on the roofline model, served or in virtual time.

A continuous-batching engine with vLLM's scheduling (vLLM 0.32's by default, V0's with
--scheduler v0: FCFS queue, max-num-seqs, token budget, chunked prefill on or off, paged KV
cache of 16-token blocks sized as vLLM sizes it, preemption by recompute) whose
every step takes the time varcas.roofline predicts for exactly that step's mix. It has no
hardware numbers of its own. Two clocks drive the same engine:

    from varcas import sim
    setup = sim.resolve(sim.SimConfig(gpu="t4", quant="awq", max_num_seqs=8))
    result = varcas.targets.offline.simulate(setup, LoadConfig(workload="chat_medium", rps=20, duration_s=600))
    result.run_dir                                # a normal run directory, flagged simulated

    with sim.spawn(max_num_seqs=8) as server:     # an OpenAI-compatible server on loopback
        run_load(LoadConfig(url=server.url, ...))

Modules: config (settings -> engine numbers), engine (scheduler + KV blocks), api (request
validation), realtime + server (HTTP on uvloop), metrics (/metrics), flags (the engine flags,
declared once), spawn (subprocess). The offline driver (virtual time) and the `varcas sim`
command live in varcas.targets: they join this engine with the load generator's schedule.
"""
from .config import Setup, SimConfig, resolve
from .engine import Engine, Seq, Step, StepLog
from .spawn import SimProcess, spawn

__all__ = ["Engine", "Seq", "SimConfig", "SimProcess", "Setup", "Step", "StepLog", "resolve", "spawn"]
