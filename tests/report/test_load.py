"""What load() makes of real directories: a sweep, a single run (on the simulator or not), a
sweep whose servers all failed, a moved sweep, and pipelines complete or broken."""
from __future__ import annotations

import json
import shutil

import pytest

from varcas.errors import VarcasError
from varcas.report.load import load
from varcas.results.sweepdir import COMPARISON_FILE

from .conftest import SERVER_FAILED

CONFIGS = ["max_num_seqs-1", "max_num_seqs-4", "max_num_seqs-16"]


def test_a_sweep_is_one_group_per_workload(sweep_dir):
    report = load(sweep_dir)
    assert report.kind == "sweep" and report.failures == []
    assert report.title == "Batch sweep: max_num_seqs = 1, 4, 16 over chat_medium, code"
    assert report.subject == "llama-2-7b (awq) on t4, simulated in virtual time"
    assert [g.title for g in report.groups] == ["chat_medium", "code"]
    for g in report.groups:
        assert g.sweep and g.baseline == "max_num_seqs-1"
        assert [r["config"] for r in g.rows] == CONFIGS and sorted(g.digests) == sorted(CONFIGS)
        assert g.names == {c: f"{c}/{g.title}" for c in CONFIGS}
        assert [p["batch"] for p in g.roofline["points"]] == [1, 4, 16]
    assert (sweep_dir / COMPARISON_FILE).is_file()
    assert ("sweep.json", (sweep_dir / "sweep.json").stat().st_size) in report.artifacts


def test_the_baseline_can_be_chosen(sweep_dir):
    report = load(sweep_dir, baseline="max_num_seqs-16")
    row = next(r for r in report.groups[0].rows if r["config"] == "max_num_seqs-16")
    assert report.groups[0].baseline == "max_num_seqs-16" and row["change"]["output_throughput"] == 0.0


def test_a_run_on_the_simulator_gets_its_roofline_explanation(run_dir):
    report = load(run_dir)
    assert report.kind == "run" and report.title == "Load test: chat_medium at 0.8 req/s"
    (group,) = report.groups
    assert group.title == "load test (chat_medium)" and not group.sweep
    assert [r["config"] for r in group.rows] == ["chat_medium"] and group.names == {"chat_medium": "chat_medium"}
    assert [p["batch"] for p in group.roofline["points"]] == [8]  # the simulator's --max-num-seqs


def test_a_run_against_a_real_server_says_why_there_is_no_roofline(run_dir, tmp_path):
    copy = tmp_path / "real"
    shutil.copytree(run_dir, copy)
    manifest = json.loads((copy / "run.json").read_text())
    manifest["target"] = {"kind": "url", "url": "http://127.0.0.1:8000", "model": "m", "server_version": None}
    (copy / "run.json").write_text(json.dumps(manifest))
    (group,) = load(copy).groups
    assert group.roofline is None
    assert group.roofline_note == ("no roofline plot: the run's target is not varcas's simulator, so its model "
                                   "and GPU are unknown")


def test_failed_configurations_are_listed_with_their_reason(failed_sweep_dir):
    report = load(failed_sweep_dir)
    assert report.failures == [f"configuration {c}: {SERVER_FAILED}" for c in CONFIGS]
    assert all(g.digests == {} and g.roofline is None for g in report.groups)
    assert [r["reason"] for r in report.groups[0].rows] == [SERVER_FAILED] * 3


