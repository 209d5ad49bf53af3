"""What scraping the server's /metrics costs the measurement (not a test).

The same Poisson schedule against varcas's simulated vLLM (llama-2-7b fp16 on an H100, served:
it exposes vLLM's /metrics, counters, gauges and histograms), run with /metrics scraping off
(--no-metrics, the baseline), and on at 0.5 s (the default) and 0.1 s, alternating, --reps
times each. The scraper is its own process on its own connection: what it may cost is CPU taken
from the client or the server on a shared machine. Reported per setting, median [min-max] and
the ratio to the baseline of the same run:
  lag p99      send lag (sent - scheduled), µs
  TTFT p99     the client's TTFT p99, µs (the simulator's timing is the model's: a scraper that
               delayed the server or the client's reads would show here)
  cpu/token    the client process's CPU per content event, µs (the scraper not included)
  scrapes      answered scrapes in the run
Run unpinned (as users run it: client, scraper and server share the cores) and pinned (client
on CPU 0, the simulator on CPU 1; the scraper inherits the client's affinity).

    python bench/bench_telemetry.py [--rate 500] [--duration 10] [--reps 3]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from varcas.sim import spawn

SETTINGS = {"off": ["--no-metrics"], "0.5 s": ["--metrics-interval", "0.5"], "0.1 s": ["--metrics-interval", "0.1"]}


def one_run(url: str, rate: float, duration: float, out: Path, flags: list[str], pinned: bool) -> dict:
    cmd = [sys.executable, "-m", "varcas.load", "--url", url, "--rps", str(rate), "--duration", str(duration),
           "--input-len", "128", "--output-len", "64", "--quiet", "--out", str(out), "--seed", "1", *flags]
    pre = (lambda: os.sched_setaffinity(0, {0})) if pinned else None
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, preexec_fn=pre)
    return {"manifest": json.loads((out / "run.json").read_text()), "rows": pq.read_table(out / "requests.parquet")}


def figures(run: dict) -> dict:
    rows, m = run["rows"].to_pydict(), run["manifest"]
    lag = [s - c for s, c in zip(rows["sent_ns"], rows["scheduled_ns"]) if s is not None]
    ttft = [f - s for f, s, e in zip(rows["first_token_ns"], rows["sent_ns"], rows["error"])
            if e is None and f is not None]
    events = sum(len(t) for t in rows["token_ns"])
    return {"lag_p99_us": float(np.percentile(lag, 99)) / 1e3, "ft_p99_us": float(np.percentile(ttft, 99)) / 1e3,
            "cpu_us_per_token": m["client"]["cpu_s"] / max(events, 1) * 1e6,
            "scrapes": (m.get("telemetry") or {}).get("scrapes", 0)}


def measure(rate: float, duration: float, reps: int, pinned: bool, tmp: Path) -> dict:
    out: dict[str, list[dict]] = {name: [] for name in SETTINGS}
    for rep in range(reps):
        for name, flags in SETTINGS.items():
            with spawn(gpu="h100-sxm", quant="fp16", max_num_seqs=256) as srv:
                if pinned:
                    os.sched_setaffinity(srv.proc.pid, {1})
                run = one_run(srv.url, rate, duration, tmp / f"{pinned}-{name.replace(' ', '')}-{rep}", flags, pinned)
            out[name].append(figures(run))
    return out


def _cell(values: list[float], base: float | None) -> str:
    med = float(np.median(values))
    ratio = f" ({med / base:.2f}x)" if base else ""
    return f"{med:,.1f} [{min(values):,.1f}-{max(values):,.1f}]{ratio}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--reps", type=int, default=3)
    a = p.parse_args()
    print(f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}; {a.rate:g} req/s x 64 tokens for {a.duration:g} s, {a.reps} reps")
    with tempfile.TemporaryDirectory() as d:
        for pinned in (False, True):
            res = measure(a.rate, a.duration, a.reps, pinned, Path(d))
            print(f"\n{'pinned (client CPU 0, server CPU 1)' if pinned else 'unpinned (shared cores)'}")
            print(f"{'metrics':8} {'lag p99 µs':>28} {'TTFT p99 µs':>30} {'client CPU µs/token':>26} scrapes")
            base = {k: float(np.median([r[k] for r in res["off"]])) for k in ("lag_p99_us", "ft_p99_us", "cpu_us_per_token")}
            for name, runs in res.items():
                cells = [_cell([r[k] for r in runs], base[k] if name != "off" else None)
                         for k in ("lag_p99_us", "ft_p99_us", "cpu_us_per_token")]
                print(f"{name:8} {cells[0]:>28} {cells[1]:>30} {cells[2]:>26} {int(np.median([r['scrapes'] or 0 for r in runs]))}")


if __name__ == "__main__":
    main()
