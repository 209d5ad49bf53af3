"""The simulated vLLM server: OpenAI-compatible HTTP/1.1 on uvloop, tokens timed by the engine.

`varcas sim --model llama-2-7b --gpu t4 --quant awq --max-num-seqs 8 --port 8000` prints one
line, `varcas-sim listening on http://HOST:PORT (...)`, once it accepts connections, and exits
cleanly on SIGTERM/SIGINT. Binds 127.0.0.1 unless --host says otherwise.

Routes: POST /v1/completions and /v1/chat/completions (streaming or not; api.py validates),
GET /v1/models (with max_model_len), /health, /version and /metrics (metrics.py). Bytes on the
wire are vLLM's: HTTP framing, the request loop and chunk encoders are varcas.serve's, shared
with the test stub, so the load generator sees the same stream from the simulator, the stub and
a real vLLM. A streaming response's status line and headers go out when the request is
accepted; each token's chunk is written when the engine step that sampled it ends
(realtime.StepClock), the last one followed by the usage chunk and [DONE]. A client that
disconnects has its request aborted in the engine (its KV blocks freed), as vLLM does.
Malformed HTTP is answered (4xx JSON) and the connection closed; a bad API request gets vLLM's
JSON error and the connection stays open; nothing a client sends can stop the server.
"""
from __future__ import annotations

import asyncio
import time

import orjson

from ..serve.http11 import Request, response, stream_head
from ..serve.openai_wire import (
    ApiError,
    GenRequest,
    error_body,
    full_response,
    models_body,
    stream_events,
    stream_tail,
)
from ..serve.protocol import HttpConnection, banner, serve_until_signal
from . import api
from .config import SERVER_NAME, SERVER_VERSION, Setup
from .engine import Engine, Seq
from .metrics import CONTENT_TYPE, Metrics
from .realtime import StepClock

LISTENING = banner(SERVER_NAME)


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


class _Conn(HttpConnection):
    """One client connection (the request loop is HttpConnection's)."""

    server_name = SERVER_NAME
    get_paths = ("/health", "/v1/models", "/version", "/metrics")

    def __init__(self, srv: SimServer):
        super().__init__(srv)
        self.seq: Seq | None = None   # the generation in progress
        self.full = b""               # non-streaming: the response body, sent at the end
        self.head: bytes | None = None               # streaming: pre-encoded chunks
        self.token: bytes | None = None
        self.final: bytes | None = None
        self.out: list[bytes] = []                   # chunks waiting for SimServer.flush
        self.last_ns = 0                             # when the previous token was sampled

    @property
    def busy(self) -> bool:
        return self.seq is not None

    def connection_lost(self, exc) -> None:
        super().connection_lost(exc)
        self.out.clear()
        if self.seq is not None:
            self.srv.engine.abort(self.seq)
            self.seq = None

    def get(self, path: str) -> tuple[int, bytes, str]:
        srv = self.srv
        if path == "/health":
            return 200, b"", "text/plain; charset=utf-8"
        if path == "/metrics":
            return 200, srv.metrics.render(srv.engine, srv.clock), CONTENT_TYPE
        if path == "/version":
            return 200, orjson.dumps({"version": SERVER_VERSION}), "application/json"
        return 200, models_body(srv.model, srv.created, srv.setup.max_model_len), "application/json"

    def generate(self, req: Request, chat: bool, now: int) -> None:
        srv = self.srv
        try:
            gen = api.parse(req.body, chat, srv.model, srv.setup.max_model_len)
        except ApiError as exc:
            self.reply(exc.status, error_body(exc.status, exc.message))
            return
        seq_no, srv.seq = srv.seq, srv.seq + 1
        header_id = req.headers.get("x-request-id")
        rid = ("chatcmpl-" if chat else "cmpl-") + (header_id or f"{seq_no:032x}")
        created = int(time.time())
        if gen.stream:
            self._prepare_stream(gen, rid, created)
            self.write(stream_head(self.keep_alive, SERVER_NAME))
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
            self.write(response(200, self.full, self.keep_alive, SERVER_NAME))
            self.full = b""
        self.done()


async def serve(setup: Setup, host: str = "127.0.0.1", port: int = 0, ready=print) -> None:
    """Serve until SIGTERM/SIGINT; ready(line) is called once with the listening line."""
    srv = SimServer(setup, asyncio.get_running_loop())
    try:
        await serve_until_signal(lambda: _Conn(srv), host, port, srv.conns,
                                 lambda url: ready(f"{LISTENING} {url} ({setup.describe()})"))
    finally:
        srv.clock.close()
