"""The metric table: every figure varcas reports, declared once (name, label, unit, kind and how
it is computed) and read by `varcas analyze`'s tables and JSON keys, the digest, the sweep
comparison and the report's tables and plots. Adding a metric is a row here plus the code that
computes it (metrics.py: a Block field or a latency sample; a server figure needs nothing else).

Definitions follow vLLM's benchmark (vllm/benchmarks/serve.py) wherever both define a metric;
the rules they share (which requests are successful, what a scope counts) are in metrics.py.
"""
from __future__ import annotations

from dataclasses import dataclass

COUNT = "count"  # a number of requests, tokens or seconds in the scope
THROUGHPUT = "throughput"  # per second of the scope
FRACTION = "fraction"  # a share of the scope's requests, 0..1
LATENCY = "latency"  # a distribution of the server's latency over requests (or token gaps)
CLIENT = "client"  # a distribution of time the client added, or saw from the planned send time
GAUGE = "gauge"  # the server's own /metrics gauge, sampled at each scrape in the scope
COUNTER = "counter"  # the server's own /metrics counter, its increase over the scope
HISTOGRAM = "histogram"  # the server's own /metrics histogram, its buckets' increase over the scope

# Which requests a scope's figure counts (metrics.py's rule), as tables head its rows: over a
# time span the two differ (in a window of an overloaded run no request scheduled in it may
# finish while older ones do). Latencies count the requests scheduled in the span.
SCHEDULED = "requests scheduled in the span"
FINISHING = "requests finishing in the span"


def percent_word(p) -> str:
    """vLLM's key spelling of a percentile: 99 -> '99', 99.9 -> '99.9'."""
    return str(int(p)) if int(p) == p else str(p)


class _Shown:
    """The heading of a row or axis: the label, and the unit in brackets when there is one."""

    label: str  # declared by each subclass (a dataclass field)
    unit: str

    @property
    def heading(self) -> str:
        return f"{self.label} ({self.unit})" if self.unit else self.label


@dataclass(frozen=True)
class Metric(_Shown):
    """One figure of a summary block: a scalar (the block's key is its name) or a distribution
    (its keys are key(stat): mean_ttft_ms, p99_ttft_ms, ...)."""

    name: str
    label: str
    unit: str  # "" for a plain number; a distribution's unit ends its keys (_ms)
    kind: str
    defined: str  # how it is computed, in one line
    higher_is_better: bool | None = None  # None: neither way (a count, the scope's length)
    attr: str = ""  # the Block attribute, where it is not the name
    in_table: bool = True  # a row of `varcas analyze`'s table of one run (else only in its JSON)
    side_by_side: bool = False  # also a row of its table of several runs
    compared: bool = False  # in the sweep comparison (a distribution: COMPARED_PERCENTILES) and the report's CDFs
    slo: bool = False  # a --goodput key (vLLM's)
    only: str = ""  # "goodput": reported only with --goodput SLOs; "capped": only under --max-concurrency
    counts: str = ""  # a scalar's SCHEDULED or FINISHING ("": neither: the span's length, its busiest second)

    @property
    def field(self) -> str:
        return self.attr or self.name

    @property
    def distribution(self) -> bool:
        return self.kind in (LATENCY, CLIENT)

    def key(self, stat) -> str:
        """A distribution's summary key: 'mean' -> mean_ttft_ms, 99 -> p99_ttft_ms, 'samples' -> samples_ttft."""
        if stat == "samples":
            return f"samples_{self.name}"
        word = stat if isinstance(stat, str) else f"p{percent_word(stat)}"
        return f"{word}_{self.name}_{self.unit}"


