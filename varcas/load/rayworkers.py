"""--ray [ADDRESS]: the load workers of --workers as Ray actors spread over a cluster's nodes.

The split, the worker and its protocol are --workers' (varcas.load.workers, varcas.load.worker):
the schedule is built once on the driver and request i goes to worker (i mod C) mod N. Each
worker is a Ray actor (RayWorker) holding one CPU of a placement group of N bundles {"CPU": 1},
strategy SPREAD (one worker per bundle, the bundles on as many nodes as the cluster allows).
Inside the actor, worker.serve() runs in a thread over an in-process pipe, exactly as in a worker
process; the actor's methods are the pipe's other end: send() passes the driver's start, stop
and cancel, pull() returns what the worker said since the last pull (ready, progress, ended,
trip, storage, done, error) and the record batches it flushed (at least once a second). The
driver pulls every PULL_S.

The clock. Hosts do not share CLOCK_MONOTONIC. Before the start the driver measures each
actor's offset by PINGS round trips (t0 its own clock, the actor's monotonic_ns, t1), keeping the
one with the smallest round trip: offset = actor - (t0 + t1) / 2, uncertainty = round trip / 2
(the actor's reading was taken somewhere within it). Each actor is given the start instant in its
own clock (the driver's + offset), and the driver shifts every instant of its rows (row.py's
INSTANT_COLUMNS: scalar columns and the token_ns lists; slot_wait_ns is a duration) back to its
own clock (- offset) before they reach requests-wK.arrows. The run directory is thus --workers'
(recover, merge and analyze read it unchanged). An actor that runs in this boot of this host
(the same /proc/sys/kernel/random/boot_id) shares the clock: its offset is 0 exactly, its ping
offset recorded beside. The ping offsets are measured again at the end (ping_drift_ns): run.json's
`workers` gives node, clock, offset_ns, offset_uncertainty_ns, ping_offset_ns, ping_uncertainty_ns
and ping_drift_ns per worker.

A lost worker (its actor killed, its node gone) keeps the rows of its last pulled batch; the
others go on to the end, and the run's status is "partial" with `lost_workers` naming each one,
its node and when. A worker that fails (an exception, reported as "error") stops the run as with
--workers. Actors die with the driver (Ray ends the actors a driver owns).

--max-concurrency is refused: its global cap (varcas.load.slots) is shared memory of one host,
and a cap held by a Ray actor would put a network round trip (about 0.3-1 ms on one host, more
across hosts) and one actor's serial queue before each capped send, the very tail this generator
keeps small.
"""
from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import multiprocessing
import os
import resource
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import uvloop

from .._timing import monotonic_ns
from ..errors import VarcasError
from ..rundir import ERRORS_LOG, REQUEST_SCHEMA, worker_arrows
from ..rundir.recorder import Recorder
from ..rundir.row import INSTANT_COLUMNS
from ..signals import ENDING
from . import worker, workers
from .progress import Progress

if TYPE_CHECKING:
    from ..schedule.datasets import TextSample
    from .request import RequestBuilder, Target
    from .runner import LoadConfig, Prepared
    from .vocab import PromptPlan

RAY_EXTRA = "pip install 'varcas[ray]'"
LOCAL = "local"  # --ray without an address: a Ray instance of this machine, for the run
PINGS = 20
PULL_S = 0.25
START_AHEAD_NS = 200_000_000  # the start instant is this far ahead of the start messages (Ray calls)
PLACE_TIMEOUT_S = 60.0
PULL_TIMEOUT_S = 30.0  # a worker that does not answer a pull for this long is lost
END_TIMEOUT_S = 10.0


def _import_ray():
    try:
        import ray
    except ImportError:
        raise VarcasError(f"--ray needs Ray, which is not installed: {RAY_EXTRA}") from None
    return ray


