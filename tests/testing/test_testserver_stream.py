"""The test server's streams: vLLM's exact bytes, usage, keep-alive, and its token records."""
from __future__ import annotations

import socket
import time

import httpx
import numpy as np
import orjson

from varcas.testing import spawn

from .testserver_raw import Reader, connect, post, request_bytes

COMPLETION = ('{"id":"cmpl-%(rid)s","object":"text_completion","created":%(created)d,'
              '"model":"test-model","choices":[{"index":0,"text":" tok","logprobs":null,'
              '"finish_reason":%(finish)s,"stop_reason":null}],"usage":null}')
CHAT_HEAD = ('{"id":"chatcmpl-%(rid)s","object":"chat.completion.chunk","created":%(created)d,'
             '"model":"test-model","choices":[')
CHAT_ROLE = CHAT_HEAD + ('{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,'
                         '"finish_reason":null}]}')
CHAT_TOKEN = CHAT_HEAD + '{"index":0,"delta":{"content":" tok"},"logprobs":null,"finish_reason":null}]}'
CHAT_LAST = CHAT_HEAD + ('{"index":0,"delta":{"content":" tok"},"logprobs":null,'
                         '"finish_reason":"length","stop_reason":null}]}')
USAGE = ('{"id":"%(prefix)s-%(rid)s","object":"%(object)s","created":%(created)d,"model":"test-model",'
         '"choices":[],"usage":{"prompt_tokens":%(p)d,"total_tokens":%(t)d,"completion_tokens":%(c)d}}')


def _created(resp) -> int:
    return orjson.loads(resp.events[0])["created"]


def test_completions_stream_is_vllm_bytes(server):
    resp = post(server.url, "/v1/completions",
                {"model": "test-model", "prompt": "one two three", "stream": True,
                 "stream_options": {"include_usage": True}}, {"X-Request-Id": "s1"})
    assert resp.status == 200 and resp.complete
    assert resp.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert resp.headers["transfer-encoding"] == "chunked"
    v = {"rid": "s1", "created": _created(resp)}
    token, last = COMPLETION % {**v, "finish": "null"}, COMPLETION % {**v, "finish": '"length"'}
    usage = USAGE % {**v, "prefix": "cmpl", "object": "text_completion", "p": 3, "t": 6, "c": 3}
    assert [e.decode() for e in resp.events] == [token, token, last, usage, "[DONE]"]


def test_chat_stream_is_vllm_bytes(server):
    body = {"messages": [{"role": "system", "content": "be brief"},
                         {"role": "user", "content": [{"type": "text", "text": "hi there you"}]}],
            "max_completion_tokens": 4, "stream": True, "stream_options": {"include_usage": True}}
    resp = post(server.url, "/v1/chat/completions", body, {"X-Request-Id": "c1"})
    v = {"rid": "c1", "created": _created(resp)}
    usage = USAGE % {**v, "prefix": "chatcmpl", "object": "chat.completion.chunk", "p": 5, "t": 9, "c": 4}
    assert [e.decode() for e in resp.events] == (
        [CHAT_ROLE % v] + [CHAT_TOKEN % v] * 3 + [CHAT_LAST % v, usage, "[DONE]"])


def test_stream_without_usage_and_token_id_prompt(server):
    resp = post(server.url, "/v1/completions", {"prompt": [5, 6, 7, 8], "max_tokens": 1, "stream": True})
    events = [orjson.loads(e) for e in resp.events[:-1]]
    assert resp.events[-1] == b"[DONE]" and len(events) == 1
    assert events[0]["id"].startswith("cmpl-") and events[0]["choices"][0]["finish_reason"] == "length"
    # One request's chunks share one id, distinct from the next request's.
    other = post(server.url, "/v1/completions", {"prompt": "x", "stream": True})
    ids = {orjson.loads(e)["id"] for e in other.events[:-1]}
    assert len(ids) == 1 and events[0]["id"] not in ids


def test_non_streaming_bodies(server):
    comp = httpx.post(server.url + "/v1/completions", json={"prompt": "a b", "max_tokens": 2},
                      trust_env=False).json()
    assert comp.pop("created") > 0 and comp.pop("id").startswith("cmpl-")
    usage = {"prompt_tokens": 2, "total_tokens": 4, "completion_tokens": 2, "prompt_tokens_details": None}
    assert comp == {"object": "text_completion", "model": "test-model", "usage": usage, "choices": [
        {"index": 0, "text": " tok tok", "logprobs": None, "finish_reason": "length",
         "stop_reason": None, "prompt_logprobs": None}]}
    chat = httpx.post(server.url + "/v1/chat/completions",
                      json={"messages": [{"role": "user", "content": "a b c"}]}, trust_env=False).json()
    assert chat["object"] == "chat.completion" and chat["usage"]["completion_tokens"] == 3
    assert chat["choices"][0]["message"] == {"role": "assistant", "content": " tok" * 3, "tool_calls": []}


