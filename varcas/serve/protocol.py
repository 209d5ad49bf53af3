"""The connection loop and the listening socket that the stub and the simulator share.

HttpConnection is one client connection on raw asyncio.Protocol: requests are parsed from the
connection's buffer (http11.parse_request) and served one at a time, in order (keep-alive,
pipelining allowed). A generation request makes the connection busy until the subclass calls
done(); bytes that arrive meanwhile wait in the buffer (up to MAX_PENDING_BYTES, then the
client is cut off). Malformed HTTP is answered with a JSON error and the connection closed, as
the byte stream cannot be resynchronised; an unknown path is 404, a wrong method 405.
A subclass names itself (server_name: the Server header and the start-up banner), lists its
GET routes and implements get() and generate().

serve_until_signal() listens, announces the URL once it accepts connections (which is how
spawn() learns a port picked by --port 0), and on SIGTERM/SIGINT stops and drops every client.
"""
from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from time import monotonic_ns

from ..errors import VarcasError
from .http11 import (
    MAX_BODY_BYTES,
    MAX_HEAD_BYTES,
    HttpError,
    Request,
    parse_request,
    response,
)
from .openai_wire import error_body

GEN_PATHS = {"/v1/completions": False, "/v1/chat/completions": True}  # path -> chat?
# Bytes a client may queue behind a response in progress before it is cut off.
MAX_PENDING_BYTES = 2 * (MAX_HEAD_BYTES + MAX_BODY_BYTES)


def banner(server_name: str) -> str:
    """The start of the one line a server prints once it accepts connections (then its URL)."""
    return f"{server_name} listening on"


class HttpConnection(asyncio.Protocol):
    """One client connection of a server whose shared state (`srv`) keeps the set `conns`."""

    server_name: str                  # the Server header and banner; set by each server
    get_paths: tuple[str, ...] = ()   # GET routes, answered by get()
    transport: asyncio.Transport | None  # from connection_made on

    def __init__(self, srv):
        self.srv = srv
        self.buf = bytearray()
        self.transport = None
        self.write = None             # transport.write, looked up once
        self.keep_alive = True
        self.closed = False

    @property
    def busy(self) -> bool:
        """A generation response is in progress (each server knows how; here never)."""
        return False

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.write = transport.write
        self.srv.conns.add(self)

    def data_received(self, data: bytes) -> None:
        now = monotonic_ns()
        self.buf += data
        if not self.busy:
            self.serve(now)
        elif len(self.buf) > MAX_PENDING_BYTES:
            self.rejected()
            assert self.transport is not None  # data comes after connection_made
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.srv.conns.discard(self)

    def serve(self, now: int) -> None:
        """Answer the complete requests in the buffer until one starts a generation."""
        while not self.busy and not self.closed:
            try:
                parsed = parse_request(self.buf)
            except HttpError as exc:  # the byte stream cannot be resynchronised: answer, close
                self.rejected()
                self.keep_alive = False
                self.reply(exc.status, error_body(exc.status, exc.message))
                return
            if parsed is None:
                return
            req, used = parsed
            del self.buf[:used]
            self.keep_alive = req.keep_alive
            self._route(req, now)

    def _route(self, req: Request, now: int) -> None:
        if req.method == "POST" and req.path in GEN_PATHS:
            self.generate(req, GEN_PATHS[req.path], now)
        elif req.method == "GET" and req.path in self.get_paths:
            self.reply(*self.get(req.path))
        elif req.path in GEN_PATHS or req.path in self.get_paths:
            self.reply(405, error_body(405, f"method {req.method} not allowed on {req.path}"))
        else:
            self.reply(404, error_body(404, f"no route for {req.method} {req.path}"))

    def reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        """Send a complete response; close after it unless the connection is kept alive."""
        self.write(response(status, body, self.keep_alive, self.server_name, content_type))
        if not self.keep_alive:
            self.close()

    def done(self) -> None:
        """The generation in progress has ended: close, or serve what the client sent meanwhile."""
        if not self.keep_alive:
            self.close()
        elif self.buf:
            self.serve(monotonic_ns())

    def close(self) -> None:
        self.closed = True
        assert self.transport is not None  # a reply or done() comes after connection_made
        self.transport.close()

    def get(self, path: str) -> tuple[int, bytes, str]:
        """(status, body, content type) of the GET route `path` (one of get_paths)."""
        raise NotImplementedError

    def generate(self, req: Request, chat: bool, now: int) -> None:
        """Serve a POST to a generation path; `now` is when its last bytes were read."""
        raise NotImplementedError

    def rejected(self) -> None:
        """Called for unframeable HTTP and for a client over MAX_PENDING_BYTES (stub counts them)."""


async def serve_until_signal(factory: Callable[[], HttpConnection], host: str, port: int,
                             conns: set, ready: Callable[[str], None]) -> None:
    """Listen on host:port; ready(url) once accepting; on SIGTERM/SIGINT stop and abort `conns`.
    VarcasError when the address cannot be used."""
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(factory, host, port, backlog=4096)
    except OSError as exc:
        raise VarcasError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bound_host, bound_port = server.sockets[0].getsockname()[:2]
    ready(f"http://{f'[{bound_host}]' if ':' in bound_host else bound_host}:{bound_port}")
    try:
        await stop.wait()
    finally:
        server.close()
        for conn in list(conns):
            conn.transport.abort()