def test_a_moved_sweep_reads_its_runs_where_they_are(sweep_dir, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(sweep_dir, moved)
    for cached in moved.glob("*/*/digest.json"):  # as if written before the move
        data = json.loads(cached.read_text())
        data["path"] = "/gone/" + data["path"]
        cached.write_text(json.dumps(data))
    report = load(moved)
    assert report.groups[0].names["max_num_seqs-4"] == "max_num_seqs-4/chat_medium"


def test_a_pipeline_shows_what_exists_and_what_failed(pipeline_dir):
    report = load(pipeline_dir)
    assert report.kind == "pipeline" and report.title == "Pipeline: llama-2-7b on t4"
    assert report.static["gpu"]["name"] == "t4" and len(report.static["phases"]) == 12
    assert [g.title for g in report.groups] == ["load tests (chat_medium)", "chat_medium", "code"]
    assert report.groups[0].names == {"chat_medium": "load/chat_medium"}
    assert report.groups[1].names["max_num_seqs-1"] == "sweep/max_num_seqs-1/chat_medium"
    assert report.failures == [f"load test code: failed ({SERVER_FAILED})"]


def test_a_pipeline_whose_steps_failed_says_why(run_dir, tmp_path):
    (tmp_path / "load" / "code").mkdir(parents=True)
    shutil.copy(run_dir / "run.json", tmp_path / "load" / "code")  # a run that never wrote its requests
    (tmp_path / "pipeline.json").write_text(json.dumps({
        "format_version": 1, "model": "llama-2-7b", "gpu": "t4", "quant": "awq",
        "target": "the server at http://127.0.0.1:9",
        "steps": {"roofline": {"status": "failed", "reason": "unknown GPU"},
                  "load": {"chat_medium": {"status": "complete", "run": "load/chat_medium"},
                           "code": {"status": "complete", "run": "load/code"}},
                  "sweep": {"status": "skipped", "reason": "a server at --url cannot be restarted"}}}))
    report = load(tmp_path)
    assert report.groups == [] and report.static is None
    assert report.failures == [
        "static roofline: failed (unknown GPU)",
        "load test chat_medium: no run directory at load/chat_medium",
        f"load test code: {tmp_path / 'load' / 'code'}: not a run directory (no requests.parquet or requests.arrows)",
        "batch sweep: skipped (a server at --url cannot be restarted)"]


@pytest.mark.parametrize("make, message", [
    (lambda d: None, "not a run, sweep or pipeline directory (no run.json, sweep.json or pipeline.json)"),
    (lambda d: (d / "sweep.json").write_text("{not json"), "sweep.json: unreadable sweep spec (JSONDecodeError: not JSON?)"),
    (lambda d: (d / "pipeline.json").write_text("[]"),
     "pipeline.json: not a pipeline state (not a JSON object)"),
    (lambda d: (d / "pipeline.json").write_text('{"steps": {}}'),
     "pipeline.json: pipeline state format None, this varcas reads 1 (written by an older varcas: "
     "rerun the command that made it)"),
])
def test_what_is_not_a_report_directory_is_one_line(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(VarcasError) as info:
        load(tmp_path)
    assert str(info.value).endswith(message) and "\n" not in str(info.value)


def test_a_baseline_is_for_sweeps(run_dir, sweep_dir):
    with pytest.raises(VarcasError, match="^--baseline applies to a sweep; this is a single run$"):
        load(run_dir, baseline="x")
    with pytest.raises(VarcasError, match="^--baseline nope: not a configuration of this sweep"):
        load(sweep_dir, baseline="nope")


def _snapshot(path):
    return {p.relative_to(path): (p.stat().st_size, p.stat().st_mtime_ns) for p in path.rglob("*") if p.is_file()}


@pytest.mark.parametrize("which", ["run_dir", "sweep_dir", "pipeline_dir"])
def test_loading_a_report_writes_nothing(request, tmp_path, which):
    """The report only reads: no digest cache, no comparison.json, nothing else appears or changes."""
    copy = tmp_path / "copy"
    shutil.copytree(request.getfixturevalue(which), copy)
    for cached in copy.rglob("digest.json"):  # an uncached run must be digested in memory only
        cached.unlink()
    (copy / COMPARISON_FILE).unlink(missing_ok=True)  # a sweep without its comparison file
    before = _snapshot(copy)
    assert load(copy).groups
    assert _snapshot(copy) == before


def test_a_comparison_file_of_another_format_is_computed_afresh_and_left_alone(sweep_dir, tmp_path):
    copy = tmp_path / "sweep"
    shutil.copytree(sweep_dir, copy)
    older = {**json.loads((copy / COMPARISON_FILE).read_text()), "format_version": 1, "workloads": {}}
    (copy / COMPARISON_FILE).write_text(json.dumps(older))
    report = load(copy)
    assert [g.title for g in report.groups] == ["chat_medium", "code"]
    assert all(p["measured"] for g in report.groups for p in g.roofline["points"])
    assert json.loads((copy / COMPARISON_FILE).read_text()) == older


def test_the_simulators_runs_get_measured_points_from_the_batch_it_ran(sweep_dir):
    """The offline simulator writes metrics.parquet in virtual time, so the batch is the server's."""
    for g in load(sweep_dir).groups:
        points = [p["measured"] for p in g.roofline["points"]]
        assert {x["batch_source"] for x in points} == {"server"} and {x["work_source"] for x in points} == {"model"}
        assert all(0 < x["bandwidth_fraction"] < 1 and 0 < x["compute_fraction"] < 1 for x in points)
