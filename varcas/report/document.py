"""The report as an ordered list of blocks (headings, paragraphs, lists, tables, figures), so
the HTML page and REPORT.md carry the same content in the same order; only the page draws the
figures.

Order: title; trust warnings and failures first; key findings; the static roofline's tables;
per group, its comparison table, Pareto front and recommendations; the figures; the roofline
explanation (model prediction vs measurement) and the validation of its predictions against the
measured decode steps; the files in the directory.
"""
from __future__ import annotations

from dataclasses import dataclass

from .findings import findings, pareto_line, trust_warnings
from .load import Report
from .tables import (
    Table,
    comparison_table,
    hardware_table,
    phase_table,
    recommendation_table,
    roofline_table,
    validation_table,
)


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Para:
    text: str
    style: str = ""  # "meta", "note", "ok"


@dataclass(frozen=True)
class Items:
    items: list
    style: str = ""  # "fail"


@dataclass(frozen=True)
class Warnings:
    runs: list  # [(run name, [line, ...]), ...]


@dataclass(frozen=True)
class Figure:
    caption: str
    figure: object  # a plotly Figure


Block = Heading | Para | Items | Warnings | Table | Figure  # what blocks() returns; renderers dispatch on the type


def blocks(report: Report, figures: list[tuple[str, object]] | None = None) -> list[Block]:
    """The report's content in page order; figures (caption, figure) go in the Plots section."""
    out: list[Block] = [Heading(1, report.title),
           Para(f"{report.subject}. Recorded {report.date}; report by varcas {report.version}; "
                f"directory {report.path}.", "meta")]
    out += _trust(report)
    out += [Heading(2, "Key findings"), Items(findings(report) or ["No run produced figures."])]
    if report.static:
        out += [Heading(2, "Static roofline (model prediction)"), hardware_table(report.static),
                phase_table(report.static)]
    for g in report.groups:
        out += [Heading(2, f"Batch comparison: {g.title}" if g.sweep else g.title[:1].upper() + g.title[1:]),
                comparison_table(g)]
        if g.sweep:
            out += [Para(pareto_line(g)), recommendation_table(g),
                    Para("vLLM flags are the sweep's parameter names as vLLM spells them; "
                         "add them to the server's command line.", "note")]
    if figures:
        out += [Heading(2, "Plots"), *(Figure(caption, fig) for caption, fig in figures)]
    out += _explanations(report)
    out += [Heading(2, "Artifacts"), Para(f"Files in {report.path} when this report was written:"),
            Items([f"{name} ({_size(size)})" for name, size in report.artifacts] or ["(none)"])]
    return out


def _trust(report: Report) -> list[Block]:
    runs = trust_warnings(report)
    verdict: Warnings | Para
    if runs:
        verdict = Warnings(runs)
    elif any(g.digests for g in report.groups):
        verdict = Para("None: every run reached a steady state and raised no warning.", "ok")
    else:
        verdict = Para("No run was measured, so there is nothing to trust yet.")
    out: list[Block] = [Heading(2, "Trust warnings"), verdict]
    if report.failures:
        out += [Heading(3, "Failed or skipped"), Items(report.failures, "fail")]
    return out


def _explanations(report: Report) -> list[Block]:
    out: list[Block] = []
    for g in report.groups:
        table = roofline_table(g)
        if table is not None:
            out += [t for t in (table, validation_table(g)) if t is not None]
        elif g.roofline_note:
            out.append(Para(f"{g.title}: {g.roofline_note}.", "note"))
    return [Heading(2, "Roofline explanation: model prediction vs measurement"), *out] if out else []


def _size(n: int) -> str:
    for unit, scale in (("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
