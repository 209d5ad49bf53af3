"""Runs too short for a steady state say how long they must be, and that length is enough."""
from __future__ import annotations

from varcas.analyze import load_run, summarize
from varcas.load.runner import LoadConfig
from varcas.sim import SimConfig, resolve
from varcas.targets.offline import simulate

SETUP = resolve(SimConfig())  # the default target: requests of 2,000 tokens stream for about 10 s


def _summary(tmp_path, name: str, duration_s: float):
    cfg = LoadConfig(workload="chat_medium", rps=2.0, duration_s=duration_s, input_len=100, output_len=2000,
                     arrival="constant", out=str(tmp_path / name), quiet=True)
    return summarize(load_run(simulate(SETUP, cfg).run_dir))


def test_a_short_run_says_the_duration_it_needs_and_that_duration_is_steady(tmp_path):
    short = _summary(tmp_path, "short", 12.0)
    v = short.verdict
    assert not v.steady and not v.overloaded
    e2e_p90_s = short.whole.latency["e2el"].percentiles[90] / 1e3
    assert v.needed_s == 10 * -(-2 * (e2e_p90_s + 10) // 10) and v.needed_s > 12.0
    assert f"Runs need --duration {v.needed_s:.0f} s or more" in v.text
    assert short.to_dict()["verdict"]["needed_duration_s"] == v.needed_s
    enough = _summary(tmp_path, "enough", v.needed_s)
    assert enough.verdict.steady and not enough.verdict.overloaded and enough.verdict.needed_s is None
