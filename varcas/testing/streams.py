"""The token clock: one timer for every stream, and the per-request fault plans.

Why not one asyncio timer per token: at 2000 requests/s x 64 tokens that is 128,000 timer
handles a second, each a Python object plus a heap operation in the loop. Instead every
stream's token k is due at start + ttft + k * itl, and since ttft and itl are the same for
all streams, due times sort themselves: streams that have not sent a token yet are due in
the order they arrived (queue `_new`), and a stream that just sent a token is due again
itl later than one sent before it (queue `_next`). Two FIFOs merged at their heads give the
next due stream in O(1); one loop timer is armed at the earliest head. A tick writes one
chunk per due stream (a single pre-encoded transport.write), stamping
time.monotonic_ns() just before it into the stream's array('q'): no per-token objects.
Due times follow the plan, not the previous write, so a late tick does not push every later
token back (a stream that fell behind catches up at one token per tick); how late tokens
were is kept as max_lag_ns. uvloop timers have millisecond granularity, and waking more
often would spin the loop, so tokens go out up to ~1 ms after their due time, never before.
"""
from __future__ import annotations

import asyncio
import json
from array import array
from collections import deque
from time import monotonic_ns
from typing import Protocol

from ..serve.http11 import LAST_CHUNK, chunk
from ..serve.openai_wire import DONE_EVENT, StreamEvents, error_dict, sse, stream_tail

# X-Fault kinds. Faults that end a stream act when token TOKENS_BEFORE[kind] would be due,
# after min(that, n) ordinary (finish_reason null) tokens; the others are described inline.
TOKENS_BEFORE = {"close_midstream": 3, "reset": 1, "stall": 1, "error_event": 2}
MALFORMED_AFTER = 2   # a garbage event goes out before token min(2, n - 1); the stream goes on
HTTP_FAULTS = {"http_500": 500, "http_400": 400}   # answered at once, no stream
FAULTS = frozenset({*TOKENS_BEFORE, *HTTP_FAULTS, "malformed", "no_done", "slow_headers"})
NON_STREAM_FAULTS = frozenset({*HTTP_FAULTS, "slow_headers"})  # also valid with stream=false
ERROR_EVENT_MESSAGE = "injected fault: error_event"
GARBAGE_EVENT = chunk(b"data: {this is not json\n\n")
TICK_NS = 1_000_000   # granularity of uvloop's (libuv's) timers


def stream_error_event(message: str) -> bytes:
    """vLLM's in-stream error event (create_streaming_error_response: HTTP status is already 200):
    `json.dumps({"error": ...})`, hence Python's ", "/": " separators."""
    return sse(json.dumps({"error": error_dict(400, message)}).encode())


class Connection(Protocol):
    """What a stream needs from its connection (server._Conn)."""

    def finish(self) -> None: ...   # response body complete; keep-alive goes on
    def close(self) -> None: ...    # FIN after what is buffered
    def reset(self) -> None: ...    # RST now
    def stall(self) -> None: ...    # send nothing more; close after the stall limit


class Stream:
    """One streamed response in flight: its plan, its pre-encoded chunks, its token times."""
    __slots__ = ("conn", "write", "times", "k", "last", "fault", "fault_at", "due", "head",
                 "token", "final", "error_tail", "dead")

    def __init__(self, conn: Connection, write, events: StreamEvents, n_tokens: int,
                 fault: str | None, times: array):
        self.conn, self.write, self.times = conn, write, times
        self.k = 0          # index of the next token to send
        self.fault = fault
        self.dead = False   # set when the connection is lost; the clock then drops the stream
        self.due = 0
        self.head = events.role + events.token   # chat's role delta rides with token 0
        self.token = events.token
        self.final = (events.role if n_tokens == 1 else b"") + events.final + stream_tail(
            events, done=fault != "no_done")
        self.error_tail = b""
        self.last = n_tokens - 1   # the token whose chunk carries finish_reason and the tail
        self.fault_at = -1
        if fault in TOKENS_BEFORE:
            self.last = n_tokens   # never reached: the fault acts first
            self.fault_at = min(TOKENS_BEFORE[fault], n_tokens)
            if fault == "error_event":
                self.error_tail = stream_error_event(ERROR_EVENT_MESSAGE) + DONE_EVENT + LAST_CHUNK
        elif fault == "malformed":
            self.fault_at = min(MALFORMED_AFTER, n_tokens - 1)


class TokenClock:
    """Sends every stream's tokens on time from one loop timer (see the module docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, ttft_ns: int, itl_ns: int):
        self._loop = loop
        self._ttft_ns, self._itl_ns = ttft_ns, itl_ns
        self._new: deque[Stream] = deque()    # no token sent yet, due in arrival order
        self._next: deque[Stream] = deque()   # sent k >= 1 tokens, due in order of their last
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self._timer_due = 0
        self.max_lag_ns = 0

    def add(self, stream: Stream, start_ns: int) -> None:
        """Schedule stream's first token at start_ns + ttft."""
        due = start_ns + self._ttft_ns
        if self._new and due < self._new[-1].due:
            due = self._new[-1].due   # keep the FIFO sorted if clocks were read out of order
        stream.due = due
        self._new.append(stream)
        self._arm()

    def _arm(self) -> None:
        new, nxt = self._new, self._next
        if new and (not nxt or new[0].due <= nxt[0].due):
            due = new[0].due
        elif nxt:
            due = nxt[0].due
        else:
            return
        if self._timer is not None:
            if self._timer_due <= due:
                return
            self._timer.cancel()
        self._timer_due = due
        delay = due - monotonic_ns()
        # A wait shorter than the timer's granularity would make uvloop call back at once, and
        # the loop would spin until `due`; wait a whole tick instead (the token is then up to
        # ~1 ms late, never early).
        self._timer = self._loop.call_later(max(delay, TICK_NS) / 1e9 if delay > 0 else 0,
                                            self._tick)

    def _tick(self) -> None:
        self._timer = None
        try:
            self._send_due(monotonic_ns())
        finally:  # whatever went wrong with one stream, the clock keeps running for the rest
            self._arm()

    def _send_due(self, now: int) -> None:
        """Send one token (or fault action) for each stream due at or before now."""
        new, nxt, itl = self._new, self._next, self._itl_ns
        max_lag = self.max_lag_ns
        # One token per stream per tick: with itl 0 a stream is due again at once, and this
        # bound hands the loop back for I/O between rounds instead of spinning here.
        budget = len(new) + len(nxt)
        while budget:
            budget -= 1
            if new and (not nxt or new[0].due <= nxt[0].due):
                s = new[0]
                if s.due > now:
                    break
                new.popleft()
            else:
                s = nxt[0]
                if s.due > now:
                    break
                nxt.popleft()
            if s.dead:
                continue
            k = s.k
            if k == s.fault_at and _act(s):
                continue
            t = monotonic_ns()
            s.times.append(t)
            if t - s.due > max_lag:
                max_lag = t - s.due
            if k == s.last:
                s.write(s.final)
                s.conn.finish()
                continue
            s.write(s.head if k == 0 else s.token)
            s.k = k + 1
            s.due += itl
            nxt.append(s)
        self.max_lag_ns = max_lag


def _act(s: Stream) -> bool:
    """Carry out s's fault at its fault_at token; True when the stream ends here."""
    fault = s.fault
    if fault == "malformed":
        s.write(GARBAGE_EVENT)
        return False
    if fault == "error_event":
        s.write(s.error_tail)
        s.conn.finish()
    elif fault == "close_midstream":
        s.conn.close()
    elif fault == "reset":
        s.conn.reset()
    else:
        s.conn.stall()
    return True
