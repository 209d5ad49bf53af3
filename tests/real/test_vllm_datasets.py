"""--dataset-name sharegpt against a real vLLM: varcas picks the conversations vLLM's own
ShareGPTDataset picks for the seed (same prompts, same lengths, in the same order), and with
the model's tokenizer every planned prompt length is the one the server counted."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pyarrow.parquet as pq

from tests.load.helpers import varcas_cli

from .vllm_server import serve_env

SHAREGPT = Path(__file__).resolve().parents[1] / "schedule" / "data" / "sharegpt.json"
VLLM_SAMPLE = """
import json, sys
from vllm.benchmarks.datasets import ShareGPTDataset
from vllm.tokenizers import get_tokenizer
reqs = ShareGPTDataset(dataset_path=sys.argv[2], random_seed=int(sys.argv[3])).sample(
    tokenizer=get_tokenizer(sys.argv[1]), num_requests=int(sys.argv[4]))
print(json.dumps([[r.prompt_len, r.expected_output_len] for r in reqs]))
"""


def test_sharegpt_lengths_are_vllms_and_exact(tmp_path, vllm_4k, vllm_venv, vllm_models):
    tokenizer = vllm_models / "tiny-4k"
    res = subprocess.run([str(vllm_venv / "bin" / "python"), "-c", VLLM_SAMPLE, str(tokenizer), str(SHAREGPT), "3",
                          "8"], capture_output=True, text=True, timeout=180, env={**os.environ, **serve_env()})
    assert res.returncode == 0, res.stderr[-3000:]
    theirs = json.loads(res.stdout.strip().splitlines()[-1])

    out = tmp_path / "run"
    res = varcas_cli("-m", "varcas.load", "--url", vllm_4k.url, "--dataset-name", "sharegpt", "--dataset-path",
                     str(SHAREGPT), "--tokenizer", str(tokenizer), "--num-prompts", "8", "--request-rate", "20",
                     "--seed", "3", "--quiet", "--out", str(out), timeout=180)
    assert res.returncode == 0, res.stderr
    rows = sorted(pq.read_table(out / "requests.parquet").to_pylist(), key=lambda r: r["request_id"])
    assert [[r["requested_input_tokens"], r["requested_output_tokens"]] for r in rows] == theirs
    assert all(r["error"] is None for r in rows)
    assert [r["input_tokens"] for r in rows] == [r["requested_input_tokens"] for r in rows]  # token-exact
    assert [r["output_tokens"] for r in rows] == [r["requested_output_tokens"] for r in rows]
