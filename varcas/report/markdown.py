"""text(report): REPORT.md, the report's content as Markdown (the page without its figures).

Every text is HTML-escaped (`<`, `>`, `&`): model names, error bodies and paths come from
servers and users, and a Markdown viewer renders raw HTML. Pipe tables with `|` in cells
escaped; flagged columns (not a steady state) are already marked
in their headers (⚠ overloaded, ⚠ no steady state, ✗ failed) and each such table says why.
"""
from __future__ import annotations

from html import escape

from .document import Heading, Items, Para, Warnings, blocks
from .load import Report
from .tables import Table


def text(report: Report) -> str:
    """REPORT.md's content."""
    return "\n\n".join(_render(b) for b in blocks(report)) + "\n"


def table(t: Table) -> str:
    """A titled pipe table, numbers right-aligned, with its note below."""
    def row(cells) -> str:
        return "| " + " | ".join(_cell(c) for c in cells) + " |"

    align = "|" + "|".join(":---" if i < t.left else "---:" for i in range(len(t.headers))) + "|"
    lines = [f"**{_esc(t.title)}**", "", row(t.headers), align, *(row(r) for r in t.rows)]
    if t.note:
        lines += ["", f"_{_esc(t.note)}_"]
    return "\n".join(lines)


def _esc(text) -> str:
    return escape(str(text), quote=False)


def _cell(text: str) -> str:
    return _esc(text).replace("|", "\\|").replace("\n", " ") or " "


def _render(block) -> str:
    if isinstance(block, Heading):
        return f"{'#' * block.level} {_esc(block.text)}"
    if isinstance(block, Para):
        return f"_{_esc(block.text)}_" if block.style == "note" else _esc(block.text)
    if isinstance(block, Items):
        return "\n".join(f"- {_esc(i)}" for i in block.items)
    if isinstance(block, Warnings):
        return "\n\n".join(f"> **⚠ {_esc(name)}**\n" + "\n".join(f"> - {_esc(line)}" for line in lines)
                             for name, lines in block.runs)
    if isinstance(block, Table):
        return table(block)
    raise TypeError(f"unknown block {type(block).__name__}")
