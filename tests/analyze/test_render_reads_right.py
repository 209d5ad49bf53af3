"""What `varcas analyze` (and `varcas load` at its end) prints reads right: at 60, 80 and 120
columns no line is wider than the console, no cell is cut ("…"), every figure is printed whole;
a window is called steady only when the verdict found a steady state, an overloaded run's
latencies are headed as a queue's, and the counts and rates of a window say which requests
they count. Runs: synthetic ones with known shapes, and the simulator's overloaded T4 (the
README's example: 50 req/s of chat on llama-2-7b AWQ, TTFTs of six digits)."""
from __future__ import annotations

import io
import re

import numpy as np
import pytest
from rich.console import Console

from varcas.analyze import load_run, render, summarize
from varcas.analyze.catalog import FINISHING, METRICS, SCHEDULED
from varcas.analyze.render import QUEUE, WIDE, _num
from varcas.load.runner import LoadConfig
from varcas.sim import SimConfig, resolve
from varcas.targets.offline import simulate

from . import synth

WIDTHS = (60, 80, 120)


def _summary(tmp_path_factory, name, cols):
    return summarize(load_run(synth.write_run(tmp_path_factory.mktemp(name) / "run", cols)))


def _served(arrivals_s, tokens=50, **kw):
    """Requests through synth's FIFO server: 100 ms to the first token, then one every 20 ms."""
    return synth.simulate(arrivals_s, prefill_ms=100, itl_ms=20, tokens=tokens, **kw)


@pytest.fixture(scope="module")
def steady(tmp_path_factory):
    """600 requests at 10 req/s, never queued."""
    return _summary(tmp_path_factory, "steady", _served(np.arange(600) / 10))


@pytest.fixture(scope="module")
def slows_down(tmp_path_factory):
    """14 req/s on 16 slots, requests longer from 30 s on: a window is found, then a queue grows in it."""
    arrivals = np.arange(840) / 14
    return _summary(tmp_path_factory, "slows", _served(arrivals, tokens=np.where(arrivals < 30, 50, 80), slots=16))


@pytest.fixture(scope="module")
def cancelled(tmp_path_factory):
    """10 req/s through 8 slots serving 7.4 req/s, the requests scheduled from 30 s on cancelled
    unfinished (as `varcas load` does at its drain deadline): in the second half, none of the
    requests scheduled completed, while earlier ones kept finishing."""
    cols = synth.fail(_served(np.arange(600) / 10, slots=8), np.arange(300, 600), "cancelled", status=200)
    return _summary(tmp_path_factory, "cancelled", cols)


@pytest.fixture(scope="module")
def long_requests(tmp_path_factory):
    """12 s of sends, each request streaming 15 s: no steady state, not called overloaded."""
    return _summary(tmp_path_factory, "long", synth.simulate(np.arange(120) / 10, prefill_ms=100, itl_ms=30, tokens=500))


@pytest.fixture(scope="module")
def t4_overloaded(tmp_path_factory):
    """The simulated T4 at 50 req/s for 20 s (virtual time): a queue, no steady state."""
    setup = resolve(SimConfig(model="llama-2-7b", gpu="t4", quant="awq"))
    out = tmp_path_factory.mktemp("t4") / "run"
    return summarize(load_run(simulate(setup, LoadConfig(rps=50.0, duration_s=20.0, out=str(out), quiet=True)).run_dir))


def _printed(summaries, width: int) -> str:
    """What render prints at `width` columns, as a pipe gets it (no colour)."""
    out = io.StringIO()
    render(summaries, Console(width=width, file=out, color_system=None))
    return out.getvalue()


def _whole(figure: str, text: str) -> bool:
    """The figure appears as a whole cell: not a piece of a longer word."""
    return re.search(rf"(?<!\S){re.escape(figure)}(?!\S)", text) is not None


def _figures(s, width: int) -> set[str]:
    """Every figure of the run's throughput and latency tables, formatted as render does."""
    blocks = [s.whole] + ([s.steady] if s.steady else [])
    shown = [m for m in METRICS if m.in_table and not m.distribution and not (m.only == "goodput" and not s.goodput)]
    figures = {_num(getattr(b, m.field)) for b in blocks for m in shown}
    for b in blocks:
        for dist in b.latency.values():
            if dist is not None:
                spread = (dist.std, dist.min) if width >= WIDE else ()
                cells = (dist.n, dist.mean, *spread, *(dist.percentiles[p] for p in s.percentiles), dist.max)
                figures |= {_num(c) for c in cells}
    return figures


