"""run_load(config): one open-loop load test from arguments to a finished run directory.

Order matters: every local input (workload, schedule, headers, output dir) is checked before
the server is contacted, and the server is checked (preflight) before any load is sent.
Draining: once nothing more will be sent (the schedule is done, or the first SIGINT, SIGTERM or
SIGHUP stopped it), in-flight requests get drain_timeout_s to finish; then, or at a second signal,
they are cancelled and recorded as such. A run therefore ends at most drain_timeout_s after
its schedule, even against a server whose queue has grown for minutes. Rows are flushed to
requests.arrows every second, so a crash loses at most the last second; the Parquet file and
the final manifest are written at the end whatever happened. With --workers N > 1 the same run
is sent by N processes (varcas.load.workers), each flushing its own stream.
"""
from __future__ import annotations

import asyncio
import contextlib
import math
import os
import platform
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import uvloop

from .. import __version__
from .._timing import monotonic_ns
from ..errors import VarcasError
from ..rundir import (
    ERRORS_LOG,
    SCHEMA_VERSION,
    convert_to_parquet,
    request_streams,
    write_manifest,
)
from ..rundir.recorder import Recorder
from ..schedule import Schedule, build_schedule, load_workload
from ..schedule.datasets import TextDataset
from ..signals import ENDING, held, interrupts_raise
from ..telemetry import scrape
from . import datasets, rayworkers, workers
from .client import Pool
from .context import fit_to_context
from .conversations import Turns, write_conversations
from .engine import Engine
from .failures import FailureLog
from .preflight import control_client, preflight
from .progress import Progress
from .request import BACKENDS, RequestBuilder, Target, parse_header
from .vocab import from_tokenizer, plan_prompts
from .worker import drive, raise_fd_limit, write_error

SENSITIVE_HEADERS = ("authorization", "api-key", "x-api-key", "cookie", "proxy-authorization", "token")


