"""The simulated server over HTTP: vLLM's wire format, its errors, its /metrics, token timing on
the wall clock, and surviving whatever clients send."""
from __future__ import annotations

import socket
import time

import httpx
import orjson
import pytest

from varcas import roofline
from varcas.errors import VarcasError
from varcas.sim import spawn


@pytest.fixture(scope="module")
def sim():
    with spawn(model="llama-2-7b", gpu="t4", quant="awq", max_num_seqs=8) as server:
        yield server


@pytest.fixture(scope="module")
def client(sim):
    with httpx.Client(base_url=sim.url, timeout=30.0, trust_env=False) as c:
        yield c


def _events(client, path, body):
    """POST a streaming request; returns [(arrival ns, parsed data or 'DONE')]."""
    out = []
    with client.stream("POST", path, json=body) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("data: "):
                data = line[6:]
                out.append((time.monotonic_ns(), "DONE" if data == "[DONE]" else orjson.loads(data)))
    return out


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def test_streaming_completion_is_vllms_byte_layout(client):
    events = _events(client, "/v1/completions", {"prompt": list(range(100)), "max_tokens": 5, "stream": True,
                                                 "stream_options": {"include_usage": True}, "ignore_eos": True})
    data = [e for _, e in events]
    assert data[-1] == "DONE" and len(data) == 7
    tokens, usage = data[:5], data[5]
    assert [t["choices"][0]["finish_reason"] for t in tokens] == [None] * 4 + ["length"]
    assert all(t["object"] == "text_completion" and t["model"] == "llama-2-7b-awq" and t["usage"] is None
               for t in tokens)
    assert usage["choices"] == [] and usage["usage"] == {"prompt_tokens": 100, "total_tokens": 105,
                                                         "completion_tokens": 5}


def test_streaming_chat_opens_with_the_role_and_counts_text_tokens(client):
    words = " ".join(["word"] * 30)   # 30 words read as 40 tokens, the prompt builder's ratio
    data = [e for _, e in _events(client, "/v1/chat/completions", {
        "messages": [{"role": "user", "content": words}], "max_tokens": 3, "stream": True,
        "stream_options": {"include_usage": True}})]
    first = data[0]["choices"][0]["delta"]
    assert first == {"role": "assistant", "content": ""} and data[0]["object"] == "chat.completion.chunk"
    assert [d["choices"][0]["delta"].get("content") for d in data[1:4]] == [" tok"] * 3
    assert data[4]["usage"] == {"prompt_tokens": 40, "total_tokens": 43, "completion_tokens": 3}


def test_non_streaming_responses(client):
    comp = client.post("/v1/completions", json={"prompt": "one two three", "max_tokens": 4}).json()
    assert comp["choices"][0]["text"] == " tok" * 4 and comp["choices"][0]["finish_reason"] == "length"
    assert comp["usage"]["prompt_tokens"] == 4 and comp["usage"]["completion_tokens"] == 4
    chat = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}],
                                                      "max_completion_tokens": 2}).json()
    assert chat["choices"][0]["message"]["content"] == " tok" * 2 and chat["object"] == "chat.completion"


def test_control_routes(client, sim):
    models = client.get("/v1/models").json()
    assert [m["id"] for m in models["data"]] == ["llama-2-7b-awq"]
    assert models["data"][0]["max_model_len"] == 4096
    assert client.get("/health").status_code == 200
    assert client.get("/version").json()["version"].startswith("varcas-sim")
    assert sim.params["max_num_seqs"] == 8 and sim.params["gpu"] == "t4"


def test_every_response_names_the_simulator_in_its_server_header(client):
    assert client.get("/health").headers["server"] == "varcas-sim"
    assert client.post("/v1/completions", json={"prompt": "x", "n": 2}).headers["server"] == "varcas-sim"
    with client.stream("POST", "/v1/completions", json={"prompt": [1], "max_tokens": 1, "stream": True}) as resp:
        assert resp.headers["server"] == "varcas-sim"


