"""summarize() on runs built by hand: every figure below is worked out from the columns."""
import numpy as np
import pytest
from rich.console import Console

from varcas.analyze import load_run, render, summarize

from . import synth
from .synth import MS, NULL, START_NS


def hand_columns():
    """Five requests (times in ms after schedule time 0); the last one times out.

    i  scheduled  sent  content events               TTFT  E2E  TPOT        ITL gaps
    0       0        1  101 111 121                   100  120  20/2 = 10   10 10
    1    1000     1002  1202 1232                     200  230  30/1 = 30   30
    2    2000     2000  2300                          300  300  (1 token)   -
    3    3000     3005  3405 3415 3435 3465           400  460  60/3 = 20   10 20 30
    4    4000     4000  (timeout, ends at 14000)
    """
    events = [[101, 111, 121], [1202, 1232], [2300], [3405, 3415, 3435, 3465], [4001]]
    offsets = np.concatenate(([0], np.cumsum([len(e) for e in events])))
    token_ns = START_NS + np.concatenate(events).astype(np.int64) * MS
    scheduled = START_NS + np.arange(5, dtype=np.int64) * 1000 * MS
    sent = scheduled + np.array([1, 2, 0, 5, 0]) * MS
    first = token_ns[offsets[:-1]]
    cols = synth.columns(scheduled, sent, first, offsets, token_ns)
    cols = synth.fail(cols, 4, "timeout")
    cols["end_ns"][4] = START_NS + 14_000 * MS
    return cols


@pytest.fixture(scope="module")
def hand(tmp_path_factory):
    return load_run(synth.write_run(tmp_path_factory.mktemp("hand") / "run", hand_columns()))


def test_latency_distributions_by_hand(hand):
    d = summarize(hand, percentiles=(50, 90, 99)).to_dict()
    # TTFT 100 200 300 400: p90 at rank 3 * 0.9 = 2.7 -> 300 + 0.7 * 100
    assert (d["mean_ttft_ms"], d["median_ttft_ms"], d["p90_ttft_ms"]) == (250, 250, pytest.approx(370))
    assert d["std_ttft_ms"] == pytest.approx(np.sqrt((150**2 + 50**2 + 50**2 + 150**2) / 4))
    assert (d["min_ttft_ms"], d["max_ttft_ms"], d["samples_ttft"]) == (100, 400, 4)
    assert (d["mean_tpot_ms"], d["median_tpot_ms"], d["samples_tpot"]) == (20, 20, 3)  # 10 30 20
    # ITL pooled: 10 10 30 10 20 30 -> sorted 10 10 10 20 30 30, median (10 + 20) / 2
    assert (d["median_itl_ms"], d["mean_itl_ms"], d["samples_itl"]) == (15, pytest.approx(110 / 6), 6)
    assert (d["median_e2el_ms"], d["max_e2el_ms"]) == (265, 460)  # 120 230 300 460
    assert (d["median_send_lag_ms"], d["max_send_lag_ms"], d["samples_send_lag"]) == (1, 5, 5)
    assert d["median_open_loop_ms"] == (230 + 2 + 300) / 2  # last event - scheduled: 121 232 300 465


def test_throughput_by_hand(hand):
    d = summarize(hand).to_dict()
    assert (d["completed"], d["failed"], d["duration"]) == (4, 1, 14.0)  # last end: the timeout
    assert d["request_throughput"] == pytest.approx(4 / 14)
    assert (d["total_input_tokens"], d["total_output_tokens"]) == (400, 10)
    assert d["output_throughput"] == pytest.approx(10 / 14)
    assert d["total_token_throughput"] == pytest.approx(410 / 14)
    assert d["max_output_tokens_per_s"] == 4  # request 3's four events in second 3
    assert d["max_concurrent_requests"] == 1  # no two requests overlap
    assert d["request_goodput"] is None  # as vLLM: no SLO, no goodput
    assert d["errors"] == {"by_kind": {"timeout": 1}, "by_status": {"0": 1}}


