"""Directories the report tests read, built once per session from varcas itself (the simulator
in virtual time, so in seconds): a sweep of max_num_seqs 1, 4, 16 over chat_medium and code at
0.8 req/s (1 and 4 are overloaded on chat_medium, 16 keeps up), the same sweep with
max_num_seqs-4 failed, a sweep whose every server failed, a single simulated run, and a
pipeline directory assembled from a static roofline, load runs and a sweep.
"""
from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

from tests.cli_helpers import T4_SIM_FLAGS
from varcas.cli import main
from varcas.load.runner import LoadConfig
from varcas.report.load import Group, Report
from varcas.results import compare
from varcas.results.digest import Digest, Timeline
from varcas.results.explain import explain
from varcas.sim import SimConfig, resolve
from varcas.targets.offline import simulate

SERVER_FAILED = "the server exited with status 1 before it was ready"


def _quiet_main(argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return out.getvalue()


def _optimize(out: Path, *flags: str) -> Path:
    _quiet_main(["optimize", "--param", "max_num_seqs=1,4,16", "--workload", "chat_medium,code", "--rps", "0.8",
                 "--duration", "60", "--warmup", "0", "--quiet", "--out", str(out), *flags])
    return out


@pytest.fixture(scope="session")
def sweep_dir(tmp_path_factory) -> Path:
    return _optimize(tmp_path_factory.mktemp("sweeps") / "sweep", "--offline", *T4_SIM_FLAGS)


@pytest.fixture(scope="session")
def failed_sweep_dir(tmp_path_factory) -> Path:
    """Every configuration's server exits at once: all failed, with the reason."""
    return _optimize(tmp_path_factory.mktemp("sweeps") / "failed", "--server-cmd", "false {port} {max_num_seqs}",
                     "--ready-timeout", "30")


@pytest.fixture(scope="session")
def mixed_sweep_dir(sweep_dir, tmp_path_factory) -> Path:
    """The sweep as it reads when max_num_seqs-4's server had failed: config.json says so, no runs."""
    out = tmp_path_factory.mktemp("sweeps") / "mixed"
    shutil.copytree(sweep_dir, out)
    config = out / "max_num_seqs-4" / "config.json"
    state = json.loads(config.read_text())
    state.update(status="failed", reason=SERVER_FAILED, runs={})
    config.write_text(json.dumps(state))
    for workload in ("chat_medium", "code"):
        shutil.rmtree(out / "max_num_seqs-4" / workload)
    return out


def simulated_run(out: Path, max_num_seqs: int = 8, workload: str = "chat_medium") -> Path:
    """A run directory of the simulator in virtual time (llama-2-7b AWQ on a T4), 60 s at 0.8 req/s."""
    setup = resolve(SimConfig(model="llama-2-7b", gpu="t4", quant="awq", max_num_seqs=max_num_seqs))
    return simulate(setup, LoadConfig(workload=workload, rps=0.8, duration_s=60.0, out=str(out), quiet=True)).run_dir


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    return simulated_run(tmp_path_factory.mktemp("runs") / "chat_medium")


@pytest.fixture(scope="session")
def pipeline_dir(sweep_dir, tmp_path_factory) -> Path:
    """pipeline.json + roofline/ + load/chat_medium (complete) + load/code (failed) + sweep/."""
    out = tmp_path_factory.mktemp("pipeline")
    (out / "roofline").mkdir()
    text = _quiet_main(["roofline", "--model", "llama-2-7b", "--gpu", "t4", "--quant", "awq", "--batch", "1,4,16",
                        "--json", str(out / "roofline" / "roofline.json")])
    (out / "roofline" / "roofline.txt").write_text(text)
    simulated_run(out / "load" / "chat_medium")
    shutil.copytree(sweep_dir, out / "sweep")
    (out / "pipeline.json").write_text(json.dumps({
        "format_version": 1, "model": "llama-2-7b", "gpu": "t4", "quant": "awq", "target": "sim", "workloads": ["chat_medium", "code"],
        "batch_sizes": [1, 4, 16],
        "steps": {"roofline": {"status": "complete"},
                  "load": {"chat_medium": {"status": "complete", "run": "load/chat_medium"},
                           "code": {"status": "failed", "run": "load/code", "reason": SERVER_FAILED}},
                  "sweep": {"status": "complete", "dir": "sweep"}}}))
    return out


# A sweep written by hand, for exact expectations: max_num_seqs-1 overloaded, -4 and -8 steady
# (-8 with a warning), -16 failed; changes against max_num_seqs-1.
SYNTH_CONFIGS = ("max_num_seqs-1", "max_num_seqs-4", "max_num_seqs-8", "max_num_seqs-16")
OVERLOADED_TEXT = "The server is overloaded at this rate: the backlog grew. The percentiles describe a growing queue."


def fake_digest(config: str, tput: float, ttft_p99: float, tpot_p99: float, *, overloaded: bool = False,
                warnings: tuple = ()) -> Digest:
    """A digest (varcas.results.digest) with the summary parts that compare and the report read."""
    block = {"output_throughput": tput, "request_throughput": tput / 200, "request_goodput": None,
             "median_ttft_ms": ttft_p99 / 2, "p99_ttft_ms": ttft_p99, "median_tpot_ms": tpot_p99 / 2,
             "p99_tpot_ms": tpot_p99, "median_e2el_ms": ttft_p99 * 3, "p99_e2el_ms": ttft_p99 * 6,
             "median_itl_ms": tpot_p99 / 2}
    verdict = {"overloaded": overloaded, "steady_state": not overloaded, "reasons": [],
               "text": OVERLOADED_TEXT if overloaded else "Steady: completions kept up with arrivals."}
    return Digest(
        key={}, run="chat_medium", path=f"/nowhere/{config}/chat_medium", workload="chat_medium", scope="steady",
        summary={"steady": block, "window": {"start_s": 10.0, "end_s": 110.0, "source": "detected"},
                 "verdict": verdict, "warnings": list(warnings)},
        offered_rps=0.8, mean_in_flight=3.0, mean_input_tokens=200.0, mean_output_tokens=100.0,
        cdf_percents=(0.0, 50.0, 100.0),
        cdf_ms={"ttft": (ttft_p99 / 10, ttft_p99 / 2, ttft_p99), "tpot": (tpot_p99 / 2, tpot_p99 / 1.5, tpot_p99),
                "itl": (1.0, 2.0, 3.0), "e2el": (ttft_p99, ttft_p99 * 3, ttft_p99 * 6)},
        timeline=Timeline(t_s=(0, 1, 2, 3), sent=(1, 1, 1, 0), completed=(0, 1, 1, 1), in_flight=(1, 2, 1, 0),
                          output_tokens=(0, tput, tput, 0), errors=(0, 0, 0, 0)))


@pytest.fixture
def synthetic_group():
    entries = [{"id": c, "params": {"max_num_seqs": c.split("-")[1]}, "status": "complete", "reason": None}
               for c in SYNTH_CONFIGS[:3]]
    entries.append({"id": SYNTH_CONFIGS[3], "params": {"max_num_seqs": "16"}, "status": "failed", "reason": "boom"})
    digests = {"max_num_seqs-1": fake_digest("max_num_seqs-1", 50.0, 90000.0, 20.0, overloaded=True),
               "max_num_seqs-4": fake_digest("max_num_seqs-4", 150.0, 500.0, 30.0),
               "max_num_seqs-8": fake_digest("max_num_seqs-8", 160.0, 800.0, 40.0, warnings=("too few samples",))}
    rows = compare.workload_rows(entries, {(c, "chat_medium"): d for c, d in digests.items()}, "chat_medium",
                                 "max_num_seqs-1")
    return Group("chat_medium", rows, digests, {c: f"{c}/chat_medium" for c in digests}, sweep=True,
                 baseline="max_num_seqs-1", pareto=compare.pareto(rows),
                 recommendations=compare.recommend(rows, compare.DEFAULT_SLO_MS), slo_ms=compare.DEFAULT_SLO_MS,
                 roofline=explain(rows, digests, "llama-2-7b", "t4", "awq"))


@pytest.fixture
def synthetic_report(synthetic_group):
    return Report("sweep", Path("/nowhere"), "Batch sweep <of> max_num_seqs", "llama-2-7b (awq) on t4, simulated",
                  "2026-01-01 00:00 UTC", [synthetic_group], ["configuration max_num_seqs-16: boom"],
                  artifacts=[("sweep.json", 950)])
