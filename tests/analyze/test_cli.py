"""`varcas analyze`: tables, --json with vLLM's keys, --csv, several runs, one-line errors."""
import csv
import json

import numpy as np
import pytest

from tests.cli_helpers import cli

from . import synth

VLLM_KEYS = (
    "mean_ttft_ms", "median_ttft_ms", "std_ttft_ms", "p99_ttft_ms", "mean_tpot_ms", "median_tpot_ms",
    "std_tpot_ms", "p99_tpot_ms", "mean_itl_ms", "median_itl_ms", "std_itl_ms", "p99_itl_ms",
    "mean_e2el_ms", "median_e2el_ms", "std_e2el_ms", "p99_e2el_ms", "request_throughput",
    "output_throughput", "total_token_throughput", "request_goodput", "completed", "failed", "duration",
)


def analyze(capsys, *args):
    return cli(capsys, "analyze", *args)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    arrivals = np.arange(300) / 10
    steady = synth.simulate(arrivals, prefill_ms=80, itl_ms=25, tokens=20)
    busy = synth.simulate(arrivals, prefill_ms=80, itl_ms=25, tokens=20, slots=3)
    return synth.write_run(root / "steady", steady), synth.write_run(root / "busy", busy)


def test_table_json_and_csv(capsys, runs, tmp_path):
    code, out, err = analyze(capsys, runs[0], "--percentiles", "50,99", "--goodput", "ttft:100", "tpot:30",
                             "--json", tmp_path / "s.json", "--csv", tmp_path / "s.csv")
    assert code == 0 and err == ""
    assert "Latency (ms)" in out and "Verdict: Steady" in out and "request goodput" in out
    d = json.loads((tmp_path / "s.json").read_text())
    assert set(VLLM_KEYS) <= d.keys()
    assert (d["p99_ttft_ms"], d["median_itl_ms"], d["completed"]) == (80, 25, 300)
    assert d["request_goodput"] == d["request_throughput"]  # every request meets both SLOs
    assert "p90_ttft_ms" not in d and "p99.9_ttft_ms" not in d  # only the percentiles asked for
    rows = list(csv.DictReader((tmp_path / "s.csv").open()))
    assert len(rows) == 1 and float(rows[0]["p99_ttft_ms"]) == 80
    assert rows[0]["verdict.overloaded"] == "False" and float(rows[0]["steady.median_ttft_ms"]) == 80


def test_several_runs_side_by_side(capsys, runs, tmp_path):
    code, out, _ = analyze(capsys, *runs, "--json", tmp_path / "both.json", "--csv", tmp_path / "both.csv")
    assert code == 0
    assert "Runs side by side" in out and "overloaded" in out
    both = json.loads((tmp_path / "both.json").read_text())
    assert [d["run"] for d in both] == ["steady", "busy"]
    assert [d["verdict"]["overloaded"] for d in both] == [False, True]
    assert [r["run"] for r in csv.DictReader((tmp_path / "both.csv").open())] == ["steady", "busy"]


def test_manual_window(capsys, runs, tmp_path):
    code, _, _ = analyze(capsys, runs[0], "--window", "5:15", "--json", tmp_path / "w.json")
    d = json.loads((tmp_path / "w.json").read_text())
    assert code == 0
    assert d["window"] == {"start_s": 5.0, "end_s": 15.0, "source": "manual"}
    assert d["steady"]["completed"] == 100


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{tmp}/absent"], "no such file or directory"),
        (["{tmp}"], "not a varcas run directory"),
        (["{run}", "--percentiles", "50,x"], "--percentiles: expected numbers"),
        (["{run}", "--window", "10"], "--window: malformed"),
        (["{run}", "--goodput", "ttft=5"], "--goodput: expected KEY:MS"),
        (["{run}", "--goodput", "itl:5"], "unknown metric 'itl'"),
        (["{run}", "--json", "{tmp}/no/such/dir/x.json"], "cannot write"),
        ([], "the following arguments are required"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, runs, tmp_path, args, message):
    args = [a.format(tmp=tmp_path, run=runs[0]) for a in args]
    code, _, err = analyze(capsys, *args)
    assert code == 2
    assert message in err and err.count("\n") == 1