@pytest.mark.parametrize(
    ("slo", "good"),
    [
        ({"ttft": 250}, 2),  # requests 0 and 1
        ({"ttft": 250, "tpot": 15}, 1),  # request 1's TPOT is 30
        ({"ttft": 300, "tpot": 15}, 2),  # request 2 has one token: TPOT counts as 0 (vLLM)
        ({"e2el": 119.9}, 0),
        ({"e2el": 120}, 1),  # a request exactly at the limit meets it
    ],
)
def test_goodput_by_hand(hand, slo, good):
    d = summarize(hand, goodput=slo).to_dict()
    assert d["request_goodput"] == pytest.approx(good / 14)
    assert d["goodput_fraction"] == good / 4
    assert d["goodput_slo_ms"] == slo


def test_timelines_by_hand(hand):
    t = summarize(hand).timeline
    assert t.t_s.size == 15  # 0..14 s: the timeout ends at exactly 14 s
    assert t.sent.tolist() == [1, 1, 1, 1, 1] + [0] * 10
    assert t.completed.tolist() == [1, 1, 1, 1] + [0] * 11
    assert t.in_flight.tolist() == [0, 0, 0, 0] + [1] * 10 + [0]
    assert t.output_tokens.tolist() == [3, 2, 1, 4] + [0] * 11
    assert t.errors.tolist() == [0] * 14 + [1]
    assert t.ttft_p50_ms[:4].tolist() == [100, 200, 300, 400]
    assert np.isnan(t.ttft_p50_ms[4:]).all()


def test_short_run_has_no_window_and_says_why(hand):
    s = summarize(hand)
    assert s.window is None and s.steady is None
    assert not s.verdict.overloaded and not s.verdict.steady
    assert "too short" in s.verdict.text
    assert any("p99.9 needs at least 1000 samples" in w for w in s.warnings)
    assert any("1 of 5 requests failed" in w for w in s.warnings)


def steady_columns(prefill_ms=100, **kw):
    """600 requests at 10 req/s, 100 ms to first token, 50 tokens 20 ms apart: never queued."""
    return synth.simulate(np.arange(600) / 10, prefill_ms=prefill_ms, itl_ms=20, tokens=50, **kw)


@pytest.fixture(scope="module")
def steady(tmp_path_factory):
    return load_run(synth.write_run(tmp_path_factory.mktemp("steady") / "run", steady_columns()))


@pytest.fixture(scope="module")
def saturated(tmp_path_factory):
    # 8 slots of 1.081 s each serve 7.4 req/s of the 10 offered: the queue grows all run
    cols = steady_columns(slots=8)
    return load_run(synth.write_run(tmp_path_factory.mktemp("saturated") / "run", cols))


def test_steady_run_is_steady(steady):
    s = summarize(steady)
    # stretches of k = 6 s: [0, 6) has 60 arrivals and 50 departures, [1, 7) has 60 and 60
    assert (s.window.start_s, s.window.end_s, s.window.source) == (1.0, 59.9, "auto")
    assert s.verdict.steady and not s.verdict.overloaded
    d = s.to_dict()
    assert d["steady"]["completed"] == 589  # scheduled in [1, 59.9): requests 10..598
    assert d["steady"]["request_throughput"] == pytest.approx(10.0)  # 589 ends in 58.9 s
    assert d["steady"]["output_throughput"] == pytest.approx(500.0)
    assert d["duration"] == pytest.approx(60.981)  # last send 59.9 s + 1.08 s + [DONE] 1 ms
    assert d["max_output_tokens_per_s"] == 500  # 10 requests/s x 50 events, every second
    assert d["max_concurrent_requests"] == 11  # each open 1.081 s, one starts every 0.1 s
    assert (d["p99_ttft_ms"], d["p99_itl_ms"], d["p99_tpot_ms"]) == (100, 20, 20)


def test_saturated_run_is_called_overloaded(saturated):
    s = summarize(saturated)
    assert s.verdict.overloaded
    assert s.window.source == "fallback"  # completions never caught up: second half of sends
    text = s.verdict.text
    assert text.startswith("The server is overloaded at this rate")
    assert "growing queue, not a steady state" in text
    assert "backlog grew" in text and "TTFT (from the schedule) p50 rose" in text
    assert "so the backlog is a queue" in text  # 1.0 s streams against a 30 s window
    assert s.steady.request_throughput == pytest.approx(8 / 1.081, rel=0.01)


