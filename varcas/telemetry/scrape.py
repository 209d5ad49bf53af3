"""The telemetry scraper: a process of its own that samples, every interval, the server's
/metrics, a dcgm-exporter's /metrics (gpu_url, a remote GPU) and NVML (the GPUs of this host,
when the server runs here), and appends every sample, parsed, to RUN_DIR/metrics.arrows.

Its own process: parsing a vLLM exposition (tens of KB, histograms) takes milliseconds of
Python, which in the load generator's process would hold the GIL while tokens wait to be read.
Each source has its own thread, connection, bounded read and timeout, so a stalled or failing
one never delays or stops another; samples are timed on CLOCK_MONOTONIC, the run's clock.
SIGTERM makes each take one last sample (so counters cover the whole run) and exit. An HTTP
source that answers its first scrape with 404 (a server without /metrics) is not asked again;
other failures are counted and sampling goes on; nothing here can fail the load run. Settings
arrive as JSON on stdin, so auth headers never show in argv.

    scraper = start(url, run_dir, interval_s, headers, insecure, gpu_url, nvml)
    ...
    telemetry, warnings = finish(scraper, run_dir, interval_s)
"""
from __future__ import annotations

import ipaddress
import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import TypedDict

import httpx
import orjson
import pyarrow as pa
import pyarrow.ipc as ipc
from prometheus_client.parser import text_string_to_metric_families

from .. import metricsfile as store
from .._timing import monotonic_ns
from ..bounded import read_bounded
from ..errors import VarcasError
from ..serve.spawn import child_env, die_with_parent
from ..signals import held
from . import nvml

NICENESS = 10  # how much lower the scraper runs than the load generator (bench/bench_telemetry.py)
READY_WAIT_S = 5.0  # for the first samples, at most
MAX_BYTES = 16 << 20  # one exposition, at most (vLLM's is ~50-200 KB, dcgm-exporter's less); larger is not read
STOP_WAIT_S = 10.0
_COUNTER_TYPE = re.compile(r"^(# TYPE \S+) counter[ \t\r]*$", re.MULTILINE)
# source -> how a warning names it
SOURCES = {"server": "the server's /metrics", "gpu_metrics": "the GPU metrics endpoint", "nvml": "NVML"}


class _HttpSource(TypedDict):
    """One HTTP source as start() hands it to the scraper process (as JSON)."""

    url: str
    headers: dict[str, str]
    auth: tuple[str, str] | None  # basic auth (user, password): a list once through JSON


class Absent(VarcasError):
    """The source has nothing to sample at all (a 404 at its first scrape): stop asking it."""


class Scraper:
    """The running scraper process; stop() ends it and returns what it reported."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc

    def stop(self) -> dict | None:
        """SIGTERM (one last sample), wait, kill if need be; the scraper's report (per source:
        what it is, samples ok and failed, the first error), None if it died without one."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        # Through the buffered reader, not communicate(): start()'s readline may have buffered
        # the report already (a scraper whose sources all ended at once).
        assert self.proc.stdout is not None  # start() opens it with stdout=PIPE
        with self.proc.stdout as stdout:
            out = stdout.read()
        try:
            return json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return None


def start(url: str, run_dir: Path, interval_s: float, headers: dict[str, str], insecure: bool = False,
          gpu_url: str | None = None, nvml_wanted: bool = True) -> Scraper:
    """Start sampling into run_dir/metrics.arrows: url (the server's /metrics, sent the run's
    headers), gpu_url (a dcgm-exporter's /metrics: no headers; a user:password@ in it is sent as
    basic auth and never written down) and, if nvml_wanted and url is on this host, NVML."""
    http: dict[str, _HttpSource] = {"server": {"url": url, "headers": headers, "auth": None}}
    if gpu_url:
        public, auth = split_auth(gpu_url)
        http["gpu_metrics"] = {"url": public, "headers": {}, "auth": auth}
    nvml_off = None if nvml_wanted and on_this_host(url) else \
        "off (the server is not on this host)" if nvml_wanted else "off"
    proc = None
    try:
        with held():  # a signal inside fork's handlers would be lost ("Exception ignored"): take it after
            proc = subprocess.Popen([sys.executable, "-m", "varcas.telemetry.scrape"], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=child_env(),
                                    preexec_fn=die_with_parent())
    except KeyboardInterrupt:
        if proc is not None:
            proc.kill()
            proc.wait()
        raise
    assert proc.stdin is not None and proc.stdout is not None  # both are pipes (Popen above)
    proc.stdin.write(json.dumps({"run_dir": str(run_dir), "interval_s": interval_s, "insecure": insecure,
                                 "http": http, "nvml_off": nvml_off}))
    proc.stdin.close()
    # Wait (bounded) for the first samples, so that the counters' first values precede the
    # run's first request and their deltas cover it whole.
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if sel.select(READY_WAIT_S):
            proc.stdout.readline()
    return Scraper(proc)


