"""The simulator's two speeds: SSE token events/s served on one core, and virtual-time speed.

    PYTHONPATH=. .venv/bin/python bench/bench_sim.py [--repeats 3] [--duration 5] [--conns 256]
        [--tokens 64] [--virtual-s 3600]

1. Served (targets: >= 100,000 token events/s on one core). The simulator is pinned to core 0
   and this process (a closed-loop client: `--conns` keep-alive connections, each re-sending
   a streaming request of `--tokens` tokens as soon as its response ends) to core 1. The GPU
   is an inline one with absurd bandwidth and FLOP/s, so a step takes exactly its overhead:
   flat out (no overhead: every step ~0 s, the simulator's own ceiling, scheduling included)
   and paced (2 ms steps: `--conns` events every 2 ms, one send per event, as at a real
   server's step times). Events/s come from its /metrics (vllm:generation_tokens_total) over the window
   after a 1 s warm-up; its CPU from /proc, so CPU us per event and the events/s a whole core
   would give. Baseline, same run: the CPU us per write of a bare Python send loop on core 0
   (bench_testserver.baseline), the floor for any one-core Python writer that writes once
   per event; the simulator beats it by writing each connection's due events in one send.
2. Virtual time (target: one hour of chat_medium, ~72,000 requests, in < 30 s), run directory
   written, for the issue's offline example (llama-2-7b-awq on a T4, max-num-seqs 8,
   chat_medium at its 20 RPS: saturated, so clients time out and steps are few and long) and
   for a server that keeps up (an H100, max-num-seqs 256, vLLM 0.32's chunked scheduling: ~559,000
   steps, ~15M tokens; ~571,000 with --scheduler v0).
   Baseline, same run: the roofline alone, i.e. step_cost().time_s over the same step mixes
   (uniform contexts), with no scheduling, token bookkeeping or I/O.
Figures are medians of `--repeats` interleaved runs.
"""
from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_testserver import (  # noqa: E402
    CLIENT_CORE,
    SERVER_CORE,
    WARMUP_S,
    _Conn,
    _cpu_s,
    _request,
    baseline,
    server_bench_parser,
)

from varcas import roofline  # noqa: E402
from varcas.load.runner import LoadConfig  # noqa: E402
from varcas.sim import SimConfig, resolve, spawn  # noqa: E402
from varcas.targets.offline import simulate  # noqa: E402

INSTANT_GPU = "instant:bw_gbps=1e9,fp16_tflops=1e9,mem_gb=1000"


def _generated(sim) -> float:
    for line in sim.metrics_text().splitlines():
        if line.startswith("vllm:generation_tokens_total"):
            return float(line.rsplit(" ", 1)[1])
    raise RuntimeError("no vllm:generation_tokens_total in /metrics")


async def _closed_loop(port: int, tokens: int, conns: int, seconds: float, snap) -> list:
    loop = asyncio.get_running_loop()
    req = _request(tokens)

    def done(conn):
        conn.transport.write(req)

    clients = [(await loop.create_connection(lambda: _Conn(done), "127.0.0.1", port))[1] for _ in range(conns)]
    for conn in clients:
        conn.transport.write(req)
    await asyncio.sleep(WARMUP_S)
    snaps = [await loop.run_in_executor(None, snap)]
    await asyncio.sleep(seconds)
    snaps.append(await loop.run_in_executor(None, snap))
    for conn in clients:
        conn.transport.close()
    return snaps


def served(tokens: int, conns: int, seconds: float, step_ms: float) -> dict:
    with spawn(gpu=INSTANT_GPU, max_num_seqs=conns, step_overhead_ms=step_ms) as sim:
        os.sched_setaffinity(sim.proc.pid, {SERVER_CORE})
        pid = sim.proc.pid
        (t0, c0, g0), (t1, c1, g1) = uvloop.run(_closed_loop(
            sim.port, tokens, conns, seconds, lambda: (time.monotonic(), _cpu_s(pid), _generated(sim))))
    return {"events_per_s": (g1 - g0) / (t1 - t0), "cpu": (c1 - c0) / (t1 - t0),
            "us_per_event": (c1 - c0) / (g1 - g0) * 1e6}


VIRTUAL_CASES = (("t4", 8), ("h100", 256))
SERVED_STEP_MS = (0.0, 2.0)


def virtual(seconds: float, gpu: str, max_num_seqs: int) -> dict:
    setup = resolve(SimConfig(gpu=gpu, max_num_seqs=max_num_seqs))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = simulate(setup, LoadConfig(workload="chat_medium", duration_s=seconds, out=f"{tmp}/run", quiet=True))
        wall = time.perf_counter() - t0
    steps = result.steps
    cost = roofline.step_cost(setup.hw, setup.model)
    t0 = time.perf_counter()
    for pre, dec in zip(steps["prefill_tokens"].tolist(), steps["decode_seqs"].tolist()):
        cost.time_s([(pre, 0)] if pre else [], [256] * dec)
    floor = time.perf_counter() - t0
    return {"wall_s": wall, "floor_s": floor, "requests": result.manifest["counts"]["scheduled"],
            "steps": result.manifest["sim"]["steps"], "virtual_s": result.manifest["sim"]["virtual_s"]}


def main() -> int:
    ap = server_bench_parser(__doc__)
    ap.add_argument("--virtual-s", type=float, default=3600.0)
    a = ap.parse_args()
    os.sched_setaffinity(0, {CLIENT_CORE})
    base, virt_runs = [], {case: [] for case in VIRTUAL_CASES}
    serve_runs = {step_ms: [] for step_ms in SERVED_STEP_MS}
    for _ in range(a.repeats):   # interleaved, so drifting machine load hits all alike
        base.append(baseline(a.conns, None, 2.0))
        for step_ms, runs in serve_runs.items():
            runs.append(served(a.tokens, a.conns, a.duration, step_ms))
        for case, runs in virt_runs.items():
            runs.append(virtual(a.virtual_s, *case))
    b = statistics.median(base)
    print(f"baseline, bare send loop over {a.conns} connections: {b:.2f} CPU us/write = "
          f"{1e6 / b:,.0f} writes/s per core (runs: {', '.join(f'{x:.2f}' for x in base)})")
    for step_ms, runs in serve_runs.items():
        m = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        label = f"paced, {step_ms:g} ms steps" if step_ms else "flat out"
        print(f"served, {label}, {a.conns} streams x {a.tokens} tokens: {m['events_per_s']:,.0f} SSE token "
              f"events/s using {m['cpu']:.2f} of a core = {m['us_per_event']:.2f} CPU us/event = "
              f"{1e6 / m['us_per_event']:,.0f} events/s per core, {b / m['us_per_event']:.1f} x baseline "
              f"(target >= 100,000/s; runs: " + ", ".join(f"{r['events_per_s']:,.0f}" for r in runs) + ")")
    for (gpu, mns), runs in virt_runs.items():
        v = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"virtual time, chat_medium 20 RPS, llama-2-7b-awq on {gpu}, max-num-seqs {mns}: "
              f"{v['requests']:,.0f} requests, {v['virtual_s']:,.0f} s simulated ({v['steps']:,.0f} steps) "
              f"in {v['wall_s']:.2f} s wall (target < 30 s; runs: "
              + ", ".join(f"{r['wall_s']:.2f}" for r in runs) + ")")
        print(f"    baseline, the roofline alone over the same step mixes: {v['floor_s']:.2f} s "
              f"(engine + recording = {v['wall_s'] / v['floor_s']:.1f} x that)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