def test_server_that_slows_down_leaves_a_backlog(tmp_path):
    # 14 req/s on 16 slots: 50-token requests hold a slot 1.081 s (14.8 req/s of capacity),
    # then from 30 s on 80-token ones hold it 1.681 s (9.5 req/s): steady, then a queue
    arrivals = np.arange(840) / 14
    cols = synth.simulate(arrivals, prefill_ms=100, itl_ms=20, tokens=np.where(arrivals < 30, 50, 80), slots=16)
    s = summarize(load_run(synth.write_run(tmp_path / "slows", cols)))
    assert s.window.source == "auto" and s.verdict.overloaded
    assert "req/s of the 14.00 req/s offered and the backlog grew by" in s.verdict.reasons[0]


@pytest.mark.parametrize("seed", range(4))
def test_poisson_arrivals_steady_below_capacity_overloaded_above(tmp_path, seed):
    # 16 slots of about 1.07 s serve about 15 req/s: 10 req/s offered is steady, 20 is not
    rng = np.random.default_rng(seed)
    verdicts = []
    for rps in (10, 20):
        arrivals = np.cumsum(rng.exponential(1 / rps, 60 * rps))
        cols = synth.simulate(arrivals, prefill_ms=100, itl_ms=20, tokens=rng.integers(10, 90, arrivals.size), slots=16)
        verdicts.append(summarize(load_run(synth.write_run(tmp_path / str(rps), cols))).verdict)
    assert verdicts[0].steady and not verdicts[0].overloaded
    assert verdicts[1].overloaded


def test_rising_ttft_alone_is_overload(tmp_path):
    # prefill grows 100 ms -> 1.3 s over the run: completions trail arrivals by too little to
    # be a backlog (about 10 x 0.6 = 6 requests over the window, under 5% of those scheduled)
    # but never catch up, so the TTFT trend is taken over the whole send phase [0, 59.9 s):
    # medians of requests 0..199 and 400..598, prefill 100 + 1200 i / 599 ms at i = 99.5, 499
    cols = steady_columns(prefill_ms=np.linspace(100, 1300, 600))
    s = summarize(load_run(synth.write_run(tmp_path / "ramp", cols)))
    assert s.verdict.overloaded and s.window.source == "fallback"
    assert not any("backlog grew" in r for r in s.verdict.reasons)
    assert s.verdict.reasons[-1] == "TTFT (from the schedule) p50 rose from 299 ms to 1100 ms"


def test_backlog_of_short_requests_is_a_queue_even_when_late_requests_time_out(tmp_path):
    # 8 slots serve 7.4 of 10 req/s, and every request scheduled after 20 s times out 600 s
    # later without a token: no TTFT trend to see, completions never catch up, but requests
    # stream for 0.98 s (49 gaps of 20 ms) against a 30 s window: the backlog is a queue
    cols = steady_columns(slots=8)
    late = np.flatnonzero(cols["scheduled_ns"] >= synth.START_NS + 20 * synth.S)
    cols = synth.fail(cols, late, "timeout")
    cols["end_ns"][late] = cols["scheduled_ns"][late] + 600 * synth.S
    s = summarize(load_run(synth.write_run(tmp_path / "timeouts", cols)))
    assert s.window.source == "fallback" and s.verdict.overloaded
    assert not any("TTFT" in r for r in s.verdict.reasons)
    assert s.verdict.reasons[-1] == ("requests stream for 1.0 s (median, first token to last), far less than "
                                     "the 30 s window, so the backlog is a queue")


def test_run_shorter_than_its_requests_is_not_called_overloaded(tmp_path):
    # 12 s of sends, every request streams for 15 s: nothing finishes before the sends end
    cols = synth.simulate(np.arange(120) / 10, prefill_ms=100, itl_ms=30, tokens=500)
    s = summarize(load_run(synth.write_run(tmp_path / "long", cols)))
    assert s.window.source == "fallback"
    assert not s.verdict.overloaded and not s.verdict.steady
    assert s.verdict.text.startswith("No steady state: completions never caught up")


