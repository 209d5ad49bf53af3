"""Minimal HTTP/1.1 framing for varcas's servers (stub and simulator): requests and response bytes.

Only what an OpenAI-compatible client sends is accepted: a request line, headers, and an
optional Content-Length body (no chunked request bodies, no 100-continue). The parser is
incremental: it is handed the connection's whole unconsumed buffer after every read and
either returns one complete request and the number of bytes it used, returns None (need
more bytes), or raises HttpError. It never raises anything else, whatever the bytes
(tests fuzz it), so garbage from a client can cost that client its connection but never
the server its life.
"""
from __future__ import annotations

from dataclasses import dataclass

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 8 * 1024 * 1024

_REASONS = {
    200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
    413: "Payload Too Large", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
    501: "Not Implemented",
}
LAST_CHUNK = b"0\r\n\r\n"


class HttpError(Exception):
    """A request that cannot be framed; the connection is answered with `status` and closed."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased; a repeated header keeps its last value
    body: bytes
    keep_alive: bool


def parse_request(buf: bytes | bytearray) -> tuple[Request, int] | None:
    """Parse one request from the start of buf: (request, bytes used), None if incomplete."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > MAX_HEAD_BYTES:
            raise HttpError(431, "request head too large")
        return None
    if end > MAX_HEAD_BYTES:
        raise HttpError(431, "request head too large")
    lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
    method, path, version = _request_line(lines[0])
    headers = _headers(lines[1:])
    if "transfer-encoding" in headers:
        raise HttpError(501, "request bodies must use Content-Length, not Transfer-Encoding")
    length = _content_length(headers.get("content-length", "0"))
    used = end + 4 + length
    if len(buf) < used:
        return None
    keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    path = path.partition("?")[0]
    return Request(method, path, headers, bytes(buf[end + 4:used]), keep_alive), used


def _request_line(line: str) -> tuple[str, str, str]:
    parts = line.split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[1].startswith("/"):
        raise HttpError(400, "malformed request line")
    if parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
        raise HttpError(400, "only HTTP/1.0 and HTTP/1.1 are supported")
    return parts[0], parts[1], parts[2]


def _headers(lines: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        # No whitespace is allowed between a field name and its colon (RFC 9112, 5.1).
        if not sep or not name or name != name.strip():
            raise HttpError(400, "malformed header line")
        headers[name.lower()] = value.strip()
    return headers


def _content_length(value: str) -> int:
    if not (value.isascii() and value.isdigit()):
        raise HttpError(400, "invalid Content-Length")
    length = int(value)
    if length > MAX_BODY_BYTES:
        raise HttpError(413, f"request body over {MAX_BODY_BYTES} bytes")
    return length


def _head(status: int, keep_alive: bool, server: str, fields: tuple[tuple[str, str], ...]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", f"server: {server}"]
    lines += [f"{name}: {value}" for name, value in fields]
    lines.append("connection: keep-alive" if keep_alive else "connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def response(status: int, body: bytes, keep_alive: bool, server: str,
             content_type: str = "application/json") -> bytes:
    """A complete response with a Content-Length body; `server` is the Server header's value."""
    head = _head(status, keep_alive, server, (("content-type", content_type),
                                              ("content-length", str(len(body)))))
    return head + body


def stream_head(keep_alive: bool, server: str) -> bytes:
    """Status line and headers of a chunked text/event-stream response (uvicorn's, as vLLM sends)."""
    return _head(200, keep_alive, server, (("content-type", "text/event-stream; charset=utf-8"),
                                           ("transfer-encoding", "chunked")))


def chunk(payload: bytes) -> bytes:
    """One HTTP/1.1 chunk carrying payload (which must not be empty: that is the last chunk)."""
    return b"%x\r\n%s\r\n" % (len(payload), payload)
