"""`varcas sweep-rate`'s knee sentence agrees with the table printed above it and with
capacity.json: each rate it names is a row of the table, with the same attainment and offered
load in the same rounding and the same pass or fail; the side it says meets the target does in
the table, the side it says does not does not. Three searches on the offline T4 (max-num-seqs
8): one that brackets the capacity, one that fails at its only rate, one that passes at its only
rate."""
from __future__ import annotations

import json
import re

import pytest

from tests.cli_helpers import T4_SIM_FLAGS, cli
from varcas.optimize.capacity import CAPACITY_FILE

SEARCH = ["sweep-rate", "--offline", *T4_SIM_FLAGS, "--sim-max-num-seqs", "8", "--duration", "30",
          "--goodput", "ttft:1000", "tpot:100"]
ROW = re.compile(r"^\s*(?P<rate>[\d.]+)\s+(?P<offered>\S+)\s+(?P<attained>\S+)\s+(?P<passed>yes|no)\s+\S+\s+\S+\s+\S+"
                 r"\s+(?P<verdict>steady|unsteady|overloaded|interrupted)\s*$")
SIDE = re.compile(r"(?P<rate>[\d.]+) req/s \((?P<attained>[\d.]+%) of (?P<offered>[\d.]+) offered req/s; "
                  r"(?P<outcome>passed|failed, overloaded|failed)\)")


def _table(out: str) -> dict[str, dict]:
    """The printed table's rows by their rate, as printed."""
    return {m["rate"]: m.groupdict() for line in out.splitlines() if (m := ROW.match(line))}


def _knee(out: str) -> str:
    """The knee's sentence, its line breaks undone."""
    flat = " ".join(out.split())
    return flat[flat.index("knee: ") + len("knee: "):flat.index(" results: ")]


@pytest.mark.parametrize("flags, form", [
    (["--start", "2", "--max-steps", "6"], "bracket"),
    (["--start", "20", "--max-steps", "1"], "already"),
    (["--start", "0.5", "--max-rps", "0.5"], "highest"),
])
def test_the_knee_sentence_names_the_tables_rows(capsys, tmp_path, flags, form):
    code, out, _ = cli(capsys, *SEARCH, *flags, "--out", tmp_path / "c")
    assert code == 0
    rows, knee = _table(out), _knee(out)
    result = json.loads((tmp_path / "c" / CAPACITY_FILE).read_text())["result"]
    assert len(rows) == result["runs"]
    sides = list(SIDE.finditer(knee))
    expected = {"bracket": ["below", "above"], "already": ["above"], "highest": ["below"]}[form]
    assert len(sides) == len(expected)
    for side, name in zip(sides, expected):
        row = rows[side["rate"]]
        assert (side["attained"], side["offered"]) == (row["attained"], row["offered"])
        assert (side["outcome"] == "passed") == (row["passed"] == "yes")
        assert side["outcome"].endswith("overloaded") == (row["verdict"] == "overloaded")
        assert float(side["rate"]) == result["knee"][f"{name}_rate_rps"]
        meets = float(row["attained"].rstrip("%")) >= 99
        assert meets == (name == "below")  # "at least 99% ... up to" it, "fewer" at the side above
    missing = {"already": "below", "highest": "above"}.get(form)
    if missing:
        assert result["knee"][f"{missing}_rate_rps"] is None
    if form == "bracket":
        assert knee.startswith("at least 99% of the offered requests meet the SLOs up to ")
        assert knee.endswith("the capacity bracket") == (float(sides[0]["rate"]) == result["capacity_rps"])
    elif form == "already":
        assert knee.startswith("fewer than 99% of the offered requests meet the SLOs already at ")
    else:
        assert knee.endswith("), the highest rate tried")
