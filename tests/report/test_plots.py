"""Figures from a hand-written sweep: the roofline's ceiling and slope meet at the ridge, points
say prediction or measurement, runs that are not a steady state are drawn apart, the Pareto
front holds exactly the front, long timelines are binned."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from varcas.analyze.catalog import LATENCY, METRICS
from varcas.report.plots import (
    EXPECTED,
    Point,
    bars,
    cdfs,
    downsample,
    figures,
    group_roofline,
    pareto,
    roofline,
    timelines,
)
from varcas.results.digest import ServerTimeline


def _trace(fig, name):
    return next(t for t in fig.data if t.name == name)


def test_the_roofline_is_min_of_peak_and_bandwidth_times_ai_and_meets_at_the_ridge():
    peak, bw = 65e12, 320e9
    fig = roofline("t", peak, bw, [], [])
    slope, ceiling = fig.data[0], fig.data[1]
    ridge = peak / bw
    assert slope.name == "bandwidth slope: 320 GB/s × AI" and ceiling.name == "compute ceiling: 65 TFLOP/s"
    assert ceiling.x[0] == ridge and ceiling.y[0] == min(peak, bw * ridge) == pytest.approx(peak)
    assert slope.x[-1] == ridge and slope.y[-1] == pytest.approx(min(peak, bw * ridge))
    assert slope.y[0] == pytest.approx(bw * slope.x[0]) and ceiling.y[1] == peak
    assert _trace(fig, "ridge point: 203 FLOP/byte").x == (ridge,)
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"


def test_a_sweeps_roofline_shows_predictions_and_measurements_apart(synthetic_group):
    fig = group_roofline(synthetic_group)
    points = {p["config"]: p for p in synthetic_group.roofline["points"]}
    predicted = _trace(fig, "model prediction")
    measured = _trace(fig, "measured")
    overloaded = _trace(fig, "measured, overloaded")
    # decode per batch size, and one prefill (every run had the same mean prompt)
    assert list(predicted.x) == [points["max_num_seqs-1"]["decode_ai"], points["max_num_seqs-1"]["prefill_ai"],
                                 points["max_num_seqs-4"]["decode_ai"], points["max_num_seqs-8"]["decode_ai"]]
    assert [h.split(",")[0] for h in predicted.hovertext] == ["model prediction: decode", "model prediction: prefill "
                                                              "of one 200-token prompt", "model prediction: decode",
                                                              "model prediction: decode"]
    steady = [points[c]["measured"] for c in ("max_num_seqs-4", "max_num_seqs-8")]
    assert list(measured.x) == [x["ai"] for x in steady] and list(measured.y) == [x["flops_per_s"] for x in steady]
    assert list(overloaded.y) == [points["max_num_seqs-1"]["measured"]["flops_per_s"]]
    # the fake runs had no /metrics: 3 requests in flight, capped at max_num_seqs 1 for the first
    assert measured.hovertext[0].startswith("measured: max_num_seqs-4, decode step 15 ms (ITL median) at batch "
                                            "3 (inferred), context 250: 200 tok/s, ")
    assert "of peak bandwidth" in measured.hovertext[0] and "(FLOPs and bytes counted by the roofline model)" in \
        measured.hovertext[0]
    # beside each measured point, the model's realistic time for the same step, at the same AI
    expected = _trace(fig, EXPECTED)
    every = [points[c]["measured"] for c in ("max_num_seqs-1", "max_num_seqs-4", "max_num_seqs-8")]
    assert list(expected.x) == [x["model_ai"] for x in every] == [x["ai"] for x in every]
    assert list(expected.y) == [x["model_flops_per_step"] / x["predicted_step_s"] for x in every]
    assert expected.hovertext[0].startswith("model prediction (realistic): max_num_seqs-1, one decode step at batch "
                                            "1 (inferred), context 250: ")
    assert fig.data[1].y[1] == synthetic_group.roofline["peak_flops"]


def test_labels_that_would_overlap_are_left_to_the_hover():
    fig = roofline("t", 65e12, 320e9, [Point("a", 10.0, 3e12), Point("b", 11.0, 3.1e12), Point("c", 100.0, 3e13)], [])
    assert list(_trace(fig, "model prediction").text) == ["a", "", "c"]


def test_cdfs_draw_each_measured_run_per_metric_dashed_when_not_steady(synthetic_group):
    fig = cdfs(synthetic_group)
    assert len(fig.data) == 9  # 3 measured runs x TTFT, TPOT, E2E; the failed one has none
    first = [t for t in fig.data if t.legendgroup == "max_num_seqs-1"]
    assert [t.line.dash for t in first] == ["dash"] * 3 and first[0].name == "max_num_seqs-1 ⚠ overloaded"
    assert {t.line.dash for t in fig.data if t.legendgroup != "max_num_seqs-1"} == {"solid"}
    assert list(first[0].x) == [9000.0, 45000.0, 90000.0] and list(first[0].y) == [0.0, 50.0, 100.0]
    assert fig.layout.xaxis.type == fig.layout.xaxis2.type == fig.layout.xaxis3.type == "log"


def test_timelines_show_throughput_and_concurrency_per_run(synthetic_group):
    fig = timelines(synthetic_group)
    assert len(fig.data) == 6
    four = [t for t in fig.data if t.legendgroup == "max_num_seqs-4"]
    assert list(four[0].y) == [0, 150, 150, 0] and list(four[1].y) == [1, 2, 1, 0]


def test_timelines_add_a_panel_per_server_series_some_run_has(synthetic_group):
    digests = dict(synthetic_group.digests)
    digests["max_num_seqs-4"] = replace(digests["max_num_seqs-4"], server_timeline=ServerTimeline(
        (0, 1, 2, 3), {"running": (1.0, 4.0, None, 2.0), "kv_cache_usage": (5.0, 20.0, 30.0, 10.0)}))
    digests["max_num_seqs-8"] = replace(digests["max_num_seqs-8"], server_timeline=ServerTimeline(
        (0, 1, 2, 3), {"running": (2.0, 8.0, 8.0, 0.0), "preemptions": (0.0, 1.0, 0.0, 0.0)}))
    fig = timelines(replace(synthetic_group, digests=digests))
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["output tokens/s", "requests in flight", "server: running (the batch it ran)",
                      "server: KV-cache usage (%)", "server: preemptions (per s)"]  # the catalog's order
    assert len(fig.data) == 6 + 2 + 2
    four = [t for t in fig.data if t.legendgroup == "max_num_seqs-4"]
    assert np.array_equal(four[2].y, [1.0, 4.0, np.nan, 2.0], equal_nan=True) and four[2].yaxis == "y3"
    assert list(four[3].y) == [5.0, 20.0, 30.0, 10.0] and four[3].yaxis == "y4"
    assert fig.layout.xaxis5.title.text == "seconds since the run started"


def test_downsample_averages_bins_and_keeps_short_series():
    t, y = downsample([0, 1, 2, 3, 4], [1, 2, 3, 4, 5], max_points=2)
    assert list(t) == [0, 3] and list(y) == [2.0, 4.5]
    t, y = downsample(np.arange(10), np.ones(10), max_points=10)
    assert list(t) == list(range(10)) and list(y) == [1.0] * 10
    t, y = downsample(np.arange(7200), np.full(7200, 3.0))
    assert t.size == 1800 and y.tolist() == [3.0] * 1800


def test_bars_mark_overloaded_and_failed_configurations(synthetic_group):
    fig = bars([synthetic_group])
    assert [t.name for t in fig.data] == ["max_num_seqs-1", "max_num_seqs-4", "max_num_seqs-8", "max_num_seqs-16"]
    assert [t.text[0] for t in fig.data] == ["overloaded", "", "", "failed"]
    assert [t.marker.pattern.shape[0] for t in fig.data] == ["/", "", "", ""]
    assert [t.y[0] for t in fig.data] == [50.0, 150.0, 160.0, 0]


def test_the_pareto_plot_highlights_the_front_and_excludes_the_overloaded(synthetic_group):
    fig = pareto(synthetic_group)
    front = [t for t in fig.data if t.name == "Pareto front"]
    assert [list(t.text) for t in front] == [["max_num_seqs-4", "max_num_seqs-8"]] * 2
    assert list(front[0].x) == [500.0, 800.0] and list(front[1].x) == [30.0, 40.0]
    assert [list(t.text) for t in fig.data if t.name == "overloaded or unsteady (excluded)"] == [["max_num_seqs-1"]] * 2
    assert not [t for t in fig.data if t.name == "kept up, not on the front"]


def test_figures_are_in_page_order(synthetic_report):
    titles = [fig.layout.title.text for _, fig in figures(synthetic_report)]
    assert titles[0].startswith("chat_medium: roofline of llama-2-7b (awq")
    assert titles[1:] == ["chat_medium: latency CDFs", "chat_medium: throughput and concurrency over time",
                          "Batch comparison: output throughput", "chat_medium: throughput vs tail latency"]


def test_no_cdf_figure_when_no_request_completed(synthetic_report):
    digests = synthetic_report.groups[0].digests
    for config, d in digests.items():
        digests[config] = replace(d, cdf_ms=dict.fromkeys(d.cdf_ms))
    titles = [fig.layout.title.text for _, fig in figures(synthetic_report)]
    assert "chat_medium: latency CDFs" not in titles and len(titles) == 4


def test_the_cdf_panels_are_the_metric_tables_compared_latencies_with_label_and_unit(synthetic_group):
    fig = cdfs(synthetic_group)
    shown = [m for m in METRICS if m.compared and m.kind == LATENCY]
    assert [a.text for a in fig.layout.annotations] == [m.label for m in shown] == ["TTFT", "TPOT", "E2E"]
    assert [fig.layout[f"xaxis{i or ''}"].title.text for i in range(len(shown))] == [m.unit for m in shown]
    d = synthetic_group.digests["max_num_seqs-4"]
    assert [list(t.x) for t in fig.data if t.legendgroup == "max_num_seqs-4"] == [list(d.cdf_ms[m.name]) for m in shown]
