"""Terminal tables of summaries (rich): one run in detail, or several side by side.

render() is also what `varcas load` prints when a run ends, so it must cope with a run that
has just finished and with one where every request failed (errors, no latency table). Rows,
their labels and units come from the metric table (catalog), grouped by which requests they
count; a window is named as the verdict allows (trust.window_name: "steady" only when it is),
and an overloaded run's latencies are headed as a queue's. Tables go through varcas.termtable,
so no figure is cut at any width.
"""
from __future__ import annotations

from rich import box
from rich.console import Console
from rich.text import Text

from ..termtable import Table
from .catalog import (
    BY_NAME,
    FINISHING,
    GAUGE,
    HISTOGRAM,
    LATENCY,
    METRICS,
    SCHEDULED,
    SERVER_METRICS,
    figure,
    percent_word,
)
from .server import HISTOGRAM_PERCENTS
from .summary import Summary
from .trust import window_name

WIDE = 110  # a console this wide also gets std and min in the latency table
BAR = 30  # characters of the batch histogram's longest bar
QUEUE = "a growing queue's waits, not the server's latency"  # what an overloaded run's percentiles are


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


def _table(title: str, labels: bool = True) -> Table:
    """A table in analyze's style; labels: its first column, the rows' labels, is words."""
    table = Table(title, box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False)
    if labels:
        table.add_column("", words=True)
    return table


def _scalar_rows(table: Table, metrics, cells) -> None:
    """A row per scalar metric (cells(m): its figures), those that count requests under a line
    saying which: the ones scheduled in the span, or the ones finishing in it."""
    for counts in ("", SCHEDULED, FINISHING):
        group = [m for m in metrics if m.counts == counts]
        if counts and group:
            table.add_row(Text(counts, style="italic"), words=True)
        for m in group:
            table.add_row(m.heading, *cells(m))


def _title(s: Summary) -> str:
    target = s.manifest.get("target") or {}
    rps = (s.manifest.get("config") or {}).get("rps")
    parts = [s.name, target.get("model"), target.get("url"), rps and f"{rps} req/s offered", s.manifest.get("status")]
    return "  ·  ".join(str(p) for p in parts if p)


def _render_one(s: Summary, console: Console) -> None:
    console.print(Text(_title(s), style="bold"))
    blocks = [("whole run", s.whole)] + ([(_scope(s), s.steady)] if s.steady else [])
    throughput = _table("Requests and throughput")
    for label, _ in blocks:
        throughput.add_column(label)
    shown = [m for m in METRICS
             if m.in_table and not m.distribution and not (m.only == "goodput" and s.goodput is None)]
    _scalar_rows(throughput, shown, lambda m: [_num(getattr(block, m.field)) for _, block in blocks])
    console.print(throughput)
    if s.whole.latency["ttft"] is None:
        console.print("No successful request with content: nothing to measure.", style="bold red")
    else:
        console.print(_latency_table(s, blocks, wide=console.width >= WIDE))
    if s.errors_by_kind:
        console.print(_errors_table(s))
    if s.server:
        console.print(_server_table(s, s.server))
        if "histogram" in s.server.get("running", {}):
            console.print(_batch_table(s, s.server))
        beside, note = _beside_table(s, s.server), _gap_note(s)
        if beside is not None:
            console.print(beside)
        if note:
            console.print(note)
    _render_trust(s, console)


def _scope(s: Summary) -> str:
    """The span the figures after the whole run's describe: the window, named as the verdict
    allows, else the whole run."""
    return "whole run" if s.window is None else window_name(s.window, s.verdict)


def _server_table(s: Summary, server: dict) -> Table:
    """The server's own view (its /metrics) over the window the figures above describe."""
    table = _table(f"Server's own figures (/metrics, {server['scrapes']} scrapes in the {_scope(s)})")
    for header in ("mean", "p10", "p50", "p90", "max"):
        table.add_column(header)
    for m in SERVER_METRICS:
        got = server.get(m.name)
        if got is None or m.client:
            continue
        if m.kind == GAUGE:
            table.add_row(m.heading, *(_num(got[k] * m.scale) for k in ("mean", "p10", "p50", "p90", "max")))
        elif m.kind == HISTOGRAM:
            table.add_row(m.heading, _num(got[m.key("mean")]), "", _num(got[m.key(50)]), _num(got[m.key(90)]), "")
        else:  # a counter: with a unit its rate, else its increase
            table.add_row(m.heading, _num(got["per_s"] if m.unit else int(got["delta"])), "", "", "", "")
    return table


