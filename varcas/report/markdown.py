"""text(report): REPORT.md, the report's content as Markdown (the page without its figures).

Pipe tables with `|` in cells escaped; flagged columns (not a steady state) are already marked
in their headers (⚠ overloaded, ⚠ no steady state, ✗ failed) and each such table says why.
"""
from __future__ import annotations

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
    lines = [f"**{t.title}**", "", row(t.headers), align, *(row(r) for r in t.rows)]
    if t.note:
        lines += ["", f"_{t.note}_"]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or " "


def _render(block) -> str:
    if isinstance(block, Heading):
        return f"{'#' * block.level} {block.text}"
    if isinstance(block, Para):
        return f"_{block.text}_" if block.style == "note" else block.text
    if isinstance(block, Items):
        return "\n".join(f"- {i}" for i in block.items)
    if isinstance(block, Warnings):
        return "\n\n".join(f"> **⚠ {name}**\n" + "\n".join(f"> - {line}" for line in lines)
                             for name, lines in block.runs)
    if isinstance(block, Table):
        return table(block)
    raise TypeError(f"unknown block {type(block).__name__}")