@dataclass
class LoadConfig:
    """Everything a load run needs; what lands in run.json (minus secrets) is asdict() of this.

    vLLM's spellings of the target (`vllm bench serve`'s base_url, or host and port) are folded
    into url when the config is made, and backend sets api, so that a config says each once."""

    url: str | None = None
    model: str | None = None
    rps: float | None = None  # inf: every request at once; None: the workload's (prepare fills it in)
    arrival: str | None = None  # None: gamma when burstiness != 1, else poisson (prepare fills it in)
    burstiness: float = 1.0
    ramp_up_strategy: str | None = None  # a ramp-up (schedule.arrivals.RAMPS) from start to end rps
    ramp_up_start_rps: float | None = None
    ramp_up_end_rps: float | None = None
    trace: str | None = None
    duration_s: float | None = None
    num_requests: int | None = None
    max_concurrency: int | None = None
    workload: str = "chat_medium"
    input_len: int | None = None
    output_len: int | None = None
    api: str = "completions"
    endpoint: str | None = None
    ignore_eos: bool = True
    temperature: float = 0.0
    top_p: float | None = None
    top_k: int | None = None
    headers: list[str] = field(default_factory=list)
    api_key_env: str = "OPENAI_API_KEY"
    insecure: bool = False
    out: str | None = None
    seed: int = 0
    request_timeout_s: float = 600.0
    drain_timeout_s: float = 30.0
    tokenizer: str | None = None  # local HF tokenizer (dir or tokenizer.json) for prompt token IDs
    clip_to_context: bool = False  # shorten requests that exceed the model's max_model_len
    fail_fast: int = 20  # stop when the first N finished requests all failed alike (0: never)
    workers: int | str | None = None  # worker processes or "auto" (varcas.load.workers); None: 1 (ray: CPUs - 1)
    ray: str | None = None  # run the workers as Ray actors: a cluster's address, or "local" (varcas.load.rayworkers)
    worker_cores: str | list[int] | None = None  # CPUs to pin worker k to (the k-th, round robin): "0,2-3"
    metrics_interval_s: float = 0.5  # scrape the server's /metrics this often into metrics.parquet (0: never)
    gpu_metrics_url: str | None = None  # a dcgm-exporter's /metrics, scraped beside the server's
    gpu_metrics: bool = True  # sample this host's GPUs through NVML when the server runs here
    quiet: bool = False
    sim: dict = field(default_factory=dict)  # the simulator's settings when there is no url (varcas.targets)
    base_url: str | None = None  # vLLM's spelling of url
    host: str | None = None  # with port, vLLM's other spelling: http://HOST:PORT (127.0.0.1, 8000)
    port: int | None = None
    backend: str | None = None  # vLLM's --backend (request.BACKENDS), kept for its result JSON
    # datasets and workload shapes (varcas.load.datasets: which go together)
    dataset_name: str = "random"  # schedule.datasets.DATASETS
    dataset_path: str | None = None
    disable_shuffle: bool = False  # sharegpt and custom rows in file order
    random_range_ratio: float | dict = 0.0  # or vLLM's {"input": r, "output": r}
    shared_prefix_len: int = 0  # tokens of a prefix shared by every request (vLLM's --random-prefix-len)
    shared_prefix_groups: int = 1  # distinct prefixes, request i (conversation i) using i mod groups
    turns: int = 1  # turns per conversation
    think_time_s: float = 0.0  # between a turn's answer and the next turn
    think_time_dist: str | None = None  # exponential (None) or fixed
    sharegpt_output_len: int | None = None  # None: the second turn's length
    custom_output_len: int | None = None  # None: vLLM's 256; -1: the file's output_tokens
    sonnet_input_len: int | None = None  # None: vLLM's 550
    sonnet_output_len: int | None = None  # None: vLLM's 150
    sonnet_prefix_len: int | None = None  # None: vLLM's 200

    def __post_init__(self) -> None:
        """Fold vLLM's target spellings into url and its backend into api (one-line errors)."""
        self.url = _target_url(self.url, self.base_url, self.host, self.port)
        self.base_url = self.host = self.port = None
        if self.backend is not None:
            if self.backend not in BACKENDS:
                raise VarcasError(f"unknown --backend {self.backend!r} (known: {', '.join(BACKENDS)})")
            if self.api != "completions" and self.api != BACKENDS[self.backend]:
                raise VarcasError(f"--api {self.api} and --backend {self.backend} disagree: give one")
            self.api = BACKENDS[self.backend]

    def public(self) -> dict:
        """The config as stored in run.json: header names only, never their values (any custom
        header may carry a credential: Ocp-Apim-Subscription-Key, X-Goog-Api-Key, ...)."""
        d = asdict(self)
        d["headers"] = [_mask_header(h) for h in self.headers]
        d["gpu_metrics_url"] = self.gpu_metrics_url and scrape.public_url(self.gpu_metrics_url)
        return d


def _target_url(url: str | None, base_url: str | None, host: str | None, port: int | None) -> str | None:
    """The one URL that url, base_url or host/port name (vLLM's defaults fill in host or port)."""
    given = [flag for flag, value in (("--url", url), ("--base-url", base_url), ("--host", host), ("--port", port))
             if value is not None]
    if len(given) > 1 and given[:2] != ["--host", "--port"]:
        raise VarcasError(f"{', '.join(given)}: each names the server; give --url (or --base-url) alone, "
                          "or --host/--port")
    if host is None and port is None:
        return url if base_url is None else base_url
    if port is not None and not 1 <= port <= 65535:
        raise VarcasError(f"--port must be in [1, 65535], got {port}")
    host = host or "127.0.0.1"
    return f"http://{f'[{host}]' if ':' in host else host}:{port or 8000}"


def _mask_header(text: str) -> str:
    name, sep, _ = text.partition(":")
    return f"{name.strip()}: ***" if sep else "***"


MASKED_FLAGS = {"--header": _mask_header, "--gpu-metrics-url": scrape.public_url}


def public_argv(argv: list[str]) -> list[str]:
    """argv as stored in run.json: the values of --header and --gpu-metrics-url masked as in public()."""
    out, mask = [], None
    for arg in argv:
        flag, eq, value = arg.partition("=")
        if mask is not None:
            arg, mask = mask(arg), None
        elif arg in MASKED_FLAGS:
            mask = MASKED_FLAGS[arg]
        elif eq and flag in MASKED_FLAGS:
            arg = f"{flag}={MASKED_FLAGS[flag](value)}"
        out.append(arg)
    return out


