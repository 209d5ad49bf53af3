"""Capacity search: the highest request rate at which SLOs hold for a given share of requests.

Each step is one normal load run at a fixed rate (run_at(rate) -> run directory), judged over
its steady window (varcas.analyze's, warm-up and drain cut):
  attainment  requests scheduled in the window that succeeded and met every SLO
              (analyze.metrics.good_requests), over every request scheduled in the window:
              failed and unfinished requests count as misses.
  pass        attainment >= the target and the verdict does not call the server overloaded. A
              run without a steady window (too short) fails with the reason; where no steady
              state was found, the stand-in window (trust.find_window) is judged as it is.
Bracketing: from the start rate, double while passing (up to max_rps) or halve while failing
(down to min_rps); then bisect at the geometric midpoint of the highest pass (lo) and the lowest
fail (hi) until hi/lo - 1 <= tolerance or max_steps runs in all. Every pass lies at or below lo
and every fail at or above hi, so the capacity is lo. Rates are rounded to 4 significant
digits, so a rate, its run directory (rate-12.5) and the run's config say the same number;
tolerance >= MIN_TOLERANCE keeps every midpoint strictly inside the bracket.

Knee: per step, goodput against the offered load, both of the requests scheduled in the window:
their ratio is the attainment. Going up the tested rates, the knee is the last rate before the
first one whose attainment falls below the target: where goodput stops tracking offered load.
It is judged without the overload verdict, so it is the capacity (the bracket's lower end), with
the bracket's upper end the first rate past it, unless runs failed on the overload verdict alone:
then it sits higher. (vLLM's request goodput counts the good requests *finishing* in the window
instead; while the in-flight count still rises through a window, that falls short of the offered
load even where every request met the SLOs, so it does not judge the knee.) The knee's sentence
names each side as the table shows it (rate_text, share_text) and whether it passed.

sweep(): search() with the steps' runs in OUT/rate-<rate>/ and OUT/capacity.json rewritten after
every step. Rerun with the same spec, it reuses the runs it recorded that completed.
"""
from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..analyze.metrics import good_requests
from ..analyze.run import load_run
from ..analyze.summary import check_goodput, summarize
from ..errors import VarcasError
from ..results import files
from ..rundir import MANIFEST

CAPACITY_FILE = files.CAPACITY.name
MIN_TOLERANCE = 0.005  # 4 significant digits: a bracket wider than this always has a midpoint
_UNCOMPARED = ("tolerance", "max_steps", "backend")  # may change on resume: they only decide when to stop


@dataclass(frozen=True)
class Step:
    """One tested rate: its run and how it was judged (figures over the steady window)."""

    rate_rps: float
    run_dir: str
    status: str | None  # the run's status: complete, interrupted, ...
    passed: bool
    reason: str  # why it failed, in words ("" when it passed)
    attainment: float | None = None
    offered_rps: float | None = None
    goodput_rps: float | None = None
    output_tok_s: float | None = None
    ttft_p50_ms: float | None = None
    ttft_p99_ms: float | None = None
    tpot_p50_ms: float | None = None
    tpot_p99_ms: float | None = None
    overloaded: bool | None = None
    verdict: str = ""
    reused: bool = False  # sweep() found this run complete from an earlier invocation


@dataclass(frozen=True)
class Knee:
    """Where goodput stops tracking offered load, among the tested rates (see the module docstring)."""

    below: Step | None  # the last tested rate before it stops (None: not even at the lowest)
    above: Step | None  # the first tested rate where it does not track (None: it tracked at every one)

    def to_dict(self) -> dict:
        """Rate, offered load, attainment and goodput (req/s) on either side of the knee."""
        return {f"{side}_{key}": getattr(step, key) if step else None
                for side, step in (("below", self.below), ("above", self.above))
                for key in ("rate_rps", "offered_rps", "attainment", "goodput_rps")}


@dataclass(frozen=True)
class CapacityResult:
    """What a search found: every step, the capacity and its bracket, the knee."""

    steps: tuple[Step, ...]
    slos: dict
    attainment: float
    capacity_rps: float | None  # highest passing rate, the bracket's lower end; None when none passed
    hi_rps: float | None  # lowest failing rate, the bracket's upper end; None when every tested rate passed
    outcome: str  # converged | above max | below min | max steps | interrupted | running
    knee: Knee

    @property
    def lo_rps(self) -> float | None:
        return self.capacity_rps

    def to_dict(self) -> dict:
        """JSON-ready: the result, then every step."""
        return {
            "capacity_rps": self.capacity_rps, "bracket": {"lo_rps": self.lo_rps, "hi_rps": self.hi_rps},
            "outcome": self.outcome, "runs": len(self.steps), "knee": self.knee.to_dict(), "text": self.text,
        }

    @property
    def text(self) -> str:
        """The answer in one line: capacity, bracket or why there is none, and the knee."""
        return f"{_capacity_text(self)}; knee: {_knee_text(self)}"


