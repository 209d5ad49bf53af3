"""The /metrics scraper: a process of its own that polls the server every interval and appends
each answer, parsed, to RUN_DIR/metrics.arrows.

Its own process and connection: parsing a vLLM exposition (tens of KB, histograms) takes
milliseconds of Python, which in the load generator's process would hold the GIL while tokens
wait to be read. Scrapes are timed on CLOCK_MONOTONIC, the run's clock. SIGTERM makes it take
one last scrape (so counters cover the whole run) and exit. A server without /metrics (404 on
the first scrape) ends it at once; other failures are counted and scraping goes on; nothing
here can fail the load run. Settings arrive as JSON on stdin, so auth headers never show in
argv.

    scraper = start(url, run_dir, interval_s, headers, insecure); ...; finish(scraper, run_dir, interval_s)
"""
from __future__ import annotations

import json
import selectors
import signal
import subprocess
import sys
import threading
from pathlib import Path

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

READY_WAIT_S = 5.0  # for the first scrape, at most
MAX_BYTES = 16 << 20  # one exposition, at most (vLLM's is ~50-200 KB); larger is not read
STOP_WAIT_S = 10.0


class Scraper:
    """The running scraper process; stop() ends it and returns what it reported."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc

    def stop(self) -> dict:
        """SIGTERM (one last scrape), wait, kill if need be; the scraper's summary line, parsed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        try:
            return json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return {"scrapes": None, "error": f"the scraper exited with status {self.proc.returncode}"}


def finish(scraper: Scraper, run_dir: Path, interval_s: float) -> dict:
    """Stop the scraper and write metrics.parquet; what run.json records about it. A server
    without /metrics leaves no file; a failure here is reported, never raised."""
    summary = {"metrics_interval_s": interval_s, **scraper.stop()}
    if not summary.get("scrapes"):
        (Path(run_dir) / store.METRICS_ARROWS).unlink(missing_ok=True)
        return summary
    try:
        summary["rows"] = store.finish(run_dir)
    except VarcasError as exc:
        summary["error"] = str(exc)
    return summary


def start(url: str, run_dir: Path, interval_s: float, headers: dict[str, str], insecure: bool = False) -> Scraper:
    """Start scraping url (the server's /metrics) into run_dir/metrics.arrows."""
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
    proc.stdin.write(json.dumps({"url": url, "run_dir": str(run_dir), "interval_s": interval_s,
                                 "headers": headers, "insecure": insecure}))
    proc.stdin.close()
    proc.stdin = None  # closed: communicate() must not flush it
    # Wait (bounded) for the first scrape, so that the counters' first values precede the
    # run's first request and their deltas cover it whole.
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if sel.select(READY_WAIT_S):
            proc.stdout.readline()
    return Scraper(proc)


def parse(text: str) -> tuple[list[str], list[str], list[float]]:
    """Every sample of a Prometheus text exposition (prometheus_client's parser): names, labels
    as JSON objects with sorted keys, values. ValueError for text that is not the format."""
    names, labels, values = [], [], []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            names.append(sample.name)
            labels.append(orjson.dumps(sample.labels, option=orjson.OPT_SORT_KEYS).decode())
            values.append(float(sample.value))
    return names, labels, values


def _scrape(client: httpx.Client, url: str, writer, sink, tally: dict) -> bool:
    """One scrape appended to the stream; False when the server has no /metrics at all."""
    try:
        status, body = read_bounded(client, "GET", url, MAX_BYTES)
        t_ns = monotonic_ns()
        if status == 404 and not tally["scrapes"]:
            tally["error"] = f"GET {url}: 404: the server has no /metrics"
            return False
        if status != 200:
            raise ValueError(f"HTTP {status}")
        names, labels, values = parse(body.decode("utf-8", "replace"))
    except (httpx.HTTPError, VarcasError, ValueError, UnicodeError) as exc:
        tally["failed"] += 1
        tally["error"] = tally["error"] or f"GET {url}: {exc.__class__.__name__}: {str(exc)[:200]}"
        return True
    writer.write_batch(store.batch(t_ns, names, labels, values))
    sink.flush()
    tally["scrapes"] += 1
    return True


def main() -> int:
    cfg = json.loads(sys.stdin.read())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the load generator decides when we stop
    tally = {"scrapes": 0, "failed": 0, "error": None}
    path = Path(cfg["run_dir"]) / store.METRICS_ARROWS
    timeout = httpx.Timeout(max(1.0, min(5.0, 4 * cfg["interval_s"])))
    with httpx.Client(headers=cfg["headers"], verify=not cfg["insecure"], timeout=timeout, trust_env=False) as client, \
            pa.OSFile(str(path), "wb") as sink, ipc.new_stream(sink, store.METRICS_SCHEMA) as writer:
        next_t = monotonic_ns()
        going = _scrape(client, cfg["url"], writer, sink, tally)
        print("ready", flush=True)
        while going and not stop.is_set():
            next_t += int(cfg["interval_s"] * 1e9)
            stop.wait(max(0.0, (next_t - monotonic_ns()) / 1e9))
            going = _scrape(client, cfg["url"], writer, sink, tally)  # after a stop: the last, so
            # that the counters cover the whole run
    print(orjson.dumps(tally).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
