"""Unit tests of the test server's parts: HTTP framing, request validation, the token clock."""
from __future__ import annotations

import asyncio
from array import array
from time import monotonic_ns

import pytest
import uvloop
from hypothesis import given, settings
from hypothesis import strategies as st

from varcas.serve.http11 import HttpError, chunk, parse_request
from varcas.serve.openai_wire import GenRequest, stream_events
from varcas.testing.server import parse_gen_request
from varcas.testing.streams import Stream, TokenClock

REQ = (b"POST /v1/completions?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nX-Fault:  reset \r\n\r\nhello"
       b"GET /health HTTP/1.0\r\n\r\n")


def _parse_all(pieces: list[bytes]) -> list[tuple]:
    """Feed pieces one at a time, as reads would arrive; parse whatever is complete."""
    buf, out = bytearray(), []
    for piece in pieces:
        buf += piece
        while (parsed := parse_request(buf)) is not None:
            req, used = parsed
            del buf[:used]
            out.append((req.method, req.path, req.headers, req.body, req.keep_alive))
    assert not buf
    return out


def test_parse_two_requests():
    assert _parse_all([REQ]) == [
        ("POST", "/v1/completions", {"host": "a", "content-length": "5", "x-fault": "reset"}, b"hello", True),
        ("GET", "/health", {}, b"", False)]


@given(st.lists(st.integers(0, len(REQ)), max_size=8))
def test_parse_is_independent_of_how_reads_split_the_bytes(cuts):
    edges = [0, *sorted(cuts), len(REQ)]
    assert _parse_all([REQ[a:b] for a, b in zip(edges, edges[1:])]) == _parse_all([REQ])


@settings(max_examples=300)
@given(st.binary(max_size=200) | st.builds(lambda a, b: a + b"\r\n\r\n" + b, st.binary(max_size=80),
                                           st.binary(max_size=40)))
def test_parse_only_ever_raises_http_error(raw):
    try:
        parse_request(raw)
    except HttpError as exc:
        assert 400 <= exc.status < 600 and exc.message


def test_chunk_framing():
    assert chunk(b"data: x\n\n") == b"9\r\ndata: x\n\n\r\n"
    assert chunk(b"a" * 26) == b"1a\r\n" + b"a" * 26 + b"\r\n"


@pytest.mark.parametrize("body, chat, expect", [
    (b'{"prompt": "  one two\\nthree "}', False, GenRequest(False, False, 7, 3, False)),
    (b'{"prompt": [9, 9], "max_tokens": 2, "stream": true}', False, GenRequest(False, True, 2, 2, False)),
    (b'{"messages": [{"role": "user", "content": "a b"}, {"role": "assistant", "content": null}],'
     b' "max_tokens": 9, "max_completion_tokens": 4, "stream": true, "stream_options": {"include_usage": true}}',
     True, GenRequest(True, True, 4, 2, True)),
    (b'{"messages": [{"role": "user", "content": [{"type": "text", "text": "x y z"}, {"type": "image"}]}],'
     b' "model": "m", "n": 1}', True, GenRequest(True, False, 7, 3, False)),
])
def test_gen_request(body, chat, expect):
    assert parse_gen_request(body, chat, default_tokens=7, model="m") == expect


class _Conn:
    """A fake connection: records what the clock writes and asks of it, with times."""

    def __init__(self):
        self.writes: list[tuple[int, bytes]] = []
        self.actions: list[str] = []
        self.finished = asyncio.get_running_loop().create_future()

    def write(self, data: bytes) -> None:
        self.writes.append((monotonic_ns(), data))

    def _end(self, action: str) -> None:
        self.actions.append(action)
        self.finished.set_result(None)

    def finish(self):
        self._end("finish")

    def close(self):
        self._end("close")

    def reset(self):
        self._end("reset")

    def stall(self):
        self._end("stall")


