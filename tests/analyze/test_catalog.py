"""The metric table drives analyze's output: every metric is computed, keyed and shown with the
table's label and unit, and summarize hands back the per-request figures it computed."""
from dataclasses import fields, replace

import numpy as np
import pytest
from rich.console import Console

from varcas.analyze import catalog, load_run, render, request_metrics, summarize
from varcas.analyze.catalog import BY_NAME, COMPARED, LATENCY, METRICS, SERVER_METRICS

from . import synth
from .synth import MS

SERVER = {"scrapes": 3, "running": {"mean": 4.0, "p10": 3.0, "p50": 4.0, "p90": 5.0, "max": 6.0, "scrapes": 3,
                                    "histogram": [{"from": 3, "to": 6, "scrapes": 3}]},
          "waiting": {"mean": 1.0, "p10": 0.0, "p50": 1.0, "p90": 2.0, "max": 3.0, "scrapes": 3},
          "kv_cache_usage": {"mean": 0.5, "p10": 0.4, "p50": 0.5, "p90": 0.6, "max": 0.7, "scrapes": 3},
          "preemptions": {"delta": 2.0, "per_s": 0.1}, "prompt_tokens": {"delta": 900.0, "per_s": 45.0},
          "generation_tokens": {"delta": 1200.0, "per_s": 60.0},
          "iteration_tokens": {"name": "vllm:iteration_tokens_total", "observations": 9, "mean_tok": 12.0,
                               "p50_tok": 8.0, "p90_tok": 30.0, "p99_tok": 32.0},
          **{m: {"name": "vllm:x", "observations": 9, "mean_ms": 70.0, "p50_ms": 60.0, "p90_ms": 90.0,
                 "p99_ms": 99.0, "client_mean_ms": 80.0, "client_p50_ms": 80.0, "gap_mean_ms": 10.0,
                 "gap_p50_ms": 20.0} for m in ("server_ttft", "server_itl")}}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A steady run in which one request waited for a concurrency slot (so slot wait is reported)."""
    cols = synth.simulate(np.arange(300) / 10, prefill_ms=80, itl_ms=25, tokens=20)
    cols["slot_wait_ns"][5] = 3 * MS
    return load_run(synth.write_run(tmp_path_factory.mktemp("catalog") / "run", cols))


def _text(summaries, width=160) -> str:
    console = Console(record=True, width=width)
    render(summaries, console)
    return console.export_text()


def test_each_metric_is_one_row_with_a_one_line_definition():
    names = [m.name for m in METRICS] + [m.name for m in SERVER_METRICS]
    assert len(names) == len(set(names))
    assert all(m.label and m.defined and "\n" not in m.defined for m in METRICS)
    assert catalog.SLO_METRICS == ("ttft", "tpot", "e2el")  # the order kernels.slo_mask takes them in


def test_summarize_computes_every_metric_under_the_table_keys(run):
    s = summarize(run, percentiles=(50, 99), goodput={"ttft": 100})
    assert list(s.whole.latency) == [m.name for m in METRICS if m.distribution]
    d = s.to_dict()
    for m in METRICS:
        if m.distribution:
            keys = [m.key(stat) for stat in ("mean", "median", "std", "min", "max", 50, 99, "samples")]
            assert set(keys) <= d.keys() and d[m.key("samples")] > 0, m.name
        else:
            assert d[m.name] == getattr(s.whole, m.field), m.name
    assert d[BY_NAME["ttft"].key(99)] == d["p99_ttft_ms"] == 80


def test_the_rendered_tables_show_every_metric_with_its_label_and_unit(run):
    s = replace(summarize(run, goodput={"ttft": 100}), server=SERVER)
    out = _text(s)
    for m in METRICS:
        if m.distribution:
            assert f"\n {m.label} " in out, m.name
        elif m.in_table:
            assert m.heading in out, m.name
    assert all((f"{m.label} server" if m.client else m.heading) in out for m in SERVER_METRICS)
    assert "KV-cache usage (%)" in out and "50.00" in out  # stored as a fraction, shown in percent
    both = _text([s, s])
    for m in METRICS:
        if m.side_by_side and not m.distribution:
            assert m.heading in both, m.name
        elif m.kind == LATENCY:
            assert f"{m.label} p99 ({m.unit})" in both, m.name


def test_the_compared_figures_are_the_table_percentiles_under_vllm_keys():
    assert [f.key for f in COMPARED] == ["request_throughput", "request_goodput", "output_throughput",
                                         "ttft_p50", "ttft_p99", "tpot_p50", "tpot_p99", "e2el_p50", "e2el_p99"]
    ttft99 = next(f for f in COMPARED if f.key == "ttft_p99")
    assert (ttft99.heading, ttft99.summary_key, ttft99.higher_is_better) == ("TTFT p99 (ms)", "p99_ttft_ms", False)
    assert next(f for f in COMPARED if f.key == "e2el_p50").summary_key == "median_e2el_ms"


def test_summarize_returns_the_request_metrics_it_computed(run):
    s = summarize(run)
    fresh = request_metrics(run)
    for f in fields(fresh):
        assert np.array_equal(getattr(s.requests, f.name), getattr(fresh, f.name), equal_nan=True), f.name
