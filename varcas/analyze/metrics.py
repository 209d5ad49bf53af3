"""Metric computations over a Run: per-request latencies, distributions, throughput, goodput
and per-second timelines. Each metric's name, label, unit and one-line definition are in
catalog.METRICS; numbers are identical to vLLM's benchmark (vllm/benchmarks/serve.py) wherever
both define a metric. The rules every definition shares:

  successful    error is null. Latency and throughput figures use successful requests only;
                failed ones are counted (completed / failed), as in vLLM.
  output tokens the server's usage count; the number of content events where it sent none
  input tokens  the server's usage count; requested_input_tokens where it sent none
  duration      the scope's length; for the whole run, (last end_ns among all requests) -
                start_ns, start_ns being schedule time 0

A scope restricts all this to a time window [t0, t1) (the steady state): latencies describe
requests *scheduled* in the window, throughput counts requests *finishing* in it and divides
by the window's length.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import kernels
from .catalog import METRICS, SLO_METRICS
from .run import NO_COUNT, NO_ERROR, NO_TIME, Run

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000


@dataclass(frozen=True, eq=False)
class RequestMetrics:
    """Per-request figures (ns), valid where the masks say so."""

    ok: np.ndarray  # successful
    sent: np.ndarray  # the request left the generator
    measured: np.ndarray  # successful with at least one content event: has latencies
    ttft_ns: np.ndarray
    e2el_ns: np.ndarray
    tpot_ns: np.ndarray  # float; NaN where output_tokens <= 1
    open_loop_ns: np.ndarray  # last event - scheduled
    open_ttft_ns: np.ndarray  # first token - scheduled: TTFT including any wait before sending
    send_lag_ns: np.ndarray
    departure_ns: np.ndarray  # when the request left the system: end_ns, else sent/scheduled
    events: np.ndarray  # content events per request
    output_tokens: np.ndarray  # usage, else events
    input_tokens: np.ndarray  # usage, else requested
    usage_missing: np.ndarray  # successful and the server reported no output token count


@dataclass(frozen=True)
class Distribution:
    """Summary statistics of one metric, in milliseconds."""

    n: int
    mean: float
    std: float
    min: float
    max: float
    percentiles: dict  # percent -> value


@dataclass(frozen=True)
class Block:
    """Every figure of one scope (the whole run or the steady window)."""

    t0_s: float  # scope start, seconds after start_ns
    duration_s: float
    completed: int
    failed: int
    total_input_tokens: int
    total_output_tokens: int
    request_throughput: float | None
    output_throughput: float | None
    total_token_throughput: float | None
    request_goodput: float | None  # None without --goodput
    goodput_fraction: float | None
    max_output_tokens_per_s: int
    max_concurrent_requests: int
    latency: dict  # name -> Distribution, or None where there were no samples


@dataclass(frozen=True, eq=False)
class Timeline:
    """Per-second series from start_ns (bin i covers [i, i + 1) s)."""

    t_s: np.ndarray
    sent: np.ndarray
    completed: np.ndarray
    in_flight: np.ndarray  # sent and not yet ended, at the end of each second
    output_tokens: np.ndarray
    errors: np.ndarray
    ttft_p50_ms: np.ndarray  # of requests sent in that second; NaN where none
    ttft_p99_ms: np.ndarray


def request_metrics(run: Run) -> RequestMetrics:
    events = np.diff(run.token_offsets)
    ok = run.error == NO_ERROR
    sent = run.sent_ns != NO_TIME
    measured = ok & sent & (events > 0) & (run.first_token_ns != NO_TIME)
    last = np.full(run.n, NO_TIME)
    has_events = events > 0
    last[has_events] = run.token_ns[run.token_offsets[1:][has_events] - 1]
    ttft = np.where(measured, run.first_token_ns - run.sent_ns, 0)
    e2el = np.where(measured, last - run.sent_ns, 0)
    usage_missing = ok & (run.output_tokens == NO_COUNT)
    output_tokens = np.where(run.output_tokens == NO_COUNT, events, run.output_tokens)
    input_tokens = np.where(run.input_tokens == NO_COUNT, run.requested_input_tokens, run.input_tokens)
    multi = measured & (output_tokens > 1)
    tpot = np.full(run.n, np.nan)
    tpot[multi] = (e2el[multi] - ttft[multi]) / (output_tokens[multi] - 1)
    return RequestMetrics(
        ok=ok,
        sent=sent,
        measured=measured,
        ttft_ns=ttft,
        e2el_ns=e2el,
        tpot_ns=tpot,
        open_loop_ns=np.where(measured, last - run.scheduled_ns, 0),
        open_ttft_ns=np.where(measured, run.first_token_ns - run.scheduled_ns, 0),
        send_lag_ns=np.where(sent, run.sent_ns - run.scheduled_ns - run.slot_wait_ns, 0),
        departure_ns=np.where(run.end_ns != NO_TIME, run.end_ns, np.maximum(run.sent_ns, run.scheduled_ns)),
        events=events,
        output_tokens=output_tokens,
        input_tokens=input_tokens,
        usage_missing=usage_missing,
    )


def duration_ns(run: Run) -> int:
    """Last end_ns among all requests minus start_ns (the manifest's end when none ended),
    never past the run's own end (end_limit_ns): one corrupt far-future timestamp must not
    stretch every timeline to years of one-second bins."""
    ended = run.end_ns[run.end_ns != NO_TIME]
    if ended.size:
        return max(min(int(ended.max()), end_limit_ns(run)) - run.start_ns, 0)
    end = run.manifest.get("end_ns")
    return max(end - run.start_ns, 0) if isinstance(end, int) else 0


def end_limit_ns(run: Run) -> int:
    """The latest time a request of this run can have ended: the manifest's end_ns, or for a
    run that died before writing it, its last planned send plus the request and drain timeouts."""
    end = run.manifest.get("end_ns")
    if type(end) is int and end >= run.start_ns:
        return end
    config = run.manifest.get("config")
    config = config if isinstance(config, dict) else {}
    slack_s = _seconds(config.get("request_timeout_s"), 600.0) + _seconds(config.get("drain_timeout_s"), 30.0)
    last = int(run.scheduled_ns.max()) if run.scheduled_ns.size else run.start_ns
    return max(last, run.start_ns) + int(slack_s * NS_PER_S)


def _seconds(value: object, default: float) -> float:
    """A manifest's timeout when it is a plausible number of seconds (a bool is none), else default."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1e6:
        return value
    return default


def distribution(values: np.ndarray, percents, scale: float = NS_PER_MS) -> Distribution | None:
    """Statistics of values (divided by scale), or None for no samples."""
    if values.size == 0:
        return None
    n, mean, std = kernels.moments(values)
    qs = kernels.percentiles(values, [0, 100, *percents]) / scale
    return Distribution(
        n=int(n),
        mean=mean / scale,
        std=std / scale,
        min=float(qs[0]),
        max=float(qs[1]),
        percentiles={p: float(v) for p, v in zip(percents, qs[2:])},
    )


def slo_limits(goodput: dict | None) -> tuple[float, float, float]:
    """--goodput {metric: ms} as (ttft, tpot, e2el) limits in ns; +inf where absent."""
    goodput = goodput or {}
    ttft, tpot, e2el = (goodput[m] * NS_PER_MS if m in goodput else np.inf for m in SLO_METRICS)
    return ttft, tpot, e2el


def good_requests(rm: RequestMetrics, goodput: dict | None) -> np.ndarray:
    """Successful requests that meet every SLO of goodput ({ttft|tpot|e2el: ms}; none: every
    successful request with content)."""
    tpot = np.where(np.isnan(rm.tpot_ns), 0.0, rm.tpot_ns)  # vLLM: TPOT 0 for <= 1 token
    return rm.measured & kernels.slo_mask(rm.ttft_ns, tpot, rm.e2el_ns, *slo_limits(goodput))


_SAMPLES = {  # distribution name -> its samples (ns) among the selected requests
    "ttft": lambda run, rm, sel: rm.ttft_ns[rm.measured & sel],
    "tpot": lambda run, rm, sel: rm.tpot_ns[rm.measured & sel & ~np.isnan(rm.tpot_ns)],
    "itl": lambda run, rm, sel: kernels.itl_gaps(run.token_offsets, run.token_ns, rm.measured & sel)[1],
    "e2el": lambda run, rm, sel: rm.e2el_ns[rm.measured & sel],
    "open_loop": lambda run, rm, sel: rm.open_loop_ns[rm.measured & sel],
    "send_lag": lambda run, rm, sel: rm.send_lag_ns[rm.sent & sel],
    "slot_wait": lambda run, rm, sel: run.slot_wait_ns[rm.sent & sel],
}


def samples(run: Run, rm: RequestMetrics, selected: np.ndarray, name: str) -> np.ndarray:
    """The samples (ns) of one distribution (catalog.METRICS) among the selected requests."""
    return _SAMPLES[name](run, rm, selected)


def measure(run, rm, series, *, t0_ns, t1_ns, selected, served, good, percents, slot_wait) -> Block:
    """Every figure of one scope: selected requests give latencies, served ones throughput.

    good is the goodput mask (None without SLOs); slot_wait says whether a concurrency cap
    was in force (then slot-wait time is a metric). series is the run's Timeline: peak
    tokens/s is its busiest second among those overlapping the scope.
    """
    length_s = (t1_ns - t0_ns) / NS_PER_S
    per_s = (lambda x: x / length_s) if length_s > 0 else (lambda x: None)
    measured = rm.measured & selected
    latency = {m.name: distribution(samples(run, rm, selected, m.name), percents)
               for m in METRICS if m.distribution and (slot_wait or m.only != "capped")}
    n_served, n_measured = int(served.sum()), int(measured.sum())
    output = int(rm.output_tokens[served].sum())
    total = output + int(rm.input_tokens[served].sum())
    completed = int((rm.ok & selected).sum())
    first_bin, end_bin = (t0_ns - run.start_ns) // NS_PER_S, -(-(t1_ns - run.start_ns) // NS_PER_S)
    token_bins = series.output_tokens[max(first_bin, 0):max(end_bin, first_bin + 1)]
    return Block(
        t0_s=(t0_ns - run.start_ns) / NS_PER_S,
        duration_s=length_s,
        completed=completed,
        failed=int(selected.sum()) - completed,
        total_input_tokens=total - output,
        total_output_tokens=output,
        request_throughput=per_s(n_served),
        output_throughput=per_s(output),
        total_token_throughput=per_s(total),
        request_goodput=None if good is None else per_s(int((served & good).sum())),
        goodput_fraction=None if good is None or not measured.any() else int((good & measured).sum()) / n_measured,
        max_output_tokens_per_s=int(token_bins.max()) if token_bins.size else 0,
        max_concurrent_requests=_peak_concurrency(run, rm.sent & selected, t0_ns, t1_ns),
        latency=latency,
    )


def _peak_concurrency(run: Run, mask: np.ndarray, t0_ns: int, t1_ns: int) -> int:
    """Peak of requests in flight, their [sent, end) intervals clipped to [t0, t1)."""
    mask = mask & (run.end_ns != NO_TIME)
    starts = np.maximum(run.sent_ns[mask], t0_ns)
    ends = np.minimum(run.end_ns[mask], t1_ns)
    keep = starts < ends
    return int(kernels.peak_overlap(starts[keep], ends[keep])) if keep.any() else 0


def per_second(run: Run, values: np.ndarray, mask: np.ndarray, nbins: int) -> np.ndarray:
    """Counts of one timestamp per request (values) in 1-second bins from start_ns."""
    flat = np.arange(values.size + 1, dtype=np.int64)  # each request a list of one value
    return kernels.bin_counts(flat, values, mask, run.start_ns, NS_PER_S, nbins)


def timeline(run: Run, rm: RequestMetrics) -> Timeline:
    nbins = duration_ns(run) // NS_PER_S + 1  # the last bin holds the last end
    sent = per_second(run, run.sent_ns, rm.sent, nbins)
    ended = per_second(run, run.end_ns, rm.sent, nbins)
    second = np.where(rm.measured, (run.sent_ns - run.start_ns) // NS_PER_S, -1)
    ttft = kernels.grouped_percentiles(second, rm.ttft_ns, nbins, np.array([0.5, 0.99])) / NS_PER_MS
    return Timeline(
        t_s=np.arange(nbins, dtype=np.float64),
        sent=sent,
        completed=per_second(run, run.end_ns, rm.ok, nbins),
        in_flight=np.cumsum(sent) - np.cumsum(ended),
        output_tokens=kernels.bin_counts(run.token_offsets, run.token_ns, rm.ok, run.start_ns, NS_PER_S, nbins),
        errors=per_second(run, rm.departure_ns, ~rm.ok, nbins),
        ttft_p50_ms=ttft[:, 0],
        ttft_p99_ms=ttft[:, 1],
    )
