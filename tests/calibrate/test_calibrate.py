"""`varcas calibrate`: runs of a simulator with known, non-default efficiencies and overhead are
fitted back (offline and served), a simulator with the fitted settings reproduces them, and
--calibration FILE reaches roofline, sim, optimize and pipeline. Bad input: one line, exit 2."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.cli_helpers import cli
from varcas import rundir
from varcas.analyze import load_run, request_metrics
from varcas.calibrate import calibrate
from varcas.calibrate import fit as F
from varcas.load.runner import LoadConfig, run_load
from varcas.roofline import calibration
from varcas.roofline.gpus import DEFAULT_COMPUTE_EFFICIENCY
from varcas.sim import SimConfig, resolve, spawn
from varcas.targets.offline import simulate

TRUTH = {"bw_efficiency": 0.55, "compute_efficiency": 0.4, "step_overhead_ms": 3.0}
MODEL = {"model": "llama-2-7b", "gpu": "h100", "quant": "awq"}
# Decode: saturating bursts at three batch caps (every decode step runs the whole batch); prefill:
# requests a quarter second apart, each done before the next arrives (idle arrivals), at two
# prompt lengths; their own decode steps (batch 1) add two contexts. 4-bit weights keep the
# steps short (5-15 ms), so the 3 ms overhead is a large share of each and the served runs fast.
DECODE = [(b, {"rps": 1000.0, "num_requests": n, "input_len": s, "output_len": 64, "seed": 1})
          for b, n, s in ((1, 4, 1024), (8, 16, 1024), (16, 16, 2048))]
PREFILL = [(1, {"rps": 4.0, "arrival": "constant", "num_requests": 6, "input_len": n, "output_len": 8, "seed": 2})
           for n in (1536, 3072)]


def offline_run(out: Path, name: str, max_num_seqs: int, load: dict, settings: dict) -> Path:
    setup = resolve(SimConfig(**MODEL, max_num_seqs=max_num_seqs, **settings))
    return simulate(setup, LoadConfig(out=str(out / name), quiet=True, **load)).run_dir


@pytest.fixture(scope="module")
def offline(tmp_path_factory) -> list[tuple[Path, int, dict]]:
    out = tmp_path_factory.mktemp("offline")
    return [(offline_run(out, f"run{i}", b, load, TRUTH), b, load) for i, (b, load) in enumerate(DECODE + PREFILL)]


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> list[tuple[Path, int, dict]]:
    """The same runs against served simulators (real time, about 12 s): one per batch cap."""
    out = tmp_path_factory.mktemp("served")
    runs = []
    for b in sorted({b for b, _ in DECODE + PREFILL}):
        with spawn(max_num_seqs=b, **MODEL, **TRUTH) as sim:
            for i, (cap, load) in enumerate(DECODE + PREFILL):
                if cap == b:
                    cfg = LoadConfig(url=sim.url, out=str(out / f"run{i}"), quiet=True, request_timeout_s=30.0,
                                     metrics_interval_s=0.0, **load)  # no scraper process: a quieter host
                    runs.append((run_load(cfg), b, load))
    return runs


def assert_recovered(values: dict, tolerance: float = 0.03) -> None:
    for name, truth in TRUTH.items():
        assert values[name] == pytest.approx(truth, rel=tolerance), (name, values)


def tpot_p50(run_dir: Path) -> float:
    rm = request_metrics(load_run(run_dir))
    return float(np.nanmedian(rm.tpot_ns[rm.measured]))


def assert_reproduced(runs, values: dict, out: Path) -> None:
    """A simulator with the fitted settings, on the same schedules, gives each run's TPOT p50 within 5%."""
    for i, (run_dir, b, load) in enumerate(runs):
        again = offline_run(out, f"again{i}", b, load, values)
        assert tpot_p50(again) == pytest.approx(tpot_p50(run_dir), rel=0.05), run_dir


