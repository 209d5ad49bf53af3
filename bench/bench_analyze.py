"""Benchmarks of the analysis engine, each against a baseline measured in the same run.

1. Percentiles: p50/p90/p99/p99.9 of 10^8 int64 samples at once, varcas's numba selection
   against numpy.percentile, interleaved so both see the same machine state.
   Goal: at least 3x faster on a 2-core machine.
2. `varcas analyze` of a synthetic run of 1,000,000 requests and 100,000,000 tokens, run as a
   subprocess (interpreter start, imports, numba cache load, Parquet read, analysis, table):
   wall time and peak resident memory; the baseline is the same subprocess reading
   requests.parquet and doing nothing else. Goal: under 20 s and under 6 GB.

Each figure is the median of REPEATS runs, printed with the spread (min-max).
The synthetic run is written once to bench/out/ (about 0.5 GB) and reused.

    PYTHONPATH=. .venv/bin/python bench/bench_analyze.py [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numba
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.analyze import synth  # noqa: E402
from varcas import rundir  # noqa: E402
from varcas.analyze import kernels  # noqa: E402

REPEATS = 5
PERCENTS = [50, 90, 99, 99.9]


def spread(times) -> str:
    return f"median {np.median(times):.3f} s (min {min(times):.3f}, max {max(times):.3f})"


def bench_percentiles(n: int) -> None:
    rng = np.random.default_rng(1)
    a = rng.lognormal(np.log(20e6), 0.3, n).astype(np.int64)  # inter-token gaps around 20 ms, in ns
    kernels.percentiles(a[:100_000], PERCENTS)  # compile (or load the cache) outside the timing
    ours, theirs = [], []
    for _ in range(REPEATS):
        t = time.perf_counter()
        got = kernels.percentiles(a, PERCENTS)
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        want = np.percentile(a, PERCENTS)
        theirs.append(time.perf_counter() - t)
        assert np.array_equal(got, want), (got, want)
    print(f"percentiles p50/p90/p99/p99.9 of {n:,} int64 samples")
    print(f"  numba selection   {spread(ours)}")
    print(f"  numpy.percentile  {spread(theirs)}")
    print(f"  speed-up          {np.median(theirs) / np.median(ours):.1f}x (goal >= 3x), results identical")


def synthetic_run(n: int, tokens: int) -> Path:
    run_dir = ROOT / "bench" / "out" / f"analyze-{n}x{tokens}"
    if (run_dir / rundir.PARQUET).is_file():
        return run_dir
    t = time.perf_counter()
    cols = synth.big_run(n, tokens, rps=1000.0)
    synth.write_run(run_dir, cols, config={"rps": 1000.0, "num_requests": n, "max_concurrency": None})
    print(f"(wrote {run_dir.relative_to(ROOT)} in {time.perf_counter() - t:.1f} s)")
    return run_dir


def timed_subprocess(args: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in GB) of one child process."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t = time.perf_counter()
    child = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - t
    if status != 0:
        raise SystemExit(f"{' '.join(args)} failed: {child.stderr.read().decode()}")
    return wall, usage.ru_maxrss / 1e6  # ru_maxrss is in KiB on Linux


def bench_analyze(n: int, tokens: int) -> None:
    run_dir = synthetic_run(n, tokens)
    out = run_dir / "summary.json"
    analyze = [sys.executable, "-m", "varcas.cli", "analyze", str(run_dir), "--json", str(out)]
    read = [sys.executable, "-c", f"from varcas import rundir; rundir.read_requests({str(run_dir)!r})"]
    timed_subprocess(analyze)  # fills the numba cache if this checkout has none yet
    runs, reads = [], []
    for _ in range(REPEATS):
        runs.append(timed_subprocess(analyze))
        reads.append(timed_subprocess(read))
    summary = json.loads(out.read_text())
    assert summary["completed"] == n and summary["samples_itl"] == n * (tokens - 1)
    print(f"varcas analyze, {n:,} requests / {n * tokens:,} tokens")
    print(f"  analyze        {spread([w for w, _ in runs])}, peak RSS {max(m for _, m in runs):.2f} GB")
    print(f"  read only      {spread([w for w, _ in reads])}, peak RSS {max(m for _, m in reads):.2f} GB")
    print(f"  goal: < 20 s and < 6 GB; analysis beyond the read: "
          f"{np.median([w for w, _ in runs]) - np.median([w for w, _ in reads]):.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the sizes, for a smoke run")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    print(f"numba threads: {numba.get_num_threads()}, cpus: {os.cpu_count()}")
    bench_percentiles(100_000_000 // scale)
    bench_analyze(1_000_000 // scale, 100)


if __name__ == "__main__":
    main()