@dataclass
class Prepared:
    """A validated run, ready to send: schedule, request builder, output directory."""

    config: LoadConfig
    offsets_ns: np.ndarray
    input_len: np.ndarray
    output_len: np.ndarray
    workload_name: str
    headers: list[tuple[str, str]]
    schedule: Schedule  # offsets_ns, input_len and output_len are its arrays until fitted to the server
    text: TextDataset | None = None  # a text dataset's rows, sampled once its tokens can be counted


def prepare(cfg: LoadConfig) -> Prepared:
    """Validate every local input and build the schedule; no network."""
    if cfg.max_concurrency is not None and cfg.max_concurrency < 1:
        raise VarcasError(f"--max-concurrency must be >= 1, got {cfg.max_concurrency}")
    if isinstance(cfg.fail_fast, bool) or not isinstance(cfg.fail_fast, int) or cfg.fail_fast < 0:
        raise VarcasError(f"--fail-fast must be an integer >= 0, got {cfg.fail_fast!r}")
    if not 0 <= cfg.metrics_interval_s <= 3600 or cfg.metrics_interval_s != cfg.metrics_interval_s:
        raise VarcasError(f"--metrics-interval must be between 0 and 3600 seconds, got {cfg.metrics_interval_s}")
    if cfg.gpu_metrics_url is not None:
        if not cfg.metrics_interval_s:
            raise VarcasError("--gpu-metrics-url needs telemetry on: drop --no-metrics or --metrics-interval 0")
        scrape.split_auth(cfg.gpu_metrics_url)  # a URL that is not one: an error now, not a warning at the end
    for name, value in (("--request-timeout", cfg.request_timeout_s), ("--drain-timeout", cfg.drain_timeout_s)):
        if not value > 0 or value != value or value == float("inf"):
            raise VarcasError(f"{name} must be a positive number of seconds, got {value}")
    _check_sampling(cfg)
    cfg.workers = workers.parse_workers(cfg.workers)
    if cfg.workers is None and cfg.ray is None:
        cfg.workers = 1
    cfg.worker_cores = workers.parse_cores(cfg.worker_cores)
    if cfg.ray is not None:
        rayworkers.check(cfg)
    datasets.check_flags(cfg)
    headers = [parse_header(h) for h in cfg.headers]
    workload = load_workload(cfg.workload)
    ramp = _ramp(cfg)
    burst = cfg.dataset_name == "burstgpt"  # a trace: its timestamps, unless a rate is given
    replay = burst and cfg.rps is None and ramp is None and cfg.arrival in (None, "trace")
    arrival = cfg.arrival or ("trace" if replay else "gamma" if cfg.burstiness != 1 else "poisson")  # vLLM's
    duration = cfg.duration_s
    if duration is None and cfg.num_requests is None and arrival != "trace":
        duration = 60.0
    text = datasets.text_dataset(cfg)
    sched = build_schedule(
        workload=workload, rps=cfg.rps, arrival=arrival, burstiness=cfg.burstiness,
        duration_s=duration, num_requests=cfg.num_requests, input_len=cfg.input_len,
        output_len=cfg.output_len, seed=cfg.seed, trace_path=cfg.dataset_path if burst else cfg.trace, ramp=ramp,
        range_ratio=datasets.range_ratio(cfg.random_range_ratio), shape=datasets.shape(cfg),
        trace_format="burstgpt" if burst else "varcas",
    )
    cfg.arrival, cfg.duration_s = arrival, duration
    if cfg.rps is None and arrival != "trace" and ramp is None:
        cfg.rps = workload.rps  # run.json says the rate offered
    name = workload.name if cfg.dataset_name == "random" else cfg.dataset_name
    return Prepared(cfg, sched.offset_ns, sched.input_len, sched.output_len, name, headers, sched, text)