def test_offline_runs_are_fitted_back_and_reproduced(offline, tmp_path):
    result = calibrate([r for r, _, _ in offline], **MODEL)
    assert_recovered(result.fit.values)
    assert all(result.fit.determined.values()) and not result.fit.at_bound and result.notes == ()
    assert {p.kind for p in result.points} == {"decode", "prefill"} and result.fit.dof >= 3
    assert np.allclose(result.ratios(), 1, atol=0.01)
    assert_reproduced(offline, result.fit.values, tmp_path)


def test_served_runs_are_fitted_back_and_reproduced(served, tmp_path):
    result = calibrate([r for r, _, _ in served], **MODEL)
    assert_recovered(result.fit.values)
    assert all(e is not None and e > 0 for e in result.fit.errors.values())
    assert_reproduced(served, result.fit.values, tmp_path)


def test_cli_prints_the_fit_and_writes_the_file_the_commands_read(offline, tmp_path, capsys):
    path = tmp_path / "cal.json"
    code, out, err = cli(capsys, "calibrate", *[r for r, _, _ in offline], "--model", "llama-2-7b", "--gpu", "h100",
                         "--quant", "awq", "--json", path)
    assert code == 0 and err == ""
    assert "bandwidth efficiency" in out and "prefill" in out and "ratio" in out
    doc = json.loads(path.read_text())
    assert doc["format_version"] == 1 and doc["gpu"] == "h100-sxm" and len(doc["points"]) >= 5
    assert set(doc["uncertainty"]["standard_error"]) == set(TRUTH) and "rms_relative" in doc["residuals"]
    cal = calibration.read(path)
    assert_recovered(cal.values)


def test_decode_only_runs_leave_compute_efficiency_undetermined(offline, tmp_path):
    result = calibrate([r for r, _, _ in offline[:len(DECODE)]], **MODEL)
    assert result.fit.determined == {"bw_efficiency": True, "compute_efficiency": False, "step_overhead_ms": True}
    assert result.fit.values["compute_efficiency"] == DEFAULT_COMPUTE_EFFICIENCY
    assert result.fit.errors["compute_efficiency"] is None
    assert any("compute efficiency not determined" in n for n in result.notes)
    assert_recovered({**result.fit.values, "compute_efficiency": TRUTH["compute_efficiency"]})
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(result.document()))
    assert set(calibration.read(path).values) == {"bw_efficiency", "step_overhead_ms"}  # the default stands


def test_fit_of_exact_synthetic_points_and_bounds():
    rng = np.random.default_rng(0)
    flop_s, byte_s = rng.uniform(0, 1e-3, (8, 5)), rng.uniform(0, 1e-3, (8, 5))
    start = {"bw_efficiency": 0.7, "compute_efficiency": 0.72, "step_overhead_ms": 1.0}
    observed = F.predict(F.to_theta(TRUTH), flop_s, byte_s)
    found = F.fit(flop_s, byte_s, observed, 0.02 * observed, start, "8 points")
    assert_recovered(found.values, 1e-9)
    # Steps faster than the GPU's peak allows: bandwidth efficiency pinned at 1, no error for it.
    fast = F.fit(flop_s, byte_s, 0.3 * observed, 0.02 * observed, start, "8 points")
    assert "bw_efficiency" in fast.at_bound and fast.values["bw_efficiency"] == 1.0
    assert fast.errors["bw_efficiency"] is None


def write(path: Path, **changes) -> Path:
    doc = {"format_version": 1, "kind": "varcas calibration", "model": "llama-2-7b", "gpu": "h100-sxm",
           "quant": "awq", **TRUTH, "determined": dict.fromkeys(TRUTH, True)}
    path.write_text(json.dumps({k: v for k, v in {**doc, **changes}.items() if v is not None}))
    return path


