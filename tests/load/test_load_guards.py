"""The parser's guards through the real client: a flooding server, a peer that is not an HTTP
server, an unasked gzip stream and content after [DONE] each end their rows as `protocol`
errors at once, with the parser's message in errors.log.

The stub server (varcas.testing) speaks correct HTTP only, so these tests bring their own: a
raw-socket HTTP/1.1 server on 127.0.0.1 with a thread per connection. It answers the control
plane (/v1/models; 404 for the rest) and hands each POST to one `answer` function. Every loop
in it is bounded, and leaving its `with` block stops it and joins its threads.
"""
from __future__ import annotations

import gzip
import socket
import threading
import time

import orjson
import pytest

from .helpers import load

MAX_TOKENS = 8
EVENT_CAP = 2 * MAX_TOKENS + 64  # csrc/httpsse.h
SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
CONTENT = b'data: {"id":"cmpl-1","object":"text_completion","choices":[{"index":0,"text":" x"}]}\n\n'
DONE = b"data: [DONE]\n\n"
FLOOD_LIMIT_BYTES = 256 << 20  # what the flood sends at most when nobody stops it
FLOOD_LIMIT_S = 20.0


def chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


class RawServer:
    """`with RawServer(answer) as srv:` serves http://127.0.0.1:PORT (srv.url).

    answer(conn, srv) writes the whole answer to one POST and returns whether the connection
    may carry another request. srv.sent counts the bytes answers sent (under srv.lock)."""

    def __init__(self, answer) -> None:
        self.answer = answer
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.sent = 0
        self.threads: list[threading.Thread] = []

    def __enter__(self) -> RawServer:
        self._spawn(self._accept_loop)
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        for t in list(self.threads):
            t.join(timeout=FLOOD_LIMIT_S + 5)
        self.sock.close()
        assert not any(t.is_alive() for t in self.threads), "a server thread did not stop"

    def _spawn(self, target, *args) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        self.threads.append(t)
        t.start()

    def _accept_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._spawn(self._serve, conn)

    def recv(self, conn: socket.socket, deadline: float = float("inf")) -> bytes:
        """The next bytes from the client; b"" when it closed, at the (monotonic) deadline,
        or when the server stops."""
        while not self.stopping.is_set() and time.monotonic() < deadline:
            try:
                return conn.recv(65536)
            except TimeoutError:
                continue
        return b""

    def _read_request(self, conn: socket.socket, buf: bytearray) -> bytes | None:
        """The request line of the next request (its body is read and dropped), or None
        when the client is gone."""
        while b"\r\n\r\n" not in buf and len(buf) < 1 << 20:
            if not (data := self.recv(conn)):
                return None
            buf += data
        head, _, rest = bytes(buf).partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(rest) < length:
            if not (data := self.recv(conn)):
                return None
            rest += data
        buf[:] = rest[length:]
        return head.split(b"\r\n")[0]

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.05)
        buf = bytearray()
        try:
            while (line := self._read_request(conn, buf)) is not None:
                if line.startswith(b"GET /v1/models "):
                    body = orjson.dumps({"object": "list", "data": [{"id": "m", "object": "model"}]})
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                elif line.startswith(b"POST /v1/completions "):
                    if not self.answer(conn, self):
                        return
                else:
                    conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        except OSError:
            pass  # the client closed or reset the connection: that ends this answer
        finally:
            conn.close()

    def send(self, conn: socket.socket, data: bytes) -> None:
        conn.sendall(data)
        with self.lock:
            self.sent += len(data)


def until_closed(conn: socket.socket, srv: RawServer, limit_s: float = 10.0) -> None:
    """Wait (bounded) until the client closes the connection."""
    deadline = time.monotonic() + limit_s
    while srv.recv(conn, deadline):
        pass


def flood(conn: socket.socket, srv: RawServer) -> bool:
    """Content events far beyond any max_tokens, until the client goes (or the bounds)."""
    srv.send(conn, SSE_HEAD + b"\r\n")
    block = chunk(CONTENT) * 2000
    deadline = time.monotonic() + FLOOD_LIMIT_S
    sent = 0
    while sent < FLOOD_LIMIT_BYTES and time.monotonic() < deadline and not srv.stopping.is_set():
        srv.send(conn, block)
        sent += len(block)
    srv.send(conn, chunk(DONE) + b"0\r\n\r\n")
    return True