def _batch_table(s: Summary, server: dict) -> Table:
    """How often the server ran each batch size (its running gauge's scrapes in the window)."""
    bins = server["running"]["histogram"]
    total = sum(b["scrapes"] for b in bins)
    table = _table(f"Running batch: scrapes per size in the {_scope(s)}", labels=False)
    for header in ("batch", "scrapes", "share"):
        table.add_column(header)
    table.add_column("", justify="left")  # the bar: a figure too, never cut
    for b in bins:
        size = str(b["from"]) if b["from"] == b["to"] else f"{b['from']}-{b['to']}"
        table.add_row(size, _num(b["scrapes"]), f"{100 * b['scrapes'] / total:.0f}%",
                      "█" * round(BAR * b["scrapes"] / max(c["scrapes"] for c in bins)))
    return table


def _beside_table(s: Summary, server: dict) -> Table | None:
    """The server's own TTFT and ITL (its histograms) beside the client's, and the gap between
    them: the network and the API server's time. None when the server has neither."""
    shown = [m for m in SERVER_METRICS if m.client and m.name in server]
    if not shown:
        return None
    table = _table(f"Server's own latency beside the client's (ms, {_scope(s)}; the server's percentiles "
                   "are as fine as its histogram buckets)")
    for header in ("n", "mean", *(f"p{percent_word(p)}" for p in HISTOGRAM_PERCENTS)):
        table.add_column(header)
    block = s.steady or s.whole
    for m in shown:
        got, client = server[m.name], block.latency[m.client]
        table.add_section()
        table.add_row(f"{m.label} server", _num(got["observations"]), _num(got[m.key("mean")]),
                      *(_num(got[m.key(p)]) for p in HISTOGRAM_PERCENTS))
        if client is not None:
            table.add_row(f"{m.label} client", _num(client.n), _num(client.mean),
                          *(_num(client.percentiles.get(p)) for p in HISTOGRAM_PERCENTS))
            table.add_row(Text(f"{m.label} gap: network + API server", style="italic"), "",
                          _num(got[m.key("gap_mean")]), _num(got[m.key("gap_p50")]))
    return table


def _gap_note(s: Summary) -> str:
    """One line on how large the network and API server's share of each latency is."""
    parts = []
    for m in SERVER_METRICS:
        got = (s.server or {}).get(m.name) or {}
        gap, client = got.get(m.key("gap_mean")), got.get(m.key("client_mean"))
        if gap is not None and client:
            parts.append(f"{m.label} {'+' if gap >= 0 else ''}{_num(gap)} {m.unit} of {_num(client)} {m.unit} at the mean "
                         f"({100 * gap / client:+.0f}%)")
    return "network + API server (client minus server): " + "; ".join(parts) if parts else ""


def _latency_table(s: Summary, blocks, wide: bool) -> Table:
    """Latency per span; an overloaded run's are headed as what they are, a queue's waits."""
    table = _table(f"Latency (ms), {SCHEDULED}")
    spread = ("std", "min") if wide else ()
    for header in ("n", "mean", *spread, *(f"p{percent_word(p)}" for p in s.percentiles), "max"):
        table.add_column(header)
    for label, block in blocks:
        table.add_section()
        table.add_row(Text(f"{label}: {QUEUE}" if s.verdict.overloaded else label, style="italic"), words=True)
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
    table.add_column("requests")
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
    table = _table("Runs side by side (each run's window, else its whole run)")
    for s in summaries:
        table.add_column(s.name)
    pick = [s.steady or s.whole for s in summaries]
    shown = [m for m in METRICS if m.side_by_side]
    table.add_row("figures from", *(_scope(s) for s in summaries), words=True)
    _scalar_rows(table, [m for m in shown if not m.distribution],
                 lambda m: [_num(getattr(b, m.field)) for b in pick])
    for m in shown:
        if m.kind == LATENCY:
            for p in summaries[0].percentiles:
                cells = [b.latency[m.name] and b.latency[m.name].percentiles.get(p) for b in pick]
                table.add_row(figure(m, p).heading, *(_num(c) for c in cells))
    table.add_row("verdict", *(
        Text("overloaded: latencies are a queue's waits", style="bold red") if s.verdict.overloaded
        else Text("steady" if s.verdict.steady else "no steady state", style="green" if s.verdict.steady else "yellow")
        for s in summaries
    ), words=True)
    table.add_row("warnings", *(str(len(s.warnings)) for s in summaries))
    console.print(table)
    for s in summaries:
        if s.verdict.overloaded or s.warnings:
            console.print(Text(s.name, style="bold"))
            _render_trust(s, console)
