"""Each X-Fault kind, as a client on the wire sees it."""
from __future__ import annotations

import socket
import time

import orjson
import pytest

from .conftest import SLOW_HEADERS_S, STALL_S
from .testserver_raw import Reader, connect, post, request_bytes

STREAM = {"prompt": "fault please", "stream": True, "stream_options": {"include_usage": True}}


def _faulty(server, fault: str, **body):
    return post(server.url, "/v1/completions", {**STREAM, **body}, {"X-Fault": fault})


def _texts(events) -> list[str]:
    """Each event summarised: a token's finish_reason, 'usage', '[DONE]', 'error' or 'garbage'."""
    out = []
    for e in events:
        if e == b"[DONE]":
            out.append("[DONE]")
            continue
        try:
            obj = orjson.loads(e)
        except orjson.JSONDecodeError:
            out.append("garbage")
            continue
        if "error" in obj:
            out.append("error")
        elif not obj["choices"]:
            out.append("usage")
        else:
            out.append(obj["choices"][0]["finish_reason"] or "tok")
    return out


@pytest.mark.parametrize("fault, status, kind", [("http_500", 500, "InternalServerError"),
                                                 ("http_400", 400, "BadRequestError")])
def test_http_faults_answer_with_vllm_error_and_keep_the_connection(server, fault, status, kind):
    with connect(server.url) as sock:
        reader = Reader(sock)
        for stream in (True, False):
            sock.sendall(request_bytes("POST", "/v1/completions", {"prompt": "x", "stream": stream},
                                       {"X-Fault": fault}))
            resp = reader.read()
            assert resp.status == status and resp.complete
            assert orjson.loads(resp.body) == {"object": "error", "message": f"injected fault: {fault}",
                                               "type": kind, "param": None, "code": status}
        sock.sendall(request_bytes("GET", "/health"))
        assert reader.read().status == 200


def test_close_midstream_closes_after_three_tokens(server):
    resp = _faulty(server, "close_midstream", max_tokens=10)
    assert resp.status == 200 and not resp.complete and resp.end == "eof"
    assert _texts(resp.events) == ["tok"] * 3


def test_close_midstream_with_fewer_tokens_sends_them_all_unfinished(server):
    resp = _faulty(server, "close_midstream", max_tokens=2)
    assert resp.end == "eof" and _texts(resp.events) == ["tok"] * 2


def test_reset_sends_rst_after_one_token(server):
    resp = _faulty(server, "reset", max_tokens=10)
    assert resp.end == "reset" and not resp.complete
    assert _texts(resp.events) == ["tok"]


def test_no_done_ends_the_body_without_done(server):
    resp = _faulty(server, "no_done")
    assert resp.complete and _texts(resp.events) == ["tok", "tok", "length", "usage"]


def test_malformed_inserts_garbage_after_two_tokens(server):
    resp = _faulty(server, "malformed", max_tokens=4)
    assert resp.complete
    assert _texts(resp.events) == ["tok", "tok", "garbage", "tok", "length", "usage", "[DONE]"]
    assert resp.events[2] == b"{this is not json"


def test_error_event_is_vllms_in_stream_error(server):
    with connect(server.url) as sock:
        reader = Reader(sock)
        sock.sendall(request_bytes("POST", "/v1/completions", {**STREAM, "max_tokens": 6},
                                   {"X-Fault": "error_event"}))
        resp = reader.read()
        sock.sendall(request_bytes("GET", "/health"))   # the body ended properly: keep-alive
        assert reader.read().status == 200
    assert resp.complete and _texts(resp.events) == ["tok", "tok", "error", "[DONE]"]
    assert resp.events[2] == (b'{"error": {"object": "error", "message": "injected fault: error_event", '
                              b'"type": "BadRequestError", "param": null, "code": 400}}')


def test_stall_sends_one_token_then_nothing_until_closed(server):
    t0 = time.monotonic()
    got = b""
    with connect(server.url, timeout=STALL_S / 3) as sock:
        sock.sendall(request_bytes("POST", "/v1/completions", STREAM, {"X-Fault": "stall"}))
        with pytest.raises(socket.timeout):   # headers and one token, then silence ...
            while True:
                got += sock.recv(65536)
        silent_for = time.monotonic() - t0
        sock.settimeout(STALL_S * 4)
        while data := sock.recv(65536):      # ... until the server gives up and closes
            got += data
    elapsed = time.monotonic() - t0
    assert got.startswith(b"HTTP/1.1 200 OK") and got.count(b"data: ") == 1
    assert silent_for >= STALL_S / 3 and STALL_S <= elapsed < STALL_S + 1.5


def test_slow_headers_delays_the_status_line(server):
    t0 = time.monotonic()
    resp = _faulty(server, "slow_headers")
    assert resp.complete and _texts(resp.events) == ["tok", "tok", "length", "usage", "[DONE]"]
    assert time.monotonic() - t0 >= SLOW_HEADERS_S


def test_fault_records_and_counts(server):
    before = server.stats()["faults"].get("close_midstream", 0)
    post(server.url, "/v1/completions", {**STREAM, "max_tokens": 5},
         {"X-Fault": "close_midstream", "X-Request-Id": "rec-fault"})
    rec = [r for r in server.records()["requests"] if r["id"] == "rec-fault"]
    assert len(rec) == 1 and rec[0]["fault"] == "close_midstream" and len(rec[0]["token_ns"]) == 3
    assert server.stats()["faults"]["close_midstream"] == before + 1


@pytest.mark.parametrize("fault, body, message", [
    ("explode", STREAM, "unknown X-Fault 'explode'"),
    ("reset", {"prompt": "x"}, 'X-Fault reset needs "stream": true'),
])
def test_bad_fault_requests_are_400(server, fault, body, message):
    resp = post(server.url, "/v1/completions", body, {"X-Fault": fault})
    assert resp.status == 400 and orjson.loads(resp.body)["message"].startswith(message)
