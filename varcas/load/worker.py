"""One load worker process: its share of the schedule on its own event loop, into its own stream.

varcas.load.workers starts N of these (multiprocessing, 'spawn': a fresh interpreter, no state
inherited but what is passed) and talks to each over one pipe:
  parent -> worker   WorkerSpec           first: what to send and where to record it (kept off the
                                          process's start arguments, which multiprocessing writes
                                          while holding the pipe's read end: a worker that died
                                          before reading a large spec would block the parent)
                     ("start", start_ns)  send the share, anchored at the run's one start instant
                     ("stop",)            first interrupt, or another worker failed: send nothing more
                     ("cancel",)          second interrupt, or storage failed: end in-flight requests
  worker -> parent   ("ready",)           pool warm, waiting for start
                     ("progress", snap)   twice a second (varcas.load.progress.snapshot)
                     ("ended",)           nothing more will be sent
                     ("trip", message)    its first fail-fast window all failed alike (the parent decides)
                     ("storage", text)    its stream could not be written (a full disk)
                     ("done", report)     counters, CPU, first error; the stream is closed
                     ("error", text)      it could not run (an exception), then exits 1
The worker ignores SIGINT, SIGTERM and SIGHUP (the parent forwards them as stop/cancel, so a
terminal's Ctrl-C, which reaches the whole process group, counts once), and dies with its parent
(PR_SET_PDEATHSIG SIGKILL): after a kill -9 of the parent its stream keeps every flushed batch,
for `varcas recover`. drive() is also the single-process runner's loop.

Over Ray (--ray, varcas.load.rayworkers) the same messages travel the same way inside a Ray
actor: serve() runs in a thread of the actor over a pipe whose other end the actor's methods
hold (the driver's calls become these messages; the worker's replies and its flushed record
batches are pulled by the driver).
"""
from __future__ import annotations

import asyncio
import ctypes
import os
import resource
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import numpy as np
import uvloop

from .._timing import monotonic_ns
from ..rundir import ARROWS, ERRORS_LOG, os_error_text, worker_arrows
from ..rundir.recorder import Recorder
from ..schedule.datasets import TextSample
from . import datasets
from .client import Pool
from .conversations import Turns
from .engine import Engine
from .failures import FailureLog
from .progress import snapshot
from .request import RequestBuilder, Target
from .slots import SharedSlots

if TYPE_CHECKING:
    from .runner import LoadConfig, Prepared
    from .vocab import PromptPlan

PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass
class WorkerSpec:
    """Everything worker k needs, pickled to it at its start (secrets travel in the pipe only; over
    Ray, in the begin() call's arguments, through Ray's object store)."""

    index: int
    run_dir: str
    prep: Prepared  # the run's schedule, fitted to the server; its text dataset dropped
    plan: PromptPlan
    texts: TextSample | None
    builder: RequestBuilder
    target: Target
    ids: np.ndarray  # the request_ids this worker sends, ascending
    conversations: int  # conversations among them (= len(ids) without turns)
    fail_fast: int  # this worker's fail-fast window
    secrets: tuple[str, ...]
    cores: list[int] | None


