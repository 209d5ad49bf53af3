"""`varcas report`: two files written and their paths printed; every input error is one line
and exit status 2."""
from __future__ import annotations

import pytest

from varcas.cli import main


def test_it_writes_both_files_and_prints_their_paths(run_dir, tmp_path, capsys):
    html, md = tmp_path / "r.html", tmp_path / "r.md"
    assert main(["report", str(run_dir), "--out-html", str(html), "--out-md", str(md)]) == 0
    assert capsys.readouterr().out == f"{html}\n{md}\n"
    assert html.read_text().startswith("<!DOCTYPE html>") and md.read_text().startswith("# Load test: chat_medium")
    assert not list(tmp_path.glob(".*.tmp"))


def test_the_default_outputs_go_into_the_directory(failed_sweep_dir, capsys):
    assert main(["report", str(failed_sweep_dir)]) == 0
    assert capsys.readouterr().out == f"{failed_sweep_dir / 'report.html'}\n{failed_sweep_dir / 'REPORT.md'}\n"
    md = (failed_sweep_dir / "REPORT.md").read_text()
    assert "- configuration max_num_seqs-4: the server exited with status 1 before it was ready" in md
    assert "report.html (" not in md and "REPORT.md (" not in md  # the report does not list itself


@pytest.mark.parametrize("case", ["missing", "empty", "corrupt sweep", "unwritable", "baseline"])
def test_bad_input_is_one_line_and_exit_2(case, run_dir, tmp_path, capsys):
    argv = {"missing": [str(tmp_path / "nope")],
            "empty": [str(tmp_path)],
            "corrupt sweep": [str(tmp_path)],
            "unwritable": [str(run_dir), "--out-html", str(tmp_path / "no" / "such" / "dir.html")],
            "baseline": [str(run_dir), "--baseline", "x"]}[case]
    if case == "corrupt sweep":
        (tmp_path / "sweep.json").write_text('{"sweep_version": 1, "configs": [')
    assert main(["report", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("varcas report: error: ")
    expected = {"missing": "nope: no such directory", "empty": "not a run, sweep or pipeline directory",
                "corrupt sweep": "unreadable sweep spec", "unwritable": "cannot write",
                "baseline": "--baseline applies to a sweep"}[case]
    assert expected in err
