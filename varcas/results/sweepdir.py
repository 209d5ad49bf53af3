"""The sweep directory: what `varcas optimize` writes and every later reader relies on.

    OUT/sweep.json                the spec (backend, params, workloads, duration, rate, seed,
                                  SLOs, roofline model) and the configuration ids in grid order
    OUT/<config-id>/config.json   params, status (pending, running, complete, failed,
                                  interrupted), the reason of a failure (and per workload, in
                                  reasons, where one workload failed and others went on), the
                                  server's argv, log and readiness time, and the status of each
                                  workload's run
    OUT/<config-id>/server.log    the server's stdout and stderr (a started server only)
    OUT/<config-id>/<workload>/   a normal run directory (what `varcas load --out` writes)
    OUT/<config-id>/<workload>.partial-N/   an earlier, unfinished attempt, kept
    OUT/comparison.json           the comparison, recommendation and roofline explanation
"""
from __future__ import annotations

from pathlib import Path

from .. import rundir
from ..errors import VarcasError
from . import files

SWEEP_FILE = files.SWEEP.name
CONFIG_FILE = "config.json"
COMPARISON_FILE = files.COMPARISON.name


def is_sweep(path) -> bool:
    return (Path(path) / SWEEP_FILE).is_file()


def read_sweep(path) -> dict:
    """sweep.json, version-checked."""
    return files.read(Path(path), files.SWEEP)


def read_config(sweep: Path, config_id: str) -> dict | None:
    """A configuration's config.json, or None before it was first tried."""
    path = Path(sweep) / config_id / CONFIG_FILE
    return files.read_json(path, "configuration state") if path.is_file() else None


def write_config(sweep: Path, state: dict) -> None:
    rundir.write_json(Path(sweep) / state["id"] / CONFIG_FILE, state)


def run_complete(run_dir: Path) -> bool:
    """A finished run directory: run.json says complete and the Parquet file is there."""
    try:
        return rundir.read_manifest(run_dir).get("status") == "complete" and (run_dir / rundir.PARQUET).is_file()
    except VarcasError:
        return False


def entries(sweep: Path) -> list[dict]:
    """Every configuration of the sweep in grid order: id, params, status, reason, reasons
    {workload: why}, runs {workload: dir}."""
    spec = read_sweep(sweep)
    out = []
    for cid, params in spec["configs"]:
        state = read_config(sweep, cid) or {"status": "pending"}
        runs = {w: Path(sweep) / cid / w for w in spec["workloads"] if run_complete(Path(sweep) / cid / w)}
        out.append({"id": cid, "params": params, "status": state["status"], "reason": state.get("reason"),
                    "reasons": state.get("reasons") or {},
                    "runs": runs, "server": state.get("server")})
    return out
