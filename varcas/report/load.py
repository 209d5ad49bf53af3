"""load(DIR): find what a report's directory is (a run, a sweep or a pipeline) and gather its data.

Everything the page and REPORT.md show comes from here, as a Report. Runs are shown in Groups
of rows compared side by side, and every row is a compare.workload_rows row, so a single run,
a pipeline's load tests (one row per workload) and a sweep's configurations on one workload
render the same way. A group carries the digests behind its rows (CDFs, timelines), and a
sweep group its Pareto front, recommendations and roofline explanation from comparison(). A
pipeline adds its static roofline (roofline.json). Whatever failed (a step, a configuration,
an unreadable run) is kept as a line saying what and why; nothing here formats or draws.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .. import __version__, rundir
from ..errors import VarcasError
from ..results import compare, files, sweepdir
from ..results.comparison import read_comparison, roofline_target
from ..results.digest import Digest, digest
from ..results.explain import explain

STEP_DONE = "complete"  # a pipeline step's status when it finished (any other status is reported)
MAX_ARTIFACTS = 300


@dataclass
class Group:
    """Rows shown side by side: a sweep's configurations on one workload, or single load runs."""

    title: str
    rows: list[dict]
    digests: dict[str, Digest]  # row["config"] -> that run's digest
    names: dict[str, str]  # row["config"] -> the run's path relative to the report's directory
    sweep: bool = False  # a sweep's workload: Pareto front and recommendations apply
    baseline: str | None = None
    pareto: list[str] = field(default_factory=list)
    recommendations: list[dict] = field(default_factory=list)
    slo_ms: dict | None = None
    roofline: dict | None = None  # explain()'s output
    roofline_note: str | None = None  # why there is no roofline explanation


@dataclass
class Report:
    """Everything a report shows, gathered from one directory."""

    kind: str  # "run", "sweep" or "pipeline"
    path: Path
    title: str
    subject: str  # the model and GPU (or the server) in words
    date: str  # when the data was recorded
    groups: list[Group]
    failures: list[str]  # "what: why", one per failed step, configuration or unreadable run
    static: dict | None = None  # a pipeline's roofline.json (`varcas roofline --json`)
    artifacts: list[tuple[str, int]] = field(default_factory=list)  # (path relative to DIR, bytes)
    version: str = __version__


def load(path, baseline: str | None = None) -> Report:
    """The Report of DIR: a run directory, a sweep directory or a pipeline directory."""
    path = Path(path)
    if not path.is_dir():
        raise VarcasError(f"{path}: no such directory")
    if files.exists(path, files.PIPELINE):
        report = _pipeline(path, baseline)
    elif sweepdir.is_sweep(path):
        report = _sweep(path, baseline)
    elif (path / rundir.MANIFEST).is_file():
        if baseline is not None:
            raise VarcasError("--baseline applies to a sweep; this is a single run")
        report = _run(path)
    else:
        raise VarcasError(f"{path}: not a run, sweep or pipeline directory "
                          f"(no {rundir.MANIFEST}, {files.SWEEP.name} or {files.PIPELINE.name})")
    report.artifacts = artifacts(path)
    return report


def artifacts(path: Path) -> list[tuple[str, int]]:
    """Files under path (relative name, size), sorted, at most MAX_ARTIFACTS."""
    files = sorted(p for p in path.rglob("*") if p.is_file())[:MAX_ARTIFACTS]
    return [(p.relative_to(path).as_posix(), p.stat().st_size) for p in files]


def sim_target(manifest: dict) -> dict | None:
    """{model, gpu, quant, sim} of a run against the simulator (for explain()), else None."""
    target = manifest.get("target") or {}
    params = target.get("params")
    if target.get("kind") != "sim" and not params:
        return None
    params = params or {}
    if not all(params.get(k) for k in ("model", "gpu", "quant")):
        return None
    return {"model": params["model"], "gpu": params["gpu"], "quant": params["quant"], "sim": params}


