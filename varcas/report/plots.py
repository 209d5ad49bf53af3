"""The report's plotly figures, built from a Report: roofline, latency CDFs, timelines, batch
comparison bars and the Pareto front, in the order the page shows them.

Every configuration keeps one colour across figures. A run whose figures are not a steady state
is drawn so it cannot be mistaken for one: dashed lines, hatched faded bars, grey crosses left off
the Pareto front. Roofline points say whether they are the model's prediction or derived from a
measurement (a decode step's FLOPs and bytes, as the model or vLLM's own counters count them, over
its measured time: results.measured); only the static roofline's kernel points come from hardware
counters (Nsight Compute, `varcas roofline --ncu`).
Timelines longer than MAX_TIMELINE_POINTS seconds are averaged into bins to keep the page light.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from ..analyze.catalog import LATENCY, METRICS, SERVER_METRICS
from ..results.measured import batch_label
from .load import Group, Report
from .tables import column_label, trusted

PALETTE = qualitative.Plotly
GREY = "#9e9e9e"
FRONT = "#d62728"
MAX_TIMELINE_POINTS = 2000
HEIGHT = 420
CDF_METRICS = tuple(m for m in METRICS if m.compared and m.kind == LATENCY)  # TTFT, TPOT, E2E
LABELLED_POINTS = 8  # labels written per trace at most (the rest on hover)
EXPECTED = "model prediction for the measured step (realistic)"


@dataclass(frozen=True)
class Point:
    """A point on a roofline plot: its label, position and hover text."""

    label: str
    ai: float  # FLOP/byte
    flops: float  # FLOP/s
    hover: str = ""


def figures(report: Report) -> list[tuple[str, go.Figure]]:
    """Every figure of the report with its caption, in page order."""
    out = []
    if report.static and report.static["phases"]:
        out.append(("Static roofline of the model on the GPU: open circles are model predictions, red points "
                    "kernels measured by Nsight Compute." if report.static.get("kernels") else
                    "Static roofline of the model on the GPU: every point is a model prediction.",
                    static_roofline(report.static)))
    for g in report.groups:
        if g.roofline and g.roofline["points"]:
            out.append((f"{g.title}: roofline, model predictions beside measured throughput.", group_roofline(g)))
    for g in report.groups:
        if any(v for d in g.digests.values() for v in d.cdf_ms.values()):  # some request completed
            out.append((f"{g.title}: latency CDFs of each run's steady window (else the whole run); dashed runs "
                        "are not a steady state.", cdfs(g)))
    for g in report.groups:
        if g.digests:
            out.append((f"{g.title}: output tokens/s and requests in flight over the whole run, and the server's "
                        "own series (its /metrics) where it has them.", timelines(g)))
    sweeps = [g for g in report.groups if g.sweep]
    if any(g.digests for g in sweeps):
        out.append(("Output throughput per configuration and workload; hatched, faded bars did not keep up "
                    "(overloaded or no steady state).",
                    bars(sweeps)))
    for g in sweeps:
        if g.digests:
            out.append((f"{g.title}: Pareto front; configurations that did not keep up are excluded (grey crosses).",
                        pareto(g)))
    return out


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _layout(fig: go.Figure, title: str, height: int = HEIGHT) -> go.Figure:
    fig.update_layout(title=title, template="plotly_white", height=height, margin=dict(l=60, r=20, t=70, b=50),
                      legend=dict(orientation="h", yanchor="top", y=-0.15))
    return fig


def roofline(title: str, peak: float, bandwidth: float, predicted: Sequence[Point], measured: Sequence[Point],
             overloaded: Sequence[Point] = (), expected: Sequence[Point] = ()) -> go.Figure:
    """Log-log roofline: bandwidth slope and compute ceiling meeting at the ridge, predicted points (on
    the roof; expected: the model's realistic time for a measured step) and measured points."""
    ridge = peak / bandwidth
    every = (*predicted, *expected, *measured, *overloaded)
    ais = [p.ai for p in every] or [ridge]
    lo, hi = min(min(ais), ridge) / 3, max(max(ais), ridge) * 3
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[lo, ridge], y=[bandwidth * lo, bandwidth * ridge], mode="lines",
                             name=f"bandwidth slope: {bandwidth / 1e9:.0f} GB/s × AI",
                             line=dict(color="black", width=2)))
    fig.add_trace(go.Scatter(x=[ridge, hi], y=[min(peak, bandwidth * ridge), peak], mode="lines",
                             name=f"compute ceiling: {peak / 1e12:.3g} TFLOP/s", line=dict(color="#555", width=2)))
    fig.add_trace(go.Scatter(x=[ridge], y=[peak], mode="markers+text", name=f"ridge point: {ridge:.0f} FLOP/byte",
                             text=[f"ridge {ridge:.0f}"], textposition="bottom right",
                             marker=dict(symbol="diamond", size=11, color="black")))
    fig.add_vline(x=ridge, line=dict(color=GREY, dash="dot", width=1))
    for name, points, style, where in (
            ("model prediction", predicted, dict(symbol="circle-open", size=11, color="#1f77b4"), "top center"),
            (EXPECTED, expected, dict(symbol="diamond-open", size=11, color="#2ca02c"), "top center"),
            ("measured", measured, dict(symbol="circle", size=11, color=FRONT), "bottom center"),
            ("measured, overloaded", overloaded, dict(symbol="x", size=10, color=GREY), "bottom center")):
        if points:  # predictions sit on the roof, measurements below it: labels above and below
            fig.add_trace(_points(name, points, style, where))
    fig.update_xaxes(type="log", title="arithmetic intensity (FLOP/byte)")
    flops = [bandwidth * lo, peak, *(p.flops for p in every)]
    decades = range(math.floor(math.log10(min(flops))), math.ceil(math.log10(max(flops))) + 1)
    ticks = [10.0 ** k for k in decades if abs(k - math.log10(peak)) > 0.2] + [peak]
    fig.update_yaxes(type="log", title="FLOP/s", tickformat="~s", tickvals=ticks)
    return _layout(fig, title, 480)


