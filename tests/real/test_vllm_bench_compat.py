"""`varcas load` takes `vllm bench serve`'s flags as they are and writes its result JSON: the same
command line against one real vLLM, run by both tools, gives files whose key sets and types agree
(varcas's has every key vLLM's has), with --save-detailed and without."""
from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from tests.load.helpers import varcas_cli

from .vllm_server import serve_env

NAME = re.compile(r"vllm-20\.0qps-tiny-\d{8}-\d{6}\.json")


def vllm_flags(url: str, tokenizer, result_dir) -> list[str]:
    """One vllm bench serve command line: 10 random prompts of 16 tokens, 8 out, Poisson 20/s."""
    return ["--backend", "vllm", "--base-url", url, "--model", "tiny", "--tokenizer", str(tokenizer),
            "--dataset-name", "random", "--random-input-len", "16", "--random-output-len", "8", "--num-prompts", "10", "--request-rate", "20",
            "--seed", "0", "--save-result", "--result-dir", str(result_dir)]


def only_file(directory):
    (path,) = directory.iterdir()
    assert NAME.fullmatch(path.name), path.name  # vLLM's default file name, from both tools
    return json.loads(path.read_text())


@pytest.mark.parametrize("detailed", [False, True], ids=["save-result", "save-detailed"])
def test_varcas_writes_every_key_vllm_bench_serve_writes(tmp_path, vllm_4k, vllm_venv, vllm_models, detailed):
    extra = ["--save-detailed"] if detailed else []
    flags = vllm_flags(vllm_4k.url, vllm_models / "tiny-4k", tmp_path / "vllm")
    res = subprocess.run([str(vllm_venv / "bin" / "vllm"), "bench", "serve", *flags, *extra], capture_output=True,
                         text=True, timeout=180, env={**os.environ, **serve_env()})
    assert res.returncode == 0, res.stderr[-3000:]
    theirs = only_file(tmp_path / "vllm")

    flags = vllm_flags(vllm_4k.url, vllm_models / "tiny-4k", tmp_path / "varcas")
    res = varcas_cli("-m", "varcas.load", *flags, *extra, "--disable-tqdm", "--out", str(tmp_path / "run"),
                     timeout=120)
    assert res.returncode == 0, res.stderr
    ours = only_file(tmp_path / "varcas")

    assert set(theirs) <= set(ours), sorted(set(theirs) - set(ours))
    scalars = [k for k, v in theirs.items() if not isinstance(v, (list, dict))]
    assert {k: type(ours[k]).__name__ for k in scalars} == {k: type(theirs[k]).__name__ for k in scalars}
    assert all(isinstance(ours[k], list) for k, v in theirs.items() if isinstance(v, list))
    same = ("endpoint_type", "backend", "model_id", "tokenizer_id", "num_prompts", "request_rate", "burstiness",
            "max_concurrency", "completed", "failed", "total_input_tokens", "total_output_tokens")
    assert {k: ours[k] for k in same} == {k: theirs[k] for k in same}
    if detailed:
        assert (ours["input_lens"], ours["output_lens"]) == (theirs["input_lens"], theirs["output_lens"]) == \
            ([16] * 10, [8] * 10)
