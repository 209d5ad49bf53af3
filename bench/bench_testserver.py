"""How many token writes/s the test server sustains on one core, and how late its tokens are.

    PYTHONPATH=. .venv/bin/python bench/bench_testserver.py [--rate 2000] [--tokens 64]
        [--itl-ms 10] [--duration 5] [--repeats 3] [--conns 256]

The server is pinned to core 0 and this process (the client) to core 1, so the figures are
the server's own. Interleaved and repeated, reported as medians:
- saturated: the server with --itl-ms 0 (tokens as fast as possible) serving `--conns`
  keep-alive connections that re-send as soon as a response ends: its top writes/s;
- paced: the target load, open loop at `--rate` requests/s x `--tokens` tokens `--itl-ms`
  apart. The server keeps up if its writes/s match the offered rate and its lag (write time
  minus plan, recv + k * itl) stays near the ~1 ms granularity of the loop's timer;
- a baseline for each: a bare Python loop on core 0 doing only what the server must do per
  token (time.monotonic_ns(), array append, one send of a ~190-byte chunk) in the same
  pattern (back to back over `--conns` connections; or in 1 ms ticks at the offered rate over
  as many connections as the paced run), read by a uvloop process on core 1. Its CPU per
  write is the floor for any one-core Python writer here, most of it the kernel's loopback
  TCP path (send, receive processing, waking the reader).
The server's CPU comes from /proc/PID/stat over the measured window (after a 1 s warm-up).
CPU per write (us/write) is the figure to compare: it holds on a shared machine, where other
processes on the server's core (reported) cut writes/s and add lag that are not the server's.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from array import array

import numpy as np
import uvloop

from varcas.testing import spawn

SERVER_CORE, CLIENT_CORE = 0, 1
WARMUP_S = 1.0
_END = b"\r\n0\r\n\r\n"   # a chunked body's end, as the server writes it
_DRAIN = """
import asyncio, uvloop
class Drain(asyncio.Protocol):
    def data_received(self, data):
        pass
async def serve():
    srv = await asyncio.get_running_loop().create_server(Drain, "127.0.0.1", 0)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(3600)
uvloop.run(serve())
"""


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process pid has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _core_busy_s(core: int) -> float:
    """CPU seconds the core has spent busy, whoever ran on it (from /proc/stat)."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{core} "):
                v = [int(x) for x in line.split()[1:]]
                return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")   # less idle, iowait
    raise RuntimeError(f"no cpu{core} in /proc/stat")


def _snapshot(pid: int) -> tuple[int, float, float]:
    return time.monotonic_ns(), _cpu_s(pid), _core_busy_s(SERVER_CORE)


def baseline(n_conns: int, writes_per_s: float | None, seconds: float) -> float:
    """CPU us per write of the bare per-token work on the server's core, round-robin over
    n_conns connections: back to back (writes_per_s None) or paced in 1 ms ticks."""
    chunk = b"c1\r\ndata: " + b"x" * 180 + b"\n\n\r\n"
    drain = subprocess.Popen(["taskset", "-c", str(CLIENT_CORE), sys.executable, "-c", _DRAIN],
                             stdout=subprocess.PIPE, text=True)
    try:
        port = int(drain.stdout.readline())
        socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(n_conns)]
        for sock in socks:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sends = [sock.send for sock in socks]
        per_tick = n_conns if writes_per_s is None else round(writes_per_s / 1000)
        os.sched_setaffinity(0, {SERVER_CORE})
        times, clock, i, n = array("q"), time.monotonic_ns, 0, 0
        cpu0, tick = time.process_time(), time.monotonic()
        end = tick + seconds
        while tick < end:
            for _ in range(per_tick):
                times.append(clock())
                sends[i](chunk)
                i = (i + 1) % n_conns
            n += per_tick
            if writes_per_s is not None:
                tick += 0.001
                time.sleep(max(0.0, tick - time.monotonic()))
            else:
                tick = time.monotonic()
        cpu_s = time.process_time() - cpu0
        os.sched_setaffinity(0, {CLIENT_CORE})
        for sock in socks:
            sock.close()
    finally:
        drain.kill()
        drain.wait()
    return cpu_s / n * 1e6


class _Conn(asyncio.Protocol):
    """A client connection that only notices where each response ends."""

    def __init__(self, done):
        self.done, self.tail, self.transport = done, b"", None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.tail = (self.tail + data)[-len(_END):]
        if self.tail == _END:
            self.tail = b""
            self.done(self)


