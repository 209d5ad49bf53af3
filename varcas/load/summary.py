"""The table printed when a load run ends: varcas.analyze's summary of the run directory."""
from __future__ import annotations

from pathlib import Path

from ..analyze import load_run, render, summarize
from ..rundir import read_manifest

EXIT_INTERRUPTED = 130


def print_summary(run_dir: Path, console) -> int:
    """Print the run's summary and trust warnings; exit status 130 if it was interrupted."""
    summary = summarize(load_run(run_dir))
    render(summary, console)
    console.print(f"results: {run_dir}")
    return EXIT_INTERRUPTED if read_manifest(run_dir).get("status") == "interrupted" else 0
