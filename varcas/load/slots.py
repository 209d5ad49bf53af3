"""--max-concurrency across load worker processes: one cap for the whole run, not one per worker.

Splitting a cap of C into C/N per worker would be another limit: a worker whose requests are
slow would make its own queue wait while other workers had free slots. Instead the N workers
share one count in shared memory (a multiprocessing RawArray under one Lock: a few µs per
request, and only when there is a cap):
  used            requests in flight plus slots granted but not yet used, everywhere; <= C
  per worker k    waiting (its queued requests no slot has been granted to yet), head (planned
                  send time of its oldest queued request), granted (slots passed to it)
A request takes a slot when used < C, else queues in its worker's FIFO. A freed slot goes to
the worker whose oldest waiter is the oldest anywhere: the same worker sends it at once;
another is granted the slot and woken through its pipe. So the cap is exact and global (used
never passes C), no slot stays free while a request waits anywhere, and the order across
workers is first-come by planned time of each worker's oldest waiter (within a worker, FIFO).
Invariant: a request waits anywhere => used == C.
"""
from __future__ import annotations

import os

NEVER = 1 << 62  # head when nothing waits
_WAITING, _HEAD, _GRANTED = 0, 1, 2  # a worker's three counters, after `used`


class SharedSlots:
    """The shared counters, their lock and one wake-up pipe per worker; made by the parent,
    passed to every worker process at its start, and bound there to the worker's index."""

    def __init__(self, ctx, cap: int, workers: int) -> None:
        self.cap = cap
        self.workers = workers
        self._lock = ctx.Lock()
        self._state = ctx.RawArray("q", 1 + 3 * workers)
        for k in range(workers):
            self._state[self._at(k, _HEAD)] = NEVER
        self._pipes = [ctx.Pipe(duplex=False) for _ in range(workers)]  # (reader, writer) per worker
        self.me = -1

    @staticmethod
    def _at(k: int, what: int) -> int:
        return 1 + 3 * k + what

    def bind(self, k: int) -> int:
        """In worker k: its index, and non-blocking pipes (a full pipe already means "wake up").
        Returns the file descriptor that becomes readable when slots are granted to it."""
        self.me = k
        for reader, writer in self._pipes:
            os.set_blocking(writer.fileno(), False)
        reader = self._pipes[k][0]
        os.set_blocking(reader.fileno(), False)
        return reader.fileno()

    def in_use(self) -> int:
        """Slots in use or granted, everywhere (tests; never above cap)."""
        with self._lock:
            return self._state[0]

    def acquire(self, due_ns: int, behind: bool) -> bool:
        """A slot for a request planned at due_ns, or False: it queues (always when `behind`:
        this worker's queue is not empty, and FIFO puts it last)."""
        s = self._state
        with self._lock:
            if not behind and s[0] < self.cap:
                s[0] += 1
                return True
            w = self._at(self.me, _WAITING)
            if s[w] == 0:
                s[w + _HEAD] = due_ns
            s[w] += 1
            return False

    def release(self) -> bool:
        """A request of this worker ended. Its slot goes to the oldest waiter anywhere: True if
        that is this worker's (the caller sends its oldest queued request on it)."""
        with self._lock:
            mine = self._pass_on(1, keep=True)
        return mine

    def claim(self) -> int:
        """Slots granted to this worker since it last claimed (it sends that many waiters)."""
        g = self._at(self.me, _GRANTED)
        with self._lock:
            count, self._state[g] = self._state[g], 0
        return count

    def set_head(self, due_ns: int) -> None:
        """This worker's oldest queued request is now planned at due_ns (NEVER: none)."""
        with self._lock:
            self._state[self._at(self.me, _HEAD)] = due_ns

    def withdraw(self) -> None:
        """This worker stopped sending: its waiters are gone, slots granted to it pass on."""
        w = self._at(self.me, _WAITING)
        with self._lock:
            s = self._state
            granted, s[w + _GRANTED], s[w], s[w + _HEAD] = s[w + _GRANTED], 0, 0, NEVER
            self._pass_on(granted)

    def give_back(self, count: int) -> None:
        """Slots this worker claimed but had no waiter for."""
        with self._lock:
            self._pass_on(count)

    def _pass_on(self, count: int, keep: bool = False) -> bool:
        """(Under the lock) hand `count` freed slots to the oldest waiters anywhere, or free
        them; wakes the workers granted one. With `keep`, a slot for this worker's own waiter
        is not granted but returned as True (the caller sends on it at once)."""
        s, mine, woken = self._state, False, set()
        for _ in range(count):
            best, best_due = -1, NEVER + 1
            for k in range(self.workers):
                w = self._at(k, _WAITING)
                if s[w] > 0 and s[w + _HEAD] < best_due:
                    best, best_due = k, s[w + _HEAD]
            if best < 0:
                s[0] -= 1
                continue
            s[self._at(best, _WAITING)] -= 1
            if best == self.me and keep and not mine:
                mine = True
            else:
                s[self._at(best, _GRANTED)] += 1
                woken.add(best)
        for k in woken:
            try:
                os.write(self._pipes[k][1].fileno(), b"\0")
            except BlockingIOError:
                pass  # the pipe is full: the worker has wake-ups to read already
        return mine