def banner(data: bytes):
    """A peer that speaks another protocol first and then waits for the client."""

    def answer(conn: socket.socket, srv: RawServer) -> bool:
        srv.send(conn, data)
        until_closed(conn, srv)
        return False

    return answer


def gzipped(conn: socket.socket, srv: RawServer) -> bool:
    """A correct stream, gzip-compressed although the request had no Accept-Encoding."""
    body = gzip.compress(CONTENT * MAX_TOKENS + DONE)
    srv.send(conn, SSE_HEAD + b"Content-Encoding: gzip\r\n\r\n" + chunk(body) + b"0\r\n\r\n")
    until_closed(conn, srv)
    return False


def after_done(conn: socket.socket, srv: RawServer) -> bool:
    """max_tokens events, [DONE], then one more content event."""
    body = b"".join(chunk(e) for e in [CONTENT] * MAX_TOKENS + [DONE, CONTENT])
    srv.send(conn, SSE_HEAD + b"\r\n" + body + b"0\r\n\r\n")
    return True


def run_against(tmp_path, answer, n: int = 3, request_timeout_s: float = 10.0):
    with RawServer(answer) as srv:
        t0 = time.monotonic()
        run_dir, manifest, rows = load(tmp_path, srv.url, num_requests=n, rps=50.0, output_len=MAX_TOKENS,
                                       request_timeout_s=request_timeout_s)
        wall_s = time.monotonic() - t0
    return srv, run_dir, manifest, rows, wall_s


def assert_protocol_rows(run_dir, manifest, rows, errmsg: str, n: int = 3) -> None:
    assert [r["error"] for r in rows] == ["protocol"] * n
    assert manifest["counts"]["errors"] == {"protocol": n}
    status = rows[0]["http_status"]
    where = f" (HTTP {status})" if status else ""
    assert manifest["failure"] == f"every request failed; the first: protocol{where}: {errmsg}"
    log = (run_dir / "errors.log").read_text().splitlines()
    assert len(log) == n and all(line.endswith("\tprotocol\tHTTP %d\t%s" % (r["http_status"], errmsg))
                                 for line, r in zip(log, rows))
    for r in rows:  # ended by the parser, not by the request timeout
        assert r["end_ns"] - r["sent_ns"] < 2e9


def test_a_flooding_server_is_cut_off_at_the_event_cap(tmp_path):
    srv, run_dir, manifest, rows, wall_s = run_against(tmp_path, flood)
    errmsg = f"more than {EVENT_CAP} content events for max_tokens {MAX_TOKENS}"
    assert_protocol_rows(run_dir, manifest, rows, errmsg)
    assert all(len(r["token_ns"]) == EVENT_CAP for r in rows)  # memory: the cap, not the flood
    assert wall_s < 10
    # The client closed each stream after its 80 events (~8 KiB): the server got a few sends
    # into the socket buffers (a few MiB on loopback) and no further. Without the cap, each
    # request read all 256 MiB and recorded ~2.9 M events.
    assert srv.sent < 32 << 20


@pytest.mark.parametrize("data", [b"SSH-2.0-OpenSSH_9.6\r\n", b"\x15\x03\x03\x00\x02\x02\x46"],
                         ids=["ssh-banner", "tls-alert"])
def test_a_peer_that_is_not_an_http_server_fails_at_its_first_byte(tmp_path, data):
    _, run_dir, manifest, rows, wall_s = run_against(tmp_path, banner(data), request_timeout_s=5.0)
    assert_protocol_rows(run_dir, manifest, rows, "response does not start with HTTP/")
    assert all(r["http_status"] == 0 and r["first_byte_ns"] is not None for r in rows)
    assert wall_s < 5


def test_an_unasked_gzip_stream_is_a_protocol_error(tmp_path):
    _, run_dir, manifest, rows, wall_s = run_against(tmp_path, gzipped, request_timeout_s=5.0)
    assert_protocol_rows(run_dir, manifest, rows, "compressed response (Content-Encoding: gzip) that was not asked for")
    assert all(r["http_status"] == 200 for r in rows)
    assert wall_s < 5


def test_content_after_done_is_a_protocol_error_not_more_tokens(tmp_path):
    _, run_dir, manifest, rows, _ = run_against(tmp_path, after_done)
    assert_protocol_rows(run_dir, manifest, rows, "data after [DONE]")
    assert all(len(r["token_ns"]) == MAX_TOKENS for r in rows)
