"""The open-loop engine: fires each request at its scheduled time and records how it ended.

Requests leave at precomputed absolute CLOCK_MONOTONIC times whether or not earlier ones have
finished (open loop, as wrk2 does: a slow server cannot slow the generator down and so hide
its own queueing). Wake-ups come from an absolute-time timerfd registered with the event
loop, not from the loop's 1 ms-granular timers. An optional concurrency cap queues requests
FIFO; the wait is recorded per request (slot_wait_ns) and never hidden in the latency.
In a conversation schedule the clock sends the first turns, and each later turn is put on the
same timer when its previous turn ends (varcas.load.conversations.Turns).
In a load worker process (varcas.load.workers) the engine runs its share of the schedule:
request_ids maps its own indices to the schedule's, the cap is shared by every worker
(varcas.load.slots), and fail-fast only reports (on_trip) to the parent, which decides.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass, field

import numpy as np
import orjson

from .._timing import Timer, monotonic_ns
from .client import Connection, Pool
from .conversations import Turns
from .slots import NEVER, SharedSlots

_RING = 8192  # recent samples kept for live percentiles
# A timerfd wake-up arrives some tens of microseconds after its deadline (measured on this
# 2-vCPU VM: median ~35 us, p90 ~45 us). The timer is armed this much early and the rest is
# spun, so requests leave on time without spinning through whole gaps (which would delay
# reading tokens, and burn CPU).
_LEAD_NS = 50_000
_NEVER = 1 << 62  # next_due when nothing is left to send
_Request = tuple[int, int]  # what a connection carries for the engine: (request index, slot_wait_ns)


@dataclass
class LiveStats:
    """Counters and recent samples for the progress display and the generator-health check."""

    sent: int = 0
    done: int = 0
    errors: int = 0
    events: int = 0
    ttft_ns: np.ndarray = field(default_factory=lambda: np.zeros(_RING, np.int64))
    lag_ns: np.ndarray = field(default_factory=lambda: np.zeros(_RING, np.int64))
    n_ttft: int = 0
    n_lag: int = 0
    error_kinds: collections.Counter = field(default_factory=collections.Counter)

    def recent(self, ring: np.ndarray, n: int) -> np.ndarray:
        return ring[: min(n, _RING)]


class Engine:
    """Dispatches a schedule over a Pool and writes one row per request to a Recorder."""

    def __init__(self, loop, pool_factory, offsets_ns, input_len, output_len, build, recorder,
                 *, max_concurrency=None, request_timeout_s=600.0, failures=None, turns: Turns | None = None,
                 request_ids: np.ndarray | None = None, shared: SharedSlots | None = None) -> None:
        self.loop = loop
        self.pool: Pool[_Request] = pool_factory(self)
        self.offsets_ns = offsets_ns  # schedule offsets from t=0, non-decreasing
        self.when = offsets_ns  # absolute monotonic ns once start() has run
        self.input_len = input_len
        self.output_len = output_len
        self.build = build  # build(i) -> request bytes
        self.recorder = recorder
        self.ids = request_ids  # index i -> its request_id in the run (None: the same)
        self.cap = max_concurrency
        self.shared = shared  # the cap shared with other worker processes (None: this engine's own)
        self.timeout_ns = int(request_timeout_s * 1e9)
        self.failures = failures  # varcas.load.failures.FailureLog, or None
        self.n = len(offsets_ns)
        self.turns = turns  # the later turns of conversations, released as earlier ones end
        self.timed = turns.c if turns is not None else self.n  # requests 0..timed-1 go by the clock
        self.next = 0
        self.inflight: dict[int, Connection[_Request]] = {}
        self.waiting: collections.deque[int] = collections.deque()
        self.stopped = False
        self.next_due = _NEVER  # absolute time of the next send; connections poll it
        self.stats = LiveStats()
        self.sending_ended = loop.create_future()  # set when nothing more will be sent
        self.done = loop.create_future()  # set when, in addition, nothing is in flight
        self.timer = Timer()
        self.on_trip = self.stop_sending  # fail fast (a worker reports to its parent instead)
        self._tripped = False

    # -- dispatch ---------------------------------------------------------------------------
    def start(self, start_ns: int) -> None:
        """Anchor the schedule at start_ns and arm the timer; call once the pool is warm."""
        self.when = self.offsets_ns + np.int64(start_ns)
        self.loop.add_reader(self.timer.fileno(), self._on_timer)
        self.loop.call_later(0.1, self._sweep)
        self._arm()

    def _arm(self) -> None:
        due = int(self.when[self.next]) if self.next < self.timed else _NEVER
        if self.turns is not None:
            due = min(due, self.turns.next_due())
        if due < _NEVER and not self.stopped:
            self.next_due = due
            self.timer.arm(max(1, self.next_due - _LEAD_NS))
        else:
            self.next_due = _NEVER
            self.timer.arm(0)
            self._check_done()

    def _on_timer(self) -> None:
        self.timer.consume()
        self.dispatch_due(_LEAD_NS)

    def dispatch_due(self, spin_ns: int = 0) -> None:
        """Send every request whose time has come, spinning up to spin_ns for one about to.

        Called by the timer, and by connections after each socket read whose clock shows a
        send is due: under load the loop may be busy with reads when the timer fires, and this
        keeps sends from queueing behind them.
        """
        when, n, i = self.when, self.timed, self.next
        now = monotonic_ns()
        while i < n and not self.stopped:
            due = when[i]
            if due > now:
                if due - now > spin_ns:
                    break
                while now < due:  # at most spin_ns of spinning
                    now = monotonic_ns()
            self._fire(i)
            i += 1
            self.next = i
            now = monotonic_ns()
        if self.turns is not None:
            self._send_turns(spin_ns)
        self._arm()

    def _send_turns(self, spin_ns: int) -> None:
        """Send the conversations' next turns whose think time is over (spinning as above)."""
        turns, now = self.turns, monotonic_ns()
        assert turns is not None
        while not self.stopped and turns.next_due() - now <= spin_ns:
            due, k = turns.pop()
            while now < due:
                now = monotonic_ns()
            self.when[k] = due
            self._fire(k)
            now = monotonic_ns()

    def _fire(self, i: int) -> None:
        if self.cap is not None and not self._take_slot(i):
            self.waiting.append(i)
            return
        self._send(i, 0)

    def _take_slot(self, i: int) -> bool:
        if self.shared is None:
            return len(self.inflight) < self.cap
        return self.shared.acquire(int(self.when[i]), bool(self.waiting))

    def _send(self, i: int, slot_wait_ns: int) -> None:
        request = (i, slot_wait_ns)
        self.stats.sent += 1
        # max_tokens caps the response's content events and bytes (a flooding server fails it)
        self.inflight[i] = self.pool.acquire(request, self.build(i), int(self.output_len[i]))

    def _slot_freed(self) -> None:
        if self.shared is not None:
            if self.shared.release():
                self._send_waiting(1)
        elif self.waiting and not self.stopped:
            i = self.waiting.popleft()
            self._send(i, monotonic_ns() - int(self.when[i]))

    def slots_granted(self) -> None:
        """Other workers passed this one slots of the shared cap: send that many waiters."""
        assert self.shared is not None
        self._send_waiting(self.shared.claim())
        self._check_done()

    def _send_waiting(self, count: int) -> None:
        assert self.shared is not None
        sent = 0
        while sent < count and self.waiting and not self.stopped:
            i = self.waiting.popleft()
            self._send(i, monotonic_ns() - int(self.when[i]))
            sent += 1
        if sent < count:
            self.shared.give_back(count - sent)
        self.shared.set_head(int(self.when[self.waiting[0]]) if self.waiting else NEVER)

    def rid(self, i: int) -> int:
        """Request i's request_id in the run."""
        return i if self.ids is None else int(self.ids[i])

    # -- completion -------------------------------------------------------------------------
    def on_response(self, conn: Connection[_Request]) -> None:
        """The parser says the response is complete (or malformed): classify and record it."""
        p = conn.parser
        status = p.status
        kind = None
        if p.errmsg is not None:
            kind = "protocol"
        elif not 200 <= status < 300:
            kind = "http"
        elif not p.is_sse:
            kind = "protocol"
        elif p.error_event is not None:
            kind = "server"
        elif p.done_ns == 0:
            kind = "truncated"
        excerpt = b""
        if kind is not None and kind != "truncated":
            excerpt = (p.error_event if kind == "server" else p.body_excerpt) or (p.errmsg or "").encode()
        self._finish(conn, kind, p.done_ns if kind is None else monotonic_ns(), excerpt)

    def on_failure(self, conn: Connection[_Request], kind: str) -> None:
        """The connection failed or closed before the response completed."""
        if conn.request is not None:
            self._finish(conn, kind, monotonic_ns())

    def _finish(self, conn: Connection[_Request], kind, end_ns: int, excerpt: bytes = b"") -> None:
        assert conn.request is not None  # each caller (or the connection, before it calls) checked
        i, slot_wait = conn.request
        p = conn.parser
        in_tok = out_tok = None
        if p.usage is not None:
            try:
                usage = orjson.loads(p.usage)
                in_tok, out_tok = usage.get("prompt_tokens"), usage.get("completion_tokens")
            except (orjson.JSONDecodeError, AttributeError):
                pass
        sent = conn.sent_ns or None
        first_token = p.first_token_ns or None
        scheduled = int(self.when[i])
        rid = self.rid(i)
        self.recorder.record(
            request_id=rid, scheduled_ns=scheduled, slot_wait_ns=slot_wait, sent_ns=sent,
            first_byte_ns=p.first_byte_ns or None, first_token_ns=first_token, end_ns=end_ns,
            token_ns=p if sent else b"",
            input_tokens=in_tok if type(in_tok) is int else None,
            output_tokens=out_tok if type(out_tok) is int else None,
            requested_input_tokens=int(self.input_len[i]), requested_output_tokens=int(self.output_len[i]),
            http_status=p.status, error=kind, finish_reason=p.finish_reason,
        )
        self._count(kind, sent, first_token, scheduled + slot_wait, p.n_events)
        if self.failures is not None:
            self.failures.record(rid, kind, p.status, excerpt)
            if self.failures.tripped and not self._tripped:
                self._tripped = True
                self.on_trip()  # fail fast: the first requests all failed the same way
        del self.inflight[i]
        if kind is None:
            self.pool.release(conn)
        else:
            conn.request = None
            conn.abort()
        if self.turns is not None and not self.stopped:
            self._turn_ended(i, kind, end_ns)
        self._slot_freed()
        self._check_done()

    def _turn_ended(self, i: int, kind, end_ns: int) -> None:
        """Queue request i's next turn, or, i having failed, record its conversation's later
        turns as cancelled: what they would have continued did not happen."""
        assert self.turns is not None
        for k in self.turns.ended(i, kind is None, end_ns):
            self.when[k] = monotonic_ns()
            self._cancel_unsent(k)
            if self.failures is not None:  # a conversation is its first turn's request_id
                self.failures.note(self.rid(k), "cancelled", f"conversation {self.rid(k % self.turns.c)} ended: "
                                   f"its turn {i // self.turns.c} (request {self.rid(i)}) failed ({kind})")
        self._arm()

    def _count(self, kind, sent, first_token, due, events) -> None:
        s = self.stats
        s.done += 1
        s.events += events
        if kind is not None:
            s.errors += 1
            s.error_kinds[kind] += 1
        if sent:
            s.lag_ns[s.n_lag % _RING] = sent - due
            s.n_lag += 1
            if first_token:
                s.ttft_ns[s.n_ttft % _RING] = first_token - sent
                s.n_ttft += 1

    # -- timeouts, stop, cancel -------------------------------------------------------------
    def _sweep(self) -> None:
        """Every 100 ms: end requests that ran past --request-timeout."""
        now = monotonic_ns()
        late = [c for i, c in self.inflight.items() if now - (c.sent_ns or int(self.when[i])) > self.timeout_ns]
        for conn in late:
            self._end_pending(conn, "timeout")
        if not self.done.done():
            self.loop.call_later(0.1, self._sweep)

    def _end_pending(self, conn: Connection[_Request], kind: str) -> None:
        if conn.request is None and conn.pending is not None:
            conn.request, _ = conn.pending
            conn.pending = None
        if conn.request is not None:
            self._finish(conn, kind, monotonic_ns())

    def stop_sending(self) -> None:
        """First interrupt: send nothing more; in-flight requests may finish. Requests still
        waiting for a --max-concurrency slot were due: each gets its row, as cancelled."""
        self.stopped = True
        if self.turns is not None:
            self.turns.stop()
        while self.waiting:
            self._cancel_unsent(self.waiting.popleft())
        if self.shared is not None:
            self.shared.withdraw()
        self._arm()

    def _cancel_unsent(self, i: int) -> None:
        now = monotonic_ns()
        scheduled = int(self.when[i])
        self.recorder.record(
            request_id=self.rid(i), scheduled_ns=scheduled, slot_wait_ns=now - scheduled, sent_ns=None,
            first_byte_ns=None, first_token_ns=None, end_ns=now, token_ns=b"", input_tokens=None,
            output_tokens=None, requested_input_tokens=int(self.input_len[i]),
            requested_output_tokens=int(self.output_len[i]), http_status=0, error="cancelled", finish_reason=None,
        )
        self._count("cancelled", None, None, scheduled, 0)

    def cancel_all(self) -> None:
        """Second interrupt or drain timeout: end every in-flight request as 'cancelled'."""
        self.stop_sending()
        for conn in list(self.inflight.values()):
            self._end_pending(conn, "cancelled")

    def _check_done(self) -> None:
        finished = (self.stopped or self.next >= self.timed and not (self.turns and self.turns.open)) \
            and not self.waiting
        if finished and not self.sending_ended.done():
            self.sending_ended.set_result(None)
        if finished and not self.inflight and not self.done.done():
            self.loop.remove_reader(self.timer.fileno())
            self.timer.close()
            self.done.set_result(None)
