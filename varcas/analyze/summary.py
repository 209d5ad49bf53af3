"""summarize(run): a run's figures for the whole run and its steady window, with the trust
verdict and warnings, as a Summary whose to_dict() carries vLLM's benchmark result keys
(mean_ttft_ms, p99_itl_ms, request_throughput, ...) so dashboards that read vLLM's JSON read
varcas's too. The keys and metrics are catalog.METRICS's, their computation metrics.py's, the
verdict's rules trust.py's. The per-request figures it computed travel with it (requests).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import VarcasError
from .catalog import BY_NAME, METRICS, SLO_METRICS
from .metrics import (
    Block,
    RequestMetrics,
    Timeline,
    duration_ns,
    good_requests,
    measure,
    request_metrics,
    timeline,
)
from .run import NO_ERROR, Run
from .server import ServerTimeline, server_side
from .trust import Verdict, Window, find_window, verdict, warnings, window_name

DEFAULT_PERCENTILES = (50, 90, 95, 99, 99.9)
_SCALARS = tuple(m for m in METRICS if not m.distribution)


@dataclass(frozen=True, eq=False)
class Summary:
    name: str
    path: str
    manifest: dict
    percentiles: tuple  # as asked for; the median is always computed besides
    goodput: dict | None  # SLOs in ms, {ttft|tpot|e2el: limit}
    whole: Block
    steady: Block | None
    window: Window | None
    verdict: Verdict
    warnings: tuple
    errors_by_kind: dict
    errors_by_status: dict  # HTTP status of failed requests (0: no response) -> count
    timeline: Timeline
    requests: RequestMetrics  # per request, as metrics.request_metrics(run) computes them
    server: dict | None = None  # the server's own figures over the steady window (analyze.server)
    server_timeline: ServerTimeline | None = None  # its per-second series over the run (analyze.server)

    def to_dict(self) -> dict:
        """JSON-ready: vLLM's result keys for the whole run at the top level, then varcas's."""
        config = self.manifest.get("config") or {}
        target = self.manifest.get("target") or {}
        out = {
            "run": self.name,
            "path": self.path,
            "status": self.manifest.get("status"),
            "model_id": target.get("model"),
            "base_url": target.get("url"),
            "request_rate": "inf" if config.get("rps") == float("inf") else config.get("rps"),  # as vLLM writes it
            "burstiness": config.get("burstiness"),
            "max_concurrency": config.get("max_concurrency"),
            "num_prompts": self.whole.completed + self.whole.failed,
        }
        out.update(_block_dict(self.whole, self.percentiles))
        out["goodput_slo_ms"] = self.goodput
        out["window"] = None if self.window is None else {
            "start_s": self.window.start_s, "end_s": self.window.end_s, "source": self.window.source,
        }
        out["steady"] = None if self.steady is None else _block_dict(self.steady, self.percentiles)
        out["verdict"] = {
            "overloaded": self.verdict.overloaded,
            "steady_state": self.verdict.steady,
            "text": self.verdict.text,
            "needed_duration_s": self.verdict.needed_s,
            "reasons": list(self.verdict.reasons),
        }
        out["warnings"] = list(self.warnings)
        out["server"] = self.server
        out["errors"] = {
            "by_kind": dict(self.errors_by_kind),
            "by_status": {str(k): v for k, v in self.errors_by_status.items()},
        }
        return out


def _block_dict(block: Block, percents) -> dict:
    out = {m.name: getattr(block, m.field) for m in _SCALARS}
    for name, dist in block.latency.items():
        m = BY_NAME[name]
        out[m.key("mean")] = dist and dist.mean
        out[m.key("median")] = dist and dist.percentiles[50]
        out[m.key("std")] = dist and dist.std
        out[m.key("min")] = dist and dist.min
        out[m.key("max")] = dist and dist.max
        for p in percents:
            out[m.key(p)] = dist and dist.percentiles[p]
        out[m.key("samples")] = dist.n if dist else 0
    return out


def summarize(run: Run, *, percentiles=DEFAULT_PERCENTILES, goodput=None, window=None) -> Summary:
    """Figures, steady window, verdict and warnings of a run.

    percentiles: percents to report (0..100). goodput: {"ttft"|"tpot"|"e2el": limit_ms} as
    vLLM's --goodput. window: (start_s, end_s) after schedule time 0, instead of detecting it.
    """
    percentiles = _check_percentiles(percentiles)
    goodput = check_goodput(goodput)
    computed = tuple(sorted({50.0, *percentiles}))
    rm = request_metrics(run)
    good = good_requests(rm, goodput) if goodput else None
    capped = bool((run.manifest.get("config") or {}).get("max_concurrency")) or bool((run.slot_wait_ns > 0).any())
    scope = dict(good=good, percents=computed, slot_wait=capped)
    series = timeline(run, rm)
    everyone = np.ones(run.n, bool)
    whole = measure(run, rm, series, t0_ns=run.start_ns, t1_ns=run.start_ns + duration_ns(run),
                    selected=everyone, served=rm.ok, **scope)
    win: Window | None
    why_none: str | None
    if window is not None:
        win, why_none = Window(*_check_window(window), "manual"), None
    else:
        win, why_none = find_window(run, rm)
    steady = None
    if win is not None:
        t0, t1 = win.bounds_ns(run)
        selected = (run.scheduled_ns >= t0) & (run.scheduled_ns < t1)
        served = rm.ok & (run.end_ns >= t0) & (run.end_ns < t1)
        steady = measure(run, rm, series, t0_ns=t0, t1_ns=t1, selected=selected, served=served, **scope)
    judged = verdict(run, rm, win, why_none)
    blocks = {"whole run": whole}  # named as the tables name them: the warnings say which one is short
    if win is not None and steady is not None:
        blocks[window_name(win, judged)] = steady
    t0_ns, t1_ns = win.bounds_ns(run) if win is not None else (run.start_ns, run.start_ns + duration_ns(run))
    server = server_side(run, t0_ns, t1_ns, series.t_s.size, (steady or whole).latency)
    failed = run.error != NO_ERROR
    kinds = np.bincount(run.error[failed], minlength=len(run.error_names))
    statuses, counts = np.unique(run.http_status[failed], return_counts=True)
    return Summary(
        name=run.name,
        path=str(run.path),
        manifest=run.manifest,
        percentiles=percentiles,
        goodput=goodput,
        whole=whole,
        steady=steady,
        window=win,
        verdict=judged,
        warnings=tuple(warnings(run, rm, blocks, percentiles)) + server.warnings,
        errors_by_kind={name: int(c) for name, c in zip(run.error_names, kinds) if c},
        errors_by_status={int(s): int(c) for s, c in zip(statuses, counts)},
        timeline=series,
        requests=rm,
        server=server.figures,
        server_timeline=server.timeline,
    )


def _check_percentiles(percentiles) -> tuple:
    values = tuple(float(p) for p in percentiles)
    if not values or not all(0 <= p <= 100 for p in values):
        raise VarcasError(f"percentiles must be between 0 and 100, got {list(percentiles)}")
    return values


def parse_goodput(items: list[str]) -> dict:
    """--goodput KEY:MS items (vLLM's format, e.g. ttft:500 tpot:50) as {key: ms}; checked by summarize."""
    slos = {}
    for item in items:
        key, _, value = item.partition(":")
        try:
            slos[key.strip().lower()] = float(value)
        except ValueError:
            raise VarcasError(f"--goodput: expected KEY:MS such as ttft:500, got {item!r}") from None
    return slos


def check_goodput(goodput) -> dict | None:
    """SLOs {ttft|tpot|e2el: ms} checked (known keys, positive finite limits); None for none."""
    if not goodput:
        return None
    for key, limit in goodput.items():
        if key not in SLO_METRICS:
            raise VarcasError(f"goodput: unknown metric {key!r} (known: {', '.join(SLO_METRICS)})")
        if not 0 < limit < float("inf"):
            raise VarcasError(f"goodput: the {key} limit must be a positive number of ms, got {limit}")
    return {k: float(v) for k, v in goodput.items()}


def _check_window(window) -> tuple[float, float]:
    start, end = (float(x) for x in window)
    if not 0 <= start < end:
        raise VarcasError(f"window: need 0 <= START < END seconds, got {start:g}:{end:g}")
    return start, end