def finish(scraper: Scraper, run_dir: Path, interval_s: float) -> tuple[dict, list[str]]:
    """Stop the scraper and write metrics.parquet. Returns what run.json records about it (the
    server's scrapes, failed and first error as before, and one line per source) and the run's
    warnings: a source that never answered. A failure here is reported, never raised."""
    report = scraper.stop()
    summary: dict[str, object] = {"metrics_interval_s": interval_s}
    notes: list[str] = []
    if report is None:
        summary["error"] = f"the scraper exited with status {scraper.proc.returncode}"
        notes.append(f"telemetry: {summary['error']}; metrics.parquet keeps what it wrote until then")
    else:
        summary.update({k: report["server"][k] for k in ("scrapes", "failed", "error")})
        summary["sources"] = {name: _line(tally) for name, tally in report.items()}
        notes += [f"telemetry: {SOURCES[name]} never answered: {tally['error']}" for name, tally in report.items()
                  if _never_answered(name, tally)]
        if not any(tally.get("scrapes") for tally in report.values()):
            (Path(run_dir) / store.METRICS_ARROWS).unlink(missing_ok=True)
            return summary, notes
    try:
        summary["rows"] = store.finish(run_dir)
    except VarcasError as exc:
        notes.append(f"telemetry: {exc}")
    return summary, notes


def _line(tally: dict) -> str:
    """One source in one line: what it is, samples ok and failed, the first error."""
    if "off" in tally:
        return tally["off"]
    line = f"{tally['what']}: {tally['scrapes']} ok, {tally['failed']} failed"
    return line + (f" (first error: {tally['error']})" if tally["error"] else "")


def _never_answered(name: str, tally: dict) -> bool:
    """A source asked for that gave nothing (a server without /metrics is common: no warning)."""
    return "off" not in tally and not tally["scrapes"] and not (name == "server" and tally["absent"])


def split_auth(url: str) -> tuple[str, tuple[str, str] | None]:
    """url without its user:password@ (what may be shown or written) and that part as httpx
    auth. VarcasError if url is not http(s)://host..."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise VarcasError("the GPU metrics URL must look like http://HOST:9400/metrics (a dcgm-exporter)")
    auth = (parsed.username, parsed.password) if parsed.userinfo else None
    return str(parsed.copy_with(userinfo=b"")), auth


def public_url(url: str) -> str:
    """url as run.json shows it: without credentials ("***" if it is not a URL at all)."""
    try:
        return split_auth(url)[0]
    except VarcasError:
        return "***"


def on_this_host(url: str) -> bool:
    """Whether url's host is this machine (loopback or its own name): NVML here sees its GPUs."""
    host = httpx.URL(url).host.lower()
    try:
        address = ipaddress.ip_address(host)
        return address.is_loopback or address.is_unspecified
    except ValueError:
        return host in ("localhost", socket.gethostname().lower(), socket.getfqdn().lower())


def parse(text: str) -> tuple[list[str], list[str], list[float]]:
    """Every sample of a Prometheus text exposition (prometheus_client's parser): names as
    exposed, labels as JSON objects with sorted keys, values. ValueError for text that is not
    the format."""
    names, labels, values = [], [], []
    # The parser renames a counter without the _total suffix (dcgm-exporter's
    # DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION) to name_total; as untyped it keeps the exposed name.
    for family in text_string_to_metric_families(_COUNTER_TYPE.sub(r"\1 untyped", text)):
        for sample in family.samples:
            names.append(sample.name)
            labels.append(orjson.dumps(sample.labels, option=orjson.OPT_SORT_KEYS).decode())
            values.append(float(sample.value))
    return names, labels, values


# --- the scraper process ---------------------------------------------------------------------

class _Http:
    """A Prometheus text endpoint on its own connection, read up to MAX_BYTES within its timeout."""

    def __init__(self, url: str, headers: dict, auth, insecure: bool, timeout: httpx.Timeout):
        self.what, self.answered = url, False
        self.client = httpx.Client(headers=headers, auth=tuple(auth) if auth else None, verify=not insecure,
                                   timeout=timeout, trust_env=False)

    def take(self) -> tuple[int, list[str], list[str], list[float]]:
        """(t_ns, names, labels, values) of one scrape; VarcasError if it failed, Absent if
        the endpoint's first answer was 404."""
        try:
            status, body = read_bounded(self.client, "GET", self.what, MAX_BYTES)
            t_ns = monotonic_ns()
            got = parse(body.decode("utf-8", "replace")) if status == 200 else None
        except (httpx.HTTPError, VarcasError, ValueError, UnicodeError) as exc:
            raise VarcasError(f"GET {self.what}: {exc.__class__.__name__}: {str(exc)[:200]}") from None
        if status == 404 and not self.answered:
            raise Absent(f"GET {self.what}: 404: no metrics at this path")
        if got is None:
            raise VarcasError(f"GET {self.what}: HTTP {status}")
        self.answered = True
        return (t_ns, *got)

    def close(self) -> None:
        self.client.close()


