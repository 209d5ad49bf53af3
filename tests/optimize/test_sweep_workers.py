"""--workers reaches every run of a sweep, a capacity search and a pipeline: the client's
processes, not a server setting, so it is not part of what a resumed sweep must match."""
from __future__ import annotations

import json

from tests.cli_helpers import T4_SIM_FLAGS
from tests.load.helpers import varcas_cli
from varcas import rundir


def test_optimize_sends_each_run_from_the_workers_asked_for(tmp_path):
    out = tmp_path / "sw"
    r = varcas_cli("-m", "varcas.cli", "optimize", *T4_SIM_FLAGS, "--param", "max_num_seqs=8", "--workload",
                   "chat_low", "--rps", "4", "--duration", "4", "--warmup", "0", "--workers", "2", "--quiet",
                   "--out", str(out), timeout=180)
    assert r.returncode == 0, r.stderr
    manifest = rundir.read_manifest(out / "max_num_seqs-8" / "chat_low")
    assert manifest["status"] == "complete" and manifest["workers"]["n"] == 2
    assert sum(w["rows"] for w in manifest["workers"]["per_worker"]) == manifest["counts"]["recorded"] > 0
    assert "workers" not in json.loads((out / "sweep.json").read_text())["identity"]


def test_bad_workers_are_one_line_errors_in_every_sweeping_command(tmp_path):
    for command in (("optimize", "--offline"), ("sweep-rate", "--offline", "--goodput", "ttft:1000"),
                    ("pipeline", "--model", "llama-2-7b", "--gpu", "t4", "--quant", "awq", "--offline")):
        r = varcas_cli("-m", "varcas.cli", *command, "--workers", "0", "--out", str(tmp_path / "o"), timeout=60)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "--workers" in r.stderr, r.stderr