def raise_fd_limit() -> None:
    """Open loop at high rates needs one socket per in-flight request."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def write_error(exc: OSError, name: str = ARROWS) -> str:
    return f"cannot write {name} ({os_error_text(exc)}): the rows flushed before are kept"


def prewarm_count(cfg: LoadConfig, offsets_ns: np.ndarray) -> int:
    """Connections to open before t=0: about the requests the first 100 ms will start."""
    early = int(np.searchsorted(offsets_ns, 100_000_000))
    if cfg.max_concurrency is not None:
        early = min(early, cfg.max_concurrency)
    return max(1, min(early + 2, 512))


async def drive(engine: Engine, cfg: LoadConfig, recorder: Recorder, start: Callable[[], Awaitable[int | None]],
                tick: Callable[[int], None], stream: str = ARROWS) -> tuple[int, str | None]:
    """Warm the pool, start the schedule at the instant start() gives (None: stopped before it),
    flush the rows at least once a second and tick(start_ns) after each flush, until every
    request has ended; in-flight requests get cfg.drain_timeout_s once sending has ended.
    Returns (start_ns, why rows could not be written, if they could not)."""
    loop = asyncio.get_running_loop()
    engine.sending_ended.add_done_callback(lambda _: loop.call_later(cfg.drain_timeout_s, engine.cancel_all))
    warm = prewarm_count(cfg, engine.offsets_ns[:engine.timed])
    engine.pool.prewarm(warm)
    for _ in range(100):  # bounded: at most 1 s for the warm-up connections
        if len(engine.pool.idle) >= warm or engine.stopped:
            break
        await asyncio.sleep(0.01)
    start_ns = await start()
    if start_ns is None or engine.stopped:  # stopped before the start: nothing is sent
        if not engine.stopped:
            engine.stop_sending()
        start_ns = monotonic_ns() if start_ns is None else start_ns
    else:
        engine.start(start_ns)
    storage = None
    while not engine.done.done():
        await asyncio.wait([engine.done], timeout=0.5)  # flushes at least once a second
        try:
            recorder.flush()
        except OSError as exc:  # a full disk: what was flushed is kept; nothing more can be
            storage = write_error(exc, stream)
            engine.cancel_all()
            break
        tick(start_ns)
    engine.pool.close()
    return start_ns, storage


def main(parent_pid: int, ctrl, shared: SharedSlots | None) -> None:
    """The worker process (multiprocessing's target): read its spec, run the share, report, exit."""
    _die_with_parent(parent_pid)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # already ignored since exec (workers.py): stays so
    if not serve(ctrl, shared):
        sys.exit(1)


def serve(ctrl, shared: SharedSlots | None, tap: Callable[[Any], None] | None = None) -> bool:
    """One worker's whole conversation over ctrl (the protocol above): its spec, then the run,
    then "done" (True) or "error" (False). tap(batch) gets each flushed record batch (a Ray
    worker, varcas.load.rayworkers, ships them to its driver)."""
    try:
        spec: WorkerSpec = ctrl.recv()
        if spec.cores is not None:
            os.sched_setaffinity(0, spec.cores)
        report = _run(spec, ctrl, shared, tap)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which ends the run
        try:
            ctrl.send(("error", _one_line(exc)))
        except OSError:
            pass
        return False
    ctrl.send(("done", report))
    return True


def _one_line(exc: BaseException) -> str:
    """An exception as one line: its text and where it was raised."""
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip().replace("\n", " ")
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{text} ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else text


def _die_with_parent(parent_pid: int) -> None:
    """SIGKILL when the parent dies (kill -9 included), so no worker outlives its run."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
    if os.getppid() != parent_pid:  # it died before prctl took effect
        os._exit(1)


def _run(spec: WorkerSpec, ctrl, shared: SharedSlots | None, tap) -> dict[str, Any]:
    """The share: engine, stream, event loop; returns the report for the parent."""
    prep, cfg, ids = spec.prep, spec.prep.config, spec.ids
    prompt = datasets.prompt_source(prep, spec.plan, spec.texts)
    build_req, out_len = spec.builder.build, prep.output_len

    def build(j: int) -> bytes:
        i = int(ids[j])
        return build_req(i, prompt(i), int(out_len[i]))

    run_dir = Path(spec.run_dir)
    stream = worker_arrows(spec.index)
    recorder = Recorder(run_dir, stream)
    recorder.tap = tap
    failures = FailureLog(run_dir / ERRORS_LOG, spec.secrets, spec.fail_fast)
    raise_fd_limit()
    loop = uvloop.new_event_loop()
    think = prep.schedule.think_ns
    turns = Turns(spec.conversations, think[ids]) if think is not None else None
    engine = Engine(loop, lambda owner: Pool(loop, spec.target, owner, cfg.insecure), prep.offsets_ns[ids],
                    prep.input_len[ids], out_len[ids], build, recorder, max_concurrency=cfg.max_concurrency,
                    request_timeout_s=cfg.request_timeout_s, failures=failures, turns=turns, request_ids=ids,
                    shared=shared)
    control = _Control(loop, ctrl, engine, shared, spec.index)
    engine.on_trip = lambda: ctrl.send(("trip", failures.tripped))
    engine.sending_ended.add_done_callback(lambda _: ctrl.send(("ended",)))
    ru0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    storage = None
    try:
        start_ns, storage = loop.run_until_complete(
            drive(engine, cfg, recorder, control.started, control.tick, stream))
    finally:
        try:
            recorder.close()
        except OSError as exc:
            storage = storage or write_error(exc, stream)
        failures.close()
        loop.close()
    if storage:
        ctrl.send(("storage", storage))
    ru1, wall1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    cpu_s = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    stats = engine.stats
    return {"pid": os.getpid(), "start_ns": start_ns, "sent": stats.sent, "done": stats.done,
            "failed": stats.errors, "errors": dict(stats.error_kinds), "events": stats.events,
            "first_error": failures.first, "first_error_ns": control.first_error_ns or monotonic_ns(),
            "storage": storage,
            "cpu_s": cpu_s, "wall_s": wall1 - wall0, "connections_opened": engine.pool.opened,
            "rows": recorder.rows_written}


class _Control:
    """The worker's side of the pipe, on its event loop."""

    def __init__(self, loop, ctrl, engine: Engine, shared: SharedSlots | None, index: int) -> None:
        self.loop, self.ctrl, self.engine = loop, ctrl, engine
        self.start: asyncio.Future[int | None] = loop.create_future()
        self.first_error_ns: int | None = None
        loop.add_reader(ctrl.fileno(), self._on_message)
        if shared is not None:
            self._wake = shared.bind(index)
            loop.add_reader(self._wake, self._on_wake)

    async def started(self) -> int | None:
        self.ctrl.send(("ready",))
        return await self.start

    def tick(self, start_ns: int) -> None:
        failures = self.engine.failures
        if self.first_error_ns is None and failures is not None and failures.first is not None:
            self.first_error_ns = monotonic_ns()  # within a flush of when it happened: orders workers' firsts
        self.ctrl.send(("progress", snapshot(self.engine.stats, len(self.engine.inflight))))

    def _on_message(self) -> None:
        try:
            while self.ctrl.poll():
                self._handle(self.ctrl.recv())
        except (EOFError, OSError):  # the parent is gone: end now, keep the rows
            self.loop.remove_reader(self.ctrl.fileno())
            self._resolve(None)
            if not self.engine.done.done():
                self.engine.cancel_all()

    def _handle(self, msg: tuple) -> None:
        if self.engine.done.done():
            return  # every request has ended: nothing to start, stop or cancel
        if msg[0] == "start":
            self._resolve(msg[1])
        elif msg[0] == "stop":
            self.engine.stop_sending()
            self._resolve(None)
        elif msg[0] == "cancel":
            self.engine.cancel_all()
            self._resolve(None)

    def _resolve(self, start_ns: int | None) -> None:
        if not self.start.done():
            self.start.set_result(start_ns)

    def _on_wake(self) -> None:
        try:
            while os.read(self._wake, 4096):
                pass
        except BlockingIOError:
            pass
        if not self.engine.done.done():
            self.engine.slots_granted()

