"""A streaming OpenAI-compatible test server: the load generator's timing reference and fault box.

`python -m varcas.testing.server [--host 127.0.0.1] [--port 0] [--tokens N] [--itl-ms 10]
[--ttft-ms 0] [--model test-model] [--records FILE] [--record-bodies]` prints one line,
`varcas-testserver listening on http://HOST:PORT`, once it accepts connections, and exits
cleanly on SIGTERM/SIGINT (writing --records FILE if given).

It is a lean, deterministic stub, not the vLLM simulator: raw asyncio.Protocol HTTP/1.1 with
keep-alive on uvloop (varcas.serve.protocol), vLLM's exact SSE bytes (varcas.serve.openai_wire),
one loop timer for every token of every stream (streams.TokenClock). A text prompt counts one
token a word; max_tokens defaults to --tokens. For each streamed request it records its id
(X-Request-Id, else `srv-N`), when the complete request was read (recv_ns) and, just before each
token chunk's transport.write, time.monotonic_ns() (token_ns): CLOCK_MONOTONIC, so comparable
with a client's stamps on the same host, and with --record-bodies its request body (tests of
what a client sends). GET /_records and GET /_stats expose them; the X-Fault request header
injects one fault per request (streams.FAULTS). Tests and benchmarks start it with spawn().
"""
from __future__ import annotations

import argparse
import asyncio
import socket
import struct
import sys
import time
from array import array
from collections import Counter
from pathlib import Path
from time import monotonic_ns

import orjson
import uvloop

from ..clikit import OneLineParser
from ..errors import VarcasError
from ..serve.http11 import Request, response, stream_head
from ..serve.openai_wire import (
    ApiError,
    GenRequest,
    error_body,
    full_response,
    models_body,
    parse_body,
    stream_events,
)
from ..serve.protocol import HttpConnection, banner, serve_until_signal
from .spawn import SERVER_NAME, ServerProcess, spawn
from .streams import FAULTS, HTTP_FAULTS, NON_STREAM_FAULTS, Stream, TokenClock

__all__ = ["ServerProcess", "spawn", "main", "build_parser", "run", "parse_gen_request"]

LISTENING = banner(SERVER_NAME)
MAX_TOKENS_LIMIT = 1_000_000


def parse_gen_request(body: bytes, chat: bool, default_tokens: int, model: str) -> GenRequest:
    """The stub's rules over the shared checks: max_tokens defaults to default_tokens and is at
    most MAX_TOKENS_LIMIT; ApiError when the body is invalid."""
    parsed = parse_body(body, chat, model)
    output_tokens = default_tokens if parsed.max_tokens is None else parsed.max_tokens
    if output_tokens > MAX_TOKENS_LIMIT:
        raise ApiError(400, f"{parsed.max_tokens_key} must be an integer in [1, {MAX_TOKENS_LIMIT}]")
    return parsed.request(output_tokens)


class _Server:
    """Configuration, the token clock, the records and the counters shared by all connections."""

    def __init__(self, args: argparse.Namespace, loop: asyncio.AbstractEventLoop):
        self.args, self.loop = args, loop
        self.clock = TokenClock(loop, round(args.ttft_ms * 1e6), round(args.itl_ms * 1e6))
        self.started = int(time.time())
        self.records: list[tuple[str, int, str | None, array]] = []  # id, recv_ns, fault, token_ns
        self.bodies: list[bytes] = []  # with --record-bodies: each record's request body
        self.conns: set[_Conn] = set()
        self.seq = 0            # generation requests accepted (also names those without an id)
        self.bad_requests = 0   # unframeable HTTP and rejected API bodies
        self.in_flight = self.max_in_flight = self.max_connections = 0
        self.faults: Counter[str] = Counter()

    def records_json(self) -> bytes:
        records = [{"id": rid, "recv_ns": recv, "fault": fault, "token_ns": times.tolist()}
                   for rid, recv, fault, times in self.records]
        for record, body in zip(records, self.bodies):
            record["body"] = body.decode("utf-8", "replace")
        return orjson.dumps({"requests": records})

    def stats_json(self) -> bytes:
        return orjson.dumps({
            "requests": self.seq, "streams": len(self.records),
            "tokens": sum(len(r[3]) for r in self.records), "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight, "connections": len(self.conns),
            "max_connections": self.max_connections, "bad_requests": self.bad_requests,
            "max_lag_ns": self.clock.max_lag_ns, "faults": dict(self.faults)})


