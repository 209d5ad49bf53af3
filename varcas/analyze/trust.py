"""Whether to believe the numbers: steady-state window, saturation verdict, warnings.

Steady window. A run has a warm-up (the server fills up: requests arrive, none has finished
yet) and a drain (after the last scheduled send, arrivals stop and the queue empties). The
window runs from the end of the warm-up to the last scheduled send. The warm-up ends at the
first K-second stretch in which as many requests left the system (finished or failed) as were
scheduled: from then on the completion rate matches the arrival rate, the in-flight count has
stopped rising. K is a tenth of the send phase, 2 to 10 s: long enough to average out Poisson
arrivals, short enough not to swallow the run. A send phase under MIN_STEADY_S has no window.
If completions never catch up, or only in the second half of the send phase (a warm-up that
long is the run's main feature, and what remains is too short to judge), there is no steady
state; the second half of the send phase stands in for it and the verdict says why.

Saturation. Within the window the server is overloaded when (a) it finished clearly fewer
requests than were scheduled (more than 5% and more than 3 Poisson standard deviations fewer:
the backlog grew), or (b) the time to first token, counted from the schedule, rose by half
and by at least 50 ms from the window's first third to its last. Either way the percentiles
describe a growing queue and depend on how long the run lasted, not a steady state. Where no
steady state was found, (b) looks at the whole send phase, and (a) is called overload only when
the requests that finished streamed (first token to last) in a median time under a quarter of
the window: then the backlog cannot be requests outlasting the run, it is a queue. Otherwise
(a) is reported but not called overload: requests that outlast the run leave a backlog too.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import metricsfile
from . import kernels
from .catalog import BY_NAME, LATENCY
from .metrics import NS_PER_MS, NS_PER_S, RequestMetrics, per_second
from .run import Run

MIN_STEADY_S = 10.0
DEFICIT_FRACTION = 0.05
DEFICIT_SIGMAS = 3.0
TTFT_GROWTH_RATIO = 1.5
TTFT_GROWTH_MIN_MS = 50.0
TTFT_GROWTH_MIN_SAMPLES = 20
SEND_LAG_P99_WARN_MS = 10.0  # 10 ms late on a schedule is visible next to a TTFT
CLIENT_CPU_WARN = 0.9
TOKENS_PER_EVENT_RANGE = (0.8, 1.25)
SHORT_REQUEST_FRACTION = 0.25  # of the window: streams this short cannot explain a backlog


@dataclass(frozen=True)
class Window:
    start_s: float  # seconds after start_ns
    end_s: float
    source: str  # "auto" (detected), "fallback" (no steady state found), "manual" (--window)

    def bounds_ns(self, run: Run) -> tuple[int, int]:
        return run.start_ns + round(self.start_s * NS_PER_S), run.start_ns + round(self.end_s * NS_PER_S)


@dataclass(frozen=True)
class Verdict:
    overloaded: bool
    steady: bool  # a steady window exists (found, or set by hand)
    reasons: tuple  # the evidence, in plain words
    needed_s: float | None = None  # without a steady state (not overloaded): the send phase one needs

    @property
    def text(self) -> str:
        if self.overloaded:
            return (
                "The server is overloaded at this rate: " + "; ".join(self.reasons)
                + ". The percentiles describe a growing queue, not a steady state."
            )
        if not self.steady:
            return "No steady state: " + "; ".join(self.reasons) + "." + (
                f" Runs need --duration {self.needed_s:.0f} s or more to show one here ({NEEDED_WHY})."
                if self.needed_s else "")
        return "Steady: completions kept up with arrivals and TTFT did not grow."


NEEDED_WHY = "twice the warm-up: the requests' E2E p90 plus the longest averaging stretch, 10 s"


def needed_duration_s(rm: RequestMetrics) -> float | None:
    """The send phase a steady window needs here, from the measured latencies (None: nothing
    measured): the window must start within the first half of the send phase, after a warm-up
    that lasts about as long as a request (E2E p90) plus one averaging stretch (at most 10 s);
    rounded up to 10 s."""
    if not rm.measured.any():
        return None
    e2e_p90_s = float(kernels.percentiles(rm.e2el_ns[rm.measured], [90])[0]) / NS_PER_S
    return max(MIN_STEADY_S, 10.0 * math.ceil(2 * (e2e_p90_s + 10.0) / 10.0))


def window_name(window: Window, verdict: Verdict) -> str:
    """The window as a heading names it, with its span: 'steady window' only where the verdict
    found a steady state and no overload; the fallback is a stand-in for one (module docstring)."""
    span = f"{window.start_s:.0f}-{window.end_s:.0f} s"
    if window.source == "fallback":
        return f"stand-in window {span}, not steady"
    notes = (["set by hand"] if window.source == "manual" else []) + (
        ["overloaded, not steady"] if verdict.overloaded else [])
    return ", ".join([f"window {span}" if notes else f"steady window {span}", *notes])


def find_window(run: Run, rm: RequestMetrics) -> tuple[Window | None, str | None]:
    """The steady window (see the module docstring), or None and the reason there is none."""
    send_end_s = (int(run.scheduled_ns.max()) - run.start_ns) / NS_PER_S if run.n else 0.0
    if send_end_s < MIN_STEADY_S:
        return None, (
            f"the send phase lasted {send_end_s:.1f} s, too short to find a steady state "
            f"(needs {MIN_STEADY_S:.0f} s)"
        )
    k = int(min(10, max(2, round(send_end_s / 10))))
    nbins = int(send_end_s)
    everyone = np.ones(run.n, bool)
    arrived = np.cumsum(per_second(run, run.scheduled_ns, everyone, nbins))
    left = np.cumsum(per_second(run, rm.departure_ns, everyone, nbins))
    arrived, left = np.concatenate(([0], arrived)), np.concatenate(([0], left))
    a = arrived[k:] - arrived[:-k]  # stretch [s, s + k) for s = 0 .. nbins - k
    d = left[k:] - left[:-k]
    caught_up = np.flatnonzero((a > 0) & (d >= a))
    if caught_up.size and caught_up[0] <= send_end_s / 2:
        return Window(float(caught_up[0]), send_end_s, "auto"), None
    return Window(send_end_s / 2, send_end_s, "fallback"), None


def verdict(run: Run, rm: RequestMetrics, window: Window | None, why_none: str | None) -> Verdict:
    if not rm.ok.any():
        return Verdict(False, False, ("every request failed",))
    if window is None:
        return Verdict(False, False, (why_none,), needed_duration_s(rm))
    t0, t1 = window.bounds_ns(run)
    reasons = []
    if window.source == "fallback":
        reasons.append(
            "completions never caught up with arrivals (the server is overloaded, or the run "
            "is shorter than a request takes)"
        )
    arrived = int(((run.scheduled_ns >= t0) & (run.scheduled_ns < t1)).sum())
    left = int(((rm.departure_ns >= t0) & (rm.departure_ns < t1)).sum())
    deficit = arrived - left
    length = window.end_s - window.start_s
    growing_backlog = deficit > DEFICIT_FRACTION * arrived and deficit > DEFICIT_SIGMAS * math.sqrt(arrived)
    if growing_backlog:
        reasons.append(
            f"it finished {left / length:.2f} req/s of the {arrived / length:.2f} req/s offered and "
            f"the backlog grew by {deficit} requests in {length:.0f} s"
        )
    # Without a steady state a backlog may only mean the run ended before requests could:
    # then it takes TTFT rising through the whole send phase, or requests too short to outlast
    # the window, to call the server overloaded.
    steady = window.source != "fallback"
    queue = _short_streams(rm, length) if growing_backlog and not steady else None
    if queue is not None:
        reasons.append(f"requests stream for {queue:.1f} s (median, first token to last), far less than "
                       f"the {length:.0f} s window, so the backlog is a queue")
    growth = _ttft_growth(run, rm, t0 if steady else run.start_ns, t1)
    if growth is not None:
        reasons.append(f"TTFT (from the schedule) p50 rose from {growth[0]:.0f} ms to {growth[1]:.0f} ms")
    overloaded = growth is not None or (growing_backlog and steady) or queue is not None
    needed = None if steady or overloaded else needed_duration_s(rm)
    return Verdict(overloaded, steady, tuple(reasons), needed)


def _short_streams(rm: RequestMetrics, window_s: float) -> float | None:
    """The median first-to-last-token time (s) of finished requests, if under
    SHORT_REQUEST_FRACTION of the window; else None."""
    streams = (rm.e2el_ns - rm.ttft_ns)[rm.measured]
    if streams.size == 0:
        return None
    median_s = float(kernels.percentiles(streams, [50])[0]) / NS_PER_S
    return median_s if median_s < SHORT_REQUEST_FRACTION * window_s else None


def _ttft_growth(run: Run, rm: RequestMetrics, t0: int, t1: int) -> tuple[float, float] | None:
    """(first-third, last-third) median TTFT from the schedule, in ms, when it grew."""
    third = (t1 - t0) // 3
    medians = []
    for lo in (t0, t1 - third):
        mask = rm.measured & (run.scheduled_ns >= lo) & (run.scheduled_ns < lo + third)
        if mask.sum() < TTFT_GROWTH_MIN_SAMPLES:
            return None
        medians.append(float(kernels.percentiles(rm.open_ttft_ns[mask], [50])[0]) / NS_PER_MS)
    first, last = medians
    grew = last > TTFT_GROWTH_RATIO * first and last - first > TTFT_GROWTH_MIN_MS
    return (first, last) if grew else None


def warnings(run: Run, rm: RequestMetrics, blocks: dict, percents) -> list[str]:
    """Plain-words warnings: generator health, sample sizes, token accounting, errors, status."""
    whole = blocks["whole run"]
    out = [f"load: {w}" for w in run.manifest.get("warnings", []) if isinstance(w, str)]
    status = run.manifest.get("status")
    if status == "partial":
        lost = [f"worker {w.get('worker')} on {w.get('node')} ({w.get('after_start_s')} s after the start)"
                for w in run.manifest.get("lost_workers") or [] if isinstance(w, dict)]
        out.append(f"the run is partial: load {', '.join(lost) or 'workers'} lost mid-run; the requests it had "
                   "not sent were never sent, so the offered load was lower than planned from then on")
    elif status not in (None, "complete"):
        out.append(f"the run's status is {status!r}: it did not finish normally")
    if run.from_arrows:
        out.append("read from requests.arrows (requests.parquet is missing): the run may be cut short")
    lag_p99 = kernels.percentiles(rm.send_lag_ns[rm.sent], [99])[0] / NS_PER_MS if rm.sent.any() else 0.0
    if lag_p99 > SEND_LAG_P99_WARN_MS:
        out.append(
            f"send lag p99 is {lag_p99:.1f} ms (over {SEND_LAG_P99_WARN_MS:.0f} ms): the generator fell "
            "behind its schedule, so the offered load was lower and burstier than planned"
        )
    cpu = (run.manifest.get("client") or {}).get("cpu_util")
    if isinstance(cpu, (int, float)) and cpu >= CLIENT_CPU_WARN:
        out.append(f"the generator's CPU was {cpu:.0%} busy: it may have limited the load it sent")
    out += _sample_warnings(blocks, percents)
    out += _token_warnings(rm)
    out += _server_count_warnings(run, rm)
    failed = whole.failed
    if failed:
        out.append(f"{failed} of {run.n} requests failed ({failed / run.n:.1%})")
    empty = int((rm.ok & (rm.events == 0)).sum())
    if empty:
        out.append(f"{empty} successful requests streamed no content: they have no latency figures")
    return out


def _sample_warnings(blocks: dict, percents) -> list[str]:
    """A percentile p needs 100 / (100 - p) samples to be more than the largest one."""
    tails = [p for p in percents if 0 < p < 100]
    if not tails:
        return []
    p = max(tails)
    needed = math.ceil(100 / (100 - p) - 1e-9)
    short = [
        f"{BY_NAME[name].label} {dist.n} ({scope})"
        for scope, block in blocks.items()
        for name, dist in block.latency.items()
        if BY_NAME[name].kind == LATENCY and dist is not None and dist.n < needed
    ]
    if not short:
        return []
    return [f"p{p:g} needs at least {needed} samples to mean more than the maximum; too few for " + ", ".join(short)]


def _token_warnings(rm: RequestMetrics) -> list[str]:
    """The token-accounting check: usage counts against content events."""
    out = []
    missing = int(rm.usage_missing.sum())
    if missing:
        out.append(
            f"the server reported no usage for {missing} successful requests: their output "
            "tokens are counted as content events"
        )
    reported = rm.ok & ~rm.usage_missing
    tokens, events = int(rm.output_tokens[reported].sum()), int(rm.events[reported].sum())
    if events and not TOKENS_PER_EVENT_RANGE[0] <= tokens / events <= TOKENS_PER_EVENT_RANGE[1]:
        out.append(
            f"token accounting: the server's usage counts {tokens} output tokens but the streams "
            f"carried {events} content events ({tokens / events:.2f} tokens per event); ITL and "
            "peak tokens/s describe events, not tokens"
        )
    elif tokens and not events:
        out.append(f"token accounting: the server's usage counts {tokens} output tokens but no content was streamed")
    return out


SERVER_COUNTERS = ("vllm:prompt_tokens_total", "vllm:generation_tokens_total")


def _server_count_warnings(run: Run, rm: RequestMetrics) -> list[str]:
    """The server's own token counters over the run (metrics.parquet) against the client's
    usage totals: another client on the same server, or a miscounting one, shows here. With
    failed requests (whose tokens the server may have counted) only a server count below the
    client's is a disagreement."""
    run_dir = run.path if run.path.is_dir() else run.path.parent
    table = metricsfile.read(run_dir)
    if table is None:
        return []
    deltas = metricsfile.counter_deltas(table, SERVER_COUNTERS)
    counted = rm.ok & ~rm.usage_missing
    client = {"vllm:prompt_tokens_total": int(rm.input_tokens[counted].sum()),
              "vllm:generation_tokens_total": int(rm.output_tokens[counted].sum())}
    out = []
    failed = bool((~rm.ok).any())  # failed requests may have cost the server tokens the client cannot count
    for name, mine in client.items():
        server = int(round(deltas[name]))
        if server and (server < mine if failed else server != mine):
            what = "prompt" if "prompt" in name else "generated"
            out.append(f"server and client disagree: {name} grew by {server} during the run, the client's "
                       f"usage totals {mine} {what} tokens (another client on the server, failed requests "
                       "the server still counted, or a server restart)")
    return out