def _ramp(cfg: LoadConfig) -> tuple[str, float, float] | None:
    """The ramp-up (strategy, start, end) when all three flags are given; None when none is."""
    flags = {"--ramp-up-strategy": cfg.ramp_up_strategy, "--ramp-up-start-rps": cfg.ramp_up_start_rps,
             "--ramp-up-end-rps": cfg.ramp_up_end_rps}
    missing = [flag for flag, value in flags.items() if value is None]
    if len(missing) == len(flags):
        return None
    strategy, start, end = cfg.ramp_up_strategy, cfg.ramp_up_start_rps, cfg.ramp_up_end_rps
    if strategy is None or start is None or end is None:
        raise VarcasError(f"a ramp-up needs {', '.join(flags)}; missing {', '.join(missing)}")
    return strategy, start, end


def _check_sampling(cfg: LoadConfig) -> None:
    """The sampling parameters vLLM accepts, checked before a server would refuse every request."""
    if not 0 <= cfg.temperature < math.inf:
        raise VarcasError(f"--temperature must be a number >= 0, got {cfg.temperature}")
    if cfg.top_p is not None and not 0 < cfg.top_p <= 1:
        raise VarcasError(f"--top-p must be in (0, 1], got {cfg.top_p}")
    if cfg.top_k is not None and cfg.top_k < -1:
        raise VarcasError(f"--top-k must be a number of tokens, or -1 or 0 for none, got {cfg.top_k}")


def sampling(cfg: LoadConfig) -> dict:
    """The sampling keys of each request body: temperature always, top_p and top_k when given."""
    params = {"temperature": cfg.temperature, "top_p": cfg.top_p, "top_k": cfg.top_k}
    return {k: v for k, v in params.items() if v is not None}


