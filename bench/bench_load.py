"""Load-generator fidelity and overhead against the project's stub server (not a test).

For each rate: the stub server (a separate process, pinned to CPU 1) streams 64 tokens 10 ms
apart and records when it wrote each token; `python -m varcas.load` (a subprocess, pinned to
CPU 0) sends a Poisson schedule at that rate. Reported per rate, median of --reps runs with
the spread (min-max):
  sent_rate   requests sent / scheduled span, against the asked rate
  cpu/token   the client's own CPU (rusage over the run) / content events
  cpu/req     CPU per request with the per-token part removed: from a second run of the same
              schedule with 1 output token, (cpu_64 - cpu_1) / 63 per token and the rest per request
  lag p50/p99 send lag (sent - scheduled)
  ft err      client first-token time minus the server's own write time of that token (p50/p99)
Baseline, same machine and same run: a plain asyncio+httpx streaming client of the kind most
peers use (per-chunk JSON decode, asyncio.sleep dispatch), over the same schedules.

    python bench/bench_load.py [--rates 100,500,1000,2000] [--duration 10] [--reps 3]
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

from varcas.testing.spawn import spawn

HERE = Path(__file__).resolve().parent
CLIENT_CPU, SERVER_CPU = {0}, {1}


def run_varcas(url: str, rate: float, duration: float, out: Path, output_len: int) -> dict:
    cmd = [sys.executable, "-m", "varcas.load", "--url", url, "--rps", str(rate), "--duration", str(duration),
           "--input-len", "32", "--output-len", str(output_len), "--quiet", "--out", str(out), "--seed", "1"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, preexec_fn=lambda: os.sched_setaffinity(0, CLIENT_CPU))
    manifest = json.loads((out / "run.json").read_text())
    t = pq.read_table(out / "requests.parquet").to_pandas()
    return {"manifest": manifest, "rows": t}


def run_baseline(url: str, rate: float, duration: float, out: Path, output_len: int) -> dict:
    cmd = [sys.executable, str(HERE / "baseline_client.py"), url, str(rate), str(duration), str(output_len), str(out)]
    subprocess.run(cmd, check=True, preexec_fn=lambda: os.sched_setaffinity(0, CLIENT_CPU))
    return json.loads(out.read_text())


def measure(rate: float, duration: float, tmp: Path, tag: str, baseline: bool) -> dict:
    with spawn(tokens=64, itl_ms=10, ttft_ms=0) as srv:
        os.sched_setaffinity(srv.proc.pid, SERVER_CPU)
        r64 = run_varcas(srv.url, rate, duration, tmp / f"{tag}-64", 64)
        records = {int(rec["id"]): rec["token_ns"][0] for rec in srv.records()["requests"] if rec["token_ns"]}
        r1 = run_varcas(srv.url, rate, duration, tmp / f"{tag}-1", 1)
        base = run_baseline(srv.url, rate, duration, tmp / f"{tag}-base.json", 64) if baseline else None
    rows, m = r64["rows"], r64["manifest"]
    ok = rows[rows["error"].isna()]
    events = int(rows["token_ns"].map(len).sum())
    span = (m["counts"]["scheduled"] - 1) / rate
    lag = (rows["sent_ns"] - rows["scheduled_ns"]).dropna().to_numpy() / 1e3
    ft = np.array([ft - records[i] for i, ft in zip(ok["request_id"], ok["first_token_ns"]) if i in records]) / 1e3
    cpu64, cpu1 = m["client"]["cpu_s"], r1["manifest"]["client"]["cpu_s"]
    n = len(rows)
    per_token = (cpu64 - cpu1) / max(n * 63, 1)
    result = {
        "sent_rate": m["counts"]["sent"] / span if span > 0 else 0.0,
        "errors": int(rows["error"].notna().sum()),
        "cpu_us_per_event": cpu64 / max(events, 1) * 1e6,
        "cpu_us_per_token_fit": per_token * 1e6,
        "cpu_us_per_request_fit": (cpu64 / n - 64 * per_token) * 1e6,
        "lag_p50_us": float(np.percentile(lag, 50)), "lag_p99_us": float(np.percentile(lag, 99)),
        "ft_err_p50_us": float(np.percentile(ft, 50)) if len(ft) else float("nan"),
        "ft_err_p99_us": float(np.percentile(ft, 99)) if len(ft) else float("nan"),
        "client_cpu_util": m["client"]["cpu_util"],
    }
    if base is not None:
        result.update(base_cpu_us_per_event=base["cpu_s"] / max(base["events"], 1) * 1e6,
                      base_lag_p99_us=base["lag_p99_us"])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="100,500,1000,2000")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--baseline-rates", default="100,500",
                    help="rates at which the baseline also runs (it cannot keep up above; runs grow long)")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print("client pinned to CPU 0, stub server to CPU 1; 64 tokens 10 ms apart; median of reps [min-max]")
    keys = ["sent_rate", "errors", "cpu_us_per_event", "cpu_us_per_token_fit", "cpu_us_per_request_fit",
            "lag_p50_us", "lag_p99_us", "ft_err_p50_us", "ft_err_p99_us", "client_cpu_util"]
    base_keys = ["base_cpu_us_per_event", "base_lag_p99_us"]
    base_rates = {float(r) for r in args.baseline_rates.split(",") if r}
    with tempfile.TemporaryDirectory() as tmpdir:
        for rate in (float(r) for r in args.rates.split(",")):
            base = rate in base_rates
            results = [measure(rate, args.duration, Path(tmpdir), f"r{rate:g}-{k}", base) for k in range(args.reps)]
            print(f"\nrate {rate:g} req/s")
            for key in keys + (base_keys if base else []):
                vals = np.array([r[key] for r in results], dtype=float)
                print(f"  {key:<24} {np.median(vals):>10.2f}  [{vals.min():.2f}-{vals.max():.2f}]")
            if base:
                ratio = np.median([r["base_cpu_us_per_event"] / r["cpu_us_per_event"] for r in results])
                print(f"  baseline/varcas CPU per event: {ratio:.1f}x")


if __name__ == "__main__":
    main()