def _points(name: str, points: Sequence[Point], marker: dict, where: str) -> go.Scatter:
    """Markers with their labels written beside them, except where a label would sit on another one."""
    shown: list[int] = []
    for i, p in enumerate(points):
        if len(shown) < LABELLED_POINTS and not any(_near(p, points[j]) for j in shown):
            shown.append(i)
    return go.Scatter(x=[p.ai for p in points], y=[p.flops for p in points], name=name, mode="markers+text",
                      marker=marker, text=[p.label if i in shown else "" for i, p in enumerate(points)],
                      textposition=where,
                      hovertext=[p.hover or p.label for p in points], hoverinfo="text", cliponaxis=False)


def _near(a: Point, b: Point) -> bool:
    """Labels of a and b would overlap (a label is about a third of a decade wide, a tenth high)."""
    return abs(math.log10(a.ai / b.ai)) < 0.35 and abs(math.log10(a.flops / b.flops)) < 0.12


def group_roofline(group: Group) -> go.Figure:
    """The roofline explanation of a group: per configuration, decode and prefill predicted on the
    roof, and its measured decode step beside the model's realistic prediction for that step."""
    roof = group.roofline
    assert roof is not None  # figures() draws a group's roofline only when it has one
    overloaded = {r["config"] for r in group.rows if r.get("overloaded")}
    predicted: list[Point] = []
    expected: list[Point] = []
    measured: list[Point] = []
    bad: list[Point] = []
    prompts = set()
    for p in roof["points"]:
        predicted.append(Point(f"decode B={p['batch']}", p["decode_ai"], p["decode_attainable_flops"],
                               f"model prediction: decode, batch {p['batch']}, context {p['context']} ({p['config']})"))
        if p["prompt"] not in prompts:
            prompts.add(p["prompt"])
            predicted.append(Point(f"prefill S={p['prompt']}", p["prefill_ai"], p["prefill_attainable_flops"],
                                   f"model prediction: prefill of one {p['prompt']}-token prompt"))
        x = p["measured"]
        if x is not None:
            expected.append(Point("", x["model_ai"], x["model_flops_per_step"] / x["predicted_step_s"],
                                  f"model prediction (realistic): {p['config']}, one decode step at batch "
                                  f"{batch_label(x)}, context {x['context']}: {x['predicted_step_s'] * 1e3:.3g} ms"))
            (bad if p["config"] in overloaded else measured).append(Point(p["config"], x["ai"], x["flops_per_s"],
                                                                          _measured_hover(p["config"], x)))
    title = f"{group.title}: roofline of {roof['model']} ({roof['precision']}) on {roof['gpu']}"
    return roofline(title, roof["peak_flops"], roof["bandwidth"], predicted, measured, bad, expected)


def _measured_hover(config: str, x: dict) -> str:
    """A measured decode point in words: its batch and source, step time and fractions of the GPU's peaks."""
    work = "vLLM's estimated counters" if x["work_source"] == "vllm" else "the roofline model"
    return (f"measured: {config}, decode step {x['step_s'] * 1e3:.3g} ms (ITL median) at batch {batch_label(x)}, "
            f"context {x['context']}: {x['tokens_per_s']:,.0f} tok/s, {x['bandwidth_fraction']:.0%} of peak bandwidth, "
            f"{x['compute_fraction']:.1%} of peak compute, {x['step_ratio']:.2f}x the model's predicted step "
            f"(FLOPs and bytes counted by {work})")


