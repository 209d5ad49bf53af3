"""The server section from a metrics.parquet written by hand: its per-second timeline, the running
batch's distribution, its own TTFT/ITL (bucket percentiles) beside the client's, older and newer
vLLM names alike; a run without the file has no section, a malformed file costs figures and a
warning, never a traceback.

The run: 300 requests 0.1 s apart, 80 ms to the first token, 20 tokens 25 ms apart (the client's
TTFT is 80 ms, its ITL 25 ms). Scrape k (k = -1 .. 63) is at (0.5 k + 0.1) s after start_ns, so
second j holds scrapes 2j and 2j + 1. At scrape k: running (k mod 5) + 2, waiting k, KV cache k %,
generation tokens 100 k, prompt tokens 50 k, preemptions 0 then 10 from 3.1 s (k = 6). Every
scrape adds to the histograms (n = k + 1 scrapes so far):
  TTFT  n x {<=20 ms: 0, <=50 ms: 1, <=100 ms: 2, +Inf: 2}, sum n x 0.14 s -> mean 70 ms, p50 50 ms
  ITL   n x {<=20 ms: 0, <=25 ms: 4, <=50 ms: 4, +Inf: 4}, sum n x 0.096 s -> mean 24 ms, p50 22.5 ms
  iteration tokens  n x {<=1: 0, <=8: 2, <=16: 2, <=32: 4, +Inf: 4}, sum n x 50 -> 12.5 per iteration
"""
from __future__ import annotations

import numpy as np
import pytest
from rich.console import Console

from varcas.analyze import load_run, render, summarize
from varcas.analyze.server import (
    MAX_BATCH_BINS,
    batch_histogram,
    bucket_percentiles,
    server_side,
)

from . import synth
from .synth import MS, START_NS, S, histogram, labels

M = labels(model_name="m")
NEW = {"kv": "vllm:kv_cache_usage_perc", "itl": "vllm:inter_token_latency_seconds"}
OLD = {"kv": "vllm:gpu_cache_usage_perc", "itl": "vllm:time_per_output_token_seconds"}
WINDOW = (10 * S, 20 * S)  # after start_ns: scrapes 20..39 inside, 19 (9.6 s) and 40 (20.1 s) bracket it
NBINS = 31


def at(k: int) -> int:
    return START_NS + (500 * k + 100) * MS


def scrape(k: int, names=NEW) -> list:
    n = k + 1
    return [("vllm:num_requests_running", M, k % 5 + 2), ("vllm:num_requests_waiting", M, k),
            (names["kv"], M, k / 100), ("vllm:generation_tokens_total", M, 100 * k),
            ("vllm:prompt_tokens_total", M, 50 * k), ("vllm:num_preemptions_total", M, 10 if k >= 6 else 0),
            *histogram("vllm:time_to_first_token_seconds", {"0.02": 0, "0.05": n, "0.1": 2 * n, "+Inf": 2 * n},
                       0.14 * n, model_name="m"),
            *histogram(names["itl"], {"0.02": 0, "0.025": 4 * n, "0.05": 4 * n, "+Inf": 4 * n}, 0.096 * n,
                       model_name="m"),
            *histogram("vllm:iteration_tokens_total", {"1.0": 0, "8.0": 2 * n, "16.0": 2 * n, "32.0": 4 * n,
                                                       "+Inf": 4 * n}, 50 * n, model_name="m")]


def scrapes(names=NEW, edit=lambda k, rows: rows) -> list:
    return [(at(k), edit(k, scrape(k, names))) for k in range(-1, 64)]


def make_run(tmp_path, scraped=None):
    cols = synth.simulate(np.arange(300) / 10, prefill_ms=80, itl_ms=25, tokens=20)
    run_dir = synth.write_run(tmp_path / "run", cols)
    if scraped is not None:
        synth.write_metrics(run_dir, scraped)
    return load_run(run_dir)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("server"), scrapes())


@pytest.fixture(scope="module")
def summary(run):
    return summarize(run, window=(10, 20))


