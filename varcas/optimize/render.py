"""The comparison on the console: per workload, metric x configuration with the change
against the baseline, each configuration's verdict, the Pareto front, the recommendation per
use case, the roofline explanation and the validation of its predictions against the measured
decode steps. Tables go through varcas.termtable: no figure is cut at any width."""
from __future__ import annotations

from rich.console import Console

from ..analyze.catalog import COMPARED
from ..results.labels import cell, verdict_label
from ..results.measured import (
    VALIDATION_NOTE,
    batch_label,
    validation_headers,
    validation_rows,
)
from ..termtable import Table


def print_comparison(result: dict, console: Console) -> None:
    for workload, entry in result["workloads"].items():
        rows = entry["rows"]
        t = Table(f"{workload}: steady-window figures, change against {result['baseline']}", title_justify="left")
        t.add_column("metric", words=True)
        for r in rows:
            t.add_column(r["config"])
        for f in COMPARED:
            t.add_row(f.heading, *(cell(r["metrics"][f.key], r["change"][f.key]) if "metrics" in r else "-"
                                   for r in rows))
        t.add_row("verdict", *(verdict_label(r) for r in rows), words=True)
        console.print(t)
        console.print(f"Pareto front (throughput vs TTFT p99 and TPOT p99): {', '.join(entry['pareto']) or 'none'}")
        rec = Table(f"{workload}: recommendation", title_justify="left")
        for head in ("use case", "configuration", "server flags", "why"):
            rec.add_column(head, words=True)
        for r in entry["recommendations"]:
            rec.add_row(r["use_case"], r["config"] or "-", r.get("flags") or "-", r["reason"])
        console.print(rec)
        if entry.get("roofline"):
            console.print(_roofline_table(entry["roofline"]))
            if validation := _validation_table(entry["roofline"]):
                console.print(validation)
                console.print(VALIDATION_NOTE)
        elif entry.get("roofline_note"):
            console.print(entry["roofline_note"])


def _roofline_table(roof: dict) -> Table:
    t = Table(f"roofline (model prediction, {roof['model']} {roof['precision']} on {roof['gpu']}) vs measured",
              title_justify="left")
    t.add_column("config", words=True)
    for head in ("batch", "decode AI", "bound", "predicted tok/s", "achieved batch",
                 "predicted tok/s there", "measured tok/s", "measured / predicted"):
        t.add_column(head)
    for p in roof["points"]:
        frac, x = p["measured_fraction"], p["measured"]
        t.add_row(p["config"], str(p["batch"]), f"{p['decode_ai']:.1f}", p["decode_bound"],
                  f"{p['predicted_tokens_per_s']:,.0f}", batch_label(x) if x else "-",
                  cell(x and x["predicted_tokens_per_s"], None), cell(p["measured_tokens_per_s"], None),
                  "-" if frac is None else f"{frac:.0%}")
    return t


def _validation_table(roof: dict) -> Table | None:
    """Validation of roofline predictions: the rows the report shows too (results.measured)."""
    rows = validation_rows(roof["points"])
    if not rows:
        return None
    t = Table("validation of roofline predictions (model prediction vs measured decode steps)", title_justify="left")
    first, *rest = validation_headers(roof["points"])
    t.add_column(first, words=True)  # the configuration
    for head in rest:
        t.add_column(head)
    for row in rows:
        t.add_row(*row)
    return t