async def _run_streams(starts_ms, n_tokens, ttft_ms, itl_ms, fault=None, chat=False):
    loop = asyncio.get_running_loop()
    clock = TokenClock(loop, round(ttft_ms * 1e6), round(itl_ms * 1e6))
    events = stream_events(GenRequest(chat, True, n_tokens, 1, True), "id", 0, "m")
    runs = []
    t0 = monotonic_ns()
    for start_ms in starts_ms:
        conn = _Conn()
        stream = Stream(conn, conn.write, events, n_tokens, fault, array("q"))
        start = t0 + round(start_ms * 1e6)
        loop.call_at(loop.time() + start_ms / 1e3, clock.add, stream, start)
        runs.append((conn, stream, start))
    await asyncio.wait_for(asyncio.gather(*(c.finished for c, _, _ in runs)), 5)
    return events, runs


@settings(max_examples=25, deadline=None)
@given(starts_ms=st.lists(st.floats(0, 6), min_size=1, max_size=12), n_tokens=st.integers(1, 5),
       ttft_ms=st.sampled_from([0.0, 3.0]), itl_ms=st.sampled_from([0.0, 1.0, 2.5]))
def test_clock_sends_every_token_in_order_never_early(starts_ms, n_tokens, ttft_ms, itl_ms):
    events, runs = uvloop.run(_run_streams(starts_ms, n_tokens, ttft_ms, itl_ms))
    for conn, stream, start in runs:
        assert conn.actions == ["finish"]
        assert [d for _, d in conn.writes] == (
            [events.token] * (n_tokens - 1) + [events.final + events.usage + b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"])
        plan = [start + round((ttft_ms + k * itl_ms) * 1e6) for k in range(n_tokens)]
        stamps = list(stream.times)
        assert len(stamps) == n_tokens
        assert all(w >= t for (w, _), t in zip(conn.writes, stamps))   # stamped just before
        assert all(t >= p for t, p in zip(stamps, plan))


@pytest.mark.parametrize("fault, n, writes, action", [
    ("close_midstream", 9, ["head", "tok", "tok"], "close"),
    ("close_midstream", 2, ["head", "tok"], "close"),
    ("reset", 9, ["head"], "reset"),
    ("stall", 9, ["head"], "stall"),
    ("error_event", 9, ["head", "tok", "error"], "finish"),
    ("error_event", 1, ["head", "error"], "finish"),
    ("malformed", 4, ["head", "tok", "garbage", "tok", "final"], "finish"),
    ("malformed", 1, ["garbage", "final"], "finish"),
    ("no_done", 2, ["head", "final-no-done"], "finish"),
])
def test_fault_plans(fault, n, writes, action):
    events, [(conn, stream, _)] = uvloop.run(_run_streams([0], n, 0, 0, fault, chat=True))
    names = {stream.head: "head", events.token: "tok", stream.error_tail: "error",
             b"19\r\ndata: {this is not json\n\n\r\n": "garbage", stream.final: "final"}
    if fault == "no_done":
        names[stream.final] = "final-no-done"
        assert b"[DONE]" not in stream.final and stream.final.endswith(events.usage + b"0\r\n\r\n")
    assert [names[d] for _, d in conn.writes] == writes and conn.actions == [action]
    assert len(stream.times) == sum(w in ("head", "tok", "final", "final-no-done") for w in writes)


def test_clock_survives_a_failing_stream():
    class _Broken(_Conn):
        def finish(self):
            self.finished.set_result(None)
            raise RuntimeError("boom")

    async def run():
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, ctx: errors.append(ctx["exception"]))
        clock = TokenClock(loop, 0, round(1e6))
        events = stream_events(GenRequest(False, True, 3, 1, False), "id", 0, "m")
        broken, healthy = _Broken(), _Conn()
        clock.add(Stream(broken, broken.write, events, 1, None, array("q")), monotonic_ns())
        clock.add(Stream(healthy, healthy.write, events, 3, None, array("q")), monotonic_ns())
        await asyncio.wait_for(healthy.finished, 2)
        return healthy

    errors: list[BaseException] = []
    healthy = uvloop.run(run())
    assert [str(e) for e in errors] == ["boom"] and healthy.actions == ["finish"]
    assert len(healthy.writes) == 3
