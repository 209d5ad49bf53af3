"""Is the load generator's memory bounded by the requests in flight, not by the run's length?

Runs run_load (no summary) in a fresh process against the stub server (8 tokens, 1 ms apart)
for a short and a 10x longer schedule at the same rate, and prints each process's peak RSS during
the run (before the final Parquet conversion) and overall. Bounded memory means the two runs'
peaks are about equal.

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
import varcas.load.runner as runner
from varcas.load import LoadConfig, run_load
convert = runner.convert_to_parquet
def peak_then_convert(*a, **k):  # the peak of the run itself, before the Parquet conversion
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return convert(*a, **k)
runner.convert_to_parquet = peak_then_convert
url, rate, n, out = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
run_load(LoadConfig(url=url, rps=rate, num_requests=n, arrival="constant", input_len=16, output_len=8,
                    quiet=True, out=out))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss_mib(url: str, rate: float, n: int, out: str) -> tuple[float, float]:
    """(peak during the run, peak including the final Parquet conversion) in MiB."""
    res = subprocess.run([sys.executable, "-c", CHILD, url, str(rate), str(n), out], check=True,
                         capture_output=True, text=True, preexec_fn=lambda: os.sched_setaffinity(0, {0}))
    during, overall = (int(v) / 1024 for v in res.stdout.split()[-2:])
    return during, overall


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
    for what, i in (("during the run", 0), ("with the Parquet conversion", 1)):
        print(f"peak RSS {what}: {args.short:,} requests {short[i]:.0f} MiB; {args.long:,} requests "
              f"{long[i]:.0f} MiB; ratio {long[i] / short[i]:.2f} for {args.long / args.short:.0f}x the requests")


if __name__ == "__main__":
    main()
