"""page(report): the report as ONE self-contained HTML file that works offline.

plotly.js is embedded once, inline, in the head (no CDN, no <script src>, no MathJax); each
figure is a div plus the inline call that draws it, with plotly's logo link turned off, so
the page fetches nothing. Text is escaped; the small stylesheet is inline. Columns the tables
flag (not a steady state) are shaded and the trust warnings come first.
"""
from __future__ import annotations

from html import escape

import plotly.io as pio
from plotly.offline import get_plotlyjs

from .document import Figure, Heading, Items, Para, Warnings, blocks
from .load import Report
from .plots import figures
from .tables import Table

PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}
CSS = """
body { font: 14px/1.45 system-ui, sans-serif; color: #222; max-width: 1200px; margin: 24px auto; padding: 0 16px; }
h1 { font-size: 24px; margin-bottom: 4px; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 32px; }
.meta { color: #555; } .note { color: #555; font-size: 13px; } .ok { color: #2a7a2a; }
.trust { border-left: 4px solid #e0a800; background: #fff8e1; padding: 8px 14px; margin: 8px 0; }
.trust b { display: block; } .fail li { color: #b00020; }
table { border-collapse: collapse; margin: 0 0 12px; font-size: 13px; }
.caption { font-weight: 600; margin: 16px 0 4px; } table + .note { margin-top: 0; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: right; vertical-align: top; }
th { background: #f4f4f4; } td { max-width: 320px; } .text { text-align: left; } td.text { max-width: 640px; }
.flag { background: #eee; color: #666; } th.flag { background: #e0e0e0; }
figure { margin: 16px 0 28px; } figcaption { color: #555; font-size: 13px; }
"""


def page(report: Report) -> tuple[str, int]:
    """The HTML page and the number of figures it draws."""
    figs = figures(report)
    body = []
    n = 0
    for block in blocks(report, figs):
        if isinstance(block, Figure):
            n += 1
            body.append(_figure(block, n))
        else:
            body.append(_render(block))
    head = (f'<meta charset="utf-8"><title>{escape(report.title)}</title><style>{CSS}</style>'
            f'<script type="text/javascript">{get_plotlyjs()}</script>')
    html = f'<!DOCTYPE html>\n<html lang="en"><head>{head}</head>\n<body>\n' + "\n".join(body) + "\n</body></html>\n"
    return html, n


def _render(block) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{escape(block.text)}</h{block.level}>"
    if isinstance(block, Para):
        return f'<p class="{block.style}">{escape(block.text)}</p>' if block.style else f"<p>{escape(block.text)}</p>"
    if isinstance(block, Items):
        items = "".join(f"<li>{escape(str(i))}</li>" for i in block.items)
        return f'<ul class="{block.style}">{items}</ul>' if block.style else f"<ul>{items}</ul>"
    if isinstance(block, Warnings):
        return "\n".join(f'<div class="trust"><b>{escape(name)}</b><ul>'
                         + "".join(f"<li>{escape(line)}</li>" for line in lines) + "</ul></div>"
                         for name, lines in block.runs)
    if isinstance(block, Table):
        return _table(block)
    raise TypeError(f"unknown block {type(block).__name__}")


def _table(t: Table) -> str:
    flagged = set(t.flagged)

    def cls(i: int) -> str:
        names = (["flag"] if i in flagged else []) + (["text"] if i < t.left else [])
        return f' class="{" ".join(names)}"' if names else ""

    head = "".join(f"<th{cls(i)}>{escape(h)}</th>" for i, h in enumerate(t.headers))
    rows = "".join("<tr>" + "".join(f"<td{cls(i)}>{escape(c)}</td>" for i, c in enumerate(r)) + "</tr>"
                   for r in t.rows)
    note = f'<p class="note">{escape(t.note)}</p>' if t.note else ""
    return f'<p class="caption">{escape(t.title)}</p><table><tr>{head}</tr>{rows}</table>{note}'


def _figure(block: Figure, n: int) -> str:
    div = pio.to_html(block.figure, include_plotlyjs=False, include_mathjax=False, full_html=False,
                      div_id=f"figure-{n}", config=PLOTLY_CONFIG)
    return f"<figure>{div}<figcaption>{escape(block.caption)}</figcaption></figure>"
