"""The signals that end a run (SIGINT, SIGTERM, SIGHUP) as KeyboardInterrupt, at any moment.

While the event loop runs, the runner handles them itself (first: stop sending and drain;
second: cancel). Before and after it, or in a sweep between runs, interrupts_raise() makes
SIGTERM and SIGHUP raise KeyboardInterrupt as SIGINT does, so the caller's `except
KeyboardInterrupt` leaves a consistent run directory (or stops its servers) whatever the
signal and whenever it comes. held() defers them while a run's final files are written: a
second Ctrl-C must not leave half a Parquet file. Only the main thread can set handlers;
elsewhere both are no-ops.
"""
from __future__ import annotations

import contextlib
import signal
import threading

ENDING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def interrupts_raise():
    """SIGINT, SIGTERM and SIGHUP raise KeyboardInterrupt inside the block; yields a function that
    re-arms them (an event loop's handlers, once removed, leave the defaults behind)."""
    if not _main_thread():
        yield lambda: None
        return
    previous = {sig: signal.getsignal(sig) for sig in ENDING}

    def arm() -> None:
        for sig in ENDING:
            signal.signal(sig, _raise_interrupt)

    arm()
    try:
        yield arm
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def held():
    """Ending signals wait until the block is done; one that came meanwhile is raised then."""
    if not _main_thread():
        yield
        return
    pending = []
    previous = {sig: signal.signal(sig, lambda signum, frame: pending.append(signum)) for sig in ENDING}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if pending:
        raise KeyboardInterrupt
