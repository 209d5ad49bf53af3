"""Live progress on a terminal (rich): what the generator did so far, refreshed twice a second.

Rendering runs on the event loop (rich's own refresh thread would contend for the GIL with
the dispatcher), costs well under a millisecond, and is off with --quiet or off a TTY. With
load worker processes, each worker sends a snapshot of its counters and recent samples to the
parent twice a second, and the parent renders their combination: one view of the whole run.
"""
from __future__ import annotations

import numpy as np
from rich.console import Console
from rich.live import Live

from ..termtable import Table
from .engine import LiveStats

SAMPLES = 512  # recent TTFT and send-lag samples a load worker sends with each progress report


def snapshot(stats: LiveStats, inflight: int) -> tuple:
    """What a load worker reports to its parent twice a second: its counters, requests in
    flight, and its most recent TTFT and send-lag samples (a few KB, no per-token data)."""
    return (stats.sent, stats.done, stats.errors, stats.events, inflight,
            _latest(stats.ttft_ns, stats.n_ttft), _latest(stats.lag_ns, stats.n_lag))


def _latest(ring: np.ndarray, n: int) -> np.ndarray:
    return ring[np.arange(max(0, n - SAMPLES), n) % len(ring)]


def combine(snapshots: list[tuple]) -> tuple[LiveStats, int]:
    """The workers' snapshots as one LiveStats (counters summed, samples pooled) and the
    requests in flight everywhere: what the parent shows."""
    stats = LiveStats()
    inflight = 0
    for sent, done, errors, events, busy, ttft, lag in snapshots:
        stats.sent += sent
        stats.done += done
        stats.errors += errors
        stats.events += events
        inflight += busy
    if snapshots:
        stats.ttft_ns = np.concatenate([s[5] for s in snapshots])
        stats.lag_ns = np.concatenate([s[6] for s in snapshots])
        stats.n_ttft, stats.n_lag = len(stats.ttft_ns), len(stats.lag_ns)
    return stats, inflight


def _ms(ns_values: np.ndarray, q: float) -> str:
    return f"{np.percentile(ns_values, q) / 1e6:.1f}" if len(ns_values) else "-"


class Progress:
    """A one-row rich table updated from the event loop; a no-op when disabled."""

    def __init__(self, console: Console, enabled: bool, planned_s: float) -> None:
        self.enabled = enabled and console.is_terminal
        self.planned_s = planned_s
        self.note = ""
        self._live = Live(console=console, auto_refresh=False, transient=False) if self.enabled else None

    def __enter__(self) -> "Progress":
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.stop()

    def update(self, stats: LiveStats, elapsed_s: float, inflight: int) -> None:
        if self._live is None:
            return
        t = Table(self.note, box=None, pad_edge=False, title_justify="left")  # at any width, figures whole
        for col in ("elapsed", "sent", "done", "in flight", "errors", "req/s", "events/s",
                    "TTFT p50/p99 ms", "send lag p99 ms"):
            t.add_column(col)
        rate = stats.done / elapsed_s if elapsed_s > 0 else 0.0
        tok = stats.events / elapsed_s if elapsed_s > 0 else 0.0
        ttft = stats.recent(stats.ttft_ns, stats.n_ttft)
        lag = stats.recent(stats.lag_ns, stats.n_lag)
        t.add_row(
            f"{elapsed_s:.1f}/{self.planned_s:.0f} s", str(stats.sent), str(stats.done), str(inflight),
            str(stats.errors), f"{rate:.1f}", f"{tok:.0f}", f"{_ms(ttft, 50)}/{_ms(ttft, 99)}",
            _ms(lag, 99),
        )
        self._live.update(t, refresh=True)
