"""digest(run_dir): everything the comparison and the report need from one run, as a Digest.

A digest is `varcas analyze`'s summary (whole run, steady window, verdict, warnings) plus the
latency CDFs (201 quantiles each, of the window's requests), the per-second timeline (and the
server's, from its /metrics, where it has one) and the window's mean concurrency and token
counts: a few kilobytes however large the run. It is cached as digest.json in the run directory
(Digest.to_json), keyed by the size and mtime of the request file and of metrics.parquet, the
SLOs and DIGEST_VERSION, so reading a sweep again costs a JSON read per run; a read-only
directory just goes uncached. A run whose requests or metrics file changed is digested again.
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from .. import metricsfile, rundir
from ..analyze import kernels
from ..analyze.catalog import LATENCY, METRICS
from ..analyze.metrics import NS_PER_MS, samples
from ..analyze.run import load_run
from ..analyze.summary import summarize
from ..errors import VarcasError

# bump whenever analysis results change (verdict rules, metrics, warnings) or the stored shape
# does, or caches go stale. 3: trust warnings name metrics by their catalog label (E2E, not E2EL).
# 4: server_timeline; the server section gains p10, the running-batch histogram, its own TTFT/ITL;
# the key holds metrics.parquet's size and mtime. 5: the verdict's needed_duration_s.
DIGEST_VERSION = 5
DIGEST_FILE = "digest.json"
CDF_PERCENTS = np.linspace(0.0, 100.0, 201)
CDF_METRICS = tuple(m.name for m in METRICS if m.kind == LATENCY)


@dataclass(frozen=True)
class Timeline:
    """The run's per-second series from its start (analyze.Timeline's, as plain numbers)."""

    t_s: tuple[float, ...]  # each bin's start, seconds after start_ns
    sent: tuple[int, ...]
    completed: tuple[int, ...]
    in_flight: tuple[int, ...]  # at the end of each second
    output_tokens: tuple[int, ...]
    errors: tuple[int, ...]


@dataclass(frozen=True)
class ServerTimeline:
    """The server's per-second series from the run's start (analyze.server.ServerTimeline's, as plain
    numbers; None where its scrapes said nothing)."""

    t_s: tuple[float, ...]  # each bin's start, seconds after start_ns (the client timeline's bins)
    series: dict[str, tuple[float | None, ...]]  # catalog.SERVER_METRICS name -> per second, in its unit

    @classmethod
    def of(cls, tl) -> ServerTimeline:
        """The plain-number copy of an analyze.server.ServerTimeline."""
        return cls(tuple(tl.t_s.tolist()), {k: tuple(None if np.isnan(x) else x for x in v.tolist())
                                            for k, v in tl.series.items()})


@dataclass(frozen=True)
class Digest:
    """One run as the comparison and the report read it. summary is analyze's JSON output
    (Summary.to_dict(): vLLM's keys, steady, window, verdict, warnings, server), kept a dict."""

    key: dict  # what the cache is valid for: DIGEST_VERSION, the SLOs, the requests and metrics files' size and mtime
    run: str
    path: str  # the run directory, where it was read this time
    workload: str | None
    scope: str  # "steady": figures and CDFs are the steady window's; "whole": no window was found
    summary: dict
    offered_rps: float | None
    mean_in_flight: float | None  # over the scope
    mean_input_tokens: float | None  # of requests with latencies
    mean_output_tokens: float | None
    cdf_percents: tuple[float, ...]  # the CDFs' y values (percent of requests)
    cdf_ms: dict[str, tuple[float, ...] | None]  # CDF_METRICS name -> quantiles at cdf_percents (ms); None: no sample
    timeline: Timeline
    server_timeline: ServerTimeline | None = None  # None: the run has no server series (no /metrics)

    def to_json(self) -> dict:
        """digest.json's content (plain JSON types)."""
        out = asdict(self)
        out["cdf_percents"] = list(self.cdf_percents)
        out["cdf_ms"] = {k: None if v is None else list(v) for k, v in self.cdf_ms.items()}
        out["timeline"] = {k: list(v) for k, v in out["timeline"].items()}
        if self.server_timeline is not None:
            out["server_timeline"] = {"t_s": list(self.server_timeline.t_s),
                                      "series": {k: list(v) for k, v in self.server_timeline.series.items()}}
        return out

    @classmethod
    def from_json(cls, data: dict) -> Digest:
        """The Digest of digest.json's content; KeyError, TypeError or AttributeError when it is not one."""
        names = {f.name for f in fields(cls)}
        if not isinstance(data, dict) or data.keys() != names:
            raise KeyError("not a digest: other fields")
        server = data["server_timeline"]
        return cls(**{**data, "cdf_percents": tuple(data["cdf_percents"]),
                      "cdf_ms": {k: None if v is None else tuple(v) for k, v in data["cdf_ms"].items()},
                      "timeline": Timeline(**{k: tuple(v) for k, v in data["timeline"].items()}),
                      "server_timeline": None if server is None else ServerTimeline(
                          tuple(server["t_s"]), {k: tuple(v) for k, v in server["series"].items()})})


def _source_key(run_dir: Path) -> dict:
    for name in (rundir.PARQUET, rundir.ARROWS):
        path = run_dir / name
        if path.is_file():
            st = path.stat()
            return {"file": name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    raise VarcasError(f"{run_dir}: not a run directory (no {rundir.PARQUET} or {rundir.ARROWS})")


def _metrics_key(run_dir: Path) -> dict | None:
    """metrics.parquet's size and mtime (the server section and timeline come from it); None without one."""
    path = run_dir / metricsfile.METRICS_PARQUET
    if not path.is_file():
        return None
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _key(run_dir: Path, goodput: dict | None) -> dict:
    return {"version": DIGEST_VERSION, "goodput": goodput, "source": _source_key(run_dir),
            "metrics": _metrics_key(run_dir)}


def cached(run_dir, goodput: dict | None = None) -> Digest | None:
    """The run's digest.json if it is current, else None."""
    path = Path(run_dir) / DIGEST_FILE
    try:
        found = Digest.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # missing, corrupt, unreadable or of another shape: recompute
    return found if found.key == _key(Path(run_dir), goodput) else None


def digest(run_dir, goodput: dict | None = None, *, cache: bool = True, store: bool = True) -> Digest:
    """The digest of one run directory: from digest.json when it is current (cache), else
    computed and, with store, saved there (a reader that must not write passes store=False)."""
    run_dir = Path(run_dir)
    if cache and (hit := cached(run_dir, goodput)) is not None:
        return replace(hit, path=str(run_dir))  # the directory may have moved since
    made = compute(run_dir, goodput)
    data = json.loads(json.dumps(made.to_json(), allow_nan=False, default=_json_default))  # as if read back
    if cache and store:
        with contextlib.suppress(VarcasError):  # a read-only directory just goes uncached
            rundir.write_json(run_dir / DIGEST_FILE, data)
    return Digest.from_json(data)


def digests(run_dirs: list, goodput: dict | None = None, *, store: bool = True) -> list[Digest]:
    """digest() of many runs, in order. One at a time: the kernels already use every core."""
    return [digest(p, goodput, store=store) for p in run_dirs]


def compute(run_dir: Path, goodput: dict | None) -> Digest:
    """The digest, computed from the run's requests (summarize's per-request figures reused)."""
    run_dir = Path(run_dir)
    key = _key(run_dir, goodput)
    run = load_run(run_dir)
    summary = summarize(run, goodput=goodput)
    rm = summary.requests
    if summary.window is not None:
        t0, t1 = summary.window.bounds_ns(run)
        chosen = (run.scheduled_ns >= t0) & (run.scheduled_ns < t1)
        first, last = int(summary.window.start_s), int(np.ceil(summary.window.end_s))
    else:
        chosen = np.ones(run.n, bool)
        first, last = 0, summary.timeline.t_s.size
    cdf_ms = {}
    for name in CDF_METRICS:
        values = samples(run, rm, chosen, name)
        cdf_ms[name] = tuple((kernels.percentiles(values, CDF_PERCENTS) / NS_PER_MS).tolist()) if values.size else None
    tl = summary.timeline
    in_flight = tl.in_flight[first:last]
    config = run.manifest.get("config") or {}
    return Digest(
        key=key,
        run=run.name,
        path=str(run_dir),
        workload=config.get("workload"),
        scope="steady" if summary.steady is not None else "whole",
        summary=summary.to_dict(),
        offered_rps=_offered_rps(run),
        mean_in_flight=float(in_flight.mean()) if in_flight.size else None,
        mean_input_tokens=float(rm.input_tokens[rm.measured].mean()) if rm.measured.any() else None,
        mean_output_tokens=float(rm.output_tokens[rm.measured].mean()) if rm.measured.any() else None,
        cdf_percents=tuple(CDF_PERCENTS.tolist()),
        cdf_ms=cdf_ms,
        timeline=Timeline(*(tuple(getattr(tl, f.name).tolist()) for f in fields(Timeline))),
        server_timeline=None if summary.server_timeline is None else ServerTimeline.of(summary.server_timeline),
    )


def _offered_rps(run) -> float | None:
    """Requests scheduled per second of the send phase (the rate the schedule asked for)."""
    if run.n < 2:
        return None
    span = (int(run.scheduled_ns.max()) - run.start_ns) / 1e9
    return run.n / span if span > 0 else None


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON: {type(value).__name__}")
