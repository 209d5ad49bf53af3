"""`varcas optimize` on the offline simulator: layout, comparison, resume, bad input."""
import json
import re

import pytest

from tests.cli_helpers import T4
from tests.load.helpers import varcas_cli
from varcas import rundir
from varcas.errors import VarcasError
from varcas.optimize.backend import BackendSpec
from varcas.optimize.params import parse_param
from varcas.optimize.sweep import SweepSpec, run_sweep
from varcas.results import sweepdir
from varcas.results.comparison import comparison


def spec(out, values="2,16", **kw):
    base = dict(backend=BackendSpec(offline=True, sim=dict(T4)), params=[parse_param(f"max_num_seqs={values}")],
                workloads=("chat_medium",), out=str(out), duration_s=30.0, rps=1.0, quiet=True)
    return SweepSpec(**{**base, **kw})


def test_sweep_writes_the_layout_and_resumes_without_rerunning(tmp_path):
    out = tmp_path / "sw"
    lines = []
    run_sweep(spec(out), say=lines.append)
    starts = [line for line in lines if ": starting" in line]
    assert starts[0] == "[1/2] max_num_seqs-2: starting"  # nothing has run: no estimate yet
    assert re.fullmatch(r"\[2/2\] max_num_seqs-16: starting \(\d+ s elapsed, about \d+ s left\)", starts[1])
    meta = json.loads((out / "sweep.json").read_text())
    assert meta["configs"] == [["max_num_seqs-2", {"max_num_seqs": "2"}], ["max_num_seqs-16", {"max_num_seqs": "16"}]]
    for cid, n in (("max_num_seqs-2", 2), ("max_num_seqs-16", 16)):
        state = json.loads((out / cid / "config.json").read_text())
        assert state["status"] == "complete" and state["runs"] == {"chat_medium": "complete"}
        manifest = rundir.read_manifest(out / cid / "chat_medium")
        assert manifest["target"]["params"]["max_num_seqs"] == n
        assert (out / cid / "chat_medium" / "digest.json").is_file()
    stamp = (out / "max_num_seqs-2" / "chat_medium" / "run.json").stat().st_mtime_ns
    lines.clear()
    run_sweep(spec(out), say=lines.append)
    assert lines == ["[1/2] max_num_seqs-2: done earlier, skipped", "[2/2] max_num_seqs-16: done earlier, skipped"]
    assert (out / "max_num_seqs-2" / "chat_medium" / "run.json").stat().st_mtime_ns == stamp


def test_several_params_make_a_grid_of_simulator_settings(tmp_path):
    out = tmp_path / "sw"
    params = [parse_param("max_num_seqs=4,8"), parse_param("max_num_batched_tokens=4096,8192")]
    run_sweep(spec(out, params=params, duration_s=15.0), say=lambda _: None)
    ids = [cid for cid, _ in json.loads((out / "sweep.json").read_text())["configs"]]
    assert ids == ["max_num_seqs-4_max_num_batched_tokens-4096", "max_num_seqs-4_max_num_batched_tokens-8192",
                   "max_num_seqs-8_max_num_batched_tokens-4096", "max_num_seqs-8_max_num_batched_tokens-8192"]
    sim = rundir.read_manifest(out / ids[3] / "chat_medium")["target"]["params"]
    assert (sim["max_num_seqs"], sim["max_num_batched_tokens"]) == (8, 8192)


def test_an_unfinished_run_is_kept_aside_and_redone(tmp_path):
    out = tmp_path / "sw"
    run_sweep(spec(out, "4"), say=lambda _: None)
    run_dir = out / "max_num_seqs-4" / "chat_medium"
    manifest = rundir.read_manifest(run_dir)
    rundir.write_manifest(run_dir, {**manifest, "status": "interrupted"})
    state = json.loads((out / "max_num_seqs-4" / "config.json").read_text())
    rundir.write_json(out / "max_num_seqs-4" / "config.json", {**state, "status": "interrupted"})
    run_sweep(spec(out, "4"), say=lambda _: None)
    assert rundir.read_manifest(run_dir)["status"] == "complete"
    assert rundir.read_manifest(out / "max_num_seqs-4" / "chat_medium.partial-1")["status"] == "interrupted"