def _check_fits(text: str, width: int) -> None:
    assert max(len(line) for line in text.splitlines()) <= width
    assert "…" not in text


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", ["steady", "slows_down", "cancelled", "long_requests", "t4_overloaded"])
def test_every_figure_is_whole_at_any_width(request, name, width):
    s = request.getfixturevalue(name)
    text = _printed(s, width)
    _check_fits(text, width)
    missing = [f for f in _figures(s, width) if not _whole(f, text)]
    assert missing == []


def test_the_simulated_t4_prints_six_digit_latencies_whole_at_80_columns(t4_overloaded):
    ttft = t4_overloaded.whole.latency["ttft"]
    assert ttft.max >= 100_000  # ms: the queue's waits are minutes long
    assert _whole(_num(ttft.max), _printed(t4_overloaded, 80))


@pytest.mark.parametrize("width", WIDTHS)
def test_runs_side_by_side_fit_too(steady, slows_down, cancelled, long_requests, t4_overloaded, width):
    runs = [steady, slows_down, cancelled, long_requests, t4_overloaded]
    text = _printed(runs, width)
    _check_fits(text, width)
    for s in runs:
        b = s.steady or s.whole
        for m in METRICS:
            if m.side_by_side and not m.distribution:
                assert _whole(_num(getattr(b, m.field)), text), (s.name, m.name)


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_a_steady_run_calls_its_window_steady(steady):
    assert steady.verdict.steady and not steady.verdict.overloaded and steady.window.source == "auto"
    text = _flat(_printed(steady, 120))
    span = f"{steady.window.start_s:.0f}-{steady.window.end_s:.0f} s"
    assert f"steady window {span}" in text and "Verdict: Steady" in text
    assert "not steady" not in text and QUEUE not in text


def test_an_overloaded_run_heads_its_latencies_as_a_queues(slows_down):
    s = slows_down
    assert s.verdict.overloaded and s.window.source == "auto"
    text = _flat(_printed(s, 120))
    span = f"{s.window.start_s:.0f}-{s.window.end_s:.0f} s"
    assert "steady window" not in text  # the verdict says: not a steady state
    assert f"window {span}, overloaded, not steady" in text
    assert f"whole run: {QUEUE}" in text and f"window {span}, overloaded, not steady: {QUEUE}" in text
    assert "Verdict: The server is overloaded" in text and "not a steady state" in text


@pytest.mark.parametrize("name", ["cancelled", "long_requests", "t4_overloaded"])
def test_without_a_steady_state_the_stand_in_window_is_not_called_steady(request, name):
    s = request.getfixturevalue(name)
    assert s.window.source == "fallback" and not s.verdict.steady
    text = _flat(_printed(s, 120))
    span = f"{s.window.start_s:.0f}-{s.window.end_s:.0f} s"
    assert "steady window" not in text and f"stand-in window {span}, not steady" in text
    assert ("Verdict: The server is overloaded" in text) == s.verdict.overloaded
    assert ("Verdict: No steady state" in text) == (not s.verdict.overloaded)
    assert (QUEUE in text) == s.verdict.overloaded
    assert not any("steady window" in w for w in s.warnings)


def test_a_window_set_by_hand_says_so(steady):
    s = summarize(load_run(steady.path), window=(10, 20))
    assert "window 10-20 s, set by hand" in _flat(_printed(s, 120))


def test_counts_and_rates_say_which_requests_they_count(cancelled):
    """completed 0 beside a request throughput that is not: the rows say which requests each counts."""
    s = cancelled
    assert s.steady.completed == 0 and s.steady.request_throughput > 0
    lines = [line.strip() for line in _printed(s, 120).splitlines()]
    scheduled, finishing = lines.index(SCHEDULED), lines.index(FINISHING)
    completed = next(i for i, line in enumerate(lines) if line.startswith("completed "))
    throughput = next(i for i, line in enumerate(lines) if line.startswith("request throughput (req/s) "))
    assert scheduled < completed < finishing < throughput
    assert lines[completed].split()[-1] == "0" and lines[throughput].split()[-1] == _num(s.steady.request_throughput)
    for m in METRICS:  # the catalog's definitions say the same
        if not m.distribution:
            assert ("scheduled in the scope" in m.defined) == (m.counts == SCHEDULED), m.name
            assert ("finishing in the scope" in m.defined) == (m.counts == FINISHING), m.name
