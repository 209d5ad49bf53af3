"""Benchmark of varcas.roofline's hot paths, each next to a baseline measured in the same run.

1. grid(): the numba kernel over a 1000 x 1000 (batch, context) decode grid (10^6 points), warm,
   against grid_reference(), the pure-numpy twin of the same formulas. Target: < 0.2 s warm.
2. step_time_s(): one engine step of 256 decodes (the simulator's per-step call), against
   evaluating the same step through the phase-table path (decode()). Target: < 20 us.

Prints the median of --repeat runs (>= 3), the spread, and a warning when the spread is >= 10%
of the median. Run: PYTHONPATH=. python bench/bench_roofline.py [--repeat 7]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from varcas import roofline


def measure(fn, repeat: int, inner: int = 1) -> tuple[float, float]:
    """Median and spread (max - min) in seconds per call over `repeat` runs of `inner` calls."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t0) / inner)
    return statistics.median(times), max(times) - min(times)


def report(label: str, median: float, spread: float, unit: float, suffix: str) -> None:
    warn = "  (unstable: spread >= 10% of median)" if spread >= 0.1 * median else ""
    print(f"  {label:<34} {median / unit:10.3f} {suffix}  (spread {spread / unit:.3f}){warn}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement (>= 3)")
    args = parser.parse_args()
    repeat = max(3, args.repeat)
    hw, m = roofline.hardware("t4"), roofline.model("llama-2-7b", "awq")
    batches, contexts = np.arange(1, 1001), np.arange(1, 1001) * 8

    t0 = time.perf_counter()
    roofline.grid(hw, m, "decode", batches[:2], contexts[:2])
    print(f"grid: first call (compile or cache load) {time.perf_counter() - t0:.2f} s")
    fast = roofline.grid(hw, m, "decode", batches, contexts, realistic=True)
    ref = roofline.grid_reference(hw, m, "decode", batches, contexts, realistic=True)
    print(f"grid: {fast.time_s.size:,} points, max relative difference kernel vs numpy "
          f"{np.max(np.abs(fast.time_s / ref.time_s - 1)):.1e}")
    k_med, k_spread = measure(lambda: roofline.grid(hw, m, "decode", batches, contexts,
                                                    realistic=True), repeat)
    r_med, r_spread = measure(lambda: roofline.grid_reference(hw, m, "decode", batches, contexts,
                                                              realistic=True), repeat)
    report("numba grid (warm)", k_med, k_spread, 1e-3, "ms")
    report("numpy reference", r_med, r_spread, 1e-3, "ms")
    print(f"  speed-up {r_med / k_med:.1f}x; target < 200 ms: {'met' if k_med < 0.2 else 'MISSED'}")

    ctx = np.random.default_rng(0).integers(64, 4096, 256)
    ctx_list = ctx.tolist()
    cost = roofline.step_cost(hw, m)
    inner = 2000
    s_med, s_spread = measure(lambda: roofline.step_time_s(hw, m, [], ctx), repeat, inner)
    l_med, l_spread = measure(lambda: roofline.step_time_s(hw, m, [(512, 0)], ctx_list), repeat, inner)
    c_med, c_spread = measure(lambda: cost.time_s([], ctx), repeat, inner)
    mean_ctx = int(ctx.mean())
    b_med, b_spread = measure(lambda: roofline.decode(hw, m, 256, mean_ctx), repeat, 200)
    print("step time, 256 decodes:")
    report("step_time_s (ndarray contexts)", s_med, s_spread, 1e-6, "us")
    report("step_time_s (list + 1 chunk)", l_med, l_spread, 1e-6, "us")
    report("StepCost.time_s (held object)", c_med, c_spread, 1e-6, "us")
    report("baseline: decode() phase path", b_med, b_spread, 1e-6, "us")
    print(f"  target < 20 us: {'met' if s_med < 20e-6 else 'MISSED'}")


if __name__ == "__main__":
    main()
