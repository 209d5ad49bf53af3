"""Terminal tables of summaries (rich): one run in detail, or several side by side.

render() is also what `varcas load` prints when a run ends, so it must cope with a run that
has just finished and with one where every request failed (errors, no latency table). Rows,
their labels and units come from the metric table (catalog).
"""
from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .catalog import (
    BY_NAME,
    GAUGE,
    LATENCY,
    METRICS,
    SERVER_METRICS,
    figure,
    percent_word,
)
from .summary import Summary

WIDE = 110  # a console this wide also gets std and min in the latency table


def render(summaries, console: Console | None = None) -> None:
    """Print one Summary (or a list of them) to console (stdout by default)."""
    console = console or Console()
    summaries = [summaries] if isinstance(summaries, Summary) else list(summaries)
    if len(summaries) == 1:
        _render_one(summaries[0], console)
    else:
        _render_many(summaries, console)


def _num(value) -> str:
    """Integers exactly; floats to about four significant digits, so columns stay narrow."""
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    digits = 0 if abs(value) >= 1000 else 1 if abs(value) >= 100 else 2
    return f"{value:,.{digits}f}"


def _table(title: str) -> Table:
    return Table(title=title, box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False)


def _title(s: Summary) -> str:
    target = s.manifest.get("target") or {}
    rps = (s.manifest.get("config") or {}).get("rps")
    parts = [s.name, target.get("model"), target.get("url"), rps and f"{rps} req/s offered", s.manifest.get("status")]
    return "  ·  ".join(str(p) for p in parts if p)


def _render_one(s: Summary, console: Console) -> None:
    console.print(Text(_title(s), style="bold"))
    blocks = [("whole run", s.whole)] + ([("steady window", s.steady)] if s.steady else [])
    throughput = _table("Requests and throughput")
    throughput.add_column("")
    for label, block in blocks:
        span = f" {block.t0_s:.0f}-{block.t0_s + block.duration_s:.0f} s" if block is s.steady else ""
        throughput.add_column(label + span, justify="right")
    for m in METRICS:
        if m.in_table and not m.distribution and not (m.only == "goodput" and s.goodput is None):
            throughput.add_row(m.heading, *(_num(getattr(block, m.field)) for _, block in blocks))
    console.print(throughput)
    if s.whole.latency["ttft"] is None:
        console.print("No successful request with content: nothing to measure.", style="bold red")
    else:
        console.print(_latency_table(s, blocks, wide=console.width >= WIDE))
    if s.errors_by_kind:
        console.print(_errors_table(s))
    if s.server:
        console.print(_server_table(s))
    _render_trust(s, console)


def _server_table(s: Summary) -> Table:
    """The server's own view (its /metrics) over the window the figures above describe."""
    scope = "steady window" if s.steady else "whole run"
    table = _table(f"Server's own figures (/metrics, {s.server['scrapes']} scrapes in the {scope})")
    table.add_column("")
    for header in ("mean", "p50", "p90", "max"):
        table.add_column(header, justify="right")
    for m in SERVER_METRICS:
        if m.name not in s.server:
            continue
        got = s.server[m.name]
        if m.kind == GAUGE:
            table.add_row(m.heading, *(_num(got[k] * m.scale) for k in ("mean", "p50", "p90", "max")))
        else:  # a counter: with a unit its rate, else its increase
            table.add_row(m.heading, _num(got["per_s"] if m.unit else int(got["delta"])), "", "", "")
    return table


def _latency_table(s: Summary, blocks, wide: bool) -> Table:
    table = _table("Latency (ms)")
    table.add_column("", no_wrap=True)
    spread = ("std", "min") if wide else ()
    for header in ("n", "mean", *spread, *(f"p{percent_word(p)}" for p in s.percentiles), "max"):
        table.add_column(header, justify="right", no_wrap=True)
    for label, block in blocks:
        table.add_section()
        table.add_row(Text(label, style="italic"))
        for name, dist in block.latency.items():
            if dist is None:
                table.add_row(BY_NAME[name].label, "0")
                continue
            stats = (dist.std, dist.min) if wide else ()
            cells = (dist.mean, *stats, *(dist.percentiles[p] for p in s.percentiles), dist.max)
            table.add_row(BY_NAME[name].label, _num(dist.n), *(_num(c) for c in cells))
    return table


def _errors_table(s: Summary) -> Table:
    table = _table("Failed requests")
    table.add_column("")
    table.add_column("requests", justify="right")
    for kind, count in s.errors_by_kind.items():
        table.add_row(kind, _num(count))
    table.add_section()
    for code, count in s.errors_by_status.items():
        table.add_row(f"HTTP {code}" if code else "no HTTP response", _num(count))
    return table


def _render_trust(s: Summary, console: Console) -> None:
    style = "bold red" if s.verdict.overloaded else ("green" if s.verdict.steady else "yellow")
    console.print(Text("Verdict: ", style="bold") + Text(s.verdict.text, style=style))
    for warning in s.warnings:
        console.print(Text("warning: ", style="bold yellow") + Text(warning))


def _render_many(summaries, console: Console) -> None:
    table = _table("Runs side by side (steady window where one was found)")
    table.add_column("")
    for s in summaries:
        table.add_column(s.name, justify="right")
    pick = [s.steady or s.whole for s in summaries]
    shown = [m for m in METRICS if m.side_by_side]
    for m in shown:
        if not m.distribution:
            table.add_row(m.heading, *(_num(getattr(b, m.field)) for b in pick))
    for m in shown:
        if m.kind == LATENCY:
            for p in summaries[0].percentiles:
                cells = [b.latency[m.name] and b.latency[m.name].percentiles.get(p) for b in pick]
                table.add_row(figure(m, p).heading, *(_num(c) for c in cells))
    table.add_row("verdict", *(
        Text("overloaded", style="bold red") if s.verdict.overloaded
        else Text("steady" if s.verdict.steady else "no steady state", style="green" if s.verdict.steady else "yellow")
        for s in summaries
    ))
    table.add_row("warnings", *(str(len(s.warnings)) for s in summaries))
    console.print(table)
    for s in summaries:
        if s.verdict.overloaded or s.warnings:
            console.print(Text(s.name, style="bold"))
            _render_trust(s, console)