def test_the_timeline_is_per_second_on_the_clients_seconds(run):
    side = server_side(run, START_NS + WINDOW[0], START_NS + WINDOW[1], NBINS)
    tl, j = side.timeline, np.arange(NBINS)
    assert tl.t_s.tolist() == list(range(NBINS))
    assert list(tl.series) == ["running", "waiting", "kv_cache_usage", "preemptions", "prompt_tokens",
                               "generation_tokens", "iteration_tokens"]
    last = 2 * j + 1  # a gauge: the last scrape in each second
    assert tl.series["running"].tolist() == (last % 5 + 2).tolist()
    assert tl.series["waiting"].tolist() == last.tolist()
    assert tl.series["kv_cache_usage"] == pytest.approx(last)  # in percent
    assert tl.series["generation_tokens"] == pytest.approx(np.full(NBINS, 200.0))  # a counter: per second
    assert tl.series["prompt_tokens"] == pytest.approx(np.full(NBINS, 100.0))
    # preemptions: 0 at 2.6 s, 10 at 3.1 s: interpolated, 8 fall in second 2 and 2 in second 3
    assert tl.series["preemptions"] == pytest.approx([0, 0, 8, 2] + [0] * (NBINS - 4))
    assert tl.series["iteration_tokens"] == pytest.approx(np.full(NBINS, 12.5))  # sum increase / count increase
    assert side.warnings == ()


def test_seconds_the_scrapes_do_not_reach_are_unknown(run):
    tl = server_side(run, START_NS, START_NS + 10 * S, 40).timeline  # scrapes end at 31.6 s
    assert np.isnan(tl.series["running"][32:]).all() and not np.isnan(tl.series["running"][:32]).any()
    assert tl.series["generation_tokens"][31] == pytest.approx(200.0)  # 31-31.6 s: the part the scrapes span
    assert np.isnan(tl.series["generation_tokens"][32:]).all()


def test_gauges_and_the_running_batch_over_the_window(summary):
    server = summary.server
    assert server["scrapes"] == 20
    assert server["running"] == {"mean": 4.0, "p10": 2.0, "p50": 4.0, "p90": 6.0, "max": 6.0, "scrapes": 20,
                                 "histogram": [{"from": b, "to": b, "scrapes": 4} for b in range(2, 7)]}
    assert server["waiting"]["mean"] == pytest.approx(29.5) and server["waiting"]["max"] == 39
    assert server["generation_tokens"] == {"delta": 2100.0, "per_s": 210.0}  # scrape 19 to scrape 40


def test_the_servers_latency_beside_the_clients(summary):
    ttft, itl = summary.server["server_ttft"], summary.server["server_itl"]
    assert ttft == pytest.approx({"name": "vllm:time_to_first_token_seconds", "observations": 42, "mean_ms": 70.0,
                                  "p50_ms": 50.0, "p90_ms": 90.0, "p99_ms": 99.0, "client_mean_ms": 80.0,
                                  "client_p50_ms": 80.0, "gap_mean_ms": 10.0, "gap_p50_ms": 30.0})
    assert itl == pytest.approx({"name": "vllm:inter_token_latency_seconds", "observations": 84, "mean_ms": 24.0,
                                 "p50_ms": 22.5, "p90_ms": 24.5, "p99_ms": 24.95, "client_mean_ms": 25.0,
                                 "client_p50_ms": 25.0, "gap_mean_ms": 1.0, "gap_p50_ms": 2.5})
    assert summary.server["iteration_tokens"] == pytest.approx({
        "name": "vllm:iteration_tokens_total", "observations": 84, "mean_tok": 12.5, "p50_tok": 8.0,
        "p90_tok": 28.8, "p99_tok": 31.68})
    assert summary.to_dict()["server"] == summary.server


def test_analyze_shows_the_batch_the_servers_latency_and_the_gap(summary):
    console = Console(record=True, width=160)
    render(summary, console)
    out = console.export_text()
    assert "Running batch: scrapes per size in the window 10-20 s, set by hand" in out  # --window: not called steady
    assert "TTFT gap: network + API server" in out and "tokens per iteration (tok)" in out
    assert "network + API server (client minus server): TTFT +10.00 ms of 80.00 ms at the mean (" in out
    assert "ITL +1.00 ms of 25.00 ms at the mean (+4%)" in out


