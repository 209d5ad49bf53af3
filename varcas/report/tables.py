"""The report's tables as plain cells, so the HTML page and REPORT.md show the same numbers.

A Table is a title, headers, rows of strings and the columns that must not be read as a steady
state (an overloaded, unsteady or failed configuration): the renderers mark those. Figures come
from compare.workload_rows rows (steady window, else the whole run, and the row says which),
formatted as `varcas optimize` prints them. Roofline columns say in their header whether a
number is a model prediction or a measurement.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..analyze.catalog import COMPARED
from ..results.compare import (  # the terminal's flags, spelled the same
    server_flags,
    trusted,  # measured, steady, not overloaded
)
from ..results.digest import Digest
from ..results.labels import cell, verdict_label
from ..results.measured import (
    VALIDATION_NOTE,
    batch_label,
    validation_headers,
    validation_rows,
)
from .load import Group

FLAG_NOTE = ("Columns marked ⚠ are not a steady state: an overloaded server's latency percentiles describe a growing "
             "queue, and a run without a steady state has no stable figures. ✗ marks a configuration without a "
             "complete run; the verdict row says why.")


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    flagged: list[int] = field(default_factory=list)  # column indices that are not a steady state
    note: str = ""
    left: int = 1  # leading columns of text (left-aligned); the rest are numbers


def column_label(row: dict) -> str:
    """The configuration's name with a mark when its figures are not a steady state."""
    if "metrics" not in row:
        return f"{row['config']} ✗ {row['status']}"
    if row["overloaded"]:
        return f"{row['config']} ⚠ overloaded"
    return row["config"] if row["steady"] else f"{row['config']} ⚠ no steady state"


def number(value) -> str:
    """'1,234', '12.3', '0.0502' (three significant digits below 100); '-' for None."""
    return cell(value, None)


def _window(row: dict, digest: Digest | None) -> str:
    if digest is None:
        return "-"
    window = digest.summary.get("window")
    if row.get("scope") != "steady" or not window:
        return "whole run"
    return f"{window['start_s']:.0f}-{window['end_s']:.0f} s"


def comparison_table(group: Group) -> Table:
    """Metric x configuration (or x workload for load tests), changes against the baseline, verdict."""
    rows = group.rows
    body = [["offered load (req/s)", *(number(r.get("offered_rps")) for r in rows)]]
    for f in COMPARED:
        body.append([f.heading, *(cell(r["metrics"][f.key], r["change"][f.key]) if "metrics" in r else "-"
                                  for r in rows)])
    body.append(["window", *(_window(r, group.digests.get(r["config"])) for r in rows)])
    body.append(["verdict", *(verdict_label(r) for r in rows)])
    flagged = [i + 1 for i, r in enumerate(rows) if not trusted(r)]
    if group.sweep:
        title = f"{group.title}: each configuration's steady window, change against {group.baseline}"
    else:
        title = f"{group.title}: steady-window figures"
    return Table(title, ["metric", *(column_label(r) for r in rows)], body, flagged,
                 FLAG_NOTE if flagged else "")


def recommendation_table(group: Group) -> Table:
    """Use case, configuration, its vLLM flags and the reason (a sweep's group)."""
    params = {r["config"]: r["params"] for r in group.rows}
    body = [[rec["use_case"], rec["config"] or "-", server_flags(params[rec["config"]]) if rec["config"] else "-",
             rec["reason"]] for rec in group.recommendations]
    return Table(f"{group.title}: recommendation per use case", ["use case", "configuration", "vLLM flags", "why"],
                 body, left=4)


