"""GET /metrics: vLLM's Prometheus metrics (names, labels, histogram buckets) for the simulator.

Names and buckets are vLLM's (vllm/engine/metrics.py, v0.6-0.8): gauges
vllm:num_requests_running / _waiting and vllm:gpu_cache_usage_perc (a fraction in [0, 1],
despite the name); counters vllm:num_preemptions_total, vllm:prompt_tokens_total,
vllm:generation_tokens_total, vllm:request_success_total{finished_reason}; histograms
vllm:time_to_first_token_seconds, vllm:time_per_output_token_seconds (one observation per
inter-token interval, as vLLM records it) and vllm:e2e_request_latency_seconds. Every sample
carries model_name. Gauges and counters are read from the engine when scraped; histograms are
fed per token and per request by the server, in simulated time (a step's planned end).
Two of varcas's own say how far the wall clock fell behind the model (realtime.StepClock):
varcas:sim_step_lag_max_seconds and varcas:sim_clock_slip_seconds_total; near zero, the
timings are the model's.
Text exposition format 0.0.4, which any Prometheus scraper reads.
"""
from __future__ import annotations

from bisect import bisect_left

from .engine import Engine
from .realtime import StepClock

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                10.0, 20.0, 40.0, 80.0)
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
               120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)


class Histogram:
    """Prometheus histogram: counts per upper bound (le, inclusive), plus sum and count."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last slot is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def samples(self, name: str, label: str) -> list[str]:
        out, total = [], 0
        for bound, count in zip(self.bounds + (float("inf"),), self.counts):
            total += count
            le = "+Inf" if bound == float("inf") else repr(float(bound))
            out.append(f'{name}_bucket{{le="{le}",{label}}} {float(total)!r}')
        out.append(f"{name}_count{{{label}}} {float(total)!r}")
        out.append(f"{name}_sum{{{label}}} {self.sum!r}")
        return out


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """The server's request-level histograms, and the exposition of everything."""

    def __init__(self, model_name: str):
        self.label = f'model_name="{_escape(model_name)}"'
        self.ttft = Histogram(TTFT_BUCKETS)
        self.tpot = Histogram(TPOT_BUCKETS)
        self.e2e = Histogram(E2E_BUCKETS)

    def render(self, engine: Engine, clock: StepClock) -> bytes:
        label = self.label
        used = (engine.total_blocks - engine.free_blocks) / engine.total_blocks
        scalars = (
            ("vllm:num_requests_running", "gauge", "Number of requests currently running on GPU.",
             len(engine.running)),
            ("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.",
             engine.num_waiting),
            ("vllm:gpu_cache_usage_perc", "gauge", "GPU KV-cache usage. 1 means 100 percent usage.", used),
            ("vllm:num_preemptions_total", "counter", "Cumulative number of preemption from the engine.",
             engine.preemptions),
            ("vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed.", engine.prompt_tokens),
            ("vllm:generation_tokens_total", "counter", "Number of generation tokens processed.",
             engine.generation_tokens),
            ("varcas:sim_step_lag_max_seconds", "gauge", "Latest a step's tokens went out after its planned end.",
             clock.max_lag_ns / 1e9),
            ("varcas:sim_clock_slip_seconds_total", "counter", "Time the step clock restarted late.",
             clock.slip_ns / 1e9),
        )
        lines = []
        for name, kind, doc, value in scalars:
            lines += [f"# HELP {name} {doc}", f"# TYPE {name} {kind}", f"{name}{{{label}}} {float(value)!r}"]
        lines += ["# HELP vllm:request_success_total Count of successfully processed requests.",
                  "# TYPE vllm:request_success_total counter",
                  f'vllm:request_success_total{{finished_reason="length",{label}}} {float(engine.finished)!r}']
        for name, doc, hist in (
                ("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", self.ttft),
                ("vllm:time_per_output_token_seconds", "Histogram of time per output token in seconds.", self.tpot),
                ("vllm:e2e_request_latency_seconds", "Histogram of end to end request latency in seconds.", self.e2e)):
            lines += [f"# HELP {name} {doc}", f"# TYPE {name} histogram", *hist.samples(name, label)]
        return ("\n".join(lines) + "\n").encode()
