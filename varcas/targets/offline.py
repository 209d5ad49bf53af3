"""Virtual time: the engine run over a load schedule with no sockets, into a normal run directory.

`varcas sim --offline --workload chat_medium --rps 20 --duration 600 --max-num-seqs 8` takes
the same workloads and arrival processes as the load generator (varcas.load.runner.prepare
builds the schedule) and predicts, in seconds of CPU, what that load test would record:
one row per request with every token's time, as if an ideal client (no send lag, no network)
had measured a vLLM server whose every step takes the roofline's predicted time.

Discrete-event loop: at a step boundary t, requests scheduled at or before t join the waiting
queue (each checked against max_model_len first: HTTP 400, as the server answers); the engine
plans a step, which ends at t + its duration; clients whose --request-timeout ran out before
that end give up (the request is aborted in the engine, the row says `timeout`, with the
tokens that arrived in time); then the step's tokens are emitted at its end. An idle engine
jumps to the next arrival. Times are int64 ns from the run's clock anchor, so the run
directory reads like any other; its manifest says target.kind = "sim" and "simulated": true,
and sim_steps.parquet holds the step log (start, duration, prefill tokens, decodes, running,
waiting, KV blocks in use). Same arguments and seed, same bytes in every row.
"""
from __future__ import annotations

import time
from array import array
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import VarcasError
from ..load.preflight import ServerInfo
from ..load.runner import LoadConfig, base_manifest, make_run_dir, prepare
from ..metricsfile import METRICS_PARQUET
from ..rundir import PARQUET, convert_to_parquet, read_requests, write_manifest
from ..rundir.recorder import Recorder
from ..serve.openai_wire import ApiError
from ..sim import virtual_metrics
from ..sim.api import check_lengths
from ..sim.config import SERVER_VERSION, Setup
from ..sim.engine import FINISHED, Engine, Seq, StepLog

STEPS_FILE = "sim_steps.parquet"
_FLUSH_ROWS = 16384  # rows held before a record batch is written: bounds memory


class VirtualRun:
    """One schedule through the engine in virtual time; rows go to recorder.record(**columns)
    (a Recorder, or anything with its record, pending and flush), flushed once _FLUSH_ROWS are pending."""

    def __init__(self, setup: Setup, when_ns, input_len, output_len, timeout_ns: int, recorder):
        self.setup = setup
        self.when = [int(x) for x in when_ns]
        self.input_len, self.output_len = input_len.tolist(), output_len.tolist()
        self.timeout_ns = timeout_ns
        self.recorder = recorder
        self.record = recorder.record
        self.engine = Engine(setup)
        self.inflight: deque[Seq] = deque()  # accepted, in arrival order (= deadline order)
        self.log = StepLog()
        self.rejected = self.timed_out = 0
        self.end_ns = self.when[0] if self.when else 0

    def run(self) -> StepLog:
        """Simulate until every request has ended; returns the step log."""
        eng, when, log, recorder = self.engine, self.when, self.log, self.recorder
        n, i = len(when), 0
        t = when[0] if n else 0
        while True:
            if recorder.pending >= _FLUSH_ROWS:  # bounds memory (checked once a step)
                recorder.flush()
            while i < n and when[i] <= t:
                self._arrive(i)
                i += 1
            if eng.idle:
                if i == n:
                    break
                t = when[i]
                continue
            step = eng.schedule()
            assert step is not None, "a busy engine always has a step (config.resolve checks)"
            log.record(t, step, eng)
            t += step.dur_ns
            self._expire(t)
            sampled, finished = eng.finish(step, t)
            log.ended(eng)
            for s in sampled:
                s.sink.append(t)
            for s in finished:
                self._finished(s, t)
        self.end_ns = max(t, self.end_ns)
        return log

    def _arrive(self, i: int) -> None:
        t, prompt, out = self.when[i], self.input_len[i], self.output_len[i]
        try:
            check_lengths(prompt, out, self.setup.max_model_len)
        except ApiError:
            self.rejected += 1
            self.end_ns = max(self.end_ns, t)
            self.record(request_id=i, scheduled_ns=t, slot_wait_ns=0, sent_ns=t, first_byte_ns=t,
                        first_token_ns=None, end_ns=t, token_ns=b"", input_tokens=None, output_tokens=None,
                        requested_input_tokens=prompt, requested_output_tokens=out, http_status=400,
                        error="http", finish_reason=None)
            return
        seq = Seq(i, prompt, out, t, array("q"))
        self.engine.add(seq)
        self.inflight.append(seq)

    def _expire(self, t_end: int) -> None:
        """Clients whose timeout falls before t_end give up on what they have not received."""
        inflight, timeout = self.inflight, self.timeout_ns
        while inflight and (inflight[0].state == FINISHED or inflight[0].arrival_ns + timeout < t_end):
            s = inflight.popleft()
            if s.state == FINISHED:
                continue
            self.engine.abort(s)
            self.timed_out += 1
            sent = s.arrival_ns
            self.record(request_id=s.rid, scheduled_ns=sent, slot_wait_ns=0, sent_ns=sent, first_byte_ns=sent,
                        first_token_ns=s.first_ns or None, end_ns=sent + timeout, token_ns=s.sink,
                        input_tokens=None, output_tokens=None, requested_input_tokens=s.prompt,
                        requested_output_tokens=s.max_tokens, http_status=200, error="timeout",
                        finish_reason=None)

    def _finished(self, s: Seq, t: int) -> None:
        sent = s.arrival_ns
        self.record(request_id=s.rid, scheduled_ns=sent, slot_wait_ns=0, sent_ns=sent, first_byte_ns=sent,
                    first_token_ns=s.first_ns, end_ns=t, token_ns=s.sink, input_tokens=s.prompt,
                    output_tokens=s.generated, requested_input_tokens=s.prompt,
                    requested_output_tokens=s.max_tokens, http_status=200, error=None, finish_reason="length")


