"""Terminal tables of summaries (rich): one run in detail, or several side by side.

render() is also what `varcas load` prints when a run ends, so it must cope with a run that
has just finished and with one where every request failed (errors, no latency table).
"""
from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .summary import Summary, percent_word

_LATENCY_NAMES = {
    "ttft": "TTFT",
    "tpot": "TPOT",
    "itl": "ITL",
    "e2el": "E2E",
    "open_loop": "E2E sched",  # from the scheduled send: includes the generator's lag
    "send_lag": "send lag",
    "slot_wait": "slot wait",
}
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
    for label, field in _THROUGHPUT_ROWS:
        if field == "request_goodput" and s.goodput is None:
            continue
        throughput.add_row(label, *(_num(getattr(block, field)) for _, block in blocks))
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


_SERVER_ROWS = (("running (the batch it ran)", "running", 1), ("waiting (its queue)", "waiting", 1),
                ("KV-cache usage (%)", "kv_cache_usage", 100))


def _server_table(s: Summary) -> Table:
    """The server's own view (its /metrics) over the window the figures above describe."""
    scope = "steady window" if s.steady else "whole run"
    table = _table(f"Server's own figures (/metrics, {s.server['scrapes']} scrapes in the {scope})")
    table.add_column("")
    for header in ("mean", "p50", "p90", "max"):
        table.add_column(header, justify="right")
    for label, key, scale in _SERVER_ROWS:
        if key in s.server:
            g = s.server[key]
            table.add_row(label, *(_num(g[k] * scale) for k in ("mean", "p50", "p90", "max")))
    for label, key in (("preemptions", "preemptions"), ("prompt tokens/s", "prompt_tokens"),
                       ("generation tokens/s", "generation_tokens")):
        if key in s.server:
            c = s.server[key]
            value = c["delta"] if key == "preemptions" else c["per_s"]
            table.add_row(label, _num(int(value) if key == "preemptions" else value), "", "", "")
    return table


_THROUGHPUT_ROWS = (
    ("completed", "completed"),
    ("failed", "failed"),
    ("duration (s)", "duration_s"),
    ("request throughput (req/s)", "request_throughput"),
    ("request goodput (req/s)", "request_goodput"),
    ("output throughput (tok/s)", "output_throughput"),
    ("total token throughput (tok/s)", "total_token_throughput"),
    ("peak output tokens/s", "max_output_tokens_per_s"),
    ("peak concurrent requests", "max_concurrent_requests"),
)


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
                table.add_row(_LATENCY_NAMES[name], "0")
                continue
            stats = (dist.std, dist.min) if wide else ()
            cells = (dist.mean, *stats, *(dist.percentiles[p] for p in s.percentiles), dist.max)
            table.add_row(_LATENCY_NAMES[name], _num(dist.n), *(_num(c) for c in cells))
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


_SIDE_BY_SIDE = (
    ("completed", lambda b: b.completed),
    ("failed", lambda b: b.failed),
    ("request throughput (req/s)", lambda b: b.request_throughput),
    ("output throughput (tok/s)", lambda b: b.output_throughput),
    ("request goodput (req/s)", lambda b: b.request_goodput),
    ("peak concurrent requests", lambda b: b.max_concurrent_requests),
)


def _render_many(summaries, console: Console) -> None:
    table = _table("Runs side by side (steady window where one was found)")
    table.add_column("")
    for s in summaries:
        table.add_column(s.name, justify="right")
    pick = [s.steady or s.whole for s in summaries]
    for label, get in _SIDE_BY_SIDE:
        table.add_row(label, *(_num(get(b)) for b in pick))
    for name in ("ttft", "tpot", "itl", "e2el"):
        for p in summaries[0].percentiles:
            cells = [b.latency[name] and b.latency[name].percentiles.get(p) for b in pick]
            table.add_row(f"{_LATENCY_NAMES[name]} p{percent_word(p)} (ms)", *(_num(c) for c in cells))
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