class _Conn(HttpConnection):
    """One client connection (the request loop is HttpConnection's)."""

    server_name = SERVER_NAME
    get_paths = ("/health", "/v1/models", "/_records", "/_stats")
    busy = False  # a plain flag here (over HttpConnection's property): set from generate() to finish()

    def __init__(self, srv: _Server):
        super().__init__(srv)
        self.stream: Stream | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.srv.max_connections = max(self.srv.max_connections, len(self.srv.conns))

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.stream is not None:
            self.stream.dead = True
        if self.timer is not None:
            self.timer.cancel()
        if self.busy:
            self.busy = False
            self.srv.in_flight -= 1

    def rejected(self) -> None:
        self.srv.bad_requests += 1

    def get(self, path: str) -> tuple[int, bytes, str]:
        srv = self.srv
        if path == "/health":
            return 200, b"", "text/plain; charset=utf-8"
        if path == "/v1/models":
            return 200, models_body(srv.args.model, srv.started), "application/json"
        return 200, srv.records_json() if path == "/_records" else srv.stats_json(), "application/json"

    def generate(self, req: Request, chat: bool, now: int) -> None:
        srv, args = self.srv, self.srv.args
        fault = req.headers.get("x-fault")
        try:
            if fault is not None and fault not in FAULTS:
                raise ApiError(400, f"unknown X-Fault {fault!r} (known: {', '.join(sorted(FAULTS))})")
            gen = parse_gen_request(req.body, chat, args.tokens, args.model)
            if not gen.stream and fault is not None and fault not in NON_STREAM_FAULTS:
                raise ApiError(400, f"X-Fault {fault} needs \"stream\": true")
        except ApiError as exc:
            srv.bad_requests += 1
            self.reply(exc.status, error_body(exc.status, exc.message))
            return
        seq, srv.seq = srv.seq, srv.seq + 1
        if fault is not None:
            srv.faults[fault] += 1
        if fault in HTTP_FAULTS:
            status = HTTP_FAULTS[fault]
            self.reply(status, error_body(status, f"injected fault: {fault}"))
            return
        header_id = req.headers.get("x-request-id")
        rid = ("chatcmpl-" if chat else "cmpl-") + (header_id or f"{seq:032x}")
        self.busy = True
        srv.in_flight += 1
        srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
        delay_s = args.slow_headers_s if fault == "slow_headers" else 0.0
        created = int(time.time())
        if not gen.stream:
            delay_s += (args.ttft_ms + (gen.output_tokens - 1) * args.itl_ms) / 1e3
            body = full_response(gen, rid, created, args.model)
            self.timer = srv.loop.call_later(delay_s, self._send_full, body)
            return
        times = array("q")
        srv.records.append((header_id or f"srv-{seq}", now, fault, times))
        if args.record_bodies:
            srv.bodies.append(req.body)
        events = stream_events(gen, rid, created, args.model)
        self.stream = Stream(self, self.write, events, gen.output_tokens, fault, times)
        head = stream_head(self.keep_alive, SERVER_NAME)
        if delay_s:
            self.timer = srv.loop.call_later(delay_s, self._start_stream, head)
        else:
            self.write(head)
            srv.clock.add(self.stream, now)

    def _start_stream(self, head: bytes) -> None:
        self.timer = None
        self.write(head)
        self.srv.clock.add(self.stream, monotonic_ns())

    def _send_full(self, body: bytes) -> None:
        self.timer = None
        self.write(response(200, body, self.keep_alive, SERVER_NAME))
        self.finish()

    # The streams.Connection interface, called by the token clock.
    def finish(self) -> None:
        self.busy = False
        self.stream = None
        self.srv.in_flight -= 1
        self.done()

    def reset(self) -> None:
        # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
        assert self.transport is not None  # the token clock resets a connected stream
        sock = self.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.closed = True
        self.transport.abort()

    def stall(self) -> None:
        self.timer = self.srv.loop.call_later(self.srv.args.stall_s, self.close)


def build_parser(prog: str = "python -m varcas.testing.server") -> argparse.ArgumentParser:
    p = OneLineParser(prog=prog, description="Streaming OpenAI-compatible test server with "
                      "per-token send records and X-Fault fault injection.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    p.add_argument("--tokens", type=int, default=16,
                   help="output tokens when a request has no max_tokens (default 16)")
    p.add_argument("--itl-ms", type=float, default=10.0,
                   help="ms between tokens, 0 = as fast as possible (default 10)")
    p.add_argument("--ttft-ms", type=float, default=0.0,
                   help="ms from request to first token (default 0)")
    p.add_argument("--model", default="test-model", help="the one model served (default test-model)")
    p.add_argument("--records", type=Path, help="write the /_records JSON here at exit")
    p.add_argument("--record-bodies", action="store_true", help="keep each streamed request's body in /_records")
    p.add_argument("--stall-s", type=float, default=60.0,
                   help="X-Fault stall: close the connection after this many s (default 60)")
    p.add_argument("--slow-headers-s", type=float, default=2.0,
                   help="X-Fault slow_headers: s before the status line (default 2)")
    return p


def _validate(args: argparse.Namespace) -> None:
    if not 0 <= args.port <= 65535:
        raise VarcasError(f"--port must be in [0, 65535], got {args.port}")
    if args.tokens < 1:
        raise VarcasError(f"--tokens must be >= 1, got {args.tokens}")
    for name in ("itl_ms", "ttft_ms", "slow_headers_s"):
        if not 0 <= getattr(args, name) < 1e6:
            raise VarcasError(f"--{name.replace('_', '-')} must be in [0, 1e6), got {getattr(args, name)}")
    if not 0 < args.stall_s < 1e6:
        raise VarcasError(f"--stall-s must be in (0, 1e6), got {args.stall_s}")
    if args.records is not None:
        _write_records(args.records, b'{"requests":[]}')  # fail now, not at exit


def _write_records(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise VarcasError(f"cannot write records file {path}: {exc.strerror}") from None


async def _serve(args: argparse.Namespace) -> None:
    srv = _Server(args, asyncio.get_running_loop())
    await serve_until_signal(lambda: _Conn(srv), args.host, args.port, srv.conns,
                             lambda url: print(f"{LISTENING} {url}", flush=True))
    if args.records is not None:
        _write_records(args.records, srv.records_json())


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM/SIGINT; VarcasError for bad settings or an unusable address."""
    _validate(args)
    uvloop.run(_serve(args))
    return 0


def main(argv: list[str] | None = None) -> int:
    prog = "python -m varcas.testing.server"
    args = build_parser(prog).parse_args(argv)
    try:
        return run(args)
    except VarcasError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
