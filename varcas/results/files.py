"""The result files above a run directory, each stamped with a format version by its writer
and checked by every reader, so that no varcas misreads a file of another format.

    sweep.json       varcas optimize's spec and configuration grid     (results.sweepdir)
    comparison.json  a sweep's comparison: rows, Pareto front, recommendations, roofline
    capacity.json    varcas sweep-rate's search: its spec, steps and result
    pipeline.json    varcas pipeline's state: what it runs and each step's status
A file without the version, or with another, is a one-line error that says which side is
older. Writes are atomic (rundir.write_json): an interrupted writer leaves the old file whole.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import rundir
from ..bounded import read_json_object
from ..errors import VarcasError

MAX_BYTES = 256 << 20  # a result file is kilobytes to a few megabytes; anything larger is not one


@dataclass(frozen=True)
class ResultFile:
    """A result file: its name, what it is (for messages), its format version and the key holding it."""

    name: str
    what: str
    version: int
    key: str = "format_version"


SWEEP = ResultFile("sweep.json", "sweep spec", 1, "sweep_version")
# comparison.json: 2: each roofline point's batch reached, its source and the prediction there moved into
# its measured decode point ("measured": step time, achieved FLOP/s and bytes/s; results.measured).
COMPARISON = ResultFile("comparison.json", "sweep comparison", 2)
CAPACITY = ResultFile("capacity.json", "capacity search", 1, "format")
PIPELINE = ResultFile("pipeline.json", "pipeline state", 1)


def read_json(path: Path, what: str) -> dict:
    """A JSON object from path, or a one-line VarcasError naming `what`."""
    return read_json_object(path, what, MAX_BYTES)


def read(directory: Path, kind: ResultFile) -> dict:
    """directory/kind.name, its format version checked."""
    path = Path(directory) / kind.name
    data = read_json(path, kind.what)
    found = data.get(kind.key)
    if type(found) is not int or found != kind.version:  # True == 1, and "1" is no version either
        if type(found) is int and found > kind.version:
            why = "written by a newer varcas: upgrade varcas to read it"
        else:
            why = "written by an older varcas: rerun the command that made it"
        raise VarcasError(f"{path}: {kind.what} format {found!r}, this varcas reads {kind.version} ({why})")
    return data


def write(directory: Path, kind: ResultFile, doc: dict) -> Path:
    """directory/kind.name stamped with its format version; VarcasError when it cannot be written."""
    path = Path(directory) / kind.name
    rundir.write_json(path, {**doc, kind.key: kind.version})
    return path


def exists(directory: Path, kind: ResultFile) -> bool:
    return (Path(directory) / kind.name).is_file()
