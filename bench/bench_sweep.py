"""Reading a sweep back: `comparison()` over RUNS run directories of N requests each.

    PYTHONPATH=. .venv/bin/python bench/bench_sweep.py [--runs 100] [--requests 100000] [--tokens 64] [--repeats 3]

The issue's target: 100 runs of 100,000 requests each load in seconds. One synthetic steady run
(tests/analyze/synth.big_run: Poisson arrivals, jittered ~20 ms token gaps) is written once to
bench/out/ and hard-linked into RUNS configuration directories of a sweep layout, so every run
is a real Parquet file read and analysed on its own. Three ways, interleaved per repetition:
  warm     the sweep as `varcas optimize` leaves it: every run's digest.json current (the sweep
           digests each run as it finishes), so the comparison is RUNS small JSON reads
  cold     no digests: every run analysed (`varcas analyze`'s summary with the steady window,
           verdict and ITL, plus CDFs and timeline), then cached
  pandas   the baseline: a script of the usual kind, pandas.read_parquet per run and TTFT,
           TPOT and E2E p50/p99 and throughput from the columns (the last token time taken per
           row from the token list); far less than a digest holds, no ITL, no verdict
Figures: wall seconds, median of --repeats [min-max].
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.analyze import synth  # noqa: E402
from varcas import rundir  # noqa: E402
from varcas.results import comparison as results  # noqa: E402
from varcas.results import digest as D  # noqa: E402
from varcas.results import files, sweepdir

OUT = ROOT / "bench" / "out"


def build(runs: int, requests: int, tokens: int) -> Path:
    """The sweep directory (reused when it matches)."""
    base = OUT / f"sweep-src-{requests}x{tokens}"
    if not (base / rundir.PARQUET).is_file():
        shutil.rmtree(base, ignore_errors=True)
        synth.write_run(base, synth.big_run(requests, tokens, rps=50.0))
    sweep = OUT / f"sweep-{runs}x{requests}x{tokens}"
    shutil.rmtree(sweep, ignore_errors=True)
    configs = [[f"max_num_seqs-{i}", {"max_num_seqs": str(i)}] for i in range(1, runs + 1)]
    sweep.mkdir(parents=True)
    manifest = rundir.read_manifest(base)
    manifest["config"]["workload"] = "chat_medium"
    for cid, params in configs:
        run_dir = sweep / cid / "chat_medium"
        run_dir.mkdir(parents=True)
        os.link(base / rundir.PARQUET, run_dir / rundir.PARQUET)
        rundir.write_manifest(run_dir, manifest)
        rundir.write_json(sweep / cid / sweepdir.CONFIG_FILE, {"id": cid, "params": params, "status": "complete"})
    files.write(sweep, files.SWEEP, {
        "configs": configs, "workloads": ["chat_medium"],
        "goodput": {"ttft": 1000.0}, "roofline": None, "backend": {"kind": "command"}})
    return sweep


def drop_digests(sweep: Path) -> None:
    for path in sweep.glob(f"*/chat_medium/{D.DIGEST_FILE}"):
        path.unlink()


def pandas_table(run_dir: Path) -> dict:
    """The baseline: the comparison table's figures the way a pandas script computes them."""
    import numpy as np
    import pandas as pd

    df = pd.read_parquet(run_dir / rundir.PARQUET)
    ok = df[df["error"].isna()]
    last = ok["token_ns"].map(lambda t: t[-1])
    ttft = (ok["first_token_ns"] - ok["sent_ns"]) / 1e6
    e2el = (last - ok["sent_ns"]) / 1e6
    tpot = ((e2el - ttft) / (ok["output_tokens"] - 1)).where(ok["output_tokens"] > 1)
    span = (df["end_ns"].max() - df["scheduled_ns"].min()) / 1e9
    return {"ttft": np.percentile(ttft, [50, 99]), "tpot": np.nanpercentile(tpot, [50, 99]),
            "e2el": np.percentile(e2el, [50, 99]), "tok_s": ok["output_tokens"].sum() / span}


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--requests", type=int, default=100_000)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    sweep = build(a.runs, a.requests, a.tokens)
    run_dirs = [sweep / cid / "chat_medium" for cid, _ in sweepdir.read_sweep(sweep)["configs"]]
    D.digest(run_dirs[0], cache=False)  # numba compile/cache load outside the timings
    times = {"warm": [], "cold": [], "pandas": []}
    for _ in range(a.repeats):
        times["pandas"].append(timed(lambda: [pandas_table(r) for r in run_dirs]))
        drop_digests(sweep)
        times["cold"].append(timed(lambda: results.comparison(sweep)))
        times["warm"].append(timed(lambda: results.comparison(sweep)))
    lines = [f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
             f"sweep: {a.runs} runs x {a.requests:,} requests x {a.tokens} tokens "
             f"({(sweep / 'max_num_seqs-1' / 'chat_medium' / rundir.PARQUET).stat().st_size / 2**20:.0f} MiB Parquet each)"]
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in times.items():
        lines.append(f"{k:>6}: {med[k]:7.2f} s  [{min(v):.2f}-{max(v):.2f}]  ({med[k] / a.runs * 1e3:.1f} ms per run)")
    lines.append(f"cold vs pandas baseline: {med['pandas'] / med['cold']:.2f}x; "
                 f"warm vs pandas: {med['pandas'] / med['warm']:.0f}x faster")
    text = "\n".join(lines)
    print(text)
    (OUT / "bench_sweep.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