class _Nvml:
    """This host's GPUs through an nvml.Sampler."""

    def __init__(self, sampler: nvml.Sampler, what: str):
        self.sampler, self.what = sampler, what

    def take(self) -> tuple[int, list[str], list[str], list[float]]:
        """(t_ns, names, labels, values) of every GPU's readings; VarcasError if none answered."""
        names, labels, values = self.sampler.sample()
        if not names:
            raise VarcasError(f"no NVML reading answered ({self.sampler.error})")
        return monotonic_ns(), names, labels, values

    def close(self) -> None:
        self.sampler.close()


class _Out:
    """metrics.arrows, shared by the sources' threads: one record batch per sample, flushed."""

    def __init__(self, writer, sink):
        self.writer, self.sink, self.lock = writer, sink, threading.Lock()

    def write(self, batch: pa.RecordBatch) -> None:
        with self.lock:
            self.writer.write_batch(batch)
            self.sink.flush()


def _once(source, out: _Out, tally: dict) -> bool:
    """One sample appended to the stream; False when the source has nothing to sample at all."""
    try:
        t_ns, names, labels, values = source.take()
    except Absent as exc:
        tally["error"], tally["absent"] = str(exc), True
        return False
    except VarcasError as exc:
        tally["failed"] += 1
        tally["error"] = tally["error"] or str(exc)
        return True
    out.write(store.batch(t_ns, names, labels, values))
    tally["scrapes"] += 1
    return True


def _poll(source, out: _Out, tally: dict, interval_s: float, stop: threading.Event, first: threading.Event) -> None:
    """Sample one source every interval_s until stop, then once more (so that counters cover
    the whole run), or until it turns out to have nothing."""
    next_t = monotonic_ns()
    try:
        going = _once(source, out, tally)
    finally:
        first.set()
    while going and not stop.is_set():
        next_t += int(interval_s * 1e9)
        stop.wait(max(0.0, (next_t - monotonic_ns()) / 1e9))
        going = _once(source, out, tally)


def _sources(cfg: dict) -> tuple[dict, dict]:
    """The sources to sample, by name, and the report's entries of those that are off."""
    timeout = httpx.Timeout(max(1.0, min(5.0, 4 * cfg["interval_s"])))
    sources: dict[str, _Http | _Nvml] = {name: _Http(s["url"], s["headers"], s["auth"], cfg["insecure"], timeout)
               for name, s in cfg["http"].items()}
    off = {}
    sampler, what = (None, cfg["nvml_off"]) if cfg["nvml_off"] else nvml.open_sampler()
    if sampler is None:
        off["nvml"] = {"off": what}
    else:
        sources["nvml"] = _Nvml(sampler, what)
    return sources, off


def main() -> int:
    """The scraper process: settings as JSON on stdin; prints "ready" once every source has been
    sampled once, and its report (per source) as its last line when it ends."""
    cfg = json.loads(sys.stdin.read())
    os.nice(NICENESS)  # the client being measured wins every contest for a core
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the load generator decides when we stop
    sources, report = _sources(cfg)
    tallies = {name: {"what": s.what, "scrapes": 0, "failed": 0, "error": None, "absent": False}
               for name, s in sources.items()}
    path = Path(cfg["run_dir"]) / store.METRICS_ARROWS
    with pa.OSFile(str(path), "wb") as sink, ipc.new_stream(sink, store.METRICS_SCHEMA) as writer:
        out = _Out(writer, sink)
        firsts = {name: threading.Event() for name in sources}
        threads = [threading.Thread(target=_poll, args=(s, out, tallies[name], cfg["interval_s"], stop, firsts[name]),
                                    daemon=True) for name, s in sources.items()]
        for thread in threads:
            thread.start()
        for first in firsts.values():
            first.wait()
        print("ready", flush=True)
        for thread in threads:
            thread.join()
    for source in sources.values():
        source.close()
    if "nvml" in sources:
        tallies["nvml"]["error"] = tallies["nvml"]["error"] or sources["nvml"].sampler.error
    print(orjson.dumps({**tallies, **report}).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
