"""Smoke tests of the real vLLM fixtures: the server answers what varcas relies on."""
from __future__ import annotations

import json
import re
import shlex
import time

import httpx
import pytest

from .make_tiny_model import CORPUS
from .vllm_server import serve_argv, server_cmd_template

PIECE = re.compile(r"\w+|[^\w\s]+")   # the tokenizer's Whitespace pre-tokenizer


@pytest.fixture(scope="module")
def client(vllm_4k):
    with httpx.Client(base_url=vllm_4k.url, timeout=30.0) as c:
        yield c


def corpus_sentence() -> str:
    text = CORPUS.read_text(encoding="utf-8")
    return text[:text.index(".") + 1]   # "The first thing most gardeners learn is that soil is not dirt."


def prompt_tokens_total(client: httpx.Client) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("vllm:prompt_tokens_total{"):
            return float(line.rsplit(" ", 1)[1])
    pytest.fail("/metrics has no vllm:prompt_tokens_total")


def test_models_lists_tiny_with_its_context(client):
    (model,) = client.get("/v1/models").json()["data"]
    assert model["id"] == "tiny" and model["max_model_len"] == 512


def test_tokenize_is_word_level_within_vocab(client):
    sentence = corpus_sentence()
    body = client.post("/tokenize", json={"model": "tiny", "prompt": sentence}).json()
    assert body["count"] == len(body["tokens"]) == len(PIECE.findall(sentence))
    assert body["count"] == len(sentence.split()) + 1   # the words and the full stop
    assert all(3 <= t < 4096 for t in body["tokens"])    # no <unk>/<s>/</s>, none added
    assert body["max_model_len"] == 512


def test_streaming_completion_from_token_ids(client):
    prompt = list(range(100, 132))
    request = {"model": "tiny", "prompt": prompt, "max_tokens": 8, "ignore_eos": True,
               "stream": True, "stream_options": {"include_usage": True}, "return_token_ids": True}
    with client.stream("POST", "/v1/completions", json=request) as response:
        assert response.status_code == 200
        events = [line[len("data: "):] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    choices = [c["choices"][0] for c in chunks if c["choices"]]
    # One chunk may carry several tokens: vLLM merges the outputs of a request that the
    # HTTP stream has not sent yet (seen with a single request: the first chunk had 3).
    token_ids = [t for choice in choices for t in choice["token_ids"]]
    assert len(token_ids) == 8 and all(0 <= t < 4096 for t in token_ids)
    assert all(choice["text"] for choice in choices)
    assert chunks[-1]["usage"] == {"prompt_tokens": 32, "completion_tokens": 8, "total_tokens": 40}


def test_token_id_out_of_vocab_is_refused(client):
    response = client.post("/v1/completions", json={"model": "tiny", "prompt": [4096], "max_tokens": 1})
    assert response.status_code == 400 and "out of vocabulary" in response.text


def test_metrics_count_prompt_tokens(client):
    before = prompt_tokens_total(client)
    response = client.post("/v1/completions",
                           json={"model": "tiny", "prompt": list(range(200, 210)), "max_tokens": 1})
    assert response.status_code == 200
    deadline = time.monotonic() + 5.0
    while prompt_tokens_total(client) < before + 10 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert prompt_tokens_total(client) == before + 10


def test_server_cmd_template_is_the_same_command(vllm_venv, vllm_models):
    model = vllm_models / "tiny-4k"
    template = server_cmd_template(vllm_venv, model, "--max-num-seqs {max_num_seqs}")
    words = [w.format(port=8123, max_num_seqs=4) for w in shlex.split(template)]
    assert words == serve_argv(vllm_venv, model, 8123, extra=["--max-num-seqs", "4"])
    inline = shlex.split(server_cmd_template(vllm_venv, model, inline_env=True))
    assert inline[0] == "env" and "VLLM_TARGET_DEVICE=cpu" in inline


def test_32k_model_serves_its_whole_vocab(vllm_32k):
    with httpx.Client(base_url=vllm_32k.url, timeout=30.0) as c:
        ok = c.post("/v1/completions", json={"model": "tiny", "prompt": [31999, 4096], "max_tokens": 2})
        refused = c.post("/v1/completions", json={"model": "tiny", "prompt": [32000], "max_tokens": 1})
    assert ok.status_code == 200 and ok.json()["usage"]["completion_tokens"] == 2
    assert refused.status_code == 400