@dataclass
class OfflineResult:
    run_dir: Path
    manifest: dict
    steps: dict  # StepLog columns as numpy arrays


def simulate(setup: Setup, cfg: LoadConfig) -> OfflineResult:
    """Simulate the load test `cfg` describes (its url is ignored) and write its run directory."""
    prep = prepare(cfg)
    if prep.text is not None or prep.schedule.think_ns is not None:
        raise VarcasError("the offline simulator takes independent requests of varcas's own prompts: not "
                          "dataset texts (their token counts need the server) nor conversations")
    run_dir = make_run_dir(cfg.out, prep.workload_name)
    info = ServerInfo(setup.served_name, (setup.served_name,), SERVER_VERSION)
    manifest = base_manifest(prep, None, "sim", setup.params(), info)
    manifest["simulated"] = True
    write_manifest(run_dir, manifest)
    start_ns = manifest["clock_anchor"]["monotonic_ns"]  # virtual time 0
    recorder = Recorder(run_dir)

    wall0 = time.perf_counter()
    run = VirtualRun(setup, prep.offsets_ns + start_ns, prep.input_len, prep.output_len,
                     round(cfg.request_timeout_s * 1e9), recorder)
    interrupted = False
    try:
        run.run()
    except KeyboardInterrupt:   # Ctrl-C: keep what was simulated, as the load generator does
        interrupted = True
    finally:
        recorder.close()
    steps = run.log.arrays()
    manifest.update(_outcome(run, steps, start_ns, time.perf_counter() - wall0))
    if interrupted:
        manifest["status"] = "interrupted"
    manifest["counts"]["recorded"] = convert_to_parquet(run_dir, manifest)
    if cfg.metrics_interval_s:
        manifest["telemetry"] = _metrics(run_dir, setup, steps, manifest, cfg.metrics_interval_s)
    write_manifest(run_dir, manifest)
    pq.write_table(pa.table(steps), run_dir / STEPS_FILE, compression="zstd")
    return OfflineResult(run_dir, manifest, steps)


def _metrics(run_dir: Path, setup: Setup, steps: dict, manifest: dict, interval_s: float) -> dict:
    """metrics.parquet as a scraper polling every interval_s would have recorded it, in virtual time."""
    table = virtual_metrics.scrapes(steps, read_requests(run_dir / PARQUET), manifest["start_ns"], manifest["end_ns"],
                                    round(interval_s * 1e9), setup.served_name, setup.num_blocks)
    pq.write_table(table, run_dir / METRICS_PARQUET, compression="zstd")
    scrapes = len(virtual_metrics.sample_times(manifest["start_ns"], manifest["end_ns"], round(interval_s * 1e9)))
    return {"metrics_interval_s": interval_s, "virtual": True, "scrapes": scrapes, "failed": 0, "error": None,
            "rows": table.num_rows}


def _outcome(run: VirtualRun, steps: dict, start_ns: int, wall_s: float) -> dict:
    eng, n = run.engine, len(run.when)
    errors = {k: v for k, v in (("http", run.rejected), ("timeout", run.timed_out)) if v}
    return {
        "status": "complete",
        "start_ns": start_ns,
        "end_ns": max(run.end_ns, start_ns),
        "ended_at": datetime.now(timezone.utc).isoformat(),
        "counts": {"scheduled": n, "sent": n, "ok": eng.finished,
                   "failed": run.rejected + run.timed_out, "errors": errors},
        "sim": {"virtual_s": (run.end_ns - start_ns) / 1e9, "wall_s": wall_s, "steps": len(run.log),
                "busy_s": float(np.sum(steps["dur_ns"])) / 1e9, "preemptions": eng.preemptions,
                "prompt_tokens": eng.prompt_tokens, "generation_tokens": eng.generation_tokens},
    }