def test_calibration_changes_roofline_and_flags_win(tmp_path, capsys):
    path = write(tmp_path / "cal.json")
    argv = ["roofline", "--model", "llama-2-7b", "--gpu", "h100", "--quant", "awq", "--batch", "8"]
    _, plain, _ = cli(capsys, *argv)
    code, calibrated, err = cli(capsys, *argv, "--calibration", path, "--json", tmp_path / "r.json")
    assert code == 0 and err == "" and calibrated != plain
    assert "Realistic: 55% BW, 40% FLOPs, +3 ms/step" in calibrated
    eff = json.loads((tmp_path / "r.json").read_text())["efficiency"]
    assert eff == {"bandwidth": 0.55, "compute": 0.4, "step_overhead_s": 0.003}
    _, explicit, _ = cli(capsys, *argv, "--calibration", path, "--bw-efficiency", "0.8")
    assert "Realistic: 80% BW, 40% FLOPs, +3 ms/step" in explicit


def test_sim_offline_simulates_with_the_calibration(tmp_path, capsys):
    path = write(tmp_path / "cal.json")
    base = ["sim", "--offline", "--model", "llama-2-7b", "--gpu", "h100", "--quant", "awq", "--num-requests", "4",
            "--input-len", "64", "--output-len", "8", "--calibration", path]
    code, _, err = cli(capsys, *base, "--out", tmp_path / "a")
    assert code == 0, err
    params = rundir.read_manifest(tmp_path / "a")["target"]["params"]
    assert {k: params[k] for k in TRUTH} == TRUTH
    code, _, err = cli(capsys, *base, "--step-overhead-ms", "0.5", "--out", tmp_path / "b")
    assert code == 0, err
    params = rundir.read_manifest(tmp_path / "b")["target"]["params"]
    assert {k: params[k] for k in TRUTH} == {**TRUTH, "step_overhead_ms": 0.5}


def test_optimize_and_pipeline_take_the_calibration(tmp_path):
    from varcas import pipeline
    from varcas.optimize.cli import build_parser, spec_from_args

    path = write(tmp_path / "cal.json")
    args = build_parser("varcas optimize").parse_args(
        ["--offline", "--sim-model", "llama-2-7b", "--sim-gpu", "h100", "--sim-quant", "awq", "--calibration", str(path),
         "--out", "x"])
    assert spec_from_args(args).backend.sim == {"model": "llama-2-7b", "gpu": "h100", "quant": "awq", **TRUTH}
    args = pipeline.build_parser("varcas pipeline").parse_args(
        ["--model", "llama-2-7b", "--gpu", "h100", "--quant", "awq", "--offline", "--calibration", str(path),
         "--out", str(tmp_path / "p")])
    spec, _, _ = pipeline._check(args)
    assert spec.sim == {"model": "llama-2-7b", "gpu": "h100", "quant": "awq", **TRUTH}
    pipeline._roofline(args, tmp_path / "roof")
    eff = json.loads((tmp_path / "roof" / "roofline.json").read_text())["efficiency"]
    assert eff == {"bandwidth": 0.55, "compute": 0.4, "step_overhead_s": 0.003}


def test_sweep_and_pipeline_directories_give_every_run(tmp_path, capsys):
    """An offline sweep of a Poisson chat workload, simulated with a calibration file: its decode
    steps alone give the bandwidth efficiency and the overhead back; compute efficiency stays open."""
    from varcas.results import files

    sweep = tmp_path / "p" / "sweep"
    code, _, err = cli(capsys, "optimize", "--offline", "--sim-model", "llama-2-7b", "--sim-gpu", "h100",
                       "--sim-quant", "awq", "--calibration", write(tmp_path / "c.json"), "--param", "max_num_seqs=1,8", "--workload", "chat_low", "--duration", "20", "--quiet",
                       "--out", sweep)
    assert code == 0, err
    files.write(tmp_path / "p", files.PIPELINE, {})
    by_sweep, by_pipeline = (calibrate([path], **MODEL) for path in (sweep, tmp_path / "p"))
    assert by_sweep.points == by_pipeline.points
    assert {Path(p.run).parent.name for p in by_sweep.points} == {"max_num_seqs-1", "max_num_seqs-8"}
    assert not by_sweep.fit.determined["compute_efficiency"]
    assert_recovered({**by_sweep.fit.values, "compute_efficiency": TRUTH["compute_efficiency"]})