def _request(tokens: int) -> bytes:
    body = b'{"prompt":"hello world","max_tokens":%d,"stream":true}' % tokens
    return (b"POST /v1/completions HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body))


async def _drive(port: int, tokens: int, conns: int, seconds: float, rate: float | None,
                 pid: int) -> dict:
    """Closed loop over `conns` connections (rate None) or open loop at `rate` requests/s;
    snapshots (time, server CPU, server core busy) after the warm-up and at the end."""
    loop = asyncio.get_running_loop()
    req = _request(tokens)
    idle: list[_Conn] = []
    counts = {"sent": 0, "done": 0, "no_conn": 0}

    def done(conn):
        counts["done"] += 1
        if rate is None:
            conn.transport.write(req)
            counts["sent"] += 1
        else:
            idle.append(conn)

    for _ in range(conns):
        _, conn = await loop.create_connection(lambda: _Conn(done), "127.0.0.1", port)
        idle.append(conn)
    t0 = time.monotonic()
    snaps = []
    if rate is None:
        while idle:
            idle.pop().transport.write(req)
            counts["sent"] += 1
        await asyncio.sleep(WARMUP_S)
        snaps.append(_snapshot(pid))
        await asyncio.sleep(seconds)
    else:
        while (elapsed := time.monotonic() - t0) < WARMUP_S + seconds:
            if not snaps and elapsed >= WARMUP_S:
                snaps.append(_snapshot(pid))
            for _ in range(int(elapsed * rate) - counts["sent"] - counts["no_conn"]):
                if idle:
                    idle.pop().transport.write(req)
                    counts["sent"] += 1
                else:
                    counts["no_conn"] += 1
            await asyncio.sleep(0.001)
    snaps.append(_snapshot(pid))
    return {**counts, "snaps": snaps}


def _window_stats(records: dict, t_lo: int, t_hi: int, itl_ns: int) -> tuple[int, np.ndarray]:
    """Token writes inside [t_lo, t_hi) and the lag of each (write time minus plan)."""
    n, lags = 0, []
    for r in records["requests"]:
        t = np.asarray(r["token_ns"], dtype=np.int64)
        n += int(np.count_nonzero((t >= t_lo) & (t < t_hi)))
        if t_lo <= r["recv_ns"] < t_hi:
            lags.append(t - (r["recv_ns"] + itl_ns * np.arange(len(t))))
    return n, np.concatenate(lags) if lags else np.zeros(0, np.int64)


def measure(tokens: int, itl_ms: float, conns: int, seconds: float, rate: float | None) -> dict:
    with spawn(tokens=tokens, itl_ms=itl_ms) as srv:
        os.sched_setaffinity(srv.proc.pid, {SERVER_CORE})
        counts = uvloop.run(_drive(srv.port, tokens, conns, seconds, rate, srv.proc.pid))
        (t_lo, cpu_lo, busy_lo), (t_hi, cpu_hi, busy_hi) = counts.pop("snaps")
        n, lags = _window_stats(srv.records(), t_lo, t_hi, round(itl_ms * 1e6))
    window_s = (t_hi - t_lo) / 1e9
    cpu_s = cpu_hi - cpu_lo
    lag_ms = np.percentile(lags, [50, 99, 100]) / 1e6 if lags.size else [float("nan")] * 3
    return {"writes_per_s": n / window_s, "cpu": cpu_s / window_s, "us_per_write": cpu_s / n * 1e6,
            "others": max(0.0, (busy_hi - busy_lo) - cpu_s) / window_s,
            "lag_p50_ms": float(lag_ms[0]), "lag_p99_ms": float(lag_ms[1]),
            "lag_max_ms": float(lag_ms[2]), **counts}


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def _report_baseline(label: str, runs: list[float]) -> None:
    b = statistics.median(runs)
    print(f"baseline, bare send loop {label}: {b:.2f} us/write (a whole core's worth: "
          f"{1e6 / b:,.0f} writes/s; runs: {', '.join(f'{x:.2f}' for x in runs)} us)")


def _report(label: str, runs: list[dict], base_us: float, paced: bool) -> None:
    m = {k: _median(runs, k) for k in runs[0] if isinstance(runs[0][k], float)}
    # Lag means something only against a plan: with itl 0 every token is "due" at arrival.
    lag = (f"; lag p50 {m['lag_p50_ms']:.2f} ms, p99 {m['lag_p99_ms']:.2f} ms, "
           f"max {m['lag_max_ms']:.2f} ms") if paced else ""
    print(f"{label}: {m['us_per_write']:.2f} us/write = {m['us_per_write'] / base_us:.2f} x "
          f"baseline (a whole core's worth: {1e6 / m['us_per_write']:,.0f} writes/s); measured "
          f"{m['writes_per_s']:,.0f} writes/s using {m['cpu']:.2f} of a core{lag}")
    print("    runs (us/write): " + ", ".join(f"{r['us_per_write']:.2f}" for r in runs)
          + f"; other processes on the server's core: {m['others']:.2f} core; "
          f"requests with no free client connection: {_median(runs, 'no_conn'):.0f}")
    if m["others"] > 0.05:
        print("    WARNING: other processes used the server's core; lag and writes/s understate it")


def server_bench_parser(doc: str) -> argparse.ArgumentParser:
    """The flags every streaming-server benchmark takes (this one's and bench_sim's)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--conns", type=int, default=256)
    ap.add_argument("--tokens", type=int, default=64)
    return ap


def main() -> int:
    ap = server_bench_parser(__doc__)
    ap.add_argument("--rate", type=float, default=2000.0)
    ap.add_argument("--itl-ms", type=float, default=10.0)
    a = ap.parse_args()
    os.sched_setaffinity(0, {CLIENT_CORE})
    # Enough connections for every request in flight: rate x (tokens x itl), plus margin.
    paced_conns = int(a.rate * a.tokens * a.itl_ms / 1e3 * 1.3) + 64
    base_sat, base_paced, sat, paced = [], [], [], []
    for _ in range(a.repeats):   # interleaved, so drifting machine load hits all alike
        base_sat.append(baseline(a.conns, None, 2.0))
        sat.append(measure(a.tokens, 0.0, a.conns, a.duration, None))
        base_paced.append(baseline(paced_conns, a.rate * a.tokens, 2.0))
        paced.append(measure(a.tokens, a.itl_ms, paced_conns, a.duration, a.rate))
    _report_baseline(f"back to back over {a.conns} connections", base_sat)
    _report(f"saturated server, itl 0, {a.conns} connections", sat, statistics.median(base_sat),
            paced=False)
    _report_baseline(f"paced at {a.rate * a.tokens:,.0f} writes/s over {paced_conns} connections",
                     base_paced)
    _report(f"paced server, {a.rate:,.0f} req/s x {a.tokens} tokens @ {a.itl_ms:g} ms "
            f"(offered {a.rate * a.tokens:,.0f} writes/s)", paced, statistics.median(base_paced),
            paced=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
