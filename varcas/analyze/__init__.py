"""Analysis of run directories: latency and throughput statistics over millions of requests
(numba kernels), the steady-state window, and a verdict on whether the numbers can be trusted.

    run = load_run("runs/2026-02-11T10-00-00")     # numpy arrays, no per-request objects
    summary = summarize(run, goodput={"ttft": 500})
    summary.to_dict()["p99_ttft_ms"]                # vLLM's result keys, and varcas's own
    render(summary)                                  # the rich table `varcas analyze` prints

Every metric's name, label, unit and definition: catalog.METRICS (one table, read by every output).
"""
from .metrics import Block, Distribution, RequestMetrics, Timeline, request_metrics
from .render import render
from .run import Run, load_run
from .summary import DEFAULT_PERCENTILES, Summary, summarize
from .trust import Verdict, Window

__all__ = [
    "Block", "DEFAULT_PERCENTILES", "Distribution", "RequestMetrics", "Run", "Summary", "Timeline",
    "Verdict", "Window", "load_run", "render", "request_metrics", "summarize",
]