def one_line_error(code: int, out: str, err: str, *words: str) -> None:
    assert code == 2 and out == "" and err.count("\n") == 1, (code, out, err)
    for word in words:
        assert word in err, err


def test_bad_calibration_files_are_one_line_errors(tmp_path, capsys):
    cases = [
        (write(tmp_path / "v2.json", format_version=2), "format 2"),
        (write(tmp_path / "kind.json", kind="sweep"), "not a calibration file"),
        (write(tmp_path / "str.json", bw_efficiency="0.5"), "must be a number"),
        (write(tmp_path / "big.json", compute_efficiency=1.5), "in (0, 1]"),
        (write(tmp_path / "neg.json", step_overhead_ms=-1), ">= 0 ms"),
        (write(tmp_path / "missing.json", gpu=None), '"gpu"'),
        (write(tmp_path / "t4.json", gpu="t4"), "GPU 't4', not 'h100-sxm'"),
        (write(tmp_path / "fp16.json", quant="fp16"), "quantization 'fp16'"),
        (tmp_path / "absent.json", "no such file"),
    ]
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "corrupt.json").write_text('{"format_version": 1, ')
    cases += [(tmp_path / "list.json", "not a JSON object"), (tmp_path / "corrupt.json", "unreadable")]
    for path, words in cases:
        one_line_error(*cli(capsys, "roofline", "--model", "llama-2-7b", "--gpu", "h100", "--quant", "awq",
                            "--calibration", path), words)
    mismatch = write(tmp_path / "t4.json", gpu="t4")
    one_line_error(*cli(capsys, "sim", "--offline", "--gpu", "h100", "--quant", "awq", "--calibration", mismatch,
                        "--num-requests", "1", "--out", tmp_path / "r"), "GPU 't4'")
    one_line_error(*cli(capsys, "optimize", "--url", "http://127.0.0.1:9", "--calibration", write(tmp_path / "c.json"),
                        "--out", tmp_path / "o"), "does not apply to --url")
    one_line_error(*cli(capsys, "pipeline", "--model", "llama-2-7b", "--gpu", "a100", "--quant", "awq", "--offline",
                        "--calibration", write(tmp_path / "c.json"), "--out", tmp_path / "p"), "GPU 'h100-sxm'")


def test_bad_calibrate_input_is_one_line_and_exit_2(offline, tmp_path, capsys):
    decode8 = offline[0][0]
    one_line_error(*cli(capsys, "calibrate", decode8, "--model", "llama-2-7b", "--gpu", "h100", "--quant", "awq"),
                   "1 points (1 decode, 0 prefill)", "need at least 3", "low load")
    one_line_error(*cli(capsys, "calibrate", decode8, "--model", "nope-7b", "--gpu", "h100"), "nope-7b")
    one_line_error(*cli(capsys, "calibrate", decode8, "--model", "llama-2-7b", "--gpu", "z80"), "z80")
    one_line_error(*cli(capsys, "calibrate", decode8, "--model", "llama-2-7b", "--gpu", "t4", "--quant", "awq"),
                   "simulated", "h100-sxm")
    one_line_error(*cli(capsys, "calibrate", tmp_path, "--model", "llama-2-7b", "--gpu", "h100"),
                   "not a run, sweep or pipeline directory")
    single = offline_run(tmp_path, "single", 8, {"num_requests": 4, "input_len": 64, "output_len": 1}, TRUTH)
    one_line_error(*cli(capsys, "calibrate", single, "--model", "llama-2-7b", "--gpu", "h100", "--quant", "awq"),
                   "no decode steps")
