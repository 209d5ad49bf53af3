"""The live progress line shows what the generator did, on a terminal only."""
from __future__ import annotations

import io

import numpy as np
from rich.console import Console

from varcas.load.engine import LiveStats
from varcas.load.progress import Progress


def _stats() -> LiveStats:
    s = LiveStats(sent=120, done=100, errors=3, events=6400)
    s.ttft_ns[:100] = np.arange(1, 101) * 1_000_000  # 1..100 ms
    s.n_ttft = 100
    s.lag_ns[:100] = 50_000
    s.n_lag = 100
    return s


def test_progress_renders_counts_rates_and_percentiles():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200, color_system=None)
    with Progress(console, enabled=True, planned_s=60) as progress:
        progress.update(_stats(), elapsed_s=10.0, inflight=20)
    text = out.getvalue()
    row = [line for line in text.splitlines() if "10.0/60 s" in line][-1].split()
    assert row[2:9] == ["120", "100", "20", "3", "10.0", "640", "50.5/99.0"]
    assert row[9] == "0.1"  # send lag p99 in ms


def test_progress_is_silent_when_quiet_or_not_a_terminal():
    for enabled, terminal in ((False, True), (True, False)):
        out = io.StringIO()
        console = Console(file=out, force_terminal=terminal, width=200)
        with Progress(console, enabled=enabled, planned_s=60) as progress:
            progress.update(_stats(), elapsed_s=10.0, inflight=20)
        assert out.getvalue() == ""