def static_roofline(static: dict) -> go.Figure:
    """The static roofline's phases, each a model prediction, and the kernels Nsight Compute measured (if any)."""
    phases = static["phases"]
    points = [Point(f"{p['phase']} B={p['batch']} {'S' if p['phase'] == 'prefill' else 'C'}={p['length']}",
                    p["ai"], p["attainable"],
                    f"model prediction: {p['phase']}, batch {p['batch']}, "
                    f"{'prompt' if p['phase'] == 'prefill' else 'context'} {p['length']}, {p['bound']}-bound")
              for p in phases]
    title = (f"Static roofline: {static['model']['name']} ({static['precision']['name']}) "
             f"on {static['gpu']['display_name']}")
    return roofline(title, phases[0]["peak"], static["gpu"]["bandwidth_bytes_per_s"], points, _kernel_points(static))


def _kernel_points(static: dict) -> list[Point]:
    """roofline.json's "kernels" (varcas roofline --ncu) where a log-log chart can place them."""
    kernels = (static.get("kernels") or {}).get("kernels", [])
    return [Point(k["class"], k["ai"], k["flops_per_s"],
                  f"measured by Nsight Compute: {k['name'][:100]} ({k['class']}, {k['launches']} launches, "
                  f"{100 * k['time_share']:.1f}% of GPU time, {100 * k['fraction_of_roof']:.0f}% of its roof)")
            for k in kernels if k["ai"] and k["flops_per_s"]]


def cdfs(group: Group) -> go.Figure:
    """Latency CDFs (CDF_METRICS: TTFT, TPOT, E2E), one line per run, x in the metric's unit on a log scale."""
    fig = make_subplots(rows=1, cols=len(CDF_METRICS), subplot_titles=[m.label for m in CDF_METRICS],
                        horizontal_spacing=0.06)
    traces, cols = [], []
    for i, row in enumerate(group.rows):
        d = group.digests.get(row["config"])
        if d is None:
            continue
        for col, m in enumerate(CDF_METRICS, 1):
            ms = d.cdf_ms.get(m.name)
            if ms is None:
                continue
            traces.append(go.Scatter(x=ms, y=d.cdf_percents, mode="lines", name=column_label(row),
                                     legendgroup=row["config"], showlegend=col == 1,
                                     line=dict(color=_color(i), dash="solid" if trusted(row) else "dash")))
            cols.append(col)
    fig.add_traces(traces, rows=[1] * len(traces), cols=cols)
    for col, m in enumerate(CDF_METRICS, 1):
        fig.update_xaxes(type="log", title=m.unit, col=col)
    fig.update_yaxes(title="percent of requests", range=[0, 100], col=1)
    fig.update_yaxes(range=[0, 100])
    return _layout(fig, f"{group.title}: latency CDFs")


def downsample(t, *series, max_points: int = MAX_TIMELINE_POINTS) -> tuple:
    """Per-second series averaged into at most max_points bins (t: each bin's first second)."""
    t = np.asarray(t, float)
    step = math.ceil(t.size / max_points) if t.size > max_points else 1
    if step == 1:
        return (t, *(np.asarray(s, float) for s in series))
    starts = np.arange(0, t.size, step)
    counts = np.diff(np.append(starts, t.size))
    return (t[starts], *(np.add.reduceat(np.asarray(s, float), starts) / counts for s in series))


def timelines(group: Group) -> go.Figure:
    """Output tokens/s and requests in flight per second, one line per run; below them, one panel
    per series of the server's own timeline (its /metrics) that some run has."""
    server = [m for m in SERVER_METRICS
              if any(d.server_timeline and m.name in d.server_timeline.series for d in group.digests.values())]
    titles = ["output tokens/s", "requests in flight", *(f"server: {m.series_heading}" for m in server)]
    fig = make_subplots(rows=len(titles), cols=1, shared_xaxes=True, vertical_spacing=0.1 if not server else 0.035,
                        subplot_titles=titles)
    traces, rows = [], []
    for i, row in enumerate(group.rows):
        d = group.digests.get(row["config"])
        if d is None:
            continue
        t, tokens, in_flight = downsample(d.timeline.t_s, d.timeline.output_tokens, d.timeline.in_flight)
        panels = [(1, t, tokens), (2, t, in_flight)]
        if (st := d.server_timeline) is not None:
            panels += [(r, *downsample(st.t_s, st.series[m.name]))
                       for r, m in enumerate(server, 3) if m.name in st.series]
        for r, x, y in panels:
            traces.append(go.Scatter(x=x, y=y, mode="lines", name=column_label(row), legendgroup=row["config"],
                                     showlegend=r == 1, line=dict(color=_color(i), width=1.5,
                                                                  dash="solid" if trusted(row) else "dash")))
            rows.append(r)
    fig.add_traces(traces, rows=rows, cols=[1] * len(traces))
    fig.update_xaxes(title="seconds since the run started", row=len(titles), col=1)
    return _layout(fig, f"{group.title}: throughput and concurrency over time", 520 + 170 * len(server))


