"""run_sweep(spec): every configuration of a parameter grid, each workload a normal load run.

Per configuration: start the backend (backend.open_backend: a server from the command
template, or the simulator), warm it up with a few short requests, run each workload into its
own run directory, stop the server (SIGTERM, then SIGKILL), go on. A server that never becomes
ready, or exits during a run, or a run that cannot start, marks that configuration failed with
the reason; the sweep goes on. Ctrl-C (or SIGTERM) ends the current run as `varcas load` does
(in-flight requests drain, everything recorded is kept), stops the server and ends the sweep
with status interrupted. Running the same command again resumes: configurations whose runs all
completed are skipped, an unfinished run is moved aside (kept as <workload>.partial-N) and redone,
failed configurations are retried. The layout is sweepdir's; comparison.json is written
when the sweep ends, finished or interrupted.

With a CapacityPlan, each configuration runs each workload at its own capacity instead of one
rate: a capacity search (capacity.sweep, into <config-id>/<workload>.capacity/) under the plan's
SLOs, whose highest passing run is copied to <config-id>/<workload>/, so the comparison sets the
configurations side by side at rates each one sustains. A workload without a passing rate leaves
no run and the configuration's reason says so, with the search's numbers; the others go on.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .. import __version__, rundir
from ..errors import VarcasError
from ..load.runner import LoadConfig
from ..results import files, sweepdir
from ..results.comparison import comparison
from ..results.digest import digest
from ..schedule.workloads import load_workload
from ..signals import held, interrupts_raise
from . import capacity
from .backend import BackendSpec, open_backend, sim_setup
from .params import config_id, grid
from .server import ServerStartError

WARMUP_INPUT, WARMUP_OUTPUT = 64, 16
LOG_LINES_SHOWN = 5  # of a server that did not start (config.json keeps 20)


class SweepInterrupted(Exception):
    """Ctrl-C or SIGTERM stopped the sweep; everything finished so far is on disk."""


CAPACITY_SUFFIX = ".capacity"  # <workload>.capacity/: a CapacityPlan's search for that workload


@dataclass(frozen=True)
class CapacityPlan:
    """Run every configuration at its own capacity under these SLOs (see the module docstring)."""

    slos: dict
    attainment: float = 0.99
    tolerance: float = 0.1
    max_steps: int = 8
    min_rps: float = 0.05
    max_rps: float = 1000.0
    start_rps: dict = field(default_factory=dict)  # (config id, workload name) -> first rate (default: the workload's)

    def identity(self) -> dict:
        """What a resumed sweep must match (the start rates only decide where each search begins)."""
        return {"slos": self.slos, "attainment": self.attainment, "tolerance": self.tolerance,
                "max_steps": self.max_steps, "min_rps": self.min_rps, "max_rps": self.max_rps}


@dataclass
class SweepSpec:
    backend: BackendSpec
    params: list  # [(name, (value, ...)), ...] in --param order
    workloads: tuple
    out: str
    duration_s: float = 120.0
    rps: float | None = None  # None: each workload's own rate
    seed: int = 0
    warmup: int = 8
    goodput: dict | None = None
    roofline: dict | None = None  # {model, gpu, quant} for the explanation of a real server
    request_timeout_s: float = 600.0
    drain_timeout_s: float = 30.0
    quiet: bool = False
    clip_to_context: bool = False  # shorten requests over the server's max_model_len (else refused)
    capacity: CapacityPlan | None = None  # each configuration at its own capacity, not at one rate
    workers: int | str | None = None  # load worker processes per run (--workers; the client, not the server)
    configs: list = field(init=False, default_factory=list)
    names: dict = field(init=False, default_factory=dict)  # workload as given -> its name (the run's directory)

    def identity(self) -> dict:
        """What makes two sweeps the same (a resumed sweep must match it)."""
        return {"backend": self.backend.public(), "params": [[n, list(v)] for n, v in self.params],
                "workloads": list(self.workloads), "duration_s": self.duration_s, "rps": self.rps,
                "seed": self.seed, "warmup": self.warmup, **({"clip_to_context": True} if self.clip_to_context else {}),
                **({"capacity": self.capacity.identity()} if self.capacity else {})}


def prepare(spec: SweepSpec) -> Path:
    """Check every input before anything starts; create or reopen the sweep directory."""
    spec.backend.check([name for name, _ in spec.params])
    spec.names = {w: load_workload(w).name for w in spec.workloads}
    if len(set(spec.names.values())) != len(spec.names):
        raise VarcasError(f"--workload: two workloads share a name ({', '.join(spec.names.values())})")
    spec.configs = [(config_id(p), p) for p in grid(spec.params)]
    if spec.backend.kind in ("sim", "offline"):
        for _, params in spec.configs:
            sim_setup(spec.backend.sim, params)
    out = Path(spec.out)
    ident = spec.identity()
    if sweepdir.is_sweep(out):
        old = sweepdir.read_sweep(out)
        diff = [k for k in ident if old.get("identity", {}).get(k) != ident[k]]
        if diff:
            raise VarcasError(f"{out}: a sweep with other settings ({', '.join(diff)}); rerun it with the same "
                              f"flags to resume, or choose another --out")
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise VarcasError(f"--out {out}: exists and is not a sweep directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VarcasError(f"--out {out}: cannot create ({exc.strerror})") from None
    files.write(out, files.SWEEP, {
        "varcas_version": __version__, "identity": ident, "configs": [[cid, p] for cid, p in spec.configs],
        "workloads": list(spec.names.values()), "goodput": spec.goodput, "roofline": spec.roofline,
        "backend": spec.backend.public(), "updated_at": _now()})
    return out


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def run_sweep(spec: SweepSpec, console=None, say=print) -> Path:
    """Run (or resume) the sweep; returns its directory. Raises SweepInterrupted on Ctrl-C/SIGTERM."""
    out = prepare(spec)
    started, ran = time.monotonic(), 0
    with interrupts_raise() as rearm:
        for n, (cid, params) in enumerate(spec.configs, 1):
            state = sweepdir.read_config(out, cid)
            if state and state["status"] == "complete" and all(
                    sweepdir.run_complete(out / cid / name) for name in spec.names.values()):
                say(f"[{n}/{len(spec.configs)}] {cid}: done earlier, skipped")
                continue
            say(f"[{n}/{len(spec.configs)}] {cid}: starting{_progress(time.monotonic() - started, ran, spec, n)}")
            state = _run_config(spec, out, cid, params, console, rearm, say)
            ran += 1
            say(f"[{n}/{len(spec.configs)}] {cid}: {state['status']}"
                + (f" ({state['reason']})" if state.get("reason") else ""))
            for line in state.get("log_tail", [])[-LOG_LINES_SHOWN:]:
                say(f"    | {line}")
            if state["status"] == "interrupted":
                _conclude(out)
                raise SweepInterrupted(cid)
    _conclude(out)
    return out


def _progress(elapsed_s: float, ran: int, spec: SweepSpec, n: int) -> str:
    """' (12 min elapsed, about 30 min left)': the time left from the configurations run so far
    (each one's time alike); nothing before the first has run."""
    if not ran:
        return ""
    left = elapsed_s / ran * (len(spec.configs) - n + 1)
    return f" ({_minutes(elapsed_s)} elapsed, about {_minutes(left)} left)"


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def _conclude(out: Path) -> None:
    """comparison.json of what the sweep has so far (also when interrupted: the report reads it).
    Signals wait until it is written."""
    with held():
        comparison(out)


def _run_config(spec: SweepSpec, out: Path, cid: str, params: dict, console, rearm, say) -> dict:
    cdir = out / cid
    cdir.mkdir(exist_ok=True)
    runs: dict[str, str] = {}  # stage (its run directory) -> the run's status
    state: dict[str, object] = {"id": cid, "params": params, "status": "running", "reason": None,
                                "started_at": _now(), "runs": runs}
    sweepdir.write_config(out, state)
    log = cdir / "server.log"
    try:
        with open_backend(spec.backend, params, log, console) as backend:
            if backend.server is not None:
                state["server"] = {"argv": backend.server.argv, "log": log.name, "ready_s": backend.server.ready_s,
                                   "url": backend.server.url, "model": backend.server.model, "pid": backend.server.pid}
                sweepdir.write_config(out, state)
            say(f"    {backend.describe()}")
            stage = "the warm-up"
            try:
                if backend.kind != "offline" and spec.warmup:
                    _warm_up(spec, backend, cdir, rearm)
                missed = state["reasons"] = {}  # a CapacityPlan's workloads without a passing rate: why
                for workload, stage in spec.names.items():
                    if spec.capacity is None:
                        runs[stage] = _run_workload(spec, backend, cdir / stage, workload, rearm)
                    else:
                        runs[stage], why = _run_at_capacity(spec, backend, cdir / stage, cid, workload, rearm, say)
                        if why:
                            missed[stage] = why
                    sweepdir.write_config(out, state)
                    if runs[stage] == "interrupted":
                        state["status"] = "interrupted"
                        break
                    if problem := backend.problem():  # the server died: that is the reason
                        state.update(status="failed", reason=f"{problem} (during {stage})")
                        break
                    if runs[stage] == "failed" and spec.capacity is None:  # every request failed, or fail-fast
                        failure = rundir.read_manifest(cdir / stage).get("failure")
                        state.update(status="failed", reason=f"{failure} (during {stage})")
                        break
                else:
                    state.update(status="failed" if missed else "complete",
                                 reason="; ".join(f"{w}: {why}" for w, why in missed.items()) or None)
            except VarcasError as exc:  # e.g. the server stopped answering: say so if it died
                problem = backend.problem()
                state.update(status="failed", reason=f"{problem} (during {stage})" if problem else str(exc))
    except ServerStartError as exc:
        state.update(status="failed", reason=exc.reason, log_tail=exc.log_tail)
    except VarcasError as exc:
        state.update(status="failed", reason=str(exc))
    except KeyboardInterrupt:
        state["status"] = "interrupted"
    finally:
        if state["status"] == "running":  # an unexpected exception: record it, then let it go
            state.update(status="failed", reason="varcas stopped with an internal error")
        state["ended_at"] = _now()
        sweepdir.write_config(out, state)
    return state


def _warm_up(spec: SweepSpec, backend, cdir: Path, rearm) -> None:
    """A few short requests first (compilation, caches), into a throwaway run directory.
    Ctrl-C or SIGTERM during it interrupts the configuration like one during a run."""
    wdir = cdir / "warmup"
    shutil.rmtree(wdir, ignore_errors=True)
    try:
        backend.run(LoadConfig(workload=spec.workloads[0], num_requests=spec.warmup, rps=float(spec.warmup),
                               input_len=WARMUP_INPUT, output_len=WARMUP_OUTPUT, out=str(wdir), quiet=True,
                               seed=spec.seed, request_timeout_s=spec.request_timeout_s,
                               drain_timeout_s=spec.request_timeout_s))
    finally:
        rearm()  # the run's event loop reset the SIGTERM handler
    if rundir.read_manifest(wdir).get("status") == "interrupted":
        raise KeyboardInterrupt


def _run_workload(spec: SweepSpec, backend, run_dir: Path, workload: str, rearm) -> str:
    """One workload's run (skipped if complete); returns the run's status."""
    if sweepdir.run_complete(run_dir):
        return "complete"
    if run_dir.exists():
        k = 1
        while run_dir.with_name(f"{run_dir.name}.partial-{k}").exists():
            k += 1
        run_dir.rename(run_dir.with_name(f"{run_dir.name}.partial-{k}"))
    cfg = LoadConfig(workload=workload, rps=spec.rps, duration_s=spec.duration_s, seed=spec.seed,
                     clip_to_context=spec.clip_to_context, workers=spec.workers,
                     out=str(run_dir), quiet=spec.quiet, request_timeout_s=spec.request_timeout_s,
                     drain_timeout_s=spec.drain_timeout_s)
    try:
        backend.run(cfg)
    finally:
        rearm()
    status = rundir.read_manifest(run_dir).get("status", "failed")
    if status == "complete":
        digest(run_dir, spec.goodput)  # cached now, so reading the sweep later is instant
    return status


def _run_at_capacity(spec: SweepSpec, backend, run_dir: Path, cid: str, workload: str, rearm, say) -> tuple[str, str]:
    """A workload's capacity search on this configuration (resumed if it began), its highest passing
    run copied to run_dir; (the run's status, "" or why no rate passed)."""
    plan = spec.capacity
    assert plan is not None
    if sweepdir.run_complete(run_dir):
        return "complete", ""
    shutil.rmtree(run_dir, ignore_errors=True)
    start = plan.start_rps.get((cid, run_dir.name)) or load_workload(workload).rps
    search = capacity.SearchSpec(
        slos=plan.slos, attainment=plan.attainment,
        start_rps=capacity.round_rate(min(max(start, plan.min_rps), plan.max_rps)),
        min_rps=plan.min_rps, max_rps=plan.max_rps, tolerance=plan.tolerance, max_steps=plan.max_steps,
        load={"workload": workload, "duration_s": spec.duration_s, "seed": spec.seed, "target": spec.backend.public(),
              **({"clip_to_context": True} if spec.clip_to_context else {})}, backend=backend.describe())

    def run_rate(rate: float, rate_dir: Path) -> Path:
        cfg = LoadConfig(workload=workload, rps=rate, duration_s=spec.duration_s, seed=spec.seed,
                         clip_to_context=spec.clip_to_context, workers=spec.workers, out=str(rate_dir),
                         quiet=spec.quiet, request_timeout_s=spec.request_timeout_s,
                         drain_timeout_s=spec.drain_timeout_s)
        try:
            backend.run(cfg)
        finally:
            rearm()
        if problem := backend.problem():
            raise VarcasError(f"the target stopped during the {rate:g} req/s run: {problem}")
        return rate_dir

    search_dir = run_dir.with_name(run_dir.name + CAPACITY_SUFFIX)
    result = capacity.sweep(search_dir, search, run_rate,
                            on_step=lambda step: say(f"    {run_dir.name} at {step.rate_rps:g} req/s: "
                                                     + ("pass" if step.passed else f"fail ({step.reason})")))
    if result.outcome == "interrupted":
        return "interrupted", ""
    if result.capacity_rps is None:
        return "failed", result.text
    shutil.copytree(capacity.rate_dir(search_dir, result.capacity_rps), run_dir)
    digest(run_dir, spec.goodput)
    say(f"    {run_dir.name}: capacity {result.capacity_rps:g} req/s")
    return "complete", ""