def check(cfg: LoadConfig) -> None:
    """--ray's local checks (prepare): Ray importable, no flag that needs one host."""
    _import_ray()
    if cfg.max_concurrency is not None:
        raise VarcasError("--max-concurrency cannot be used with --ray: its global cap is shared memory of one "
                          "host, and a cap over the network would put a round trip before every capped send")
    if cfg.worker_cores is not None:
        raise VarcasError("--worker-cores cannot be used with --ray: Ray places the workers, one CPU each")


@dataclass
class Cluster:
    """The Ray cluster a run uses: the module, where, how many CPUs it offers; once placed, the
    run's actors (one per worker), their placement group and where each landed."""

    ray: Any
    address: str
    cpus: int
    actors: list = field(default_factory=list)
    group: Any = None
    places: list[dict] = field(default_factory=list)

    def place(self, n: int) -> None:
        """The placement group, one actor per bundle, where each landed and its clock offset
        (before the run directory exists: a cluster that cannot place them is a setup error)."""
        ray = self.ray
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
        self.group = group = placement_group([{"CPU": 1}] * n, strategy="SPREAD")
        try:
            ray.get(group.ready(), timeout=PLACE_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            raise VarcasError(f"--ray: the cluster could not place {n} workers of one CPU each within "
                              f"{PLACE_TIMEOUT_S:g} s") from None
        actor_class = ray.remote(num_cpus=1, max_restarts=0)(RayWorker)
        self.actors = [actor_class.options(scheduling_strategy=PlacementGroupSchedulingStrategy(
            group, placement_group_bundle_index=k)).remote(k) for k in range(n)]
        try:
            self.places = ray.get([a.where.remote() for a in self.actors], timeout=workers.STARTUP_TIMEOUT_S)
        except ray.exceptions.RayError as exc:
            raise VarcasError(f"--ray: the workers could not start ({_first_line(exc)})") from None
        for place, actor in zip(self.places, self.actors):
            place.update(clock_of(ray, actor, place))

    def check_reach(self, host: str) -> None:
        """A server on this host's loopback (127.0.0.1, the built-in simulator) is out of reach of
        workers on other hosts: a one-line error rather than a run of connect errors."""
        elsewhere = sorted({p["node"] for p in self.places if p.get("boot_id") != boot_id()})
        if elsewhere and _loopback(host):
            raise VarcasError(f"--ray: the server is on this host's loopback ({host}), which the workers on "
                              f"{', '.join(elsewhere)} cannot reach: give --url an address every node can reach")

    def release(self) -> None:
        """Every actor and the placement group removed (idempotent)."""
        for actor in self.actors:
            with contextlib.suppress(Exception):
                self.ray.kill(actor)
        if self.group is not None:
            from ray.util.placement_group import remove_placement_group
            with contextlib.suppress(Exception):
                remove_placement_group(self.group)
        self.actors, self.group = [], None


@contextlib.contextmanager
def session(address: str | None):
    """Connected to Ray for the block (None without --ray): a local instance started for it
    (address "local") or a cluster's (ray.init(address=...)), shut down at the end whatever
    happens; or, when this process is already connected, that connection (left up)."""
    if address is None:
        yield None
        return
    ray = _import_ray()
    ours = not ray.is_initialized()  # else the caller's own connection (a notebook, a test): used, left up
    cluster: Cluster | None = None
    try:
        if ours:
            try:
                ray.init(address=address, include_dashboard=False if address == LOCAL else None,
                         logging_level=logging.WARNING, log_to_driver=False)
            except Exception as exc:  # noqa: BLE001 - Ray raises many kinds; a setup failure is one line
                raise VarcasError(f"--ray {address}: cannot start or reach Ray ({_first_line(exc)})") from None
        cluster = Cluster(ray, address, _cpus(ray, address))
        yield cluster
    finally:
        if cluster is not None:
            cluster.release()
        if ours:
            ray.shutdown()


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _cpus(ray, address: str) -> int:
    cpus = int(ray.cluster_resources().get("CPU", 0))
    if cpus < 1:
        raise VarcasError(f"--ray {address}: the cluster offers no CPU for a load worker")
    return cpus


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


class RayWorker:
    """One load worker in a Ray actor: worker.serve() in a thread, over an in-process pipe."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.dir = tempfile.mkdtemp(prefix=f"varcas-ray-w{index}-")  # its stream and errors.log on this node
        self._mine, self._theirs = multiprocessing.Pipe()
        self._lock = threading.Lock()
        self._said: list[tuple] = []
        self._batches: list[pa.RecordBatch] = []
        self._errors_at = 0
        threading.Thread(target=self._read, name="varcas-ray-read", daemon=True).start()

    def where(self) -> dict:
        import ray
        return {"node": ray.util.get_node_ip_address(), "host": socket.gethostname(), "pid": os.getpid(),
                "boot_id": boot_id()}

    def clock(self) -> int:
        return monotonic_ns()

    def begin(self, spec: worker.WorkerSpec) -> None:
        spec.run_dir = self.dir
        threading.Thread(target=worker.serve, args=(self._theirs, None, self._tap), name="varcas-load-worker",
                         daemon=True).start()
        self._mine.send(spec)

    def send(self, msg: tuple) -> None:
        self._mine.send(msg)

    def pull(self) -> tuple[list[tuple], list[pa.RecordBatch], str]:
        """What the worker said and flushed since the last pull, and its new errors.log lines.
        Both lists are taken at once: a "done" comes with every batch flushed before it."""
        with self._lock:
            said, self._said = self._said, []
            batches, self._batches = self._batches, []
        last = max((i for i, msg in enumerate(said) if msg[0] == "progress"), default=-1)
        said = [msg for i, msg in enumerate(said) if msg[0] != "progress" or i == last]  # the latest is enough
        return said, batches, self._new_errors()

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def _tap(self, batch: pa.RecordBatch) -> None:
        with self._lock:
            self._batches.append(batch)

    def _read(self) -> None:
        while True:
            try:
                msg = self._mine.recv()
            except (EOFError, OSError):
                return
            with self._lock:
                self._said.append(msg)

    def _new_errors(self) -> str:
        try:
            with open(os.path.join(self.dir, ERRORS_LOG)) as f:
                f.seek(self._errors_at)
                text = f.read()
        except OSError:
            return ""
        text = text[:text.rfind("\n") + 1]  # whole lines only
        self._errors_at += len(text.encode())
        return text


def boot_id() -> str | None:
    """This boot of this host: two processes that see the same one share CLOCK_MONOTONIC."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def clock_of(ray, actor, place: dict) -> dict:
    """run.json's clock fields of one worker: the ping exchange's offset and uncertainty, always
    measured; the offset applied is 0 (exactly) when the actor runs in this boot of this host."""
    offset, uncertainty = measure_offset(ray, actor)
    shared = place.get("boot_id") is not None and place["boot_id"] == boot_id()
    return {"clock": "shared (same host and boot)" if shared else "ping exchange",
            "offset_ns": 0 if shared else offset, "offset_uncertainty_ns": 0 if shared else uncertainty,
            "ping_offset_ns": offset, "ping_uncertainty_ns": uncertainty}


def measure_offset(ray, actor, pings: int = PINGS) -> tuple[int, int]:
    """(offset, uncertainty) in ns of the actor's CLOCK_MONOTONIC to this process's (module docstring)."""
    best_rtt, offset = None, 0
    for _ in range(pings):
        t0 = monotonic_ns()
        theirs = ray.get(actor.clock.remote())
        t1 = monotonic_ns()
        if best_rtt is None or t1 - t0 < best_rtt:
            best_rtt, offset = t1 - t0, theirs - (t0 + t1) // 2
    return offset, (best_rtt or 0) // 2


def to_driver_clock(batch: pa.RecordBatch, offset_ns: int) -> pa.RecordBatch:
    """The batch with every instant (INSTANT_COLUMNS) shifted by -offset_ns, in Arrow (no row objects)."""
    if offset_ns == 0:
        return batch
    shift = pa.scalar(offset_ns, pa.int64())
    arrays = []
    for name, col in zip(batch.schema.names, batch.columns):
        if name in INSTANT_COLUMNS:
            if pa.types.is_list(col.type):
                col = pa.ListArray.from_arrays(col.offsets, pc.subtract(col.values, shift), mask=col.is_null())
            else:
                col = pc.subtract(col, shift)
        arrays.append(col)
    return pa.RecordBatch.from_arrays(arrays, schema=REQUEST_SCHEMA)


def execute(cluster: Cluster, prep: Prepared, plan_: PromptPlan, texts: TextSample | None, builder: RequestBuilder,
            target: Target, run_dir: Path, console, secrets: tuple[str, ...], rearm, layout: workers.Layout) -> dict:
    """Run the schedule over layout.n Ray actors; returns the manifest fields of the outcome (as
    workers.execute does)."""
    cfg = prep.config
    specs = workers.make_specs(prep, plan_, texts, builder, target, run_dir, secrets, layout)
    loop = uvloop.new_event_loop()
    driver = _Driver(loop, cluster, specs, cfg, layout, run_dir)
    ru0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    if console is not None:
        console.print(f"ray: {layout.n} workers on {len({p['node'] for p in cluster.places})} node(s) of "
                      f"{cluster.address} ({layout.how}); clock offsets "
                      + ", ".join(f"{p['offset_ns'] / 1e3:+.0f}±{p['offset_uncertainty_ns'] / 1e3:.0f} µs"
                                  for p in cluster.places))
    try:
        with Progress(console, not cfg.quiet, prep.schedule.duration_s) as progress:
            loop.run_until_complete(driver.run(progress))
        driver.remeasure()
    finally:
        rearm()
        driver.end()
        loop.close()
    ru1, wall1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    own_cpu_s = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return driver.outcome(own_cpu_s, wall1 - wall0, workers.fail_fast_window(cfg, layout))


class _Driver(workers._Supervisor):
    """--workers' supervisor (its message handling, settling and outcome) over Ray actors."""

    start_ahead_ns = START_AHEAD_NS

    def __init__(self, loop, cluster: Cluster, specs: list[worker.WorkerSpec], cfg: LoadConfig,
                 layout: workers.Layout, run_dir: Path) -> None:
        self._init_state(loop, specs, cfg, layout)
        self.ray, self.run_dir = cluster.ray, run_dir
        self.cluster, self.actors, self.places = cluster, cluster.actors, cluster.places
        self.recorders = [Recorder(run_dir, worker_arrows(k)) for k in range(len(specs))]

    async def run(self, progress: Progress) -> None:
        self.progress = progress
        for sig in ENDING:
            self.loop.add_signal_handler(sig, self.on_signal)
        begun = [actor.begin.remote(spec) for actor, spec in zip(self.actors, self.specs)]
        poller = self.loop.create_task(self._poll())
        try:
            for k, ref in enumerate(begun):
                try:
                    await asyncio.wrap_future(ref.future())
                except self.ray.exceptions.RayError as exc:
                    self._failed(k, f"it could not begin ({_first_line(exc)})")
            await self.start_and_watch(progress)
        finally:
            poller.cancel()
            for sig in ENDING:
                self.loop.remove_signal_handler(sig)

    def send_start(self, start_ns: int) -> None:
        """Each actor gets the start instant on its own host's clock (driver's + its offset)."""
        for k, actor in enumerate(self.actors):
            actor.send.remote(("start", start_ns + self.places[k]["offset_ns"]))

    def broadcast(self, msg: tuple) -> None:
        for k in self._running():
            self.actors[k].send.remote(msg)  # a dead actor's call fails in its ref, never here

    def _running(self) -> list[int]:
        return [k for k in range(len(self.specs)) if k not in self.reports and k not in self.dead]

    async def _poll(self) -> None:
        ray = self.ray
        while self._running():
            refs = {k: self.actors[k].pull.remote() for k in self._running()}
            for k, ref in refs.items():
                try:
                    said, batches, errors = await asyncio.wait_for(asyncio.wrap_future(ref.future()), PULL_TIMEOUT_S)
                except (ray.exceptions.RayError, asyncio.TimeoutError) as exc:
                    self._lost(k, exc)
                    continue
                self._gather(k, batches, errors)
                for msg in said:
                    self._handle(k, msg)
                if k in self.errors and k not in self.reports and k not in self.dead:
                    self._failed(k, self.errors[k])
            await asyncio.sleep(PULL_S)

    def _gather(self, k: int, batches: list[pa.RecordBatch], errors: str) -> None:
        """Worker k's batches (shifted to this clock) into its stream, its errors into errors.log."""
        try:
            for batch in batches:
                self.recorders[k].write(to_driver_clock(batch, self.places[k]["offset_ns"]))
            if errors:
                with open(self.run_dir / ERRORS_LOG, "a") as f:
                    f.write(errors)
        except OSError as exc:
            if self.storage is None:
                self.storage = f"worker {k}: {worker.write_error(exc, worker_arrows(k))}"
                self.broadcast(("cancel",))

    def _handle(self, k: int, msg: tuple) -> None:
        if msg[0] == "done":  # its instants in this clock
            offset = self.places[k]["offset_ns"]
            msg = ("done", {**msg[1], "start_ns": msg[1]["start_ns"] - offset,
                            "first_error_ns": msg[1]["first_error_ns"] - offset})
        super()._handle(k, msg)

    def _lost(self, k: int, exc: BaseException) -> None:
        """Worker k is gone (actor killed, node lost): keep its rows so far, let the others go on."""
        now = monotonic_ns()
        place = self.places[k]
        why = _first_line(exc) if not isinstance(exc, asyncio.TimeoutError) else \
            f"no answer for {PULL_TIMEOUT_S:g} s"
        self.lost[k] = {"worker": k, "node": place["node"], "host": place["host"], "pid": place["pid"],
                        "at_ns": now, "at": datetime.now(timezone.utc).isoformat(),
                        "after_start_s": round((now - self.start_ns) / 1e9, 3) if self.start_ns else None,
                        "why": why[:300]}
        self.dead[k] = f"load worker {k} (Ray actor on {place['node']}, pid {place['pid']}) lost: {why[:300]}"
        self._note(f"worker {k} lost; ")
        self._settle()

    def _failed(self, k: int, why: str) -> None:
        self.dead[k] = f"load worker {k} (Ray actor on {self.places[k]['node']}) failed: {why}"
        self.broadcast(("stop",))  # as --workers: the run lost 1/N of its schedule to a bug, not a node
        self._settle()

    def _startup_timeout(self) -> None:
        for k in self._running():
            if k not in self.ready:
                self._failed(k, f"not ready within {workers.STARTUP_TIMEOUT_S:g} s")

    def remeasure(self) -> None:
        """Each finished worker's offset again: its drift over the run (ping offsets, end - start)."""
        for k in self.reports:
            with contextlib.suppress(self.ray.exceptions.RayError):
                offset, _ = measure_offset(self.ray, self.actors[k])
                self.places[k]["ping_drift_ns"] = offset - self.places[k]["ping_offset_ns"]

    def end(self) -> None:
        """Cancel and remove every actor, the placement group, close the streams: nothing outlives the run."""
        self.broadcast(("cancel",))
        with contextlib.suppress(Exception):
            self.ray.get([a.close.remote() for k, a in enumerate(self.actors) if k not in self.lost],
                    timeout=END_TIMEOUT_S)
        self.cluster.release()
        for recorder in self.recorders:
            with contextlib.suppress(OSError):
                recorder.close()

    def _where(self, k: int) -> dict:
        return dict(self.places[k]) if k < len(self.places) else {}

    def _workers_record(self, reports: list[dict | None]) -> dict:
        record = super()._workers_record(reports)
        record["start_method"] = "ray actors"
        return record