def make_run_dir(out: str | None, workload: str) -> Path:
    """Create the run directory (default runs/<UTC timestamp>-<workload>); VarcasError if `out`
    exists and is not an empty directory, or cannot be created."""
    if out is None:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        out = os.path.join("runs", f"{stamp}-{workload}")
    path = Path(out)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise VarcasError(f"--out {out}: exists and is not an empty directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VarcasError(f"--out {out}: cannot create ({exc.strerror})") from None
    return path


def _say(console, text: str) -> None:
    if console is not None:
        console.print(text)


def run_load(cfg: LoadConfig, console=None) -> Path:
    """Run one load test against cfg.url and return its run directory (status complete,
    interrupted or failed). SIGINT, SIGTERM or SIGHUP before the run directory exists raise
    KeyboardInterrupt (nothing to keep); after, at any moment, they end the run `interrupted`
    with every row kept. varcas.targets.run_load also starts the simulator when there is no url."""
    if cfg.url is None:
        raise VarcasError("run_load needs a url (varcas.targets.run_load starts the simulator when there is none)")
    with interrupts_raise() as rearm:
        return run_prepared(prepare(cfg), cfg.url, "server", None, console, rearm)


def run_prepared(prep: Prepared, url: str, target_kind: str, target_params: dict | None, console, rearm) -> Path:
    """run_load's work once the schedule is built: preflight, prompts, the run, its files.
    target_kind and target_params say in run.json what the url is (a server, the simulator)."""
    cfg = prep.config
    corpus = from_tokenizer(cfg.tokenizer) if cfg.tokenizer else None
    api_key = os.environ.get(cfg.api_key_env) or None
    target = Target.parse(url)
    auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    headers = {**dict(prep.headers), **auth}
    info = preflight(target, cfg.model, headers, cfg.insecure)
    texts = None
    with control_client(headers, cfg.insecure) as client:
        plan = plan_prompts(cfg.api, cfg.seed, corpus, client, target.url("/tokenize"), info.model)
        if prep.text is not None:
            texts = datasets.sample_texts(prep, plan, datasets.counter(cfg, client, target.url("/tokenize"),
                                                                      info.model))
    if plan.record["source"] == "none" and cfg.api == "completions" and target_kind == "server":
        _say(console, "prompts: random token IDs in [1000, 29000): the server has no /tokenize; "
                      "--tokenizer gives IDs from the model's own vocabulary")
    prep.input_len, prep.output_len, note = fit_to_context(
        prep.input_len, prep.output_len, info.max_model_len, cfg.clip_to_context, plan.template_tokens)
    with rayworkers.session(cfg.ray) as cluster:  # None without --ray
        sched = prep.schedule
        layout = workers.plan(cfg, sched, cluster.cpus if cluster is not None else None)
        if cluster is not None:
            cluster.place(layout.n)  # the actors, before the run directory: a setup error is one line
            cluster.check_reach(target.host)
        run_dir = make_run_dir(cfg.out, prep.workload_name)
        builder = RequestBuilder(target, info.model, cfg.api, cfg.endpoint, cfg.ignore_eos, prep.headers, api_key,
                                 sampling(cfg))
        manifest = base_manifest(prep, url, target_kind, target_params, info)
        manifest["prompts"] = plan.record
        manifest["workload_shape"] = datasets.record(cfg, sched, texts)
        manifest["workers"] = layout.describe()
        if note:
            _say(console, note)
            manifest["warnings"].append(note)
        scraper = None
        try:
            write_manifest(run_dir, manifest)
            if sched.shape.turns > 1:
                write_conversations(run_dir, sched.timed, len(sched))
            raise_fd_limit()
            if cfg.metrics_interval_s:
                scraper = scrape.start(target.url("/metrics"), run_dir, cfg.metrics_interval_s, headers, cfg.insecure,
                                       cfg.gpu_metrics_url, cfg.gpu_metrics and target_kind == "server")
            secrets = (api_key or "", *(v for k, v in prep.headers if any(s in k.lower() for s in SENSITIVE_HEADERS)))
            if cluster is not None:
                outcome = rayworkers.execute(cluster, prep, plan, texts, builder, target, run_dir, console, secrets, rearm,
                                             layout)
            elif layout.n > 1:
                outcome = workers.execute(prep, plan, texts, builder, target, run_dir, console, secrets, rearm, layout)
            else:
                outcome = _execute(prep, datasets.prompt_source(prep, plan, texts), builder, target, run_dir, console,
                                   secrets, rearm, layout)
        except KeyboardInterrupt:  # a signal outside the event loop's own handling
            outcome = {"status": "interrupted", "end_ns": monotonic_ns(),
                       "ended_at": datetime.now(timezone.utc).isoformat()}
        with held():
            if scraper is not None:
                manifest["telemetry"], notes = scrape.finish(scraper, run_dir, cfg.metrics_interval_s)
                manifest["warnings"] += notes
            _finish(run_dir, manifest, outcome)
        return run_dir


def _finish(run_dir: Path, manifest: dict, outcome: dict) -> None:
    """The run's final files: requests.parquet from the stream(s) (an empty one if the run
    ended before any recorder started), each worker's health and run.json with the outcome."""
    manifest.update(outcome)
    try:
        if not request_streams(run_dir):
            Recorder(run_dir).close()
        manifest["counts"]["recorded"] = convert_to_parquet(run_dir, manifest)
        with contextlib.suppress(VarcasError):
            workers.health(run_dir, manifest)
    except (VarcasError, OSError) as exc:  # a full disk: say so in run.json if it still fits
        manifest.update(status="interrupted", interrupted_by=str(exc))
        try:
            write_manifest(run_dir, manifest)
        except VarcasError:
            pass  # run.json stays `running`: `varcas recover` finishes the run later
        raise VarcasError(str(exc)) from None
    write_manifest(run_dir, manifest)


def base_manifest(prep: Prepared, url, target_kind, target_params, info) -> dict:
    """run.json as it stands when a run starts (status running): config, target, versions, seed,
    clock anchor. The caller adds the outcome (status, counts, times) when the run ends."""
    cfg = prep.config
    argv = public_argv(sys.argv)
    return {
        "schema_version": SCHEMA_VERSION,
        "varcas_version": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": platform.node(),
        "status": "running",
        "command": argv,
        "config": {**cfg.public(), "workload": prep.workload_name},
        "target": {"url": url, "model": info.model, "kind": target_kind, "server_version": info.server_version,
                   "max_model_len": info.max_model_len, **({"params": target_params} if target_params else {})},
        "seed": cfg.seed,
        "clock_anchor": {"monotonic_ns": monotonic_ns(), "unix_ns": time.time_ns()},
        "started_at": datetime.now(timezone.utc).isoformat(),
        "counts": {"scheduled": int(len(prep.offsets_ns))},
        "warnings": [],
    }


def _execute(prep: Prepared, prompt: Callable[[int], bytes], builder: RequestBuilder, target: Target, run_dir: Path,
             console, secrets: tuple[str, ...], rearm, layout: workers.Layout) -> dict:
    """Drive the event loop over the schedule in this process (prompt(i): request i's prompt
    bytes); returns the manifest fields of the outcome."""
    cfg = prep.config
    build_req, in_len, out_len = builder.build, prep.input_len, prep.output_len

    def build(i: int) -> bytes:
        return build_req(i, prompt(i), int(out_len[i]))

    recorder = Recorder(run_dir)
    failures = FailureLog(run_dir / ERRORS_LOG, secrets, cfg.fail_fast)
    loop = uvloop.new_event_loop()
    sched = prep.schedule
    turns = Turns(sched.timed, sched.think_ns) if sched.think_ns is not None else None
    engine = Engine(loop, lambda owner: Pool(loop, target, owner, cfg.insecure), prep.offsets_ns,
                    in_len, out_len, build, recorder, max_concurrency=cfg.max_concurrency,
                    request_timeout_s=cfg.request_timeout_s, failures=failures, turns=turns)
    planned_s = sched.duration_s
    ru0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    storage = None  # why rows could not be written (a full disk), if they could not
    try:
        with Progress(console, not cfg.quiet, planned_s) as progress, _pinned(layout.cores[0]):
            start_ns, interrupted, storage = loop.run_until_complete(_drive(engine, cfg, progress, recorder))
    finally:
        rearm()  # the loop's handlers are gone: signals raise KeyboardInterrupt again
        try:
            recorder.close()
        except OSError as exc:
            storage = storage or write_error(exc)
        failures.close()
        loop.close()
    ru1, wall1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    cpu_s = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    stats = engine.stats
    ok = stats.done - stats.errors
    failure = None
    if failures.tripped:
        failure = f"the first {failures.window} requests all failed: {failures.tripped}"
    elif not interrupted and stats.sent and not ok:
        failure = f"every request failed; the first: {failures.first or 'cancelled at the drain timeout'}"
    outcome = {
        "status": "failed" if failure else "interrupted" if interrupted or storage else "complete",
        **({"failure": failure} if failure else {}),
        **({"interrupted_by": storage} if storage else {}),
        **({"first_error": failures.first} if failures.first else {}),
        "start_ns": start_ns,
        "end_ns": monotonic_ns(),
        "ended_at": datetime.now(timezone.utc).isoformat(),
        "counts": {"scheduled": engine.n, "sent": stats.sent, "ok": ok,
                   "failed": stats.errors, "errors": dict(stats.error_kinds)},
        "client": {"cpu_s": cpu_s, "wall_s": wall1 - wall0, "cpu_util": cpu_s / max(wall1 - wall0, 1e-9),
                   "connections_opened": engine.pool.opened},
    }
    outcome["workers"] = workers.in_process_record(layout, outcome, stats.events)
    return outcome


@contextlib.contextmanager
def _pinned(cores: list[int] | None):
    """This thread (the event loop's) on the given CPUs for the block (--worker-cores with one worker)."""
    if cores is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


async def _drive(engine: Engine, cfg: LoadConfig, progress: Progress, recorder: Recorder):
    """worker.drive in this process: signals stop (first) or cancel (second), the live view."""
    loop = asyncio.get_running_loop()
    interrupts = 0

    def on_signal() -> None:
        nonlocal interrupts
        if engine.done.done():
            return
        interrupts += 1
        if interrupts == 1:
            progress.note = "interrupted: "
            engine.stop_sending()
        else:
            engine.cancel_all()

    def on_sending_ended(_) -> None:
        progress.note += f"sending done; in-flight requests may finish for {cfg.drain_timeout_s:g} s (Ctrl-C cancels)"

    async def start() -> int:
        return monotonic_ns() + 20_000_000

    def tick(start_ns: int) -> None:
        progress.update(engine.stats, (monotonic_ns() - start_ns) / 1e9, len(engine.inflight))

    for sig in ENDING:
        loop.add_signal_handler(sig, on_signal)
    engine.sending_ended.add_done_callback(on_sending_ended)
    try:
        start_ns, storage = await drive(engine, cfg, recorder, start, tick)
    finally:
        for sig in ENDING:
            loop.remove_signal_handler(sig)
    return start_ns, interrupts > 0, storage