def test_models_and_health(server):
    models = httpx.get(server.url + "/v1/models", trust_env=False).json()
    assert models["object"] == "list" and [m["id"] for m in models["data"]] == ["test-model"]
    assert httpx.get(server.url + "/health", trust_env=False).status_code == 200


def test_every_response_names_the_stub_in_its_server_header(server):
    with connect(server.url) as sock:
        reader = Reader(sock)
        sock.sendall(request_bytes("GET", "/health")
                     + request_bytes("POST", "/v1/completions", {"prompt": "a", "stream": True})
                     + request_bytes("GET", "/nowhere"))
        assert [reader.read().headers["server"] for _ in range(3)] == ["varcas-testserver"] * 3


def test_httpx_streaming_client(server):
    body = {"prompt": "hi", "max_tokens": 5, "stream": True}
    with httpx.stream("POST", server.url + "/v1/completions", json=body, timeout=5,
                      trust_env=False) as resp:
        lines = [ln for ln in resp.iter_lines() if ln]
    assert len(lines) == 6 and lines[-1] == "data: [DONE]"
    assert [orjson.loads(ln[6:])["choices"][0]["text"] for ln in lines[:-1]] == [" tok"] * 5


def test_keep_alive_sequential_and_pipelined(server):
    stream = request_bytes("POST", "/v1/completions", {"prompt": "a", "stream": True})
    with connect(server.url) as sock:
        reader = Reader(sock)
        sock.sendall(stream)
        first = reader.read()
        sock.sendall(request_bytes("GET", "/health"))
        second = reader.read()
        # Two requests in one write: answered in order on the same connection.
        sock.sendall(stream + request_bytes("POST", "/v1/completions", {"prompt": "b", "max_tokens": 2}))
        third, fourth = reader.read(), reader.read()
    assert first.complete and len(first.events) == 4
    assert second.status == 200 and second.complete
    assert third.complete and len(third.events) == 4
    assert fourth.status == 200 and orjson.loads(fourth.body)["usage"]["completion_tokens"] == 2


def test_request_split_across_reads(server):
    raw = request_bytes("POST", "/v1/completions", {"prompt": "split me", "stream": True},
                        {"X-Request-Id": "split"})
    cut = raw.index(b"\r\n\r\n") + 6   # mid-body
    with connect(server.url) as sock:
        for piece in (raw[:7], raw[7:40], raw[40:cut]):
            sock.sendall(piece)
            time.sleep(0.02)
        before_last = time.monotonic_ns()
        sock.sendall(raw[cut:])
        resp = Reader(sock).read()
    assert resp.complete and len(resp.events) == 4
    rec = _record(server, "split")
    assert rec["recv_ns"] >= before_last   # stamped when the request was complete


def _record(server, rid: str) -> dict:
    matches = [r for r in server.records()["requests"] if r["id"] == rid]
    assert len(matches) == 1
    return matches[0]


def test_records_are_on_plan_and_match_client_arrivals():
    itl_ms, ttft_ms, n = 20.0, 30.0, 6
    with spawn(tokens=n, itl_ms=itl_ms, ttft_ms=ttft_ms) as srv:
        resp = post(srv.url, "/v1/completions", {"prompt": "time me", "stream": True},
                    {"X-Request-Id": "timed"})
        rec = _record(srv, "timed")
        stats = srv.stats()
    token_ns = np.array(rec["token_ns"])
    assert len(token_ns) == n and rec["fault"] is None
    plan = rec["recv_ns"] + round(ttft_ms * 1e6) + round(itl_ms * 1e6) * np.arange(n)
    lag_ms = (token_ns - plan) / 1e6
    assert lag_ms.min() >= 0 and lag_ms.max() < 50     # never early; late only by loop jitter
    assert abs(np.median(np.diff(token_ns)) / 1e6 - itl_ms) < 3
    # One clock across processes: each token arrives after the server stamped it.
    arrived = np.array(resp.event_ns[:n])
    assert np.all(arrived >= token_ns) and np.all(arrived - token_ns < 100e6)
    assert stats["tokens"] == n and stats["streams"] == 1 and stats["requests"] == 1
    assert 0 <= stats["max_lag_ns"] < 50e6 and stats["in_flight"] == 0


def test_stats_count_in_flight(server):
    socks = [connect(server.url) for _ in range(3)]
    try:
        for s in socks:
            s.sendall(request_bytes("POST", "/v1/completions", {"prompt": "a", "max_tokens": 40,
                                                                  "stream": True}))
        time.sleep(0.05)
        stats = server.stats()
        assert stats["in_flight"] >= 3 and stats["max_in_flight"] >= 3
    finally:
        for s in socks:
            s.shutdown(socket.SHUT_RDWR)
            s.close()
