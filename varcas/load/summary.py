"""The table printed when a load run ends: varcas.analyze's summary of the run directory."""
from __future__ import annotations

import sys
from pathlib import Path

from ..analyze import load_run, render, summarize
from ..errors import EXIT_FAILED, EXIT_INTERRUPTED
from ..rundir import ERRORS_LOG, read_manifest


def print_summary(run_dir: Path, console, summary=None) -> int:
    """Print the run's summary (default: summarize's) and trust warnings. Exit status: 0 complete,
    1 failed (every request failed, or fail-fast stopped it: the reason on stderr), 130 interrupted."""
    render(summarize(load_run(run_dir)) if summary is None else summary, console)
    console.print(f"results: {run_dir}")
    manifest = read_manifest(run_dir)
    status = manifest.get("status")
    if manifest.get("interrupted_by"):  # storage failed under the run (a full disk)
        print(f"varcas: run interrupted: {manifest['interrupted_by']}", file=sys.stderr)
        return EXIT_FAILED
    if status == "failed":
        print(f"varcas: run failed: {manifest.get('failure')} (every error: {Path(run_dir) / ERRORS_LOG})",
              file=sys.stderr)
        return EXIT_FAILED
    return EXIT_INTERRUPTED if status == "interrupted" else 0
