"""Is the load generator's memory bounded by the requests in flight, not by the run's length?

Runs run_load (no summary) in a fresh process against the stub server (8 tokens, 1 ms apart)
for a short and a 10x longer schedule at the same rate, and prints each process's peak RSS.
Bounded memory means the two peaks are about equal.

    python bench/bench_load_memory.py [--rate 2000] [--short 20000] [--long 200000]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

from varcas.testing.spawn import spawn

CHILD = """
import resource, sys
from varcas.load import LoadConfig, run_load
url, rate, n, out = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
run_load(LoadConfig(url=url, rps=rate, num_requests=n, arrival="constant", input_len=16, output_len=8,
                    quiet=True, out=out))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss_mib(url: str, rate: float, n: int, out: str) -> float:
    res = subprocess.run([sys.executable, "-c", CHILD, url, str(rate), str(n), out], check=True,
                         capture_output=True, text=True, preexec_fn=lambda: os.sched_setaffinity(0, {0}))
    return int(res.stdout.split()[-1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=2000.0)
    ap.add_argument("--short", type=int, default=20_000)
    ap.add_argument("--long", type=int, default=200_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, spawn(tokens=8, itl_ms=1, ttft_ms=1) as srv:
        os.sched_setaffinity(srv.proc.pid, {1})
        short = peak_rss_mib(srv.url, args.rate, args.short, f"{tmp}/short")
        long = peak_rss_mib(srv.url, args.rate, args.long, f"{tmp}/long")
    print(f"peak RSS: {args.short:,} requests {short:.0f} MiB; {args.long:,} requests {long:.0f} MiB; "
          f"ratio {long / short:.2f} for {args.long / args.short:.0f}x the requests")


if __name__ == "__main__":
    main()
