"""The load generator against the simulator: a short open-loop run, then the simulator's own
/metrics held against what the load generator measured."""
from __future__ import annotations

import threading
import time

import httpx
import numpy as np

from tests.cli_helpers import T4
from varcas.load.runner import LoadConfig, run_load
from varcas.rundir import read_manifest, read_requests
from varcas.sim import spawn

from .test_server import metric

MAX_SEQS = 4


def _scrape(url: str, stop: threading.Event, samples: list) -> None:
    """Every 50 ms: (time of the scrape, running, waiting), until stop (bounded: 30 s)."""
    deadline = time.monotonic() + 30
    with httpx.Client(timeout=5.0, trust_env=False) as c:
        while not stop.is_set() and time.monotonic() < deadline:
            t0 = time.monotonic_ns()
            text = c.get(url + "/metrics").text
            t1 = time.monotonic_ns()
            samples.append((t0, t1, metric(text, "vllm:num_requests_running"),
                            metric(text, "vllm:num_requests_waiting")))
            stop.wait(0.05)


def test_metrics_agree_with_what_the_load_generator_measured(tmp_path):
    samples: list = []
    stop = threading.Event()
    with spawn(**T4, max_num_seqs=MAX_SEQS) as sim:
        scraper = threading.Thread(target=_scrape, args=(sim.url, stop, samples))
        scraper.start()
        try:
            run_dir = run_load(LoadConfig(url=sim.url, quiet=True, out=str(tmp_path / "run"), rps=15.0,
                                          num_requests=60, input_len=64, output_len=16, request_timeout_s=30.0))
        finally:
            stop.set()
            scraper.join(10)
        text = sim.metrics_text()
    manifest = read_manifest(run_dir)
    assert manifest["target"]["server_version"].startswith("varcas-sim")
    rows = read_requests(run_dir).to_pydict()
    assert rows["error"] == [None] * 60 and manifest["counts"]["ok"] == 60
    # Token totals: exactly what the streams carried and the usage chunks reported.
    assert metric(text, "vllm:generation_tokens_total") == sum(rows["output_tokens"]) == 60 * 16
    assert sum(len(t) for t in rows["token_ns"]) == 60 * 16
    assert metric(text, "vllm:prompt_tokens_total") == sum(rows["input_tokens"]) == 60 * 64
    assert metric(text, "vllm:request_success_total") == metric(text, "vllm:time_to_first_token_seconds_count") == 60
    # Running + waiting at each scrape = requests the client had in flight, within what could
    # change while the scrape itself travelled (requests sent or ended within its span, +-20 ms).
    sent, end = np.array(rows["sent_ns"]), np.array(rows["end_ns"])
    busy = [s for s in samples if s[2] + s[3] > 0]
    assert len(busy) > 20 and max(s[2] for s in samples) == MAX_SEQS and max(s[3] for s in samples) > 0
    for t0, t1, running, waiting in samples:
        assert running <= MAX_SEQS
        t = (t0 + t1) // 2
        in_flight = int(((sent <= t) & (end > t)).sum())
        lo, hi = t0 - 20_000_000, t1 + 20_000_000
        moving = int((((sent >= lo) & (sent <= hi)) | ((end >= lo) & (end <= hi))).sum())
        assert abs(running + waiting - in_flight) <= moving
