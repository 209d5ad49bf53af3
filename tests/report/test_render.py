"""The page and REPORT.md of a hand-written sweep: one self-contained file (plotly.js inline
exactly once, nothing fetched), trust warnings first, the same content in both."""
from __future__ import annotations

import re

from plotly.offline import get_plotlyjs

from varcas.report.html import page
from varcas.report.markdown import text
from varcas.report.tables import validation_table
from varcas.results import compare
from varcas.results.measured import VALIDATION_HEADERS

from .conftest import OVERLOADED_TEXT


def test_the_page_embeds_plotly_once_and_loads_nothing(synthetic_report):
    html, n = page(synthetic_report)
    assert n == 5 and html.count('class="plotly-graph-div"') == 5
    assert html.count(get_plotlyjs()) == 1
    assert html.count("<script") == 1 + n  # plotly.js, then one drawing call per figure
    assert not re.search(r"<script[^>]*\bsrc\s*=", html, re.I)
    assert not re.search(r"<(link|img|iframe)\b", html, re.I)
    assert "displaylogo" in html and '"displaylogo": false' in html


def test_the_page_starts_with_the_title_then_trust_warnings(synthetic_report):
    html, _ = page(synthetic_report)
    body = html[html.index("<body>"):]
    order = [body.index(s) for s in ("<h1>Batch sweep &lt;of&gt; max_num_seqs</h1>", "<h2>Trust warnings</h2>",
                                     OVERLOADED_TEXT, "configuration max_num_seqs-16: boom", "<h2>Key findings</h2>",
                                     "<h2>Batch comparison: chat_medium</h2>", "<h2>Plots</h2>", 'id="figure-1"',
                                     "<h2>Roofline explanation: model prediction vs measurement</h2>",
                                     "<h2>Artifacts</h2>")]
    assert order == sorted(order)
    assert "<title>Batch sweep &lt;of&gt; max_num_seqs</title>" in html


def test_flagged_columns_are_shaded(synthetic_report):
    html, _ = page(synthetic_report)
    assert '<th class="flag">max_num_seqs-1 ⚠ overloaded</th>' in html
    assert '<th class="flag">max_num_seqs-16 ✗ failed</th>' in html
    assert "<th>max_num_seqs-4</th>" in html


def test_the_markdown_has_the_same_sections_without_plots(synthetic_report):
    md = text(synthetic_report)
    headings = [line for line in md.splitlines() if line.startswith("#")]
    assert headings == ["# Batch sweep &lt;of&gt; max_num_seqs", "## Trust warnings", "### Failed or skipped",
                        "## Key findings", "## Batch comparison: chat_medium",
                        "## Roofline explanation: model prediction vs measurement", "## Artifacts"]
    assert f"> **⚠ max_num_seqs-1/chat_medium**\n> - {OVERLOADED_TEXT}" in md
    assert "- configuration max_num_seqs-16: boom" in md
    assert "| interactive | max_num_seqs-8 | --max-num-seqs 8 |" in md
    assert "| verdict | OVERLOADED | steady | steady | failed: boom |" in md
    assert "- sweep.json (950 B)" in md


def test_server_chosen_strings_are_escaped_in_the_markdown(synthetic_report):
    hostile = '<img src=x onerror="alert(1)"> & <script>'
    synthetic_report.subject = f"model {hostile}"
    synthetic_report.failures.append(f"configuration x: {hostile}")
    synthetic_report.groups[0].rows[3]["reason"] = hostile
    md = text(synthetic_report)
    assert "<img" not in md and "<script>" not in md
    assert '&lt;img src=x onerror="alert(1)"&gt; &amp; &lt;script&gt;' in md


def test_a_report_of_steady_runs_says_there_is_nothing_to_distrust(synthetic_report):
    group = synthetic_report.groups[0]
    group.rows, group.roofline = [r for r in group.rows if r["config"] == "max_num_seqs-4"], None
    group.recommendations, synthetic_report.failures = compare.recommend(group.rows, compare.DEFAULT_SLO_MS), []
    md = text(synthetic_report)
    assert "## Trust warnings\n\nNone: every run reached a steady state and raised no warning." in md


def test_a_report_without_runs_says_nothing_was_measured(synthetic_report):
    group = synthetic_report.groups[0]
    group.rows, group.digests, group.roofline = group.rows[3:], {}, None
    group.recommendations = compare.recommend(group.rows, compare.DEFAULT_SLO_MS)
    html, n = page(synthetic_report)
    assert n == 0 and "No run was measured, so there is nothing to trust yet." in html


def test_both_documents_carry_the_validation_of_roofline_predictions(synthetic_report):
    group = synthetic_report.groups[0]
    table = validation_table(group)
    assert table.headers == list(VALIDATION_HEADERS) and len(table.rows) == 3  # the failed configuration has none
    md = text(synthetic_report)
    start = md.index("**chat_medium: validation of roofline predictions (model prediction vs measured decode steps)**")
    assert start > md.index("## Roofline explanation: model prediction vs measurement")
    lines = md[start:].splitlines()
    assert lines[2] == "| " + " | ".join(VALIDATION_HEADERS) + " |"
    assert lines[4:7] == ["| " + " | ".join(row) + " |" for row in table.rows]
    assert lines[4].startswith("| max_num_seqs-1 ⚠ overloaded | 1 (inferred) | ")
    html, _ = page(synthetic_report)
    assert "chat_medium: validation of roofline predictions" in html and "<th>measured / predicted step</th>" in html