def bars(groups: list[Group]) -> go.Figure:
    """Output tokens/s per configuration (bars) per workload (groups); runs that did not keep up hatched, faded."""
    fig = go.Figure()
    workloads = [g.title for g in groups]
    configs = list(dict.fromkeys(r["config"] for g in groups for r in g.rows))
    for i, config in enumerate(configs):
        ys, opacity, patterns, texts = [], [], [], []
        for g in groups:
            y, o, pattern, text = _bar(next((r for r in g.rows if r["config"] == config), None))
            ys.append(y)
            opacity.append(o)
            patterns.append(pattern)
            texts.append(text)
        # one colour per trace: plotly.js cannot draw a legend for per-bar colours with patterns
        fig.add_trace(go.Bar(x=workloads, y=ys, name=config, text=texts, textposition="outside",
                             marker=dict(color=_color(i), opacity=opacity, pattern=dict(shape=patterns))))
    fig.update_layout(barmode="group")
    fig.update_yaxes(title="output tokens/s (steady window)")
    return _layout(fig, "Batch comparison: output throughput")


def _bar(row: dict | None) -> tuple[float | None, float, str, str]:
    """One configuration's bar on one workload: height, opacity, pattern and text (a run that did not
    keep up hatched and faded, one without a measurement empty with its status)."""
    if row is None:
        return 0, 1.0, "", ""
    if "metrics" not in row:
        return 0, 1.0, "", row["status"]
    if trusted(row):
        return row["metrics"]["output_throughput"], 1.0, "", ""
    return (row["metrics"]["output_throughput"], 0.45, "/",
            "overloaded" if row["overloaded"] else "no steady state")


def pareto(group: Group) -> go.Figure:
    """Output throughput against TTFT p99 and against TPOT p99: the front highlighted, runs that did not keep
    up (overloaded or unsteady) greyed and excluded."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=["vs TTFT p99", "vs TPOT p99"], horizontal_spacing=0.08)
    measured = [r for r in group.rows if "metrics" in r and r["metrics"]["output_throughput"] is not None]
    sets = (("Pareto front", [r for r in measured if r["config"] in group.pareto],  # labels above, the rest below
             dict(color=FRONT, size=13, symbol="star"), "lines+markers+text", "top center"),
            ("kept up, not on the front", [r for r in measured if trusted(r) and r["config"] not in group.pareto],
             dict(color="#1f77b4", size=10), "markers+text", "bottom center"),
            ("overloaded or unsteady (excluded)", [r for r in measured if not trusted(r)],
             dict(color=GREY, size=10, symbol="x"), "markers+text", "bottom center"))
    traces, cols = [], []
    for col, key in ((1, "ttft_p99"), (2, "tpot_p99")):
        for name, rows, marker, mode, where in sets:
            rows = sorted((r for r in rows if r["metrics"][key] is not None), key=lambda r: r["metrics"][key])
            if rows:
                traces.append(go.Scatter(
                    x=[r["metrics"][key] for r in rows], y=[r["metrics"]["output_throughput"] for r in rows],
                    mode=mode, name=name, legendgroup=name, showlegend=col == 1, marker=marker,
                    line=dict(color=marker["color"], dash="dot"), text=[r["config"] for r in rows],
                    textposition=where, cliponaxis=False))
                cols.append(col)
        xs = [r["metrics"][key] for r in measured if r["metrics"][key]]
        if xs:  # room for the labels on either side
            fig.update_xaxes(range=[math.log10(min(xs)) - 0.2, math.log10(max(xs)) + 0.2], row=1, col=col)
    fig.add_traces(traces, rows=[1] * len(traces), cols=cols)
    fig.update_xaxes(type="log", title="ms (log)")
    fig.update_yaxes(range=[0, max((r["metrics"]["output_throughput"] for r in measured), default=1.0) * 1.15])
    fig.update_yaxes(title="output tokens/s", col=1)
    return _layout(fig, f"{group.title}: throughput vs tail latency")
