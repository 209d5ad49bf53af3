"""`varcas sim` / `python -m varcas.sim` from the outside: exit codes, one-line errors, the
offline summary, and a server whose max_model_len decides max_tokens when it is absent."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import orjson

from tests.cli_helpers import T4_FLAGS
from varcas.rundir import read_manifest
from varcas.sim import spawn

REPO = Path(__file__).resolve().parents[2]


def _cli(*args, timeout=60):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)


def test_bad_flags_are_one_line_and_exit_2():
    for args in (("--gpu", "nope"), ("--port", "70000"), ("--max-num-seqs", "0"),
                 ("--offline", "--workload", "no_such_workload")):
        proc = _cli("-m", "varcas.sim", *args)
        assert proc.returncode == 2, args
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
        assert proc.stderr.startswith("python -m varcas.sim: error: ")


def test_offline_prints_a_summary_and_writes_the_run(tmp_path):
    out = tmp_path / "run"
    proc = _cli("-m", "varcas.cli", "sim", "--offline", *T4_FLAGS, "--max-num-seqs", "8", "--rps", "5",
                "--duration", "10", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "simulated llama-2-7b-awq on T4" in proc.stdout and f"results: {out}" in proc.stdout
    manifest = read_manifest(out)
    assert manifest["simulated"] and manifest["config"]["rps"] == 5.0 and manifest["seed"] == 0


def test_the_run_records_the_engine_that_ran(tmp_path):
    out = tmp_path / "run"
    proc = _cli("-m", "varcas.sim", "--offline", *T4_FLAGS, "--no-enable-chunked-prefill", "--rps", "5", "--duration", "5",
                "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    params = read_manifest(out)["target"]["params"]
    assert (params["scheduler"], params["enable_chunked_prefill"], params["max_num_batched_tokens"],
            params["max_num_seqs"]) == ("v1", False, 4096, 256)   # vLLM 0.32 on a T4, chunked prefill off


def test_absent_max_tokens_fills_the_context():
    with spawn(max_num_seqs=2, max_model_len=32) as sim:
        with httpx.Client(base_url=sim.url, timeout=30.0, trust_env=False) as c:
            body = c.post("/v1/completions", json={"prompt": [7] * 28}).json()
            assert body["usage"]["completion_tokens"] == 4
            resp = c.post("/v1/completions", json={"prompt": [7] * 32})
            assert resp.status_code == 400 and "32 tokens in the messages" in orjson.loads(resp.content)["message"]
