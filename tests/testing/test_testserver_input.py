"""Bad input never kills the test server; bad settings are one-line errors; records at exit."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import varcas
from varcas.errors import VarcasError
from varcas.testing import spawn

from .testserver_raw import Reader, connect, exchange, post, request_bytes

ROOT = str(Path(varcas.__file__).resolve().parent.parent)


def _error(resp) -> dict:
    body = orjson.loads(resp.body)
    assert set(body) == {"object", "message", "type", "param", "code"} and body["object"] == "error"
    assert body["code"] == resp.status
    return body


@pytest.mark.parametrize("path, body, status, message", [
    ("/v1/completions", b"{not json", 400, "request body is not valid JSON"),
    ("/v1/completions", b"[1, 2]", 400, "request body must be a JSON object"),
    ("/v1/completions", {"max_tokens": 3}, 400, "prompt must be a string or a list of token ids"),
    ("/v1/completions", {"prompt": [1, "a"]}, 400, "prompt must be a string or a list of token ids"),
    ("/v1/completions", {"prompt": "a", "max_tokens": 0}, 400, "max_tokens must be an integer"),
    ("/v1/completions", {"prompt": "a", "max_tokens": True}, 400, "max_tokens must be an integer"),
    ("/v1/completions", {"prompt": "a", "stream": "yes"}, 400, "stream must be a boolean"),
    ("/v1/completions", {"prompt": "a", "n": 2}, 400, "only n=1 is supported"),
    ("/v1/completions", {"prompt": "a", "model": "gpt-9"}, 404, "The model `gpt-9` does not exist."),
    ("/v1/chat/completions", {"prompt": "a"}, 400, "messages must be a non-empty list"),
    ("/v1/chat/completions", {"messages": [{"content": "hi"}]}, 400, "each message must be an object"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": 5}]}, 400, "message content must"),
])
def test_invalid_bodies_get_json_errors_and_keep_alive(server, path, body, status, message):
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    with connect(server.url) as sock:
        reader = Reader(sock)
        sock.sendall(request_bytes("POST", path, raw))
        resp = reader.read()
        sock.sendall(request_bytes("GET", "/health"))
        assert reader.read().status == 200
    assert resp.status == status and _error(resp)["message"].startswith(message)


def test_unknown_path_and_wrong_method(server):
    assert exchange(server.url, request_bytes("GET", "/v2/nothing")).status == 404
    resp = exchange(server.url, request_bytes("GET", "/v1/completions"))
    assert resp.status == 405 and "GET" in _error(resp)["message"]
    assert exchange(server.url, request_bytes("GET", "/health?probe=1")).status == 200


@pytest.mark.parametrize("raw, status", [
    (b"\x00\x01\xffgarbage\r\n\r\n", 400),
    (b"GET /health HTTP/2.0\r\n\r\n", 400),
    (b"POST /v1/completions HTTP/1.1\r\ncontent-length: -4\r\n\r\n", 400),
    (b"POST /v1/completions HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n", 501),
    (b"POST /v1/completions HTTP/1.1\r\ncontent-length: 999999999\r\n\r\n", 413),
    (b"GET /" + b"a" * 70_000, 431),
])
def test_unframeable_requests_are_answered_then_closed(server, raw, status):
    with connect(server.url) as sock:
        sock.sendall(raw)
        reader = Reader(sock)
        resp = reader.read()
        assert sock.recv(1) == b""   # closed: the byte stream cannot be trusted any more
    assert resp.status == status and resp.headers["connection"] == "close"
    _error(resp)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_random_bytes_never_kill_the_server(server, raw):
    with connect(server.url, timeout=2) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        try:
            while sock.recv(65536):   # the server answers and/or closes; bounded by the timeout
                pass
        except ConnectionResetError:
            pass
    assert httpx.get(server.url + "/health", trust_env=False).status_code == 200


def _server_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "varcas.testing.server", *args]


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": ROOT}
    return subprocess.run(_server_cmd(*args), capture_output=True, text=True, timeout=20, env=env)


@pytest.mark.parametrize("args, message", [
    (("--tokens", "0"), "--tokens must be >= 1"),
    (("--itl-ms", "-1"), "--itl-ms must be in [0, 1e6)"),
    (("--port", "70000"), "--port must be in [0, 65535]"),
    (("--records", "/nonexistent-dir/r.json"), "cannot write records file"),
    (("--tokens", "many"), "argument --tokens: invalid int value"),
])
def test_bad_settings_are_one_line_errors(args, message):
    proc = _run_cli(*args)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and message in proc.stderr


def test_port_in_use_is_a_one_line_error(server):
    proc = _run_cli("--port", str(server.port))
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1
    assert f"cannot listen on 127.0.0.1:{server.port}" in proc.stderr


def test_spawn_reports_a_server_that_does_not_start():
    with pytest.raises(VarcasError, match="--tokens must be >= 1"):
        spawn(extra_args=("--tokens", "0"))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_records_file_written_at_exit(tmp_path, sig):
    path = tmp_path / "records.json"
    srv = spawn(tokens=2, itl_ms=1, extra_args=("--records", str(path)))
    with srv:
        assert orjson.loads(path.read_bytes()) == {"requests": []}   # valid from the start
        post(srv.url, "/v1/completions", {"prompt": "a", "stream": True}, {"X-Request-Id": "r1"})
        live = srv.records()
        srv.proc.send_signal(sig)
        assert srv.proc.wait(10) == 0
    assert orjson.loads(path.read_bytes()) == live
    assert [(r["id"], len(r["token_ns"])) for r in live["requests"]] == [("r1", 2)]


def test_listening_line_is_the_only_stdout():
    env = {**os.environ, "PYTHONPATH": ROOT}
    proc = subprocess.Popen(_server_cmd("--port", "0"), stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        host_port = line.removeprefix("varcas-testserver listening on http://").strip()
        assert line.startswith("varcas-testserver listening on http://127.0.0.1:")
        assert int(host_port.rsplit(":", 1)[1]) > 0
    finally:
        proc.terminate()
        rest = proc.communicate(timeout=10)[0]
    assert proc.returncode == 0 and rest == ""