def rate_text(value: float | None) -> str:
    """A rate in req/s as the table and the knee's sentence show it: 3 significant digits."""
    return "-" if value is None else f"{value:.3g}"


def share_text(value: float | None) -> str:
    """An attainment as the table and the knee's sentence show it: '99.5%'."""
    return "-" if value is None else f"{value:.1%}"


def round_rate(rate: float) -> float:
    """A rate as the search tests it: 4 significant digits."""
    return float(f"{rate:.4g}")


def slo_text(slos: dict, attainment: float) -> str:
    """'ttft<=1000 ms, tpot<=100 ms for 99% of requests'."""
    limits = ", ".join(f"{k}<={v:g} ms" for k, v in slos.items())
    return f"{limits} for {attainment * 100:g}% of requests"


def check_search(slos: dict, attainment: float, start_rps: float, min_rps: float, max_rps: float,
                 tolerance: float, max_steps: int) -> dict:
    """Validate a search's settings (VarcasError naming the flag); returns the checked SLOs."""
    checked = check_goodput(slos)
    if not checked:
        raise VarcasError("--goodput: give at least one SLO, e.g. ttft:1000 tpot:100")
    if not 0 < attainment <= 1:
        raise VarcasError(f"--attainment must be in (0, 1], got {attainment:g}")
    for flag, value in (("--start", start_rps), ("--min-rps", min_rps), ("--max-rps", max_rps)):
        if not 0 < value < math.inf:
            raise VarcasError(f"{flag} must be a positive number of requests/s, got {value:g}")
    if round_rate(min_rps) > round_rate(max_rps):
        raise VarcasError(f"--min-rps ({min_rps:g}) must not exceed --max-rps ({max_rps:g})")
    if not MIN_TOLERANCE <= tolerance <= 1:
        raise VarcasError(f"--tolerance must be in [{MIN_TOLERANCE:g}, 1], got {tolerance:g}")
    if max_steps < 1:
        raise VarcasError(f"--max-steps must be >= 1, got {max_steps}")
    return checked


def judge(run_dir: Path, rate: float, slos: dict, attainment: float) -> Step:
    """Judge one run against the SLOs over its steady window (see the module docstring)."""
    run = load_run(run_dir)
    status = run.manifest.get("status")
    if status == "interrupted":
        return Step(rate, str(run_dir), status, False, "the run was interrupted")
    s = summarize(run, goodput=slos)
    base = Step(rate, str(run_dir), status, False, "", overloaded=s.verdict.overloaded, verdict=s.verdict.text)
    t0, t1 = s.window.bounds_ns(run) if s.window is not None else (0, 0)
    selected = (run.scheduled_ns >= t0) & (run.scheduled_ns < t1)
    scheduled = int(selected.sum())
    if s.steady is None or not scheduled:
        why = "; ".join(s.verdict.reasons) if s.steady is None else "no request was scheduled in it"
        return replace(base, reason=f"no steady window: {why}")
    share = int((good_requests(s.requests, s.goodput) & selected).sum()) / scheduled
    fails = []
    if share < attainment:
        fails.append(f"{share:.2%} of requests met the SLOs (target {attainment:.2%})")
    if s.verdict.overloaded:
        fails.append("overloaded: " + "; ".join(s.verdict.reasons))
    steady, latency = s.steady, s.steady.latency
    return replace(
        base, passed=not fails, reason="; ".join(fails), attainment=share,
        offered_rps=scheduled / steady.duration_s, goodput_rps=steady.request_goodput,
        output_tok_s=steady.output_throughput,
        ttft_p50_ms=_pct(latency["ttft"], 50), ttft_p99_ms=_pct(latency["ttft"], 99),
        tpot_p50_ms=_pct(latency["tpot"], 50), tpot_p99_ms=_pct(latency["tpot"], 99),
    )


def _pct(dist, p) -> float | None:
    return None if dist is None else dist.percentiles[p]