def test_a_sweep_with_other_settings_is_refused(tmp_path):
    out = tmp_path / "sw"
    run_sweep(spec(out, "4"), say=lambda _: None)
    with pytest.raises(VarcasError, match=r"other settings \(duration_s\)"):
        run_sweep(spec(out, "4", duration_s=60.0), say=lambda _: None)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x").write_text("")
    with pytest.raises(VarcasError, match="not a sweep directory"):
        run_sweep(spec(tmp_path / "other"), say=lambda _: None)


@pytest.mark.parametrize("param, message", [
    ("max_num_seqs=abc", "--max-num-seqs: not an integer"),
    ("bogus=1", "the simulator has no such setting"),
    ("enable_chunked_prefill=yes", "true or false"),
])
def test_bad_simulator_params_fail_before_anything_runs(tmp_path, param, message):
    with pytest.raises(VarcasError, match=message):
        run_sweep(spec(tmp_path / "sw", params=[parse_param(param)]), say=lambda _: None)
    assert not (tmp_path / "sw").exists()


def test_comparison_reads_the_sweep_back(tmp_path):
    out = tmp_path / "sw"
    run_sweep(spec(out, "1,16", duration_s=40.0), say=lambda _: None)
    result = comparison(out)
    rows = {r["config"]: r for r in result["workloads"]["chat_medium"]["rows"]}
    # One sequence at a time cannot keep up with 1 req/s of chat on a T4 (no steady state); sixteen can.
    assert not rows["max_num_seqs-1"]["steady"] and rows["max_num_seqs-1"]["metrics"]["ttft_p50"] > 10_000
    assert rows["max_num_seqs-16"]["steady"] and not rows["max_num_seqs-16"]["overloaded"]
    recs = {r["use_case"]: r["config"] for r in result["workloads"]["chat_medium"]["recommendations"]}
    assert recs == dict.fromkeys(("interactive", "balanced", "throughput", "cost"), "max_num_seqs-16")
    roof = {p["config"]: p for p in result["workloads"]["chat_medium"]["roofline"]["points"]}
    assert roof["max_num_seqs-16"]["batch"] == 16 and roof["max_num_seqs-1"]["batch"] == 1
    assert roof["max_num_seqs-16"]["decode_ai"] > roof["max_num_seqs-1"]["decode_ai"]
    assert json.loads((out / sweepdir.COMPARISON_FILE).read_text())["baseline"] == "max_num_seqs-1"


def optimize(*argv):
    return varcas_cli("-m", "varcas.cli", "optimize", *argv)


def test_cli_runs_compares_and_rejects_bad_input(tmp_path):
    r = optimize("--offline", "--param", "max_num_seqs=4,8", "--workload", "chat_low", "--duration", "20",
                 "--out", str(tmp_path / "sw"), "--quiet")
    assert r.returncode == 0, r.stderr
    assert "chat_low: recommendation" in r.stdout and "varcas report" in r.stdout
    (tmp_path / "file").write_text("")
    for argv, message in [
        (["--offline", "--param", "max_num_seqs=1", "--workload", "nope"], "nope"),
        (["--offline", "--param", "max_num_seqs"], "expected NAME=V1,V2"),
        (["--url", "http://127.0.0.1:9", "--param", "max_num_seqs=1"], "cannot be restarted"),
        (["--offline", "--goodput", "ttft:abc"], "--goodput"),
        (["--server-cmd", "vllm serve m --port {port}", "--param", "max_num_seqs=1"], "{max_num_seqs}"),
        (["--offline", "--url", "http://127.0.0.1:9"], "exclude each other"),
    ]:
        r = optimize(*argv, "--out", str(tmp_path / "bad"))
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and message in r.stderr, (argv, r.stderr)
    r = optimize("--offline", "--out", str(tmp_path / "file" / "sw"))
    assert r.returncode == 2 and "cannot create" in r.stderr


def test_clip_to_context_reaches_the_sweep_and_its_identity():
    from varcas.optimize.cli import build_parser, spec_from_args

    args = build_parser("varcas optimize").parse_args(["--offline", "--out", "x", "--clip-to-context"])
    clipped = spec_from_args(args)
    assert clipped.clip_to_context and clipped.identity()["clip_to_context"] is True
    plain = spec_from_args(build_parser("varcas optimize").parse_args(["--offline", "--out", "x"]))
    assert not plain.clip_to_context and "clip_to_context" not in plain.identity()  # older sweeps still resume