def load_group(title: str, runs: dict[str, Path], base: Path, target: dict | None, why_not: str) -> Group:
    """Single runs (label -> run directory) as one group, with the roofline explanation when target is known."""
    entries: list[dict] = [{"id": label, "params": {}, "status": "complete", "reason": None} for label in runs]
    found = {(label, "load"): digest(p, store=False) for label, p in runs.items()}
    rows = compare.workload_rows(entries, found, "load", baseline=None)
    group = Group(title, rows, {label: found[(label, "load")] for label in runs},
                  {label: _relative(p, base) for label, p in runs.items()})
    if target is not None:
        group.roofline = explain(rows, group.digests, target["model"], target["gpu"], target["quant"], target.get("sim"))
    else:
        group.roofline_note = why_not
    return group


def sweep_groups(sweep: Path, base: Path, baseline: str | None,
                 titled: str = "{}") -> tuple[list[Group], list[str], dict]:
    """One group per workload of a sweep (titled: its title from the workload's name), the failed
    configurations, and sweep.json."""
    spec = sweepdir.read_sweep(sweep)
    result = read_comparison(sweep, baseline)
    groups = []
    for workload, entry in result["workloads"].items():
        rows = entry["rows"]
        # the layout's path, not the row's: a digest cached before the sweep was moved names the old place
        runs = {r["config"]: sweep / r["config"] / workload for r in rows if r["run"]}
        groups.append(Group(
            titled.format(workload), rows, {c: digest(p, store=False) for c, p in runs.items()},
            {c: _relative(p, base) for c, p in runs.items()}, sweep=True,
            baseline=result["baseline"], pareto=entry["pareto"], recommendations=entry["recommendations"],
            slo_ms=result["slo_ms"], roofline=entry["roofline"], roofline_note=entry.get("roofline_note")))
    failures = [f"configuration {c['id']}: {c['reason'] or c['status']}" for c in result["configs"]
                if c["status"] != "complete"]
    return groups, failures, spec


def _run(path: Path) -> Report:
    manifest = rundir.read_manifest(path)
    workload = (manifest.get("config") or {}).get("workload") or path.name
    target = sim_target(manifest)
    group = load_group(f"load test ({workload})", {path.name: path}, path.parent, target,
                       "no roofline plot: the run's target is not varcas's simulator, so its model and GPU are unknown")
    failures = [] if manifest.get("status") == "complete" else [
        f"run {path.name}: status {manifest.get('status')}, not complete"]
    rate = (manifest.get("config") or {}).get("rps")
    title = f"Load test: {workload}" + (f" at {rate:g} req/s" if rate else "")
    date = _date(manifest, "started_at", path / rundir.MANIFEST)
    return Report("run", path, title, _run_subject(manifest, target), date, [group], failures)


def _sweep(path: Path, baseline: str | None) -> Report:
    groups, failures, spec = sweep_groups(path, path, baseline)
    params = (", ".join(f"{name} = {', '.join(values)}" for name, values in spec["identity"]["params"])
              or "no parameters")
    title = f"Batch sweep: {params} over {', '.join(spec['workloads'])}"
    return Report("sweep", path, title, _sweep_subject(spec), _date(spec, "updated_at", path / sweepdir.SWEEP_FILE),
                  groups, failures)


