"""HTTP/1.1 keep-alive connections on the data path: one asyncio.Protocol per socket.

Python runs once per socket read: data_received hands the bytes to the C parser
(varcas._timing.StreamParser), which timestamps the read, parses HTTP, chunked encoding and
SSE, and stores every content event's time in its own buffer. No per-token Python objects.
A connection carries one request at a time; the Pool reuses idle ones and grows on demand.
Each request resets the parser with its max_tokens, which caps the content events and bytes
its response may bring (csrc/httpsse.h): a server that floods ends the request as a protocol
error, and the engine closes the connection, instead of growing the client without bound.
"""
from __future__ import annotations

import asyncio
import collections
import socket
import ssl as ssl_module
from typing import Generic, TypeVar

from .._timing import StreamParser, monotonic_ns
from .request import Target

# Servers close idle keep-alive connections (uvicorn, hence vLLM, after 5 s). Reusing one
# that is about to be closed turns a healthy request into a spurious connect error, so idle
# connections older than this are closed instead of reused.
IDLE_REUSE_LIMIT_NS = 4_000_000_000

R = TypeVar("R")  # the owner's record of a request, opaque here


class Connection(asyncio.Protocol, Generic[R]):
    """One socket; owner.on_response(conn) or owner.on_failure(conn, kind) ends its request."""

    __slots__ = ("owner", "parser", "feed", "transport", "request", "sent_ns", "idle_since_ns", "pending",
                 "max_tokens")

    def __init__(self, owner) -> None:
        self.owner = owner
        self.parser = StreamParser()
        self.feed = self.parser.feed
        self.transport: asyncio.Transport | None = None
        self.request: R | None = None  # the in-flight request's record (owner's object) or None
        self.sent_ns = 0
        self.idle_since_ns = 0
        self.pending: tuple[R, bytes] | None = None  # (request, data) to send once connected
        self.max_tokens = 0  # of the request sent or pending: the parser's caps (0: none)

    def connection_made(self, transport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.pending is not None:
            request, data = self.pending
            self.pending = None
            self.send(request, data)

    def send(self, request: R, data: bytes) -> None:
        """Start a request: reset the parser with the request's caps, stamp the send time, hand
        the bytes to the socket (connected: connection_made and Pool.acquire call this)."""
        self.request = request
        self.parser.reset(self.max_tokens)
        self.sent_ns = monotonic_ns()
        assert self.transport is not None
        self.transport.write(data)

    def data_received(self, data) -> None:
        owner = self.owner
        if self.feed(data) and self.request is not None:
            owner.on_response(self)
        if monotonic_ns() >= owner.next_due:  # a send fell due while the loop was reading
            owner.dispatch_due()

    def connection_lost(self, exc) -> None:
        self.transport = None
        if self.request is None:
            return  # an idle connection: Pool.acquire skips and drops it
        if self.parser.eof() == 1:
            self.owner.on_response(self)
        else:
            self.owner.on_failure(self, "connect" if self.parser.first_byte_ns == 0 else "truncated")

    def abort(self) -> None:
        """Drop the socket at once (timeouts, cancellation); connection_lost follows."""
        if self.transport is not None:
            self.transport.abort()


class Pool(Generic[R]):
    """Idle keep-alive connections to one target; opens new ones when none is idle."""

    def __init__(self, loop, target: Target, owner, insecure: bool = False) -> None:
        self.loop = loop
        self.target = target
        self.owner = owner
        self.idle: collections.deque[Connection[R]] = collections.deque()
        self.opened = 0
        self.connecting = 0
        self.ssl: ssl_module.SSLContext | None = None
        if target.scheme == "https":
            self.ssl = ssl_module.create_default_context()
            if insecure:
                self.ssl.check_hostname = False
                self.ssl.verify_mode = ssl_module.CERT_NONE

    def acquire(self, request: R, data: bytes, max_tokens: int = 0) -> Connection[R]:
        """Send on an idle connection, or on a new one as soon as it is connected; max_tokens
        (the request's, 0 for none) sets the caps on its response."""
        idle = self.idle
        now = monotonic_ns()
        conn: Connection[R] | None = None
        while idle:
            candidate = idle.pop()  # most recently used first: warm, least likely to be closed
            if candidate.transport is not None and now - candidate.idle_since_ns < IDLE_REUSE_LIMIT_NS:
                conn = candidate
                conn.max_tokens = max_tokens
                conn.send(request, data)
                break
            candidate.abort()
        if conn is None:
            conn = Connection(self.owner)
            conn.max_tokens = max_tokens
            conn.pending = (request, data)
            self._open(conn)
        # Keep spare connections opening in the background (about 1/16 of the pool, at least
        # 4), so a growing number of requests in flight does not wait for connect().
        if len(idle) + self.connecting < 4 + (self.opened >> 4):
            self._open(Connection(self.owner))
        return conn

    def release(self, conn: Connection[R]) -> None:
        """Return a connection whose response completed; closes it if it cannot be reused."""
        conn.request = None
        parser = conn.parser
        if conn.transport is None or not parser.keep_alive or parser.trailing:
            conn.abort()
            return
        conn.idle_since_ns = monotonic_ns()
        self.idle.append(conn)

    def prewarm(self, n: int) -> None:
        """Open n connections ahead of the schedule so early requests do not pay for connect."""
        for _ in range(n):
            conn: Connection[R] = Connection(self.owner)
            self._open(conn)

    def close(self) -> None:
        while self.idle:
            self.idle.pop().abort()

    def _open(self, conn: Connection[R]) -> None:
        self.opened += 1
        self.connecting += 1
        task = self.loop.create_task(
            self.loop.create_connection(
                lambda: conn,
                self.target.host,
                self.target.port,
                ssl=self.ssl,
                server_hostname=self.target.host if self.ssl else None,
            )
        )
        task.add_done_callback(lambda t, conn=conn: self._opened(conn, t))

    def _opened(self, conn: Connection[R], task: asyncio.Task) -> None:
        self.connecting -= 1
        if task.cancelled() or task.exception() is not None:
            if conn.pending is not None:
                request, _ = conn.pending
                conn.pending = None
                conn.request = request
                conn.sent_ns = 0  # never sent
                self.owner.on_failure(conn, "connect")
            return
        if conn.request is None and conn.pending is None:
            conn.idle_since_ns = monotonic_ns()
            self.idle.append(conn)
