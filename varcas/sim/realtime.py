"""Real time: the engine's steps run back to back on the wall clock, each ending on a timerfd.

A step planned at t ends at t + its roofline duration; the timer (varcas._timing.Timer, an
absolute CLOCK_MONOTONIC timerfd: wake-ups within ~0.1 ms, where the loop's own timers have a
1 ms grain) fires then, and the step's tokens go out: that is when the server emits them.
The step's sampled and finished sequences go to on_step(sampled, finished, end_ns).
The next step is planned at once, starting at the previous step's planned end, so wake-up
delays do not add up over a run. If the process was held up for more than SLIP_NS (an
overloaded host, a long pause), the clock restarts from now instead of firing a burst of
overdue steps: the simulated server is then that much slower, and slip_ns says by how much.
An idle engine sleeps until a request arrives; the first step starts when it does.

When steps are shorter than the loop takes to get round to them (a fast simulated GPU, a busy
host), every step already due is finished in the same wake-up, up to MAX_EVENTS_PER_WAKE
tokens, and only then is on_flush() called: the server writes each connection's tokens of
those steps in one send instead of one per token. Tokens are never early, only less often late.
"""
from __future__ import annotations

from .._timing import Timer, monotonic_ns
from .engine import Engine, Step

SLIP_NS = 1_000_000
MAX_EVENTS_PER_WAKE = 16384  # then the loop gets its turn: new requests, reads


class StepClock:
    """Drives an Engine in real time on an event loop; kick() when work arrives."""

    def __init__(self, loop, engine: Engine, on_step, on_flush):
        self.loop, self.engine = loop, engine
        self.on_step, self.on_flush = on_step, on_flush
        self.timer = Timer()
        loop.add_reader(self.timer.fileno(), self._on_timer)
        self.step: Step | None = None
        self.end_ns = 0
        self.max_lag_ns = self.slip_ns = 0

    def kick(self) -> None:
        """Start a step now if the engine is idle (a request arrived)."""
        if self.step is None:
            self._start(monotonic_ns())

    def _start(self, t_ns: int) -> bool:
        """Plan the step starting at t_ns and arm the timer for its end; False when idle."""
        step = self.step = self.engine.schedule()
        if step is None:
            return False
        self.end_ns = t_ns + step.dur_ns
        self.timer.arm(self.end_ns)
        return True

    def _on_timer(self) -> None:
        if not self.timer.consume() or self.step is None:
            return
        engine, now = self.engine, monotonic_ns()
        first = engine.generation_tokens
        while True:
            end = self.end_ns
            lag = now - end
            if lag > self.max_lag_ns:
                self.max_lag_ns = lag
            self.on_step(*engine.finish(self.step, end), end)
            if lag > SLIP_NS:
                self.slip_ns += lag
                end = now
            if (not self._start(end) or self.end_ns > now
                    or engine.generation_tokens - first >= MAX_EVENTS_PER_WAKE):
                break
        self.on_flush()

    def close(self) -> None:
        self.loop.remove_reader(self.timer.fileno())
        self.timer.close()