def _pipeline(path: Path, baseline: str | None) -> Report:
    spec = files.read(path, files.PIPELINE)
    steps = spec.get("steps") or {}
    failures: list[str] = []
    static = _static(path, steps.get("roofline") or {}, failures)
    groups = []
    runs = {}
    for workload, step in (steps.get("load") or {}).items():
        run = _step_path(path, step.get("run"), Path("load") / workload)
        _note_step(f"load test {workload}", step, failures)
        if not (run / rundir.MANIFEST).is_file():
            if step.get("status", STEP_DONE) == STEP_DONE:
                failures.append(f"load test {workload}: no run directory at {_relative(run, path)}")
            continue
        try:
            digest(run, store=False)  # a broken run is reported, the others shown
            runs[workload] = run
        except VarcasError as exc:
            failures.append(f"load test {workload}: {exc}")
    if runs:
        groups.append(load_group(f"load tests ({', '.join(runs)})", runs, path, _pipeline_target(spec, runs),
                                 "no roofline explanation: pipeline.json names no model and GPU"))
    for name, what, titled in (("sweep", "batch sweep", "{}"), ("capacity", "capacity step", "{} at each one's capacity")):
        step = steps.get(name)
        if step is None:
            continue
        _note_step(what, step, failures)
        sweep_dir = _step_path(path, step.get("dir"), Path(name))
        if sweepdir.is_sweep(sweep_dir):
            try:
                more, failed, _ = sweep_groups(sweep_dir, path, baseline, titled)
                groups += more
                failures += [f"{what} {line}" for line in failed]
            except VarcasError as exc:
                failures.append(f"{what}: {exc}")
    subject = _subject(spec.get("model"), spec.get("quant"), spec.get("gpu"),
                       f"measured on {spec.get('target') or 'an unnamed target'}")
    return Report("pipeline", path, f"Pipeline: {spec.get('model') or 'model'} on {spec.get('gpu') or 'GPU'}",
                  subject, _date(spec, "updated_at", path / files.PIPELINE.name), groups, failures, static)


def _pipeline_target(spec: dict, runs: dict[str, Path]) -> dict | None:
    """The simulator's settings when the load tests ran on it, else the model and GPU pipeline.json names."""
    with contextlib.suppress(VarcasError):
        if (target := sim_target(rundir.read_manifest(next(iter(runs.values()))))) is not None:
            return target
    if not (spec.get("model") and spec.get("gpu")):
        return None
    return {"model": spec["model"], "gpu": spec["gpu"], "quant": spec.get("quant") or "auto"}


def _static(path: Path, step: dict, failures: list[str]) -> dict | None:
    _note_step("static roofline", step, failures)
    file = _step_path(path, step.get("json"), Path("roofline") / "roofline.json")
    if not file.is_file():
        return None
    try:
        return files.read_json(file, "static roofline")
    except VarcasError as exc:
        failures.append(f"static roofline: {exc}")
        return None


def _note_step(what: str, step: dict, failures: list[str]) -> None:
    status = step.get("status")
    if status and status != STEP_DONE:
        failures.append(f"{what}: {status}" + (f" ({step['reason']})" if step.get("reason") else ""))


def _step_path(base: Path, given, default: Path) -> Path:
    p = Path(given) if given else default
    return p if p.is_absolute() else base / p


def _relative(p: Path, base: Path) -> str:
    try:
        return Path(p).resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(p)


def _subject(model, quant, gpu, how: str) -> str:
    what = f"{model or 'unknown model'}" + (f" ({quant})" if quant else "")
    return f"{what} on {gpu}, {how}" if gpu else f"{what}, {how}"


def _run_subject(manifest: dict, target: dict | None) -> str:
    t = manifest.get("target") or {}
    if target is not None:
        how = "simulated in virtual time" if manifest.get("simulated") else "varcas's simulated vLLM server"
        return _subject(target["model"], target["quant"], target["gpu"], how)
    return _subject(t.get("model"), None, None, f"server {t.get('url') or 'unknown'}")


def _sweep_subject(spec: dict) -> str:
    backend = spec.get("backend") or {}
    hows = {"offline": "simulated in virtual time", "sim": "varcas's simulated vLLM server",
            "command": f"server started as: {backend.get('server_cmd')}",
            "server": f"server {backend.get('url')}"}
    kind = backend.get("kind")
    how = hows.get(kind, "unknown server") if isinstance(kind, str) else "unknown server"
    target = roofline_target(spec) or {}
    return _subject(target.get("model"), target.get("quant"), target.get("gpu"), how)


def _date(doc: dict, key: str, file: Path) -> str:
    """The document's own timestamp, else the file's modification time, as 'YYYY-MM-DD HH:MM UTC'."""
    try:
        when = datetime.fromisoformat(doc[key])
    except (KeyError, TypeError, ValueError):
        when = datetime.fromtimestamp(file.stat().st_mtime, timezone.utc)
    return when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