def test_older_and_newer_vllm_names_give_the_same_figures(run, tmp_path):
    old = summarize(make_run(tmp_path, scrapes(OLD)), window=(10, 20))
    new = summarize(run, window=(10, 20))
    assert old.server["server_itl"]["name"] == OLD["itl"] and new.server["server_itl"]["name"] == NEW["itl"]
    renamed = {**old.server, "server_itl": {**old.server["server_itl"], "name": NEW["itl"]}}
    assert renamed == new.server
    for name, series in new.server_timeline.series.items():
        assert np.array_equal(old.server_timeline.series[name], series, equal_nan=True), name


def test_a_run_without_metrics_has_no_server_section(tmp_path):
    s = summarize(make_run(tmp_path))
    assert s.server is None and s.server_timeline is None and s.to_dict()["server"] is None
    console = Console(record=True, width=160)
    render(s, console)
    assert "Server's own" not in console.export_text()


def drop_inf(k, rows):
    return [r for r in rows if not (r[0] == "vllm:time_to_first_token_seconds_bucket" and "+Inf" in r[1])]


def restart(k, rows):  # the server restarts after scrape 29: its counters start from zero
    return [(n, lb, v - 3000 if n == "vllm:generation_tokens_total" and k >= 30 else v) for n, lb, v in rows]


def nan_running(k, rows):
    return [(n, lb, float("nan") if n == "vllm:num_requests_running" and k % 2 else v) for n, lb, v in rows]


@pytest.mark.parametrize("edit, check, warning", [
    (drop_inf, lambda s: "server_ttft" not in s.server and "server_itl" in s.server,
     "vllm:time_to_first_token_seconds: no +Inf bucket: the server's TTFT is left out"),
    (restart, lambda s: s.server["generation_tokens"]["delta"] == 1000.0 + 0.0 + 1000.0,  # 19-29, 29-30, 30-40
     "vllm:generation_tokens_total went down during the run (1x: a server restart?): counted from zero again"),
    (nan_running, lambda s: s.server["running"]["scrapes"] == 10 and s.server["running"]["max"] == 6,
     "vllm:num_requests_running: 33 samples without a number (NaN) left out"),  # odd k
])
def test_a_malformed_metrics_file_costs_figures_and_says_so_in_one_line(tmp_path, edit, check, warning):
    s = summarize(make_run(tmp_path, scrapes(edit=edit)), window=(10, 20))
    assert check(s)
    assert warning in s.warnings
    console = Console(record=True, width=160)
    render(s, console)  # no traceback
    assert "Server's own figures" in console.export_text()


def test_a_file_with_only_unreadable_samples_has_no_section_and_one_warning(tmp_path):
    bad = [(at(k), [("vllm:num_requests_running", M, float("nan"))]) for k in range(5)]
    s = summarize(make_run(tmp_path, bad))
    assert s.server is None and s.server_timeline is not None
    assert np.isnan(s.server_timeline.series["running"]).all()
    assert [w for w in s.warnings if "NaN" in w] == ["vllm:num_requests_running: 5 samples without a number (NaN) "
                                                     "left out"]


def test_bucket_percentiles_interpolate_as_prometheus_does():
    bounds = np.array([0.1, 0.2, 0.4, np.inf])
    counts = np.array([10.0, 30.0, 40.0, 50.0])
    # rank 5 in the first bucket (from 0), 20 halfway through the second, 45 in +Inf: the highest finite bound
    assert bucket_percentiles(bounds, counts, [10, 40, 80, 90]).tolist() == pytest.approx([0.05, 0.15, 0.4, 0.4])


def test_the_batch_histogram_has_at_most_its_bins_of_equal_width():
    bins = batch_histogram(np.arange(0, 41, dtype=np.float64))
    assert len(bins) == 14 <= MAX_BATCH_BINS and sum(b["scrapes"] for b in bins) == 41
    assert bins[0] == {"from": 0, "to": 2, "scrapes": 3} and bins[-1] == {"from": 39, "to": 40, "scrapes": 2}
    assert batch_histogram(np.array([5.0, 5.0, 4.6])) == [{"from": 5, "to": 5, "scrapes": 3}]
