"""The /metrics scraper and metrics.parquet: parsing, counter deltas, servers with bad or no
/metrics (the run never fails for telemetry), and the server-versus-client count check."""
from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from tests.analyze import synth
from varcas import metricsfile
from varcas.analyze import load_run, summarize
from varcas.load.runner import LoadConfig
from varcas.targets import run_load
from varcas.telemetry import scrape

EXPOSITION = """# HELP vllm:num_requests_running Number of requests currently running.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="m"} 3.0
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{model_name="m"} 120.0
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{le="0.1",model_name="m"} 2.0
vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="m"} 5.0
vllm:time_to_first_token_seconds_count{model_name="m"} 5.0
vllm:time_to_first_token_seconds_sum{model_name="m"} 1.25
"""


def test_parse_keeps_gauges_counters_and_histogram_buckets():
    names, labels, values = scrape.parse(EXPOSITION)
    assert names == ["vllm:num_requests_running", "vllm:generation_tokens_total",
                     "vllm:time_to_first_token_seconds_bucket", "vllm:time_to_first_token_seconds_bucket",
                     "vllm:time_to_first_token_seconds_count", "vllm:time_to_first_token_seconds_sum"]
    assert labels[0] == '{"model_name":"m"}' and labels[2] == '{"le":"0.1","model_name":"m"}'
    assert values == [3.0, 120.0, 2.0, 5.0, 5.0, 1.25]


def table_of(scrapes) -> pa.Table:
    """A metrics table from [(t_ns, [(name, labels, value), ...]), ...]."""
    return pa.Table.from_batches([metricsfile.batch(t, [n for n, _, _ in s], [l for _, l, _ in s], [v for _, _, v in s])
                                  for t, s in scrapes], schema=metricsfile.METRICS_SCHEMA)


def test_counter_deltas_sum_label_sets_and_survive_a_restart():
    g = "vllm:generation_tokens_total"
    t = table_of([(1, [(g, '{"a":"1"}', 10.0), (g, '{"a":"2"}', 0.0)]),
                  (2, [(g, '{"a":"1"}', 15.0), (g, '{"a":"2"}', 4.0)]),
                  (3, [(g, '{"a":"1"}', 3.0), (g, '{"a":"2"}', 9.0)])])  # a:1 restarted from 0
    assert metricsfile.counter_deltas(t, (g, "vllm:absent_total")) == {g: 5 + 3 + 4 + 5, "vllm:absent_total": 0.0}


class Exposition(BaseHTTPRequestHandler):
    """GET /metrics answers what the server's `body` says (or 404 / a stall)."""

    def do_GET(self):
        mode = self.server.mode
        if mode == "stall":
            time.sleep(3)
        status, body = (404, b"") if mode == "none" else (200, b"\x00not { prometheus" if mode == "garbage"
                                                           else EXPOSITION.encode())
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def exposition():
    servers = []

    def serve(mode: str) -> str:
        srv = ThreadingHTTPServer(("127.0.0.1", 0), Exposition)
        srv.mode = mode
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}/metrics"

    yield serve
    for srv in servers:
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize("mode, scrapes, error, warned", [
    ("ok", (3, 9), None, False),  # the first, about five in 1.2 s at 0.2 s (fewer on a starved CPU), the last
    ("none", (0, 0), "404: no metrics at this path", False),  # a server without /metrics: common, no warning
    ("garbage", (0, 0), "ValueError", True),
    ("stall", (0, 1), "Timeout", None),  # one scrape may get through at the end: a warning or none
])
def test_the_scraper_against_good_absent_garbage_and_stalled_exposition(tmp_path, exposition, mode, scrapes, error,
                                                                        warned):
    url = exposition(mode)
    scraper = scrape.start(url, tmp_path, 0.2, {}, False, nvml_wanted=False)
    time.sleep(1.2)
    t0 = time.monotonic()
    summary, warnings = scrape.finish(scraper, tmp_path, 0.2)
    assert time.monotonic() - t0 < 11  # stops within its bound, even mid-stall
    assert scrapes[0] <= summary["scrapes"] <= scrapes[1], summary
    assert (error is None and summary["error"] is None) or error in summary["error"], summary
    assert summary["sources"]["server"].startswith(f"{url}: {summary['scrapes']} ok, ")
    assert summary["sources"]["nvml"] == "off"
    if warned is not None:
        assert warnings == ([f"telemetry: the server's /metrics never answered: {summary['error']}"] if warned else [])
    table = metricsfile.read(tmp_path)
    if summary["scrapes"]:
        assert table.num_rows == 6 * summary["scrapes"] == summary["rows"]
        assert (np.diff(table["t_ns"].to_numpy()) >= 0).all()
    else:
        assert table is None and not (tmp_path / metricsfile.METRICS_ARROWS).exists()