@pytest.mark.parametrize("path, body, status, words", [
    ("/v1/completions", b"{not json", 400, "not valid JSON"),
    ("/v1/completions", b"[1, 2]", 400, "JSON object"),
    ("/v1/completions", b'{"model": "gpt-4", "prompt": "x"}', 404, "does not exist"),
    ("/v1/completions", b'{"prompt": "x", "n": 2}', 400, "n must be 1"),
    ("/v1/completions", b'{"prompt": [1, "a"]}', 400, "token ids"),
    ("/v1/completions", b'{"prompt": []}', 400, "cannot be empty"),
    ("/v1/completions", b'{"prompt": "x", "max_tokens": 0}', 400, "max_tokens"),
    ("/v1/completions", b'{"prompt": "x", "stream_options": {"include_usage": true}}', 400, "stream=True"),
    ("/v1/chat/completions", b'{"messages": []}', 400, "non-empty"),
    ("/v1/completions", b'{"prompt": "x", "max_tokens": 5000}', 400,
     "maximum context length is 4096 tokens. However, you requested 5001 tokens (1 in the messages, 5000"),
])
def test_bad_requests_get_vllm_errors_and_keep_the_connection(client, path, body, status, words):
    resp = client.post(path, content=body, headers={"content-type": "application/json"})
    assert resp.status_code == status
    err = resp.json()
    assert err["object"] == "error" and err["code"] == status and words in err["message"]
    assert resp.headers["connection"] == "keep-alive"


def test_unroutable_and_malformed_http(client, sim):
    assert client.get("/v2/nothing").status_code == 404
    assert client.get("/v1/completions").status_code == 405
    for garbage in (b"\x00\xff garbage\r\n\r\n", b"GET /health HTTP/9.9\r\n\r\n",
                    b"POST /v1/completions HTTP/1.1\r\nContent-Length: x\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as sock:
            sock.sendall(garbage)
            reply = sock.recv(65536)
            assert reply.startswith(b"HTTP/1.1 400") and b'"object":"error"' in reply
            assert sock.recv(65536) == b""   # and the connection is closed
    assert client.get("/health").status_code == 200


def test_tokens_leave_when_their_step_ends(client, sim):
    hw, m = sim.setup.hw, sim.setup.model
    events = _events(client, "/v1/completions", {"prompt": list(range(300)), "max_tokens": 12, "stream": True})
    times = [t for t, e in events if e != "DONE"]
    gaps = [(b - a) / 1e6 for a, b in zip(times, times[1:])]
    # Alone in the server, token k+1 comes one batch-1 decode step at context 300 + k later.
    expected = [roofline.decode(hw, m, 1, 301 + k).realistic_time_s * 1e3 for k in range(11)]
    assert sorted(g - e for g, e in zip(gaps, expected))[5] == pytest.approx(0, abs=1.5)   # median
    assert sum(gaps) == pytest.approx(sum(expected), rel=0.1)


def test_a_client_that_leaves_frees_its_sequence(client, sim):
    with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as sock:
        body = b'{"prompt": [1, 2, 3], "max_tokens": 3000, "stream": true}'
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        deadline = time.monotonic() + 5
        while metric(client.get("/metrics").text, "vllm:num_requests_running") != 1:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    deadline = time.monotonic() + 5
    while metric(client.get("/metrics").text, "vllm:num_requests_running") != 0:
        assert time.monotonic() < deadline, "the aborted request is still running"
        time.sleep(0.02)
    assert metric(client.get("/metrics").text, "vllm:gpu_cache_usage_perc") == 0.0


def test_metrics_exposition(client):
    client.post("/v1/completions", json={"prompt": [5] * 20, "max_tokens": 3})
    text = client.get("/metrics").text
    assert client.get("/metrics").headers["content-type"].startswith("text/plain; version=0.0.4")
    for name in ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:gpu_cache_usage_perc",
                 "vllm:num_preemptions_total", "vllm:prompt_tokens_total", "vllm:generation_tokens_total"):
        assert f"# TYPE {name} " in text and metric(text, name) >= 0
    assert 0 <= metric(text, "varcas:sim_step_lag_max_seconds") < 0.5   # seconds, not ns
    for hist in ("vllm:time_to_first_token_seconds", "vllm:time_per_output_token_seconds",
                 "vllm:e2e_request_latency_seconds"):
        buckets = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(hist + "_bucket")]
        assert buckets == sorted(buckets) and buckets[-1] == metric(text, hist + "_count") > 0
        assert f'{hist}_bucket{{le="+Inf",model_name="llama-2-7b-awq"}}' in text
    assert metric(text, "vllm:e2e_request_latency_seconds_count") == metric(text, "vllm:request_success_total")


def test_spawn_refuses_bad_settings_before_starting():
    with pytest.raises(VarcasError, match="unknown GPU"):
        spawn(gpu="no-such-gpu")
    with pytest.raises(VarcasError, match="--max-num-seqs: not an integer"):
        spawn(max_num_seqs="zero")
    with pytest.raises(VarcasError, match="max seq len"):
        spawn(max_model_len=1000000)
