"""A tiny blocking HTTP/1.1 client over raw sockets, for observing the test server byte by byte.

httpx hides what the tests must see (chunk boundaries, a missing terminating chunk, a reset,
arrival times), so these helpers read the socket directly. Every read is bounded by the
socket timeout and every loop by a deadline.
"""
from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field

TIMEOUT_S = 5.0


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes = b""                   # Content-Length body, or the de-chunked stream
    events: list[bytes] = field(default_factory=list)   # SSE data payloads, in order
    event_ns: list[int] = field(default_factory=list)   # monotonic ns each was read
    complete: bool = False              # the body ended properly (length met / last chunk)
    end: str = ""                       # "", "eof" or "reset" when it ended early


def connect(url: str, timeout: float = TIMEOUT_S) -> socket.socket:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def request_bytes(method: str, path: str, body: dict | bytes | None = None,
                  headers: dict[str, str] | None = None) -> bytes:
    data = json.dumps(body).encode() if isinstance(body, dict) else (body or b"")
    lines = [f"{method} {path} HTTP/1.1", "host: test"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if data or method == "POST":
        lines += ["content-type: application/json", f"content-length: {len(data)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


class Reader:
    """Reads responses from one socket; keeps leftover bytes for the next response."""

    def __init__(self, sock: socket.socket):
        self.sock, self.buf, self.fill_ns = sock, b"", 0

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.fill_ns = time.monotonic_ns()   # after the bytes arrived
        self.buf += data
        return bool(data)

    def read(self) -> Response:
        """One response; an early EOF or reset is reported in .end, not raised."""
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionError(f"EOF before a status line (got {self.buf!r})")
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        resp = Response(int(lines[0].split(" ")[1]), headers)
        try:
            if headers.get("transfer-encoding") == "chunked":
                self._read_chunked(resp)
            else:
                self._read_length(resp, int(headers.get("content-length", "0")))
        except ConnectionResetError:
            resp.end = "reset"
        return resp

    def _read_length(self, resp: Response, length: int) -> None:
        while len(self.buf) < length:
            if not self._fill():
                resp.end = "eof"
                return
        resp.body, self.buf = self.buf[:length], self.buf[length:]
        resp.complete = True

    def _read_chunked(self, resp: Response) -> None:
        pending = b""   # de-chunked bytes not yet split into SSE events
        while True:
            while b"\r\n" not in self.buf:
                if not self._fill():
                    resp.end = "eof"
                    return
            size_line = self.buf.partition(b"\r\n")[0]
            size, start = int(size_line, 16), len(size_line) + 2
            while len(self.buf) < start + size + 2:
                if not self._fill():
                    resp.end = "eof"
                    return
            data, self.buf = self.buf[start:start + size], self.buf[start + size + 2:]
            if size == 0:
                resp.complete = True
                return
            resp.body += data
            pending += data
            while b"\n\n" in pending:
                event, _, pending = pending.partition(b"\n\n")
                assert event.startswith(b"data: "), event
                resp.events.append(event[len(b"data: "):])
                resp.event_ns.append(self.fill_ns)


def exchange(url: str, raw: bytes) -> Response:
    """Send raw on a fresh connection and read one response."""
    with connect(url) as sock:
        sock.sendall(raw)
        return Reader(sock).read()


def post(url: str, path: str, body: dict, headers: dict[str, str] | None = None) -> Response:
    return exchange(url, request_bytes("POST", path, body, headers))