def test_a_run_on_the_simulator_records_its_metrics_and_they_agree_with_the_client(tmp_path):
    out = tmp_path / "r"
    run_load(LoadConfig(rps=8, duration_s=3, sim={"gpu": "h100-sxm", "quant": "fp16"}, out=str(out), quiet=True,
                        workload="chat_low", metrics_interval_s=0.25))
    run = load_run(out)
    telemetry = run.manifest["telemetry"]
    assert telemetry["error"] is None and telemetry["scrapes"] >= 10
    table = metricsfile.read(out)
    t = table["t_ns"].to_numpy()
    assert t.min() <= run.start_ns and t.max() >= run.end_ns.max()  # the scrapes bracket the run
    deltas = metricsfile.counter_deltas(table, ("vllm:generation_tokens_total", "vllm:prompt_tokens_total"))
    ok = run.error == -1
    assert deltas["vllm:generation_tokens_total"] == run.output_tokens[ok].sum() > 0
    assert deltas["vllm:prompt_tokens_total"] == run.input_tokens[ok].sum()
    assert not [w for w in summarize(run).warnings if "disagree" in w]


def test_a_disagreeing_server_count_is_a_trust_warning(tmp_path):
    cols = synth.simulate(np.arange(10) * 0.1, prefill_ms=20, itl_ms=5, tokens=4)
    run_dir = synth.write_run(tmp_path / "r", cols)
    g = "vllm:generation_tokens_total"
    with pa.OSFile(str(run_dir / metricsfile.METRICS_ARROWS), "wb") as sink, \
            ipc.new_stream(sink, metricsfile.METRICS_SCHEMA) as writer:
        for t, value in ((0, 100.0), (1, 190.0)):  # 90 generated; the client got 40
            writer.write_batch(metricsfile.batch(t, [g], ['{"model_name":"m"}'], [value]))
    assert metricsfile.finish(run_dir) == 2
    warnings = summarize(load_run(run_dir)).warnings
    assert [w for w in warnings if "disagree" in w] == [
        "server and client disagree: vllm:generation_tokens_total grew by 90 during the run, the client's usage "
        "totals 40 generated tokens (another client on the server, failed requests the server still counted, "
        "or a server restart)"]


def test_the_summary_shows_the_servers_own_batch_queue_and_rates(tmp_path):
    """An overloaded simulated T4 at max-num-seqs 4: the server's own gauges say the batch was
    full and a queue built, which the client alone can only infer."""
    out = tmp_path / "r"
    run_load(LoadConfig(rps=6, duration_s=6, sim={"gpu": "t4", "quant": "awq", "max_num_seqs": 4}, out=str(out),
                        quiet=True, workload="chat_low", drain_timeout_s=1.0, metrics_interval_s=0.25))
    s = summarize(load_run(out))
    server = s.server
    assert server["running"]["max"] == 4 and server["running"]["p50"] == 4  # the batch it really ran
    assert server["waiting"]["max"] > 5 and 0 < server["kv_cache_usage"]["max"] < 1
    assert server["generation_tokens"]["per_s"] > 0 and server["preemptions"]["delta"] == 0
    assert s.to_dict()["server"] == server
    # requests cancelled at the drain cost the server tokens the client never counted: no warning
    assert not [w for w in s.warnings if "disagree" in w]


def test_no_metrics_file_means_no_server_section(tmp_path):
    cols = synth.simulate(np.arange(10) * 0.1, prefill_ms=20, itl_ms=5, tokens=4)
    s = summarize(load_run(synth.write_run(tmp_path / "r", cols)))
    assert s.server is None and s.to_dict()["server"] is None
