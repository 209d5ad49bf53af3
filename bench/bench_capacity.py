"""Capacity search against a brute-force grid of rates, on the offline simulator: fidelity and cost.

    PYTHONPATH=. .venv/bin/python bench/bench_capacity.py [--repeats 3] [--duration 60] [--step 0.025]

Server: llama-2-7b-awq on a T4 with max-num-seqs 8, simulated in virtual time (varcas.targets.offline);
load: chat_medium, Poisson arrivals, `--duration` s per run, one seed per repetition (0, 1, ...);
SLOs: ttft <= 1000 ms and tpot <= 100 ms for 99% of requests.
Baseline, same seed: a grid of rates `--step` (2.5%) apart from 0.25 to 4 req/s, every run judged as
a search step is (capacity.judge). The grid's capacity is the highest rate below its first failure
(the true capacity to the grid's resolution); passes above that failure are counted, as the noise
of single runs. The search (capacity.search with `varcas sweep-rate`'s defaults: start at the
workload's 20 req/s, bounds 0.1-1000, tolerance 5%) should land within its tolerance of the grid's
capacity in a fraction of the runs. Figures: medians over the repetitions, then every repetition.
The printed lines and every run's verdict go to bench/out/bench_capacity.txt.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from varcas.load.runner import LoadConfig  # noqa: E402
from varcas.optimize.capacity import judge, round_rate, search  # noqa: E402
from varcas.sim import SimConfig, resolve  # noqa: E402
from varcas.targets.offline import simulate  # noqa: E402

SLOS = {"ttft": 1000.0, "tpot": 100.0}
ATTAINMENT = 0.99
GRID = (0.25, 4.0)
OUT = ROOT / "bench" / "out" / "bench_capacity.txt"


class Runner:
    """Offline runs of one seed into a temporary directory, timed and counted."""

    def __init__(self, tmp: Path, seed: int, duration_s: float):
        self.setup = resolve(SimConfig(model="llama-2-7b", gpu="t4", quant="awq", max_num_seqs=8))
        self.tmp, self.seed, self.duration_s = tmp, seed, duration_s
        self.runs = 0

    def __call__(self, rate: float) -> Path:
        self.runs += 1
        cfg = LoadConfig(workload="chat_medium", rps=rate, duration_s=self.duration_s, seed=self.seed,
                         out=str(self.tmp / f"run-{self.runs}"), quiet=True)
        return simulate(self.setup, cfg).run_dir


def grid_rates(step: float) -> list[float]:
    n = math.floor(math.log(GRID[1] / GRID[0]) / math.log1p(step)) + 1
    return [round_rate(GRID[0] * (1 + step) ** i) for i in range(n)]


def grid(seed: int, duration_s: float, step: float, raw: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        run_at = Runner(Path(tmp), seed, duration_s)
        t0 = time.perf_counter()
        steps = [judge(run_at(rate), rate, SLOS, ATTAINMENT) for rate in grid_rates(step)]
        wall = time.perf_counter() - t0
    first_fail = next((i for i, s in enumerate(steps) if not s.passed), len(steps))
    raw += [f"grid seed {seed}: {s.rate_rps:g} req/s {'pass' if s.passed else 'fail'} attainment "
            f"{s.attainment if s.attainment is not None else float('nan'):.4f} {s.reason}" for s in steps]
    return {"runs": len(steps), "wall_s": wall, "capacity": steps[first_fail - 1].rate_rps if first_fail else None,
            "stray_passes": sum(s.passed for s in steps[first_fail:])}


def bisect(seed: int, duration_s: float, raw: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        run_at = Runner(Path(tmp), seed, duration_s)
        t0 = time.perf_counter()
        result = search(run_at, SLOS, attainment=ATTAINMENT, start_rps=20.0, min_rps=0.1, max_rps=1000.0)
        wall = time.perf_counter() - t0
    raw += [f"search seed {seed}: {s.rate_rps:g} req/s {'pass' if s.passed else 'fail'} {s.reason}"
            for s in result.steps]
    raw.append(f"search seed {seed}: {result.text}")
    return {"runs": run_at.runs, "wall_s": wall, "capacity": result.capacity_rps, "hi": result.hi_rps,
            "outcome": result.outcome}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--step", type=float, default=0.025)
    a = ap.parse_args()
    lines: list[str] = []
    raw: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    say(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}")
    say(f"llama-2-7b-awq on T4, max-num-seqs 8, offline; chat_medium {a.duration:g} s per run; "
        f"SLO ttft<=1000 ms, tpot<=100 ms for 99%; grid {GRID[0]:g}-{GRID[1]:g} req/s at {a.step:.1%} steps")
    reps = []
    for seed in range(a.repeats):  # interleaved, so drifting machine load hits both alike
        g, s = grid(seed, a.duration, a.step, raw), bisect(seed, a.duration, raw)
        reps.append((seed, g, s))
        ratio = s["capacity"] / g["capacity"] if s["capacity"] and g["capacity"] else float("nan")
        say(f"seed {seed}: grid capacity {g['capacity']} req/s in {g['runs']} runs ({g['wall_s']:.1f} s, "
            f"{g['stray_passes']} passes above its first failure); search {s['capacity']} req/s "
            f"(fails at {s['hi']}, {s['outcome']}) in {s['runs']} runs ({s['wall_s']:.1f} s); "
            f"search/grid capacity {ratio:.3f}")

    def med(key, which):
        return statistics.median(r[which][key] for r in reps)

    ratios = [s["capacity"] / g["capacity"] for _, g, s in reps if s["capacity"] and g["capacity"]]
    within = sum(abs(r - 1) <= 0.05 for r in ratios)
    say(f"median of {a.repeats}: search {med('runs', 2):.0f} runs in {med('wall_s', 2):.1f} s vs grid "
        f"{med('runs', 1):.0f} runs in {med('wall_s', 1):.1f} s ({med('runs', 1) / med('runs', 2):.1f}x fewer runs, "
        f"{med('wall_s', 1) / med('wall_s', 2):.1f}x less time); search/grid capacity "
        f"{statistics.median(ratios):.3f} (runs: {', '.join(f'{r:.3f}' for r in ratios)}; "
        f"{within} of {len(ratios)} within the 5% tolerance)")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines + ["", "raw:"] + raw) + "\n")
    print(f"raw output: {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