def search(run_at: Callable[[float], Path], slos: dict, *, attainment: float = 0.99, start_rps: float,
           min_rps: float, max_rps: float, tolerance: float = 0.05, max_steps: int = 12,
           judge_run: Callable[..., Step] = judge, on_step: Callable[[Step], None] | None = None) -> CapacityResult:
    """Bracket and bisect over rates (module docstring); each step runs run_at(rate) and judges it
    with judge_run(run_dir, rate, slos, attainment). Stops early at an interrupted run."""
    slos = check_search(slos, attainment, start_rps, min_rps, max_rps, tolerance, max_steps)
    min_rps, max_rps = round_rate(min_rps), round_rate(max_rps)
    steps: list[Step] = []
    lo: float | None = None
    hi: float | None = None
    rate: float | None = round_rate(min(max(start_rps, min_rps), max_rps))
    outcome: str | None = None
    while rate is not None and len(steps) < max_steps:  # rate is None once outcome says why it is over
        step = judge_run(run_at(rate), rate, slos, attainment)
        steps.append(step)
        if on_step is not None:
            on_step(step)
        if step.status == "interrupted":
            outcome = "interrupted"
            break
        lo, hi = (rate, hi) if step.passed else (lo, rate)
        rate, outcome = _next_rate(lo, hi, min_rps, max_rps, tolerance)
    return conclude(steps, slos, attainment, outcome or "max steps")


def _next_rate(lo, hi, min_rps, max_rps, tolerance) -> tuple[float, None] | tuple[None, str]:
    """(the next rate to test, None), or (None, why the search is over)."""
    if hi is None:
        return (None, "above max") if lo >= max_rps else (round_rate(min(2 * lo, max_rps)), None)
    if lo is None:
        return (None, "below min") if hi <= min_rps else (round_rate(max(hi / 2, min_rps)), None)
    if hi / lo - 1 <= tolerance:
        return None, "converged"
    return round_rate(math.sqrt(lo * hi)), None


def conclude(steps: list[Step], slos: dict, attainment: float, outcome: str) -> CapacityResult:
    """The result the steps so far support (outcome: how the search ended, or 'running')."""
    judged = [s for s in steps if s.status != "interrupted"]
    passes = [s.rate_rps for s in judged if s.passed]
    fails = [s.rate_rps for s in judged if not s.passed]
    lo, hi = max(passes, default=None), min(fails, default=None)
    return CapacityResult(tuple(steps), dict(slos), attainment, lo, hi, outcome, knee(judged, attainment))


def knee(steps: list[Step], attainment: float) -> Knee:
    """The last tested rate before the attainment first falls below the target (verdict aside)."""
    by_rate = {s.rate_rps: s for s in steps}
    below = None
    for rate in sorted(by_rate):
        s = by_rate[rate]
        if s.attainment is None or s.attainment < attainment:
            return Knee(below, s)
        below = s
    return Knee(below, None)


def _capacity_text(r: CapacityResult) -> str:
    slo = slo_text(r.slos, r.attainment)
    runs = f"{len(r.steps)} run{'s' if len(r.steps) != 1 else ''}"
    how = {"converged": runs, "above max": f"{runs}; --max-rps passed, the capacity may be higher",
           "below min": f"{runs}; even --min-rps fails", "max steps": f"not converged in {runs}: raise --max-steps",
           }.get(r.outcome, f"{r.outcome} after {runs}")
    if r.lo_rps is None:
        fails = f"; {r.hi_rps:g} req/s fails" if r.hi_rps is not None else ""
        return f"capacity: none found ({slo}){fails} ({how})"
    at_least = ">= " if r.hi_rps is None else ""
    fails = f"; {r.hi_rps:g} req/s fails" if r.hi_rps is not None else ""
    return f"capacity: {at_least}{r.lo_rps:g} req/s ({slo}){fails} ({how})"


def _load_text(step: Step) -> str:
    """A step as its table row shows it: rate, attainment of the offered load, and the outcome."""
    outcome = "passed" if step.passed else "failed, overloaded" if step.overloaded else "failed"
    if step.attainment is None:
        return f"{step.rate_rps:g} req/s (no steady window; {outcome})"
    return (f"{step.rate_rps:g} req/s ({share_text(step.attainment)} of {rate_text(step.offered_rps)} offered "
            f"req/s; {outcome})")


def _knee_text(r: CapacityResult) -> str:
    below, above = r.knee.below, r.knee.above
    meet = f"{r.attainment * 100:g}% of the offered requests meet the SLOs"
    if below is None:
        return f"fewer than {meet} already at {_load_text(above)}" if above else "no rate judged"
    tracks = f"at least {meet} up to {_load_text(below)}"
    if above is None:
        return tracks + ", the highest rate tried"
    # Every pass lies below every fail, so a knee off the capacity is above it, past verdict-only fails.
    relation = ("the capacity bracket" if below.rate_rps == r.lo_rps
                else "above the capacity: runs up to it met the SLOs but failed on the overload verdict")
    return f"{tracks}, fewer at {_load_text(above)}: {relation}"


