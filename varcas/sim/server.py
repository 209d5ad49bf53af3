"""The simulated vLLM server: OpenAI-compatible HTTP/1.1 on uvloop, tokens timed by the engine.

`varcas sim --model llama-2-7b --gpu t4 --quant awq --max-num-seqs 8 --port 8000` prints one
line, `varcas-sim listening on http://HOST:PORT (...)`, once it accepts connections, and exits
cleanly on SIGTERM/SIGINT. Binds 127.0.0.1 unless --host says otherwise.

Routes: POST /v1/completions and /v1/chat/completions (streaming or not; api.py validates),
GET /v1/models, /health, /version and /metrics (metrics.py). Bytes on the wire are vLLM's:
the test stub's HTTP framing (varcas.testing.http11) and chunk encoders
(varcas.testing.openai_wire) are reused, so the load generator sees the same stream from the
simulator, the stub and a real vLLM. A streaming response's status line and headers go out when
the request is accepted; each token's chunk is written when the engine step that sampled it
ends (realtime.StepClock), the last one followed by the usage chunk and [DONE]. A client that
disconnects has its request aborted in the engine (its KV blocks freed), as vLLM does.
Malformed HTTP is answered (4xx JSON) and the connection closed; a bad API request gets vLLM's
JSON error and the connection stays open; nothing a client sends can stop the server.
"""
from __future__ import annotations

import asyncio
import signal
import time

import orjson

from ..errors import VarcasError
from ..testing.http11 import MAX_BODY_BYTES, MAX_HEAD_BYTES, HttpError, Request, parse_request, response, stream_head
from ..testing.openai_wire import ApiError, GenRequest, error_body, full_response, stream_events, stream_tail
from . import api
from .config import SERVER_VERSION, Setup
from .engine import Engine, Seq
from .metrics import CONTENT_TYPE, Metrics
from .realtime import StepClock

LISTENING = "varcas-sim listening on"
_GEN_PATHS = {"/v1/completions": False, "/v1/chat/completions": True}  # path -> chat?
_GET_PATHS = ("/health", "/v1/models", "/version", "/metrics")
_MAX_PENDING_BYTES = 2 * (MAX_HEAD_BYTES + MAX_BODY_BYTES)  # queued behind a response in progress


class SimServer:
    """The engine, its clock, the metrics and the open connections."""

    def __init__(self, setup: Setup, loop: asyncio.AbstractEventLoop):
        self.setup, self.loop = setup, loop
        self.model = setup.served_name
        self.engine = Engine(setup)
        self.clock = StepClock(loop, self.engine, self._on_step, self.flush)
        self.dirty: list[_Conn] = []   # connections with token chunks not yet written
        self.metrics = Metrics(self.model)
        self.created = int(time.time())
        self.conns: set[_Conn] = set()
        self.seq = 0

    def get(self, path: str) -> tuple[int, bytes, str]:
        """(status, body, content type) of a GET route."""
        if path == "/health":
            return 200, b"", "text/plain; charset=utf-8"
        if path == "/metrics":
            return 200, self.metrics.render(self.engine, self.clock), CONTENT_TYPE
        if path == "/version":
            return 200, orjson.dumps({"version": SERVER_VERSION}), "application/json"
        card = {"id": self.model, "object": "model", "created": self.created, "owned_by": "vllm",
                "root": self.model, "parent": None, "max_model_len": self.setup.max_model_len,
                "permission": []}
        return 200, orjson.dumps({"object": "list", "data": [card]}), "application/json"

    def _on_step(self, sampled: list[Seq], finished: list[Seq], t_ns: int) -> None:
        """A step ended at t_ns: queue each sampled token's chunk, end finished responses."""
        ttft, tpot, dirty = self.metrics.ttft.observe, self.metrics.tpot.observe, self.dirty
        for s in sampled:
            conn, g = s.sink, s.generated
            if g == 1:
                ttft((t_ns - s.arrival_ns) / 1e9)
            else:
                tpot((t_ns - conn.last_ns) / 1e9)
            conn.last_ns = t_ns
            if conn.token is not None:   # streaming: written by flush() after the due steps
                if not conn.out:
                    dirty.append(conn)
                conn.out.append(conn.final if g == s.max_tokens else conn.head if g == 1 else conn.token)
        for s in finished:
            self.metrics.e2e.observe((t_ns - s.arrival_ns) / 1e9)
            s.sink.finish()

    def flush(self) -> None:
        """Write every connection's pending token chunks, one send per connection."""
        for conn in self.dirty:
            conn.flush()
        self.dirty.clear()