METRICS = (
    Metric("duration", "duration", "s", COUNT, "the scope's length: for the whole run, the last end_ns among all "
           "requests - start_ns (schedule time 0), the benchmark's wall time as vLLM measures it", attr="duration_s"),
    Metric("completed", "completed", "", COUNT, "successful requests (error is null) among those scheduled in the "
           "scope", True, side_by_side=True, counts=SCHEDULED),
    Metric("failed", "failed", "", COUNT, "requests with an error of any kind among those scheduled in the scope",
           False, side_by_side=True, counts=SCHEDULED),
    Metric("total_input_tokens", "input tokens", "tok", COUNT, "input tokens of successful requests finishing in "
           "the scope (the server's usage count, else requested_input_tokens)", in_table=False, counts=FINISHING),
    Metric("total_output_tokens", "output tokens", "tok", COUNT, "output tokens of successful requests finishing "
           "in the scope (the server's usage count, else the number of content events)", in_table=False,
           counts=FINISHING),
    Metric("request_throughput", "request throughput", "req/s", THROUGHPUT, "successful requests finishing in the "
           "scope / duration", True, side_by_side=True, compared=True, counts=FINISHING),
    Metric("request_goodput", "request goodput", "req/s", THROUGHPUT, "successful requests finishing in the scope "
           "and meeting every SLO / duration (TPOT counts as 0 for requests of at most one output token, as in vLLM)",
           True, side_by_side=True, compared=True, only="goodput", counts=FINISHING),
    Metric("goodput_fraction", "goodput fraction", "", FRACTION, "requests with latencies that meet every SLO / "
           "requests with latencies, among those scheduled in the scope", True, in_table=False, only="goodput",
           counts=SCHEDULED),
    Metric("output_throughput", "output throughput", "tok/s", THROUGHPUT, "output tokens of successful requests "
           "finishing in the scope / duration", True, side_by_side=True, compared=True, counts=FINISHING),
    Metric("total_token_throughput", "total token throughput", "tok/s", THROUGHPUT,
           "(input + output tokens) of successful requests finishing in the scope / duration", True, counts=FINISHING),
    Metric("max_output_tokens_per_s", "peak output throughput", "tok/s", THROUGHPUT, "the most content events of "
           "successful requests in one 1-second bin (bins start at start_ns), from the recorded event times", True),
    Metric("max_concurrent_requests", "peak concurrent requests", "", COUNT, "the most requests between sent_ns "
           "and end_ns at one instant in the scope, of those scheduled in the scope (exact; vLLM approximates it per "
           "second)", side_by_side=True, counts=SCHEDULED),
    Metric("ttft", "TTFT", "ms", LATENCY, "first_token_ns - sent_ns", False,
           side_by_side=True, compared=True, slo=True),
    Metric("tpot", "TPOT", "ms", LATENCY, "(E2E - TTFT) / (output_tokens - 1), of requests with more than one "
           "output token", False, side_by_side=True, compared=True, slo=True),
    Metric("itl", "ITL", "ms", LATENCY, "successive differences of token_ns, pooled over successful requests", False,
           side_by_side=True),
    Metric("e2el", "E2E", "ms", LATENCY, "last content event - sent_ns (not the usage chunk or [DONE])", False,
           side_by_side=True, compared=True, slo=True),
    Metric("open_loop", "E2E sched", "ms", CLIENT, "last content event - scheduled_ns: what a user arriving on "
           "schedule sees, the generator's lag included", False),
    Metric("send_lag", "send lag", "ms", CLIENT, "sent_ns - scheduled_ns - slot_wait_ns: the generator's own delay",
           False),
    Metric("slot_wait", "slot wait", "ms", CLIENT, "slot_wait_ns: waiting for a --max-concurrency slot", False,
           only="capped"),
)
BY_NAME = {m.name: m for m in METRICS}
SLO_METRICS = tuple(m.name for m in METRICS if m.slo)  # vLLM's --goodput keys, in kernels.slo_mask's order
COMPARED_PERCENTILES = (50, 99)


@dataclass(frozen=True)
class Figure(_Shown):
    """One compared number of a summary block: a scalar metric, or one percentile of a distribution."""

    key: str  # its name in the comparison's rows: output_throughput, ttft_p99
    label: str
    unit: str
    higher_is_better: bool | None  # the metric's: None for neither way
    summary_key: str  # where a summary block (summary.to_dict()) holds it


def figure(m: Metric, percent=None) -> Figure:
    """A scalar metric, or the given percentile of a distribution (the median under vLLM's key)."""
    if percent is None:
        return Figure(m.name, m.label, m.unit, m.higher_is_better, m.name)
    word = percent_word(percent)
    return Figure(f"{m.name}_p{word}", f"{m.label} p{word}", m.unit, m.higher_is_better,
                  m.key("median" if percent == 50 else percent))


COMPARED = tuple(f for m in METRICS if m.compared
                 for f in ([figure(m, p) for p in COMPARED_PERCENTILES] if m.distribution else [figure(m)]))


@dataclass(frozen=True)
class ServerMetric(_Shown):
    """One of the server's own figures (analyze.server), from the /metrics names that mean it."""

    name: str  # its key in the summary's server section
    label: str
    unit: str  # a counter with a unit is shown as a rate, one without as its increase
    kind: str  # GAUGE, COUNTER or HISTOGRAM (its base name: name_bucket, name_sum, name_count)
    sources: tuple  # the exposed names, newest first
    scale: float = 1.0  # figure in unit = exposed value x scale (a gauge's summary keeps the exposed value)
    client: str = ""  # the client's METRICS name for the same figure, which it is shown beside
    timeline: bool = True  # a per-second series of the server timeline

    def key(self, stat) -> str:
        """A histogram figure's key in its unit: 'mean' -> mean_ms, 50 -> p50_ms, 'gap_mean' -> gap_mean_ms."""
        return f"{stat if isinstance(stat, str) else f'p{percent_word(stat)}'}_{self.unit}"

    @property
    def series_heading(self) -> str:
        """The heading of its per-second series: a counter without a unit counts per second."""
        return f"{self.label} (per s)" if self.kind == COUNTER and not self.unit else self.heading


# vLLM v1 names first (vllm/v1/metrics/loggers.py, as of 0.32), then the older ones (v0: vllm/engine/metrics.py)
SERVER_METRICS = (
    ServerMetric("running", "running (the batch it ran)", "", GAUGE, ("vllm:num_requests_running",)),
    ServerMetric("waiting", "waiting (its queue)", "", GAUGE, ("vllm:num_requests_waiting",)),
    ServerMetric("kv_cache_usage", "KV-cache usage", "%", GAUGE,
                 ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"), scale=100.0),
    ServerMetric("preemptions", "preemptions", "", COUNTER, ("vllm:num_preemptions_total",)),
    ServerMetric("prompt_tokens", "prompt throughput", "tok/s", COUNTER, ("vllm:prompt_tokens_total",)),
    ServerMetric("generation_tokens", "generation throughput", "tok/s", COUNTER, ("vllm:generation_tokens_total",)),
    ServerMetric("iteration_tokens", "tokens per iteration", "tok", HISTOGRAM, ("vllm:iteration_tokens_total",)),
    ServerMetric("server_ttft", "TTFT", "ms", HISTOGRAM, ("vllm:time_to_first_token_seconds",), scale=1000.0,
                 client="ttft", timeline=False),
    ServerMetric("server_itl", "ITL", "ms", HISTOGRAM,
                 ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"), scale=1000.0,
                 client="itl", timeline=False),
)