@dataclass(frozen=True)
class SearchSpec:
    """What a capacity search is: compared with capacity.json's on resume (except _UNCOMPARED)."""

    slos: dict
    attainment: float
    start_rps: float
    min_rps: float
    max_rps: float
    tolerance: float
    max_steps: int
    load: dict = field(default_factory=dict)  # what every run is besides its rate: workload, duration_s, seed, target
    backend: str = ""  # the backend's description, for the record (its port changes between invocations)


def rate_dir(out: Path, rate: float) -> Path:
    """A step's run directory: OUT/rate-<rate>."""
    return Path(out) / f"rate-{rate:g}"


def open_out(out: Path, spec: SearchSpec) -> list[dict]:
    """Create OUT, or check it holds a search with this spec; returns the steps it recorded.
    A search that recorded no step yet has nothing to keep: it takes the new spec."""
    out = Path(out)
    steps: list[dict] = []
    if files.exists(out, files.CAPACITY):
        doc = files.read(out, files.CAPACITY)
        old, recorded = doc.get("spec"), doc.get("steps")
        if not isinstance(old, dict) or not isinstance(recorded, list):
            raise VarcasError(f"{out / CAPACITY_FILE}: unreadable (no spec or steps); use another --out")
        steps = recorded
        ours = _comparable(asdict(spec))
        differ = sorted(k for k in ours.keys() | _comparable(old).keys() if ours.get(k) != old.get(k))
        if differ and steps:
            raise VarcasError(f"--out {out} holds a capacity search with another {', '.join(differ)}; "
                              "use another --out")
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise VarcasError(f"--out {out}: exists and is neither empty nor a capacity search")
    if not steps:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise VarcasError(f"--out {out}: cannot create ({exc.strerror})") from None
        files.write(out, files.CAPACITY, {"spec": asdict(spec), "steps": [], "result": None})
    return steps


def _comparable(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k not in _UNCOMPARED}


def _complete(run_dir: Path) -> bool:
    try:
        return json.loads((run_dir / MANIFEST).read_text()).get("status") == "complete"
    except (OSError, ValueError, AttributeError):
        return False


def sweep(out: Path, spec: SearchSpec, run_rate: Callable[[float, Path], Path], *,
          on_step: Callable[[Step], None] | None = None) -> CapacityResult:
    """search() with each step's run in OUT/rate-<rate> (run_rate(rate, run_dir) makes it) and
    OUT/capacity.json rewritten after every step. Runs recorded by an earlier invocation with
    the same spec that completed are reused; a leftover directory of any other step is replaced."""
    out = Path(out)
    check_search(spec.slos, spec.attainment, spec.start_rps, spec.min_rps, spec.max_rps, spec.tolerance,
                 spec.max_steps)
    recorded = {Path(s["run_dir"]).name for s in open_out(out, spec) if isinstance(s, dict) and s.get("run_dir")}
    steps: list[Step] = []
    reused: set[str] = set()

    def run_at(rate: float) -> Path:
        run_dir = rate_dir(out, rate)
        if run_dir.name in recorded and _complete(run_dir):
            reused.add(str(run_dir))
            return run_dir
        if run_dir.exists():
            shutil.rmtree(run_dir)
        return run_rate(rate, run_dir)

    def record(step: Step) -> None:
        step = replace(step, reused=step.run_dir in reused)
        steps.append(step)
        _save(out, spec, conclude(steps, spec.slos, spec.attainment, "running"))
        if on_step is not None:
            on_step(step)

    try:
        result = search(run_at, spec.slos, attainment=spec.attainment, start_rps=spec.start_rps,
                        min_rps=spec.min_rps, max_rps=spec.max_rps, tolerance=spec.tolerance,
                        max_steps=spec.max_steps, on_step=record)
    except KeyboardInterrupt:  # between runs (a run catches its own): keep what was done, say so
        _save(out, spec, conclude(steps, spec.slos, spec.attainment, "interrupted"))
        raise
    result = replace(result, steps=tuple(steps))
    _save(out, spec, result)
    return result


def _save(out: Path, spec: SearchSpec, result: CapacityResult) -> None:
    files.write(out, files.CAPACITY, {"spec": asdict(spec), "steps": [asdict(s) for s in result.steps],
                                      "result": result.to_dict()})