class _Conn(asyncio.Protocol):
    """One client connection: requests are served one at a time, in order (keep-alive)."""

    def __init__(self, srv: SimServer):
        self.srv = srv
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.write = None
        self.keep_alive = True
        self.closed = False
        self.seq: Seq | None = None   # the generation in progress
        self.full = b""               # non-streaming: the response body, sent at the end
        self.head = self.token = self.final = None   # streaming: pre-encoded chunks
        self.out: list[bytes] = []                   # chunks waiting for SimServer.flush
        self.last_ns = 0                             # when the previous token was sampled

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.write = transport.write
        self.srv.conns.add(self)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.seq is None:
            self._serve()
        elif len(self.buf) > _MAX_PENDING_BYTES:
            self.transport.abort()

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.out.clear()
        self.srv.conns.discard(self)
        if self.seq is not None:
            self.srv.engine.abort(self.seq)
            self.seq = None

    def _serve(self) -> None:
        """Answer the complete requests in the buffer until one starts a generation."""
        while self.seq is None and not self.closed:
            try:
                parsed = parse_request(self.buf)
            except HttpError as exc:  # the byte stream cannot be resynchronised: answer, close
                self.keep_alive = False
                self._reply(exc.status, error_body(exc.status, exc.message))
                return
            if parsed is None:
                return
            req, used = parsed
            del self.buf[:used]
            self.keep_alive = req.keep_alive
            self._route(req)

    def _route(self, req: Request) -> None:
        if req.method == "POST" and req.path in _GEN_PATHS:
            self._generate(req, _GEN_PATHS[req.path])
        elif req.method == "GET" and req.path in _GET_PATHS:
            self._reply(*self.srv.get(req.path))
        elif req.path in _GEN_PATHS or req.path in _GET_PATHS:
            self._reply(405, error_body(405, f"method {req.method} not allowed on {req.path}"))
        else:
            self._reply(404, error_body(404, f"no route for {req.method} {req.path}"))

    def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.write(response(status, body, self.keep_alive, content_type))
        if not self.keep_alive:
            self.close()

    def _generate(self, req: Request, chat: bool) -> None:
        srv = self.srv
        try:
            gen = api.parse(req.body, chat, srv.model, srv.setup.max_model_len)
        except ApiError as exc:
            self._reply(exc.status, error_body(exc.status, exc.message))
            return
        seq_no, srv.seq = srv.seq, srv.seq + 1
        header_id = req.headers.get("x-request-id")
        rid = ("chatcmpl-" if chat else "cmpl-") + (header_id or f"{seq_no:032x}")
        created = int(time.time())
        if gen.stream:
            self._prepare_stream(gen, rid, created)
            self.write(stream_head(self.keep_alive))
        else:
            self.head = self.token = self.final = None
            self.full = full_response(gen, rid, created, srv.model)
        self.seq = Seq(seq_no, gen.prompt_tokens, gen.output_tokens, time.monotonic_ns(), self)
        srv.engine.add(self.seq)
        srv.clock.kick()

    def _prepare_stream(self, gen: GenRequest, rid: str, created: int) -> None:
        ev = stream_events(gen, rid, created, self.srv.model)
        self.head = ev.role + ev.token   # chat's role delta rides with the first token
        self.token = ev.token
        self.final = (ev.role if gen.output_tokens == 1 else b"") + ev.final + stream_tail(ev, done=True)

    def flush(self) -> None:
        if self.out and not self.closed:
            self.write(self.out[0] if len(self.out) == 1 else b"".join(self.out))
        self.out.clear()

    def finish(self) -> None:
        """The engine finished this connection's request: end the response, serve the next."""
        self.seq = None
        self.flush()   # its last chunks go before anything answered to a pipelined request
        if self.token is None:
            self.write(response(200, self.full, self.keep_alive))
            self.full = b""
        if not self.keep_alive:
            self.close()
        elif self.buf:
            self._serve()

    def close(self) -> None:
        self.closed = True
        self.transport.close()


async def serve(setup: Setup, host: str = "127.0.0.1", port: int = 0, ready=print) -> None:
    """Serve until SIGTERM/SIGINT; ready(line) is called once with the listening line."""
    loop = asyncio.get_running_loop()
    srv = SimServer(setup, loop)
    try:
        server = await loop.create_server(lambda: _Conn(srv), host, port, backlog=4096)
    except OSError as exc:
        raise VarcasError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bound_host, bound_port = server.sockets[0].getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    ready(f"{LISTENING} http://{shown}:{bound_port} ({setup.describe()})")
    try:
        await stop.wait()
    finally:
        server.close()
        for conn in list(srv.conns):
            conn.transport.abort()
        srv.clock.close()
