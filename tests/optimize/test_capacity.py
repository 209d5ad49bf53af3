"""Capacity search (`varcas sweep-rate`): the bracketing search on the offline simulator (a T4
serving llama-2-7b-awq with max-num-seqs 8 has a capacity near 1 req/s of chat_medium),
capacity.json, resuming, interrupted runs, searches that find nothing, bad flags, and the
search's convergence on a synthetic pass/fail threshold (hypothesis)."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import varcas.targets.offline
from tests.cli_helpers import T4, T4_SIM_FLAGS, cli
from varcas.analyze import load_run, summarize
from varcas.errors import VarcasError
from varcas.load.runner import LoadConfig
from varcas.optimize.capacity import (
    CAPACITY_FILE,
    SearchSpec,
    Step,
    judge,
    search,
    sweep,
)
from varcas.rundir import read_manifest, write_manifest
from varcas.sim.config import SimConfig, resolve

SETUP = resolve(SimConfig(model="llama-2-7b", gpu="t4", quant="awq", max_num_seqs=8))
SLOS = {"ttft": 1000.0, "tpot": 100.0}
SPEC = SearchSpec(slos=SLOS, attainment=0.99, start_rps=20.0, min_rps=0.1, max_rps=1000.0, tolerance=0.05,
                 max_steps=12, load={"workload": "chat_medium", "duration_s": 60.0, "seed": 0})
# What the search tests, in order, for seed 0 (observed; the simulator is deterministic): doubling
# down from chat_medium's 20 req/s to the first pass, then bisection at geometric midpoints.
RATES = [20.0, 10.0, 5.0, 2.5, 1.25, 0.625, 0.8839, 1.051, 0.9638, 1.006]
CAPACITY, ABOVE = 1.006, 1.051   # vLLM 0.32's engine (chunked prefill); V0's passed 0.9638, failed 1.006
KNEE = (CAPACITY, ABOVE)   # where attainment falls below the target: the bracket, no run failed on the verdict alone
SIM_FLAGS = ["--offline", *T4_SIM_FLAGS, "--sim-max-num-seqs", "8"]


def simulated(rate: float, run_dir: Path, **load) -> Path:
    """One offline run of chat_medium at `rate` for 60 s (seed 0) into run_dir."""
    cfg = dict(workload="chat_medium", rps=rate, duration_s=60.0, seed=0, out=str(run_dir), quiet=True)
    return varcas.targets.offline.simulate(SETUP, LoadConfig(**{**cfg, **load})).run_dir


class Counting:
    """run_rate for sweep(): simulated runs, counting calls; `hook(n, run_dir)` after call n."""

    def __init__(self, hook=None):
        self.rates: list[float] = []
        self.hook = hook

    def __call__(self, rate: float, run_dir: Path) -> Path:
        self.rates.append(rate)
        path = simulated(rate, run_dir)
        if self.hook:
            self.hook(len(self.rates), path)
        return path


def mark_interrupted(run_dir: Path) -> None:
    manifest = read_manifest(run_dir)
    write_manifest(run_dir, {**manifest, "status": "interrupted"})


def without_paths(steps) -> list[dict]:
    return [{k: v for k, v in dataclasses.asdict(s).items() if k not in ("run_dir", "reused")} for s in steps]


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    out = tmp_path_factory.mktemp("cap") / "search"
    run_rate = Counting()
    return out, sweep(out, SPEC, run_rate), run_rate


def test_the_search_brackets_and_converges_on_the_simulated_t4(searched):
    out, result, run_rate = searched
    assert [s.rate_rps for s in result.steps] == RATES == run_rate.rates
    assert result.outcome == "converged"
    assert (result.capacity_rps, result.lo_rps, result.hi_rps) == (CAPACITY, CAPACITY, ABOVE)
    assert result.hi_rps / result.capacity_rps - 1 <= SPEC.tolerance
    by_rate = {s.rate_rps: s for s in result.steps}
    # The capacity passed; the next tested rate above it failed, on attainment (steady, not overloaded).
    assert by_rate[CAPACITY].passed and by_rate[CAPACITY].attainment >= 0.99
    assert min(r for r in by_rate if r > CAPACITY) == ABOVE
    above = by_rate[ABOVE]
    assert not above.passed and above.attainment < 0.99 and above.overloaded is False
    assert above.reason == f"{above.attainment:.2%} of requests met the SLOs (target 99.00%)"
    assert all(s.passed == (s.rate_rps <= CAPACITY) for s in result.steps)
    # Far above capacity nothing meets the SLOs and the verdict says why.
    assert by_rate[10.0].attainment == 0 and by_rate[10.0].overloaded and "overloaded: " in by_rate[10.0].reason
    assert (result.knee.below.rate_rps, result.knee.above.rate_rps) == KNEE
    assert result.text.startswith(
        "capacity: 1.006 req/s (ttft<=1000 ms, tpot<=100 ms for 99% of requests); 1.051 req/s fails (10 runs); "
        "knee: at least 99% of the offered requests meet the SLOs up to 1.006 req/s (")
    assert result.text.endswith("; failed): the capacity bracket")


def test_capacity_json_holds_the_spec_every_step_and_the_result(searched):
    out, result, _ = searched
    doc = json.loads((out / CAPACITY_FILE).read_text())
    assert doc["spec"] == dataclasses.asdict(SPEC)
    assert [s["rate_rps"] for s in doc["steps"]] == RATES
    assert doc["steps"] == [dataclasses.asdict(s) for s in result.steps]
    assert doc["result"] == result.to_dict()
    assert doc["result"]["bracket"] == {"lo_rps": CAPACITY, "hi_rps": ABOVE}
    assert doc["result"]["knee"]["below_rate_rps"] == KNEE[0] and doc["result"]["runs"] == 10
    assert sorted(p.name for p in out.iterdir()) == sorted([CAPACITY_FILE] + [f"rate-{r:g}" for r in RATES])
    for step in doc["steps"]:
        assert Path(step["run_dir"]).name == f"rate-{step['rate_rps']:g}"
        manifest = read_manifest(step["run_dir"])
        assert manifest["status"] == "complete" and manifest["config"]["rps"] == step["rate_rps"]


def test_rerunning_the_same_search_reuses_every_run(searched, tmp_path):
    out, result, _ = searched
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("rate-*/*")}
    again = Counting()
    repeat = sweep(out, dataclasses.replace(SPEC, max_steps=20, backend="another port"), again)
    assert again.rates == [] and all(s.reused for s in repeat.steps)
    assert without_paths(repeat.steps) == without_paths(result.steps) and repeat.capacity_rps == CAPACITY
    assert {p: p.stat().st_mtime_ns for p in out.glob("rate-*/*")} == mtimes


def test_a_search_cut_short_by_max_steps_resumes_where_it_stopped(searched, tmp_path):
    out = tmp_path / "cap"
    first = sweep(out, dataclasses.replace(SPEC, max_steps=4), Counting())
    assert first.outcome == "max steps" and first.capacity_rps is None and first.hi_rps == 2.5
    assert first.text.startswith("capacity: none found (ttft<=1000 ms, tpot<=100 ms for 99% of requests); "
                                 "2.5 req/s fails (not converged in 4 runs: raise --max-steps)")
    rest = Counting()
    final = sweep(out, SPEC, rest)
    assert rest.rates == RATES[4:] and [s.reused for s in final.steps] == [True] * 4 + [False] * 6
    assert without_paths(final.steps) == without_paths(searched[1].steps)  # same seed, same runs


def test_another_spec_in_the_same_out_is_refused(searched, tmp_path):
    out = searched[0]
    with pytest.raises(VarcasError, match=r"holds a capacity search with another attainment, slos; use another --out$"):
        sweep(out, dataclasses.replace(SPEC, attainment=0.9, slos={"ttft": 500.0}), Counting())
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(VarcasError, match="exists and is neither empty nor a capacity search"):
        sweep(tmp_path / "busy", SPEC, Counting())


def test_an_interrupted_run_stops_the_search_and_is_rerun_on_resume(searched, tmp_path):
    out = tmp_path / "cap"
    interrupted = sweep(out, SPEC, Counting(hook=lambda n, d: n == 3 and mark_interrupted(d)))
    assert interrupted.outcome == "interrupted" and [s.rate_rps for s in interrupted.steps] == RATES[:3]
    last = interrupted.steps[-1]
    assert (last.status, last.passed, last.attainment) == ("interrupted", False, None)
    assert last.reason == "the run was interrupted"
    assert json.loads((out / CAPACITY_FILE).read_text())["result"]["outcome"] == "interrupted"
    rest = Counting()
    final = sweep(out, SPEC, rest)
    assert rest.rates == RATES[2:] and without_paths(final.steps) == without_paths(searched[1].steps)


def test_ctrl_c_between_runs_keeps_what_was_done(tmp_path):
    def hook(n, run_dir):
        if n == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweep(tmp_path / "cap", SPEC, Counting(hook=hook))
    doc = json.loads((tmp_path / "cap" / CAPACITY_FILE).read_text())
    assert [s["rate_rps"] for s in doc["steps"]] == [20.0] and doc["result"]["outcome"] == "interrupted"


def test_nothing_passes_even_at_the_lowest_rate(tmp_path):
    result = search(lambda r: simulated(r, tmp_path / f"r{r:g}"), {"ttft": 1.0}, start_rps=1.0, min_rps=0.5,
                    max_rps=10.0)
    assert [s.rate_rps for s in result.steps] == [1.0, 0.5] and not any(s.passed for s in result.steps)
    assert (result.outcome, result.capacity_rps, result.hi_rps) == ("below min", None, 0.5)
    assert result.text.startswith("capacity: none found (ttft<=1 ms for 99% of requests); 0.5 req/s fails "
                                  "(2 runs; even --min-rps fails)")
    assert result.steps[-1].attainment == 0 and result.steps[-1].reason.startswith("0.00% of requests met the SLOs")


def test_passing_at_the_highest_rate_reports_a_lower_bound(tmp_path):
    result = search(lambda r: simulated(r, tmp_path / f"r{r:g}"), {"ttft": 60_000.0}, start_rps=0.2, min_rps=0.1,
                    max_rps=0.3)
    assert [s.rate_rps for s in result.steps] == [0.2, 0.3] and all(s.passed for s in result.steps)
    assert (result.outcome, result.capacity_rps, result.hi_rps) == ("above max", 0.3, None)
    assert result.text.startswith("capacity: >= 0.3 req/s (ttft<=60000 ms for 99% of requests) "
                                  "(2 runs; --max-rps passed, the capacity may be higher)")


def test_attainment_counts_failed_requests_as_misses(tmp_path):
    # Clients that give up after 3 s: long requests time out (failed), the rest meet a 1 s TTFT.
    run_dir = simulated(0.5, tmp_path / "run", request_timeout_s=3.0)
    step = judge(run_dir, 0.5, {"ttft": 1000.0}, 0.99)
    summary = summarize(load_run(run_dir), goodput={"ttft": 1000.0})
    t0, t1 = (summary.manifest["start_ns"] + round(x * 1e9) for x in (summary.window.start_s, summary.window.end_s))
    rows = pq.read_table(run_dir / "requests.parquet").to_pandas()
    rows = rows[(rows.scheduled_ns >= t0) & (rows.scheduled_ns < t1)]
    good = rows.error.isna() & (rows.first_token_ns - rows.sent_ns <= 1e9)
    assert rows.error.notna().sum() == 14 and summary.steady.goodput_fraction == 1.0
    assert step.attainment == good.sum() / len(rows) == 8 / 22 and not step.passed


def test_a_run_without_a_steady_window_fails_with_the_reason(tmp_path):
    step = judge(simulated(1.0, tmp_path / "run", duration_s=8.0), 1.0, SLOS, 0.99)
    assert not step.passed and step.attainment is None and step.ttft_p99_ms is None
    assert step.reason.startswith("no steady window: the send phase lasted ")
    assert step.reason.endswith(" s, too short to find a steady state (needs 10 s)")


@settings(max_examples=60, deadline=None)
@given(threshold=st.floats(0.1, 1000.0, exclude_min=True), start=st.floats(0.1, 1000.0),
       tolerance=st.floats(0.005, 0.5))
def test_search_brackets_any_threshold_within_tolerance(threshold, start, tolerance):
    """A server that passes exactly below `threshold` req/s: lo < threshold <= hi, hi/lo - 1 <= tolerance,
    within the steps doubling/halving across the range and bisecting need."""
    def fake_judge(run_dir, rate, slos, attainment):
        return Step(rate, str(run_dir), "complete", rate < threshold, "" if rate < threshold else "over")

    result = search(lambda r: Path(f"rate-{r:g}"), SLOS, start_rps=start, min_rps=0.1, max_rps=1000.0,
                    tolerance=tolerance, max_steps=100, judge_run=fake_judge)
    lo, hi = result.capacity_rps, result.hi_rps
    assert result.outcome == "converged" and lo < threshold <= hi and hi / lo - 1 <= tolerance
    rates = [s.rate_rps for s in result.steps]
    assert len(set(rates)) == len(rates)
    assert len(rates) <= math.log2(1e4) + 2 + math.log2(math.log(2) / math.log1p(tolerance)) + 2


def sweep_rate(capsys, *args):
    return cli(capsys, "sweep-rate", *args)


def test_cli_prints_each_step_a_table_and_the_capacity(capsys, searched, tmp_path):
    code, out, err = sweep_rate(capsys, *SIM_FLAGS, "--goodput", "ttft:1000", "tpot:100", "--out", tmp_path / "c",
                                "--json")
    assert code == 0
    doc = json.loads(out)  # stdout is the JSON alone; the console went to stderr
    assert doc == json.loads((tmp_path / "c" / CAPACITY_FILE).read_text())
    assert doc["spec"]["load"] == {"workload": "chat_medium", "duration_s": 60.0, "seed": 0, "target": {
        "kind": "offline", "url": None, "server_cmd": None, "sim": {**T4, "max_num_seqs": 8}}}
    assert doc["spec"]["backend"].startswith("simulated offline (virtual time): llama-2-7b-awq on T4")
    assert [s["rate_rps"] for s in doc["steps"]] == RATES and doc["result"]["capacity_rps"] == CAPACITY
    assert [{k: v for k, v in s.items() if k not in ("run_dir", "reused")} for s in doc["steps"]] == \
        without_paths(searched[1].steps)  # a second search with the same seed: the same steps
    err = " ".join(err.split())  # undo the console's line wrapping
    assert err.count(" req/s fail ") == 6 and err.count(" req/s pass ") == 4
    assert "1.006 req/s pass attainment 100.0%" in err and "overloaded" in err
    assert "capacity: 1.006 req/s (ttft<=1000 ms, tpot<=100 ms for 99% of requests); 1.051 req/s fails" in err


def test_cli_exits_130_when_a_run_is_interrupted(capsys, monkeypatch, tmp_path):
    real = varcas.targets.offline.simulate
    calls = []

    def interrupted_second(setup, cfg):
        result = real(setup, cfg)
        calls.append(cfg.rps)
        if len(calls) == 2:
            mark_interrupted(result.run_dir)
        return result

    monkeypatch.setattr(varcas.targets.offline, "simulate", interrupted_second)
    code, out, err = sweep_rate(capsys, *SIM_FLAGS, "--goodput", "ttft:1000", "--out", tmp_path / "c")
    assert code == 130 and calls == [20.0, 10.0]
    out = " ".join(out.split())
    assert err == "" and "10 req/s fail attainment -" in out and ": the run was interrupted" in out
    assert "capacity: none found (ttft<=1000 ms for 99% of requests); 20 req/s fails (interrupted after 2 runs)" in out
    doc = json.loads((tmp_path / "c" / CAPACITY_FILE).read_text())
    assert doc["result"]["outcome"] == "interrupted" and len(doc["steps"]) == 2


@pytest.mark.parametrize("flags, message", [
    (["--workload", "nope"], "nope"),
    (["--goodput", "ttft"], "--goodput: expected KEY:MS such as ttft:500, got 'ttft'"),
    (["--goodput", "latency:5"], "goodput: unknown metric 'latency'"),
    (["--goodput", "ttft:-1"], "goodput: the ttft limit must be a positive number of ms"),
    (["--attainment", "0"], "--attainment must be in (0, 1], got 0"),
    (["--attainment", "1.5"], "--attainment must be in (0, 1], got 1.5"),
    (["--min-rps", "5", "--max-rps", "1"], "--min-rps (5) must not exceed --max-rps (1)"),
    (["--tolerance", "0.001"], "--tolerance must be in [0.005, 1], got 0.001"),
    (["--duration", "5"], "--duration must exceed 10 s"),
    (["--max-steps", "0"], "--max-steps: must be >= 1, got 0"),
    (["--url", "http://127.0.0.1:9", "--offline"], "--url, --server-cmd and --offline exclude each other"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, flags, message):
    base = {"--goodput": ["ttft:1000"], "--out": [str(tmp_path / "c")]}
    given_flags = {f for f in flags if f.startswith("--")}
    argv = flags + [x for flag, values in base.items() if flag not in given_flags for x in (flag, *values)]
    code, out, err = sweep_rate(capsys, *(argv if "--url" in flags else ["--offline", *argv]))
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err
    assert err.startswith("varcas sweep-rate: error: ")
    assert not (tmp_path / "c").exists()  # checked before anything is created


def test_an_unwritable_out_is_one_line_and_exit_2(capsys, tmp_path):
    (tmp_path / "file").write_text("")
    code, out, err = sweep_rate(capsys, "--offline", "--goodput", "ttft:1000", "--out", tmp_path / "file" / "c")
    assert code == 2 and err == f"varcas sweep-rate: error: --out {tmp_path}/file/c: cannot create (Not a directory)\n"