def roofline_table(group: Group) -> Table | None:
    """The roofline explanation: model predictions beside the measured throughput, labelled."""
    roof = group.roofline
    if not roof:
        return None
    label = {r["config"]: column_label(r) for r in group.rows}
    body = []
    for p in roof["points"]:
        frac, x = p["measured_fraction"], p["measured"]
        body.append([label.get(p["config"], p["config"]), str(p["batch"]),
                     f"{p['decode_ai']:.1f}", p["decode_bound"], number(p["predicted_tokens_per_s"]),
                     batch_label(x) if x else "-", number(x and x["predicted_tokens_per_s"]),
                     number(p["measured_tokens_per_s"]), "-" if frac is None else f"{frac:.0%}"])
    headers = ["configuration", "max_num_seqs", "decode AI, FLOP/byte (model)", "bound (model)",
               "tok/s at max_num_seqs (model)", "batch reached (measured)", "tok/s at that batch (model)",
               "output tok/s (measured)", "measured / model"]
    note = (f"Model prediction: varcas's roofline model of {roof['model']} ({roof['precision']}) on {roof['gpu']}, "
            "decode only, at the run's mean context. Measured: the run's steady-window output tokens/s. "
            "The ratio counts prefill and idle time against the server, so it is below 1 on a server that is not "
            "kept busy. Batch reached: the server's own mean running requests (marked 'server', from its /metrics), "
            "else the client's mean requests in flight (marked 'inferred'), an upper bound.")
    return Table(f"{group.title}: roofline explanation (model prediction vs measurement)", headers, body, note=note)


def validation_table(group: Group) -> Table | None:
    """Validation of roofline predictions: per configuration, the model's decode step beside the
    measured one (results.measured.validation_rows, as `varcas optimize` prints it)."""
    roof = group.roofline
    if not roof:
        return None
    label = {r["config"]: column_label(r) for r in group.rows}
    body = validation_rows(roof["points"], lambda p: label.get(p["config"], p["config"]))
    if not body:
        return None
    return Table(f"{group.title}: validation of roofline predictions (model prediction vs measured decode steps)",
                 validation_headers(roof["points"]), body, note=VALIDATION_NOTE)


def phase_table(static: dict) -> Table:
    """The static roofline's phases (model prediction), one row per phase and shape."""
    body = [[p["phase"], str(p["batch"]), str(p["length"]), f"{p['ai']:.1f}", f"{p['attainable'] / 1e12:.2f}",
             f"{p['pct_of_peak']:.1f}%", p["bound"], f"{p['realistic_time_s'] * 1e3:.2f}",
             number(p["realistic_tokens_per_s"])] for p in static["phases"]]
    headers = ["phase", "batch", "prompt | context", "AI (FLOP/byte)", "attainable TFLOPS", "of peak", "bound",
               "step ms (realistic)", "tok/s (realistic)"]
    return Table("Static roofline: phases (model prediction, not measured)", headers, body, left=1)


def hardware_table(static: dict) -> Table:
    """The GPU and model facts the static roofline used."""
    g, m, p = static["gpu"], static["model"], static["precision"]
    mem = static["memory"]
    peak = static["phases"][0]["peak"] if static["phases"] else g["peak_flops"].get(p["activations"]) or 0.0
    body = [["GPU", f"{g['display_name']} ({g['name']})"],
            [f"peak {p['activations']}", f"{peak / 1e12:.1f} TFLOPS"],
            ["memory bandwidth", f"{g['bandwidth_bytes_per_s'] / 1e9:.0f} GB/s"],
            ["ridge point", f"{peak / g['bandwidth_bytes_per_s']:.1f} FLOP/byte"],
            ["model", f"{m['name']}, {m['params'] / 1e9:.2f} B parameters"],
            ["precision", f"weights {p['weights']}, activations {p['activations']}, KV {p['kv']}"]]
    if mem:
        body.append(["weights", f"{mem[0]['weight_bytes'] / 1e9:.2f} GB "
                                f"({8 * mem[0]['weight_bytes'] / m['params']:.2f} bits/parameter)"])
        body.append(["KV cache", f"{mem[0]['kv_bytes_per_token']:,} bytes/token"])
        body += [[f"sequences that fit @ {x['context']}", str(x["max_sequences"]) if x["fits"] else "none"]
                 for x in mem]
    return Table("Static roofline: hardware and model", ["", "value"], body, left=2)
