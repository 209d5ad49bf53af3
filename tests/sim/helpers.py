"""Helpers for simulator tests: small engines with hand-picked limits, and scripted runs."""
from __future__ import annotations

import dataclasses

import numpy as np

from varcas import roofline
from varcas.rundir import REQUEST_SCHEMA
from varcas.sim.config import SimConfig, resolve
from varcas.sim.engine import Engine
from varcas.targets.offline import VirtualRun

BASE = resolve(SimConfig(model="llama-2-7b", gpu="t4", quant="awq", max_num_seqs=8))
V0 = {"scheduler": "v0", "chunked_prefill": False}   # vLLM V0's default engine, for setup_with


def setup_with(**changes):
    """The T4 / llama-2-7b-awq setup (vLLM 0.32's engine: chunked prefill, budget 2048) with
    engine limits replaced (num_blocks, budget, scheduler, ...)."""
    changes.setdefault("watermark_blocks", 0)
    return dataclasses.replace(BASE, **changes)


def step_ns(setup, prefill_chunks, decode_contexts) -> int:
    """What the engine must charge for a step: the roofline's time, in whole ns."""
    return max(1, round(roofline.step_time_s(setup.hw, setup.model, prefill_chunks, decode_contexts) * 1e9))


class RecordingEngine(Engine):
    """An Engine that keeps every token time (.tokens) and finish time (.finished_at) per id."""

    def __init__(self, setup):
        super().__init__(setup)
        self.tokens: dict[int, list[int]] = {}
        self.finished_at: dict[int, int] = {}

    def finish(self, step, t):
        sampled, finished = super().finish(step, t)
        for s in sampled:
            self.tokens.setdefault(s.rid, []).append(t)
        for s in finished:
            self.finished_at[s.rid] = t
        return sampled, finished


def run_steps(eng, t=0, limit=100_000):
    """Run planned steps back to back until idle; returns the steps and the end time."""
    steps = []
    while (step := eng.schedule()) is not None:
        assert len(steps) < limit, "the engine did not drain"
        steps.append(step)
        t += step.dur_ns
        eng.finish(step, t)
    return steps, t


class RowsByRequest(dict):
    """Stands in for a Recorder: each row as a dict of its columns, keyed by request id."""

    pending = 0  # never flushed

    def record(self, **row):
        assert set(row) == set(REQUEST_SCHEMA.names), "a row names exactly the schema's columns"
        assert row["request_id"] not in self, "a request was recorded twice"
        self[row["request_id"]] = {**row, "token_ns": list(row["token_ns"])}


def virtual(setup, when_ns, input_len, output_len, timeout_ns=10**15, check=None):
    """A VirtualRun over explicit arrays; returns (run, rows as dicts keyed by request id).
    check(run), if given, is called before the run starts (to wrap the engine)."""
    rows = RowsByRequest()
    run = VirtualRun(setup, np.asarray(when_ns, np.int64), np.asarray(input_len, np.int32),
                     np.asarray(output_len, np.int32), timeout_ns, rows)
    if check is not None:
        check(run)
    run.run()
    return run, rows