def test_manual_window_overrides_detection(steady):
    s = summarize(steady, window=(10, 20))
    assert (s.window.start_s, s.window.end_s, s.window.source) == (10, 20, "manual")
    assert s.steady.completed == 100  # scheduled at 10.0, 10.1, ... 19.9 s
    assert s.steady.request_throughput == pytest.approx(10.0)


def test_generator_lag_and_client_cpu_are_warned(tmp_path):
    run = load_run(synth.write_run(tmp_path / "lag", steady_columns(lag_ms=20),
                                   client={"cpu_s": 9.5, "wall_s": 10.0, "cpu_util": 0.95}))
    s = summarize(run, percentiles=(50,))  # the check does not depend on the percentiles shown
    assert s.whole.latency["send_lag"].percentiles[50] == 20
    assert any("send lag p99 is 20.0 ms" in w for w in s.warnings)
    assert any("CPU was 95% busy" in w for w in s.warnings)


def test_token_accounting_is_checked(tmp_path):
    cols = steady_columns()
    cols["output_tokens"][:] = 1  # the seed report's bug: ~1 token per request in the books
    cols["output_tokens"][:3] = NULL
    s = summarize(load_run(synth.write_run(tmp_path / "tokens", cols)))
    assert any("no usage for 3 successful requests" in w for w in s.warnings)
    assert any("usage counts 597 output tokens but the streams carried 29850" in w for w in s.warnings)
    assert s.whole.total_output_tokens == 597 + 3 * 50  # missing usage falls back to events


def test_all_failed_run_reports_errors_not_nan(tmp_path):
    cols = synth.fail(steady_columns(), np.arange(600), "http", status=503)
    s = summarize(load_run(synth.write_run(tmp_path / "failed", cols)))
    d = s.to_dict()
    assert (d["completed"], d["failed"], d["request_throughput"]) == (0, 600, 0.0)
    assert d["mean_ttft_ms"] is None and d["p99_itl_ms"] is None
    assert d["errors"] == {"by_kind": {"http": 600}, "by_status": {"503": 600}}
    assert s.verdict.text == "No steady state: every request failed."
    console = Console(record=True, width=100)
    render(s, console)
    out = console.export_text()
    assert "nan" not in out.lower() and "HTTP 503" in out and "nothing to measure" in out


def test_render_side_by_side(steady, saturated):
    console = Console(record=True, width=120)
    render([summarize(steady), summarize(saturated)], console)
    out = console.export_text()
    assert "Runs side by side" in out and "overloaded" in out and "steady" in out


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"percentiles": (50, 101)}, "between 0 and 100"),
        ({"goodput": {"latency": 5}}, "unknown metric"),
        ({"goodput": {"ttft": -1}}, "positive"),
        ({"window": (5, 5)}, "START < END"),
    ],
)
def test_bad_arguments_are_one_line_errors(hand, kwargs, message):
    from varcas.errors import VarcasError

    with pytest.raises(VarcasError, match=message):
        summarize(hand, **kwargs)


@pytest.mark.parametrize("manifest_end", [True, False])
def test_a_far_future_end_does_not_stretch_the_timeline(tmp_path, manifest_end):
    """One corrupt end_ns a year ahead: the timeline stops at the run's end (or, without one, at
    the last planned send plus the timeouts), not after 31 million one-second bins."""
    cols = synth.simulate(np.arange(20) * 0.5, prefill_ms=50, itl_ms=10, tokens=8)
    honest_end = int(np.max(cols["end_ns"]))
    cols["end_ns"][7] = START_NS + 365 * 24 * 3600 * synth.S
    overrides = {"end_ns": honest_end} if manifest_end else {"end_ns": None, "status": "running"}
    run = load_run(synth.write_run(tmp_path / "r", cols, **overrides))
    s = summarize(run)
    limit_s = (honest_end - START_NS) / synth.S if manifest_end else 9.5 + 630
    assert s.timeline.t_s.size == int(limit_s) + 1
    assert s.whole.duration_s == pytest.approx(limit_s)
