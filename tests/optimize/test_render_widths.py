"""`varcas optimize` (and `varcas pipeline`) print the comparison, recommendations, roofline and
its validation so that at 60, 80 and 120 columns no line is wider than the console, no cell is
cut ("…"), every figure is printed whole and every word of a label too. The comparison is a real
one: an offline sweep of max_num_seqs on the simulated T4, whose roofline columns were all cut
at 80 columns before."""
from __future__ import annotations

import contextlib
import io
import re

import pytest
from rich.console import Console

from tests.cli_helpers import T4_SIM_FLAGS
from varcas.analyze.catalog import COMPARED
from varcas.cli import main
from varcas.optimize.render import print_comparison
from varcas.results.comparison import read_comparison
from varcas.results.labels import cell, verdict_label
from varcas.results.measured import batch_label, validation_rows

BORDER = r"\s\u2500-\u257f"  # whitespace and box-drawing characters: what separates cells


@pytest.fixture(scope="module")
def comparison(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("sweep") / "sweep"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["optimize", "--offline", *T4_SIM_FLAGS, "--param", "max_num_seqs=1,4,16,32", "--workload",
                     "chat_medium", "--rps", "0.8", "--duration", "60", "--warmup", "0", "--quiet",
                     "--out", str(out)]) == 0
    return read_comparison(out)


def whole(token: str, text: str) -> bool:
    return re.search(rf"(?<![^{BORDER}]){re.escape(token)}(?![^{BORDER}])", text) is not None


def figures(result: dict) -> set[str]:
    """Every figure the comparison holds, formatted as print_comparison formats it."""
    found = set()
    for entry in result["workloads"].values():
        for r in entry["rows"]:
            if "metrics" in r:
                found |= {cell(r["metrics"][f.key], r["change"][f.key]) for f in COMPARED}
        roof = entry.get("roofline") or {"points": []}
        for p in roof["points"]:
            x = p["measured"]
            found |= {str(p["batch"]), f"{p['decode_ai']:.1f}", f"{p['predicted_tokens_per_s']:,.0f}",
                      cell(p["measured_tokens_per_s"], None)}
            if x:
                found |= {batch_label(x), cell(x["predicted_tokens_per_s"], None)}
        found |= {c for row in validation_rows(roof["points"]) for c in row[1:]}
    return found


def words(result: dict) -> set[str]:
    """Every word of the labels: configurations, verdicts, use cases and the reasons."""
    found = set()
    for entry in result["workloads"].values():
        for r in entry["rows"]:
            found |= {r["config"], *verdict_label(r).split()}
        for rec in entry["recommendations"]:
            found |= set(f"{rec['use_case']} {rec['config'] or '-'} {rec.get('flags') or '-'} {rec['reason']}".split())
    return found


@pytest.mark.parametrize("width", [60, 80, 120])
def test_the_comparison_prints_whole_at_any_width(comparison, width):
    out = io.StringIO()
    print_comparison(comparison, Console(width=width, file=out, color_system=None))
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= width
    assert "…" not in text
    assert any(entry.get("roofline") for entry in comparison["workloads"].values())  # the tables rich cut
    assert sorted(f for f in figures(comparison) if not whole(f, text)) == []
    assert sorted(w for w in words(comparison) if not whole(w, text)) == []
