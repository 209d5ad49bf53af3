"""The offline simulator writes metrics.parquet as a scraper would have recorded it in virtual
time: counters end at the engine's totals, histograms hold every request's observations, gauges
follow the step log, and analyze reads the file as it reads a served run's."""
from __future__ import annotations

import json

import numpy as np
import pyarrow.compute as pc
import pytest

from varcas import metricsfile, rundir
from varcas.analyze import load_run, summarize
from varcas.load.runner import LoadConfig
from varcas.sim import SimConfig, resolve
from varcas.sim.virtual_metrics import sample_times
from varcas.targets.offline import simulate

SETUP = resolve(SimConfig(max_num_seqs=4))
MODEL = {"model_name": SETUP.served_name}


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("virtual") / "run"
    return simulate(SETUP, LoadConfig(rps=1.0, duration_s=40.0, out=str(out), quiet=True, seed=2))


def series(table, name: str, labels: dict = MODEL):
    """(t_ns, values) of one series."""
    want = json.dumps(labels, sort_keys=True, separators=(",", ":"))
    rows = table.filter(pc.and_(pc.equal(table["name"].cast("string"), name),
                                pc.equal(table["labels"].cast("string"), want)))
    return rows["t_ns"].to_numpy(), rows["value"].to_numpy()


def test_samples_cover_the_run_at_the_interval(result):
    m = result.manifest
    t, _ = series(metricsfile.read(result.run_dir), "vllm:num_requests_running")
    assert np.array_equal(t, sample_times(m["start_ns"], m["end_ns"], 500_000_000))
    assert t[0] == m["start_ns"] and t[-1] >= m["end_ns"] > t[-2]
    assert m["telemetry"]["virtual"] and m["telemetry"]["scrapes"] == t.size


def test_counters_end_at_the_engines_totals(result):
    table, sim = metricsfile.read(result.run_dir), result.manifest["sim"]
    assert series(table, "vllm:prompt_tokens_total")[1][-1] == sim["prompt_tokens"]
    assert series(table, "vllm:generation_tokens_total")[1][-1] == sim["generation_tokens"]
    assert series(table, "vllm:num_preemptions_total")[1][-1] == sim["preemptions"]
    done = series(table, "vllm:request_success_total", {"finished_reason": "length", **MODEL})[1]
    assert done[-1] == result.manifest["counts"]["ok"] and np.all(np.diff(done) >= 0) and done[0] == 0


def test_histograms_hold_every_observation(result):
    table = metricsfile.read(result.run_dir)
    rows = rundir.read_requests(result.run_dir / rundir.PARQUET).to_pylist()
    ok = [r for r in rows if r["error"] is None]
    ttft = [(r["first_token_ns"] - r["sent_ns"]) / 1e9 for r in ok]
    gaps = [(b - a) / 1e9 for r in ok for a, b in zip(r["token_ns"], r["token_ns"][1:])]
    for name, observed in (("vllm:time_to_first_token_seconds", ttft), ("vllm:time_per_output_token_seconds", gaps)):
        assert series(table, f"{name}_count")[1][-1] == len(observed)
        assert series(table, f"{name}_sum")[1][-1] == pytest.approx(sum(observed), rel=1e-12)
        inf = series(table, f"{name}_bucket", {"le": "+Inf", **MODEL})[1]
        assert np.array_equal(inf, series(table, f"{name}_count")[1])
        below_1s = series(table, f"{name}_bucket", {"le": "1.0", **MODEL})[1][-1]
        assert below_1s == sum(v <= 1.0 for v in observed)


def test_gauges_follow_the_step_log(result):
    table, steps = metricsfile.read(result.run_dir), result.steps
    t, running = series(table, "vllm:num_requests_running")
    end = steps["start_ns"] + steps["dur_ns"]
    for ti, value in zip(t, running):
        i = np.searchsorted(steps["start_ns"], ti, side="right") - 1
        assert value == (steps["running"][i] if i >= 0 and ti < end[i] else 0)
    assert running.max() <= SETUP.max_num_seqs and running.max() > 0


def test_analyze_reads_it_as_a_served_runs(result):
    summary = summarize(load_run(result.run_dir))
    server = summary.to_dict()["server"]
    assert 0 < server["running"]["mean"] <= SETUP.max_num_seqs
    assert not any("server and client disagree" in w for w in summary.warnings)


def test_no_metrics_without_an_interval(tmp_path):
    r = simulate(SETUP, LoadConfig(rps=1.0, duration_s=5.0, out=str(tmp_path / "r"), quiet=True,
                                   metrics_interval_s=0.0))
    assert metricsfile.read(r.run_dir) is None and "telemetry" not in r.manifest
