"""--workers: one load run over 1 and over 2 worker processes, side by side (not a test).

For each rate, each repetition starts the stub server (a separate process: 64 tokens 10 ms
apart, recording when it wrote each token) and runs `python -m varcas.load --workers N` for
every N given, in turn, over the same Poisson schedule (same seed), so the 1-worker baseline is
measured in the same run as the others. Cores: nothing is pinned unless --server-cpu is given;
on a 2-CPU machine the server, the parent and the workers share both CPUs (the kernel places
them). Reported per (rate, N), median of --reps [min-max]:
  lag p50/p99/max   send lag (sent - planned, no cap: slot wait 0), µs
  on time           share of requests sent within 1 ms of their planned time
  sent rate         requests sent / planned span, against the asked rate
  ft err p50/p99    client first-token time minus the server's own write time of that token, µs
  cpu/token/worker  each worker's own CPU (rusage over its run) / the content events it read, µs,
                    averaged over the workers; parent CPU is listed apart (start-up, relaying)
  events/cpu-s      content events per second of one worker's CPU: the per-core ceiling if it
                    could be used fully (varcas.load.workers.REF_EVENTS_PER_CORE is set below it,
                    at the rate a worker keeps its send-lag p99 under 1 ms)
  parser ns/read    varcas.load.workers.parser_ns_per_read() on this machine (REF_PARSER_NS)

With --ray, each N is also run as `--ray --workers N` (a local Ray instance started by each run,
its actors on this machine) in the same repetition, after the worker processes: the columns
"ray N". Their clock offsets are 0 (one host); the ping exchange's uncertainty is listed.

    python bench/bench_scale.py [--rates 1000,2000] [--workers 1,2] [--duration 10] [--reps 3] [--ray]
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

from varcas.load.workers import REF_EVENTS_PER_CORE, REF_PARSER_NS, parser_ns_per_read
from varcas.testing.spawn import spawn

KEYS = ("lag_p50_us", "lag_p99_us", "lag_max_us", "on_time", "sent_rate", "ft_err_p50_us", "ft_err_p99_us",
        "cpu_us_per_token_worker", "events_per_cpu_s", "parent_cpu_s", "errors", "ping_uncertainty_us")


def run_load(url: str, rate: float, duration: float, workers: int, out: Path, ray: bool) -> dict:
    cmd = [sys.executable, "-m", "varcas.load", "--url", url, "--rps", str(rate), "--duration", str(duration),
           "--input-len", "32", "--output-len", "64", "--quiet", "--no-metrics", "--seed", "1",
           "--workers", str(workers), "--out", str(out), *(["--ray"] if ray else [])]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    manifest = json.loads((out / "run.json").read_text())
    table = pq.read_table(out / "requests.parquet", columns=["request_id", "scheduled_ns", "sent_ns",
                                                             "first_token_ns", "error"])
    return {"manifest": manifest, "rows": table}


def figures(run: dict, first_write: dict[int, int], rate: float) -> dict:
    m, t = run["manifest"], run["rows"]
    sent = t["sent_ns"].fill_null(-1).to_numpy()
    ok = sent >= 0
    lag = (sent - t["scheduled_ns"].to_numpy())[ok] / 1e3
    ids, ft = t["request_id"].to_numpy(), t["first_token_ns"].fill_null(-1).to_numpy()
    err = np.array([ft[j] - first_write[i] for j, i in enumerate(ids) if ft[j] > 0 and i in first_write]) / 1e3
    span_s = (t["scheduled_ns"].to_numpy().max() - m["start_ns"]) / 1e9
    per = [w for w in m["workers"]["per_worker"] if w.get("events")]
    return {
        "lag_p50_us": float(np.percentile(lag, 50)), "lag_p99_us": float(np.percentile(lag, 99)),
        "lag_max_us": float(lag.max()), "on_time": float((lag <= 1000).mean()),
        "sent_rate": m["counts"]["sent"] / span_s / rate,
        "ft_err_p50_us": float(np.percentile(err, 50)) if err.size else float("nan"),
        "ft_err_p99_us": float(np.percentile(err, 99)) if err.size else float("nan"),
        "cpu_us_per_token_worker": float(np.mean([w["cpu_s"] / w["events"] * 1e6 for w in per])),
        "events_per_cpu_s": float(np.mean([w["events"] / w["cpu_s"] for w in per])),
        "parent_cpu_s": m["client"].get("parent_cpu_s", 0.0),
        "errors": m["counts"]["failed"],
        "ping_uncertainty_us": float(np.mean([w.get("ping_uncertainty_ns", np.nan) for w in per])) / 1e3,
    }


def measure(rate: float, duration: float, configs: list[tuple[int, bool]], tmp: Path, tag: str,
            server_cpu: int | None) -> dict:
    results = {}
    for n, ray in configs:
        with spawn(tokens=64, itl_ms=10, ttft_ms=0) as srv:
            if server_cpu is not None:
                os.sched_setaffinity(srv.proc.pid, {server_cpu})
            run = run_load(srv.url, rate, duration, n, tmp / f"{tag}-w{n}{'-ray' * ray}", ray)
            first = {int(r["id"]): r["token_ns"][0] for r in srv.records()["requests"] if r["token_ns"]}
        results[(n, ray)] = figures(run, first, rate)
    return results


def _label(config: tuple[int, bool]) -> str:
    return f"ray {config[0]}" if config[1] else f"{config[0]} worker(s)"


def _num(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="1000,2000")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--server-cpu", type=int, help="pin the stub server to this CPU (default: unpinned)")
    ap.add_argument("--ray", action="store_true", help="also run each N as --ray --workers N (a local Ray instance)")
    args = ap.parse_args()
    configs = [(int(w), False) for w in args.workers.split(",")]
    configs += [(n, True) for n, _ in configs] if args.ray else []
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}; stub server 64 tokens 10 ms apart; "
          + (f"server on CPU {args.server_cpu}, clients unpinned" if args.server_cpu is not None
             else "nothing pinned: server, parent and workers share every CPU"))
    parser_ns = min(parser_ns_per_read() for _ in range(5))
    print(f"C parser: {parser_ns:.0f} ns per read (REF_PARSER_NS {REF_PARSER_NS:.0f}; "
          f"REF_EVENTS_PER_CORE {REF_EVENTS_PER_CORE:,})")
    print("median of reps [min-max]; ratio: N workers / 1 worker, medians of the same run")
    with tempfile.TemporaryDirectory() as tmpdir:
        for rate in (float(r) for r in args.rates.split(",")):
            reps = [measure(rate, args.duration, configs, Path(tmpdir), f"r{rate:g}-{k}", args.server_cpu)
                    for k in range(args.reps)]
            print(f"\nrate {rate:g} req/s x 64 tokens ({rate * 64:,.0f} token events/s planned)")
            print(f"  {'':<24}" + "".join(f"{_label(c):>36}" for c in configs))
            for key in KEYS:
                cells = []
                base = np.median([r[configs[0]][key] for r in reps])
                for c in configs:
                    vals = np.array([r[c][key] for r in reps], dtype=float)
                    med = np.median(vals)
                    ratio = f" ({med / base:.2f}x)" if c != configs[0] and base and np.isfinite(base) else ""
                    cells.append(f"{_num(med)} [{_num(vals.min())}-{_num(vals.max())}]{ratio}")
                print(f"  {key:<24}" + "".join(f"{c:>36}" for c in cells))


if __name__ == "__main__":
    main()
