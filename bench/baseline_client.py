"""Baseline for bench_load.py: a plain asyncio + httpx streaming client, the way most peers work.

Each request is a task started by asyncio.sleep until its scheduled time (the schedule is
varcas's own, same seed, so both clients face the same arrivals); each SSE line is decoded
and JSON-parsed in Python; times come from time.perf_counter_ns. Prints nothing; writes
{cpu_s, events, lag_p99_us} as JSON to the output path.

    python bench/baseline_client.py URL RATE DURATION OUTPUT_LEN OUT.json
"""
from __future__ import annotations

import asyncio
import json
import resource
import sys
import time

import httpx
import numpy as np

from varcas.schedule.build import build_schedule
from varcas.schedule.workloads import load_workload


async def one(client, url, i, prompt, out_len, due_ns, lags, counts):
    await asyncio.sleep(max(0.0, (due_ns - time.perf_counter_ns()) / 1e9))
    lags.append(time.perf_counter_ns() - due_ns)
    body = {"model": "test-model", "prompt": prompt, "max_tokens": out_len, "stream": True,
            "stream_options": {"include_usage": True}, "ignore_eos": True}
    async with client.stream("POST", url + "/v1/completions", json=body) as resp:
        async for line in resp.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            data = json.loads(line[6:])
            if data.get("choices") and data["choices"][0].get("text"):
                counts[0] += 1


async def main(url: str, rate: float, duration: float, out_len: int) -> dict:
    sched = build_schedule(workload=load_workload("chat_medium"), rps=rate, duration_s=duration,
                           input_len=32, output_len=out_len, seed=1)
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    lags, counts = [], [0]
    async with httpx.AsyncClient(limits=limits, timeout=600) as client:
        t0 = time.perf_counter_ns() + 20_000_000
        prompt = list(range(1000, 1032))
        tasks = [one(client, url, i, prompt, out_len, t0 + int(off), lags, counts)
                 for i, off in enumerate(sched.offset_ns)]
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        await asyncio.gather(*tasks, return_exceptions=True)
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        wall = (time.perf_counter_ns() - t0) / 1e9
    return {"cpu_s": ru1.ru_utime - ru0.ru_utime + ru1.ru_stime - ru0.ru_stime, "events": counts[0],
            "wall_s": wall, "lag_p99_us": float(np.percentile(lags, 99) / 1e3)}


if __name__ == "__main__":
    url, rate, duration, out_len, out = sys.argv[1:6]
    result = asyncio.run(main(url, float(rate), float(duration), int(out_len)))
    with open(out, "w") as f:
        json.dump(result, f)
