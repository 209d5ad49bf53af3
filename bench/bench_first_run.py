"""The first run a user makes: is the default target healthy at the design card's 50 req/s, and how
much headroom is there? Then the T4 worked example: does the pipeline answer every use case?

    PYTHONPATH=. .venv/bin/python bench/bench_first_run.py [--seeds 3] [--live 20] [--live-repeats 3]

1. Offline (virtual time), the default target (varcas.sim.SimConfig()), chat_medium for 600 s:
   at 50 req/s per seed, and at 80 and 100 req/s (seed 0) to place 50 against its capacity; the
   same model in fp16 at 50 and 60 req/s as the rejected alternative. Per run: the verdict, TTFT
   and TPOT p50/p99 over the steady window.
2. Live: `python -m varcas.load --rps 50 --duration LIVE` as the README says (the simulator
   served over HTTP, the client and server sharing this machine's cores with whatever else runs:
   unpinned), repeated; the verdict, TTFT p50/p99 and send-lag p99 of each, median and spread.
3. The worked example, `varcas pipeline --model llama-2-7b --gpu t4 --quant awq --offline`: wall
   time and the configuration or reason per use case, at the workloads' rates and at capacity.
Figures also go to bench/out/bench_first_run.txt.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from varcas.analyze import load_run, summarize  # noqa: E402
from varcas.load.runner import LoadConfig  # noqa: E402
from varcas.sim import SimConfig, resolve  # noqa: E402
from varcas.targets.offline import simulate  # noqa: E402

OUT = ROOT / "bench" / "out" / "bench_first_run.txt"
lines: list[str] = []


def say(text: str = "") -> None:
    print(text, flush=True)
    lines.append(text)


def _figures(s) -> str:
    block = s.steady or s.whole
    lat = block.latency
    pct = lambda m, p: lat[m].percentiles[p] if lat.get(m) else float("nan")  # noqa: E731
    return (f"TTFT p50 {pct('ttft', 50):8.1f} p99 {pct('ttft', 99):8.1f} ms  TPOT p50 {pct('tpot', 50):6.2f} "
            f"p99 {pct('tpot', 99):6.2f} ms  {'steady' if s.verdict.steady else 'not steady'}"
            f"{', OVERLOADED' if s.verdict.overloaded else ''}")


def offline(tmp: Path, seeds: int) -> None:
    say("1. offline, 600 s of chat_medium (virtual time)")
    cases = [(SimConfig(), 50.0, seed) for seed in range(seeds)]
    cases += [(SimConfig(), 80.0, 0), (SimConfig(), 100.0, 0)]
    cases += [(SimConfig(quant="fp16"), 50.0, 0), (SimConfig(quant="fp16"), 60.0, 0)]
    for n, (config, rps, seed) in enumerate(cases):
        setup = resolve(config)
        cfg = LoadConfig(workload="chat_medium", rps=rps, duration_s=600.0, seed=seed, out=str(tmp / f"off{n}"),
                         quiet=True)
        s = summarize(load_run(simulate(setup, cfg).run_dir))
        say(f"  {setup.served_name:16s} {rps:5.0f} req/s seed {seed}: {_figures(s)}")


def live(tmp: Path, duration: float, repeats: int) -> None:
    say(f"2. live: python -m varcas.load --rps 50 --duration {duration:g} (unpinned, shared cores)")
    ttft50, ttft99, lag99, steady = [], [], [], 0
    for n in range(repeats):
        out = tmp / f"live{n}"
        subprocess.run([sys.executable, "-m", "varcas.load", "--rps", "50", "--duration", str(duration), "--quiet",
                        "--out", str(out)], cwd=ROOT, check=True, capture_output=True)
        s = summarize(load_run(out))
        block = s.steady or s.whole
        ttft50.append(block.latency["ttft"].percentiles[50])
        ttft99.append(block.latency["ttft"].percentiles[99])
        lag99.append(block.latency["send_lag"].percentiles[99] if block.latency.get("send_lag") else float("nan"))
        steady += s.verdict.steady and not s.verdict.overloaded
        say(f"  run {n}: {_figures(s)}  send lag p99 {lag99[-1]:.2f} ms")
    spread = lambda xs: f"{statistics.median(xs):.2f} [{min(xs):.2f}-{max(xs):.2f}]"  # noqa: E731
    say(f"  steady {steady}/{repeats}; TTFT p50 {spread(ttft50)} ms, p99 {spread(ttft99)} ms; "
        f"send lag p99 {spread(lag99)} ms (median [min-max])")


def worked_example(tmp: Path) -> None:
    say("3. varcas pipeline --model llama-2-7b --gpu t4 --quant awq --offline")
    out = tmp / "pipe"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "varcas.cli", "pipeline", "--model", "llama-2-7b", "--gpu", "t4", "--quant",
                    "awq", "--offline", "--quiet", "--out", str(out)], cwd=ROOT, check=True, capture_output=True)
    say(f"  wall time {time.perf_counter() - t0:.1f} s")
    for step in ("sweep", "capacity"):
        doc = json.loads((out / step / "comparison.json").read_text())
        for workload, entry in doc["workloads"].items():
            picks = ", ".join(f"{r['use_case']} {r['config'] or '-'}" for r in entry["recommendations"])
            say(f"  {step:8s} {workload:11s}: {picks}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--live", type=float, default=20.0, help="seconds of schedule per live run")
    p.add_argument("--live-repeats", type=int, default=3)
    args = p.parse_args()
    say(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"default target: {resolve(SimConfig()).describe()}")
    with tempfile.TemporaryDirectory() as tmp:
        offline(Path(tmp), args.seeds)
        live(Path(tmp), args.live, args.live_repeats)
        worked_example(Path(tmp))
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
