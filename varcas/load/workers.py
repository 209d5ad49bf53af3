"""--workers N|auto: one run's schedule sent by N worker processes, recorded as one run.

The split. The schedule is built once, as for one process (the same seed gives the same planned
offsets, lengths and prompts). Request i belongs to conversation i mod C (C = the number of
requests without --turns) and worker (i mod C) mod N: round robin over conversations. Each
worker thus has 1/N of the requests spread evenly over the whole run (so 1/N of the load at
every moment, where blocks of the schedule would load one worker at a time), no two
consecutive requests of the schedule (a burst is sent by N loops at once), and whole
conversations (a turn follows its previous turn's end on the same worker). Merged, the
workers' planned sends are exactly the schedule's.

The clock. CLOCK_MONOTONIC is system-wide on Linux: the parent waits until every worker has
warmed its connections, then sends all of them one start instant (start_ns, 50 ms ahead); each
worker anchors its offsets there, so request i is planned at start_ns + offset_i whichever
worker sends it. Each worker is a fresh interpreter ('spawn': nothing inherited but what is
passed) with its own uvloop loop, C timing core, connection pool and timer (varcas.load.worker),
optionally pinned to one core (--worker-cores).

The files. Worker k appends its rows to its own Arrow stream, requests-wK.arrows (flushed at
least once a second); at the end the parent merges the streams into the one requests.parquet, in
request_id order (varcas.rundir.convert_to_parquet), so analyze, report, pandas and duckdb read
a run of N workers exactly as a run of one. After a kill -9 of the parent the workers die too
(PR_SET_PDEATHSIG) and `varcas recover` merges their streams.

Everything else works as for one process: the parent forwards SIGINT, SIGTERM and SIGHUP (first:
stop sending and drain, second: cancel), renders one live view from the workers' reports,
decides fail-fast (every worker's first ceil(F/N) requests failed alike), stops every worker
when one dies or cannot write; --max-concurrency is one global cap (varcas.load.slots).

--workers auto: N = ceil(planned token events/s / per-core ceiling), at most the CPUs this
process may use minus one (one is left to the parent, the server or the scraper). The planned
rate is the schedule's output tokens over its span; the per-core ceiling is REF_EVENTS_PER_CORE
(measured with bench/bench_scale.py on the reference machine) scaled by how fast this machine
runs the C parser, timed at start-up for a few milliseconds against REF_PARSER_NS.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import multiprocessing
import os
import resource
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import uvloop

from .._timing import StreamParser, monotonic_ns
from ..errors import VarcasError
from ..rundir import read_columns
from ..schedule import Schedule
from ..schedule.datasets import TextSample
from ..signals import ENDING
from . import worker
from .failures import signature
from .progress import Progress, combine
from .request import RequestBuilder, Target
from .slots import SharedSlots

if TYPE_CHECKING:
    from .runner import LoadConfig, Prepared
    from .vocab import PromptPlan

AUTO = "auto"
START_METHOD = "spawn"
START_AHEAD_NS = 50_000_000  # the start instant is this far ahead of the "start" message
STARTUP_TIMEOUT_S = 120.0  # a worker not ready by then is stopped and the run ends
JOIN_TIMEOUT_S = 10.0
# --workers auto's per-core ceiling, measured with bench/bench_scale.py on the reference
# machine (2-vCPU x86_64 VM, Python 3.11.7; docs/scale.md): one worker spends 5.0-5.6 µs of CPU
# per token event (180,000-200,000 events per CPU-second) and keeps its send-lag p99 at
# 0.4-0.6 ms at 64,000 events/s and 0.9-1.5 ms at 128,000; 100,000 (about half a core) is the
# ceiling for a p99 under 1 ms. The C parser took 231-234 ns per read there (bench_scale prints it).
REF_EVENTS_PER_CORE = 100_000
REF_PARSER_NS = 235.0


def parse_workers(value: object) -> int | str | None:
    """--workers: an integer >= 1, or "auto", or None (not given: 1, or with --ray the cluster's
    CPUs - 1); VarcasError otherwise."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text == AUTO:
            return AUTO
        try:
            value = int(text)
        except ValueError:
            raise VarcasError(f"--workers: must be a number of processes >= 1 or auto, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise VarcasError(f"--workers: must be a number of processes >= 1 or auto, got {value!r}")
    return value


def parse_cores(value: object) -> list[int] | None:
    """--worker-cores: CPUs as "0,2,4-7" (or a list of ints), each one this process may run
    on; worker k is pinned to the k-th (round robin). VarcasError otherwise."""
    if value is None:
        return None
    cores: list[int] = []
    try:
        if isinstance(value, str):
            for part in value.split(","):
                lo, dash, hi = part.strip().partition("-")
                cores += range(int(lo), int(hi) + 1) if dash else [int(lo)]
        else:
            cores = [int(c) for c in value]  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise VarcasError(f"--worker-cores: must be CPU numbers such as 0,2,4-7, got {value!r}") from None
    allowed = os.sched_getaffinity(0)
    bad = [c for c in cores if c not in allowed]
    if not cores or bad or len(set(cores)) != len(cores):
        why = f"CPU {bad[0]} is not one this process may use ({_ranges(allowed)})" if bad else \
            "each CPU once" if cores else "no CPU given"
        raise VarcasError(f"--worker-cores: {why}, got {value!r}")
    return cores


def _ranges(cpus) -> str:
    return ",".join(str(c) for c in sorted(cpus))


@dataclass(frozen=True)
class Layout:
    """How a run is split: N workers, round robin over C conversations, cores, why N."""

    n: int
    requests: int
    conversations: int
    cores: list[list[int] | None]  # per worker: the CPUs it is pinned to, or None
    asked: int | str | None
    how: str

    def owner(self, request_ids: np.ndarray) -> np.ndarray:
        """The worker of each request_id."""
        return (request_ids % self.conversations) % self.n

    def ids(self, k: int) -> np.ndarray:
        """Worker k's request_ids, ascending (turn-major within its conversations, as the schedule)."""
        return np.flatnonzero(self.owner(np.arange(self.requests, dtype=np.int64)) == k).astype(np.int64)

    def describe(self) -> dict:
        """run.json's `workers` at the start (the end adds each worker's health)."""
        counts = np.bincount(self.owner(np.arange(self.requests, dtype=np.int64)), minlength=self.n)
        return {"n": self.n, "asked": self.asked, "how": self.how, "conversations": self.conversations,
                "split": "request i -> worker (i mod conversations) mod n",
                "start_method": START_METHOD if self.n > 1 else "in-process",
                "per_worker": [{"worker": k, "cores": self.cores[k], "requests": int(counts[k])}
                               for k in range(self.n)]}


def plan(cfg: LoadConfig, sched: Schedule, cluster_cpus: int | None = None) -> Layout:
    """The run's layout from cfg.workers (checked by prepare) and the schedule; with cluster_cpus
    (--ray: the CPUs a Ray cluster offers) workers are capped, and by default as many, at those - 1."""
    asked = cfg.workers
    if cluster_cpus is not None and asked is None:
        n, how = max(1, cluster_cpus - 1), f"--ray: the cluster's {cluster_cpus} CPUs - 1 (at least 1)"
    elif asked == AUTO:
        n, how = auto_workers(sched, cluster_cpus)
    else:
        asked = asked or 1  # a config that prepare() did not check
        n, how = int(asked), f"--workers {asked}"
    conversations = sched.timed if sched.think_ns is not None else len(sched)
    if cluster_cpus is not None and n > cluster_cpus:
        raise VarcasError(f"--workers {n}: the Ray cluster offers {cluster_cpus} CPUs, one per worker")
    if n > conversations:
        n, how = conversations, how + f"; {conversations} as there are no more " + \
            ("conversations" if sched.think_ns is not None else "requests")
    cores = parse_cores(cfg.worker_cores)
    pinned = [[cores[k % len(cores)]] if cores else None for k in range(n)]
    return Layout(n, len(sched), conversations, pinned, asked, how)


def usable_cpus() -> int:
    return min(os.cpu_count() or 1, len(os.sched_getaffinity(0)))


def auto_workers(sched: Schedule, cluster_cpus: int | None = None) -> tuple[int, str]:
    """(N, how it was chosen) for --workers auto (module docstring); with --ray, at most the
    cluster's CPUs - 1."""
    span_s = max(sched.duration_s, 1.0)
    planned = float(sched.output_len.sum(dtype=np.int64)) / span_s
    parser_ns = parser_ns_per_read()
    per_core = REF_EVENTS_PER_CORE * REF_PARSER_NS / parser_ns
    need = max(1, math.ceil(planned / per_core))
    cap = max(1, (usable_cpus() if cluster_cpus is None else cluster_cpus) - 1)
    n = min(need, cap)
    how = (f"auto: {planned:,.0f} planned token events/s / {per_core:,.0f} per core (C parser "
           f"{parser_ns:.0f} ns per read here, {REF_PARSER_NS:.0f} where {REF_EVENTS_PER_CORE:,} per core was "
           f"measured) -> {need}" + (f", at most {cap} (CPUs - 1)" if need > cap else ""))
    return n, how


def parser_ns_per_read(rounds: int = 5, streams: int = 20) -> float:
    """The C parser's best ns per socket read over a synthetic 64-token SSE stream (~3 ms)."""
    event = (b'data: {"id":"cmpl-0","object":"text_completion","created":1,"model":"m","choices":[{"index":0,'
             b'"text":" token","logprobs":null,"finish_reason":null}],"usage":null}\n\n')
    reads = [b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"]
    reads += [b"%x\r\n%s\r\n" % (len(event), event)] * 64
    reads.append(b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n")
    parser, best = StreamParser(), math.inf
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for _ in range(streams):
            parser.reset()
            for r in reads:
                parser.feed(r)
        best = min(best, (time.perf_counter_ns() - t0) / (streams * len(reads)))
    return best


@contextlib.contextmanager
def _children_ignore_ending_signals():
    """Processes started inside inherit SIG_IGN for SIGINT, SIGTERM and SIGHUP (kept across
    exec), so a terminal's Ctrl-C, which reaches the whole process group, cannot kill a worker
    while its interpreter starts; the parent blocks them meanwhile and handles them after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, ENDING)
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in ENDING}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def execute(prep: Prepared, plan_: PromptPlan, texts: TextSample | None, builder: RequestBuilder, target: Target,
            run_dir: Path, console, secrets: tuple[str, ...], rearm, layout: Layout) -> dict:
    """Run the schedule over layout.n worker processes; returns the manifest fields of the outcome
    (as runner._execute does for one process)."""
    cfg = prep.config
    ctx = multiprocessing.get_context(START_METHOD)
    shared = SharedSlots(ctx, cfg.max_concurrency, layout.n) if cfg.max_concurrency else None
    window = fail_fast_window(cfg, layout)
    specs = make_specs(prep, plan_, texts, builder, target, run_dir, secrets, layout)
    loop = uvloop.new_event_loop()
    sup = _Supervisor(loop, ctx, specs, shared, cfg, layout)
    ru0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    try:
        with Progress(console, not cfg.quiet, prep.schedule.duration_s) as progress:
            loop.run_until_complete(sup.run(progress))
    finally:
        rearm()  # the loop's handlers are gone: signals raise KeyboardInterrupt again
        sup.end_processes()
        loop.close()
    ru1, wall1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    own_cpu_s = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return sup.outcome(own_cpu_s, wall1 - wall0, window)


def fail_fast_window(cfg: LoadConfig, layout: Layout) -> int:
    """Each worker's fail-fast window: the run's, split over the workers (0: never)."""
    return math.ceil(cfg.fail_fast / layout.n) if cfg.fail_fast else 0


def make_specs(prep: Prepared, plan_: PromptPlan, texts: TextSample | None, builder: RequestBuilder, target: Target,
               run_dir: Path, secrets: tuple[str, ...], layout: Layout) -> list[worker.WorkerSpec]:
    """Each worker's spec (its share of the schedule)."""
    window = fail_fast_window(prep.config, layout)
    light = dataclasses.replace(prep, text=None)  # the sampled texts travel, not the whole dataset
    specs = []
    for k in range(layout.n):
        ids = layout.ids(k)
        specs.append(worker.WorkerSpec(k, str(run_dir), light, plan_, texts, builder, target, ids,
                                       len(ids) // prep.schedule.shape.turns, window, secrets, layout.cores[k]))
    return specs


class _Supervisor:
    """The parent's side: starts the workers, relays signals, gathers reports."""

    start_ahead_ns = START_AHEAD_NS  # the start instant is this far ahead of the start messages

    def __init__(self, loop, ctx, specs: list[worker.WorkerSpec], shared: SharedSlots | None, cfg: LoadConfig,
                 layout: Layout) -> None:
        self._init_state(loop, specs, cfg, layout)
        pipes = [ctx.Pipe() for _ in specs]
        self.conns = [mine for mine, _ in pipes]
        self._child_ends = [theirs for _, theirs in pipes]
        self.procs = [ctx.Process(target=worker.main, args=(os.getpid(), theirs, shared),
                                  name=f"varcas-load-w{spec.index}", daemon=True) for spec, (_, theirs) in zip(specs, pipes)]

    def _init_state(self, loop, specs: list[worker.WorkerSpec], cfg: LoadConfig, layout: Layout) -> None:
        """What the workers reported so far (shared with varcas.load.rayworkers' driver)."""
        self.loop, self.cfg, self.layout, self.specs = loop, cfg, layout, specs
        self.ready: set[int] = set()
        self.ended: set[int] = set()
        self.reports: dict[int, dict] = {}
        self.dead: dict[int, str] = {}
        self.lost: dict[int, dict] = {}  # Ray workers lost mid-run (also in dead): the others went on
        self.errors: dict[int, str] = {}
        self.trips: dict[int, str] = {}
        self.snaps: dict[int, tuple] = {}
        self.interrupts = 0
        self.storage: str | None = None
        self.tripped: str | None = None
        self.start_ns: int | None = None
        self.all_ready = loop.create_future()
        self.all_done = loop.create_future()
        self.progress: Progress | None = None

    async def start_and_watch(self, progress: Progress) -> None:
        """Once every worker is ready (or STARTUP_TIMEOUT_S passed): one start instant for all,
        or stop if interrupted meanwhile; then the live view until every worker is done."""
        self.loop.call_later(STARTUP_TIMEOUT_S, self._startup_timeout)
        await self.all_ready
        if self.interrupts or self.dead:
            self.broadcast(("stop",))
        else:
            self.start_ns = monotonic_ns() + self.start_ahead_ns
            self.send_start(self.start_ns)
        while not self.all_done.done():
            await asyncio.wait([self.all_done], timeout=0.5)
            if self.start_ns is not None:
                stats, inflight = combine(list(self.snaps.values()))
                progress.update(stats, (monotonic_ns() - self.start_ns) / 1e9, inflight)

    def send_start(self, start_ns: int) -> None:
        """Every worker starts at start_ns (one host: one CLOCK_MONOTONIC)."""
        self.broadcast(("start", start_ns))

    async def run(self, progress: Progress) -> None:
        self.progress = progress
        for sig in ENDING:
            self.loop.add_signal_handler(sig, self.on_signal)
        try:
            with _children_ignore_ending_signals():
                for proc in self.procs:
                    proc.start()
            for end in self._child_ends:
                end.close()  # the worker's end lives in the worker: its exit is an EOF here
            for k, conn in enumerate(self.conns):
                try:
                    conn.send(self.specs[k])  # blocks until the worker, started meanwhile, reads it
                except OSError:
                    pass  # it died: the EOF below says so
                self.loop.add_reader(conn.fileno(), self._on_readable, k)
            await self.start_and_watch(progress)
        finally:
            for sig in ENDING:
                self.loop.remove_signal_handler(sig)
            for conn in self.conns:
                if not conn.closed:
                    self.loop.remove_reader(conn.fileno())

    def on_signal(self) -> None:
        if self.all_done.done():
            return
        self.interrupts += 1
        if self.interrupts == 1:
            self._note("interrupted: ")
            self.broadcast(("stop",))
        else:
            self.broadcast(("cancel",))

    def _note(self, text: str) -> None:
        if self.progress is not None:
            self.progress.note += text

    def broadcast(self, msg: tuple) -> None:
        """To every worker still running."""
        for k, conn in enumerate(self.conns):
            if k not in self.reports and k not in self.dead:
                try:
                    conn.send(msg)
                except OSError:
                    pass  # it is ending: its EOF comes next

    def _on_readable(self, k: int) -> None:
        conn = self.conns[k]
        try:
            while conn.poll():
                self._handle(k, conn.recv())
        except (EOFError, OSError):
            self.loop.remove_reader(conn.fileno())
            conn.close()
            if k not in self.reports:
                self._died(k)

    def _handle(self, k: int, msg: tuple) -> None:
        kind = msg[0]
        if kind == "progress":
            self.snaps[k] = msg[1]
        elif kind == "ready":
            self.ready.add(k)
        elif kind == "ended":
            self.ended.add(k)
            if len(self.ended) + len(self.dead) == len(self.specs):
                self._note(f"sending done; in-flight requests may finish for {self.cfg.drain_timeout_s:g} s "
                           "(Ctrl-C cancels)")
        elif kind == "trip":
            self.trips[k] = msg[1]
            if len(self.trips) == len(self.specs) and len({signature(m) for m in self.trips.values()}) == 1:
                self.tripped = self.trips[0]
                self.broadcast(("stop",))
        elif kind == "storage":
            self.storage = self.storage or f"worker {k}: {msg[1]}"
            self.broadcast(("cancel",))
        elif kind == "error":
            self.errors[k] = msg[1]
        elif kind == "done":
            self.reports[k] = msg[1]
        self._settle()

    def _died(self, k: int) -> None:
        proc = self.procs[k]
        proc.join(1.0)
        code = proc.exitcode
        status = "still running" if code is None else f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        why = self.errors.get(k, f"it ended unexpectedly ({status})")
        if k not in self.errors and k not in self.ready:
            why = (f"it ended before it was ready ({status}); run from a script, the script must guard its "
                   "top level with `if __name__ == \"__main__\":` (each worker process imports it)")
        self.dead[k] = f"load worker {k} (pid {proc.pid}) failed: {why}"
        self.broadcast(("stop",))  # the run lost 1/N of its schedule: stop it, keep what was recorded
        self._settle()

    def _startup_timeout(self) -> None:
        for k, proc in enumerate(self.procs):
            if k not in self.ready and k not in self.dead and k not in self.reports:
                self.errors[k] = f"not ready within {STARTUP_TIMEOUT_S:g} s"
                proc.kill()

    def _settle(self) -> None:
        n = len(self.specs)
        if not self.all_ready.done() and len(self.ready | set(self.dead) | set(self.reports)) == n:
            self.all_ready.set_result(None)
        if not self.all_done.done() and len(self.reports) + len(self.dead) == n:
            self.all_done.set_result(None)

    def end_processes(self) -> None:
        """Join every worker (they have reported or died, unless the parent failed: then they are
        cancelled first); kill any still alive after JOIN_TIMEOUT_S: nothing outlives the run."""
        self.broadcast(("cancel",))
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        for proc in self.procs:
            if proc.pid is None:
                continue  # never started
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.exitcode is None:
                proc.kill()
                proc.join()
        for conn in self.conns:
            conn.close()

    def outcome(self, own_cpu_s: float, wall_s: float, window: int) -> dict:
        """The manifest fields of the run's end, from the workers' reports (runner._execute's keys)."""
        reports = [self.reports.get(k) for k in range(len(self.specs))]
        got = [r for r in reports if r is not None]
        sent, done, failed = (sum(r[key] for r in got) for key in ("sent", "done", "failed"))
        kinds: Counter = Counter()
        for r in got:
            kinds.update(r["errors"])
        firsts = sorted((r["first_error_ns"], r["first_error"]) for r in got if r["first_error"])
        first = firsts[0][1] if firsts else None
        ok = done - failed
        failure = None
        if self.tripped:
            failure = (f"the first {window} requests of each of the {len(self.specs)} workers all failed: "
                       f"{self.tripped}")
        elif not self.interrupts and not self.dead and sent and not ok:
            failure = f"every request failed; the first: {first or 'cancelled at the drain timeout'}"
        broken = self.storage or next((why for k, why in self.dead.items() if k not in self.lost), None)
        utils = [r["cpu_s"] / max(r["wall_s"], 1e-9) for r in got]
        return {
            "status": "failed" if failure else "interrupted" if self.interrupts or broken else
                      "partial" if self.lost else "complete",
            **({"lost_workers": list(self.lost.values())} if self.lost else {}),
            **({"failure": failure} if failure else {}),
            **({"interrupted_by": broken} if broken else {}),
            **({"first_error": first} if first else {}),
            "start_ns": self.start_ns if self.start_ns is not None else monotonic_ns(),
            "end_ns": monotonic_ns(),
            "ended_at": datetime.now(timezone.utc).isoformat(),
            "counts": {"scheduled": self.layout.requests, "sent": sent, "ok": ok, "failed": failed,
                       "errors": dict(kinds)},
            "client": {"cpu_s": own_cpu_s + sum(r["cpu_s"] for r in got), "wall_s": wall_s,
                       "cpu_util": max(utils, default=0.0), "parent_cpu_s": own_cpu_s,
                       "connections_opened": sum(r["connections_opened"] for r in got)},
            "workers": self._workers_record(reports),
        }

    def _workers_record(self, reports: list[dict | None]) -> dict:
        record = self.layout.describe()
        for k, (entry, r) in enumerate(zip(record["per_worker"], reports)):
            entry.update(self._where(k))
            entry["ended"] = "ok" if r is not None else self.dead.get(k, "no report")
            if r is not None:
                entry.update(sent=r["sent"], failed=r["failed"], events=r["events"], cpu_s=r["cpu_s"],
                             cpu_util=r["cpu_s"] / max(r["wall_s"], 1e-9), connections_opened=r["connections_opened"])
        return record

    def _where(self, k: int) -> dict:
        """Where worker k ran, for run.json."""
        return {"pid": self.procs[k].pid}


def health(run_dir: Path, manifest: dict) -> None:
    """Add each worker's rows and send lag (p50, p99, from requests.parquet) to run.json's
    `workers`: the generator's health per worker process."""
    info = manifest.get("workers")
    if not isinstance(info, dict) or not info.get("per_worker"):
        return
    table = read_columns(run_dir, ["request_id", "scheduled_ns", "sent_ns", "slot_wait_ns"])
    rid = table["request_id"].to_numpy()
    sent = table["sent_ns"].fill_null(-1).to_numpy()
    lag = sent - table["scheduled_ns"].to_numpy() - table["slot_wait_ns"].to_numpy()
    owner = (rid % max(1, int(info["conversations"]))) % int(info["n"])
    for k, entry in enumerate(info["per_worker"]):
        mine = owner == k
        lags = lag[mine & (sent >= 0)]
        entry["rows"] = int(mine.sum())
        entry["send_lag_p50_us"] = round(float(np.percentile(lags, 50)) / 1e3, 1) if lags.size else None
        entry["send_lag_p99_us"] = round(float(np.percentile(lags, 99)) / 1e3, 1) if lags.size else None


def in_process_record(layout: Layout, outcome: dict, events: int) -> dict:
    """run.json's `workers` for a run of one process (runner._execute's outcome)."""
    record = layout.describe()
    client, counts = outcome["client"], outcome["counts"]
    record["per_worker"][0].update(pid=os.getpid(), ended="ok", sent=counts["sent"], failed=counts["failed"],
                                   events=events, cpu_s=client["cpu_s"], cpu_util=client["cpu_util"],
                                   connections_opened=client["connections_opened"])
    return record
