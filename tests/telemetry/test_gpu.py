"""GPU telemetry: a dcgm-exporter's /metrics scraped beside the server's (recorded exporter text,
served on 127.0.0.1), exporters that are down, malformed, slow or huge (the run completes with
one warning), credentials in its URL never written down, and the GPU block of the analysis."""
from __future__ import annotations

import base64
import importlib.util
import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from tests.load.helpers import load
from varcas import metricsfile
from varcas.analyze import load_run, summarize
from varcas.errors import VarcasError
from varcas.load.runner import LoadConfig, prepare, public_argv
from varcas.telemetry import scrape
from varcas.testing.spawn import spawn

HERE = Path(__file__).parent
EXPORTER_TEXT = (HERE / "data" / "dcgm_exporter.prom").read_bytes()
HUGE = b"# " + b"x" * (scrape.MAX_BYTES + 1)
GPU0 = {"DCGM_FI_DRIVER_VERSION": "550.90.07", "Hostname": "gpu-node-07",
        "UUID": "GPU-5fd4f087-86f3-7a43-b711-4771313afc50", "device": "nvidia0", "gpu": "0",
        "modelName": "NVIDIA H100 80GB HBM3", "pci_bus_id": "00000000:18:00.0"}
# the fixture's two GPUs: (87 + 91) / 2, (0.8125 + 0.78125) / 2 x 100, ...; MiB -> bytes
GPU_BLOCK = {
    "util_pct": {"name": "DCGM_FI_DEV_GPU_UTIL", "mean": 89.0, "max": 91.0},
    "sm_active_pct": {"name": "DCGM_FI_PROF_SM_ACTIVE", "mean": 79.6875, "max": 81.25},
    "tensor_active_pct": {"name": "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "mean": 25.0, "max": 37.5},
    "dram_active_pct": {"name": "DCGM_FI_PROF_DRAM_ACTIVE", "mean": 59.375, "max": 62.5},
    "memory_busy_pct": {"name": "DCGM_FI_DEV_MEM_COPY_UTIL", "mean": 43.0, "max": 45.0},
    "sm_clock_mhz": {"name": "DCGM_FI_DEV_SM_CLOCK", "mean": 1980.0, "max": 1980.0},
    "power_w": {"name": "DCGM_FI_DEV_POWER_USAGE", "mean": 500.0, "max": 512.25},
    "memory_used_bytes": {"name": "DCGM_FI_DEV_FB_USED", "mean": 74205.0 * 2**20, "max": 74210.0 * 2**20},
}
NO_PYNVML = importlib.util.find_spec("pynvml") is None


class Exporter(BaseHTTPRequestHandler):
    """GET answers as the server's `mode` says: the recorded exporter text, 404, garbage, a
    stall longer than the scraper's timeout, or more than it reads; `auth`: basic auth required."""

    def do_GET(self):
        mode, auth = self.server.mode, self.server.auth
        if mode == "stall":
            time.sleep(3)
        if auth and self.headers.get("Authorization") != "Basic " + base64.b64encode(auth.encode()).decode():
            status, body = 401, b""
        else:
            status, body = {"dcgm": (200, EXPORTER_TEXT), "none": (404, b""), "stall": (200, EXPORTER_TEXT),
                            "garbage": (200, b"\x00not { prometheus"), "huge": (200, HUGE)}[mode]
        try:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the scraper gave up on this answer (a timeout, too large)

    def log_message(self, *args):
        pass


@pytest.fixture
def exporter():
    """serve(mode, auth=None) -> the URL of a /metrics on 127.0.0.1; every one is stopped after."""
    servers = []

    def serve(mode: str, auth: str | None = None) -> str:
        srv = ThreadingHTTPServer(("127.0.0.1", 0), Exporter)
        srv.mode, srv.auth = mode, auth
        servers.append(srv)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{srv.server_address[1]}/metrics"

    yield serve
    for srv in servers:
        srv.shutdown()
        srv.server_close()


@pytest.fixture(scope="module")
def server():
    """A stub server with no /metrics (its scrape ends at a 404, without a warning)."""
    with spawn(tokens=8, itl_ms=2, ttft_ms=5) as srv:
        yield srv


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/metrics"


def test_a_run_records_the_exporters_series_on_its_clock_and_the_gpu_block(tmp_path, server, exporter):
    url = exporter("dcgm")
    run_dir, manifest, _ = load(tmp_path, server.url, gpu_metrics_url=url, metrics_interval_s=0.1,
                                rps=40.0, num_requests=40)
    assert manifest["status"] == "complete" and manifest["warnings"] == []
    sources = manifest["telemetry"]["sources"]
    assert re.fullmatch(re.escape(url) + r": \d+ ok, 0 failed", sources["gpu_metrics"]), sources
    assert sources["server"].endswith("404: no metrics at this path)")
    if NO_PYNVML:
        assert sources["nvml"] == "not available (nvidia-ml-py is not installed: pip install 'varcas[gpu]')"
    table = metricsfile.read(run_dir)
    run = load_run(run_dir)
    util = table.filter(pc.equal(table["name"].cast(pa.string()), "DCGM_FI_DEV_GPU_UTIL"))
    t = util["t_ns"].to_numpy()
    assert manifest["clock_anchor"]["monotonic_ns"] <= t.min() <= run.start_ns and t.max() >= run.end_ns.max()
    assert json.loads(util["labels"][0].as_py()) == GPU0 and sorted(set(util["value"].to_pylist())) == [87.0, 91.0]
    assert "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION" in table["name"].cast(pa.string()).to_pylist()  # as exported
    gpu = summarize(run).server["gpu"]
    assert gpu["gpus"] == 2 and gpu["scrapes"] >= 1
    assert {k: v for k, v in gpu.items() if k not in ("gpus", "scrapes")} == GPU_BLOCK


@pytest.mark.parametrize("mode, why", [
    ("down", "ConnectError"),
    ("garbage", "ValueError"),
    ("stall", "ReadTimeout"),
    ("huge", f"answer larger than {scrape.MAX_BYTES >> 20} MiB"),
])
def test_a_bad_exporter_is_one_warning_and_the_run_completes(tmp_path, server, exporter, mode, why):
    url = closed_port_url() if mode == "down" else exporter(mode)
    t0 = time.monotonic()
    _, manifest, rows = load(tmp_path, server.url, gpu_metrics_url=url, metrics_interval_s=0.25)
    assert time.monotonic() - t0 < 20
    assert manifest["status"] == "complete" and all(r["error"] is None for r in rows)
    assert len(manifest["warnings"]) == 1, manifest["warnings"]
    warning = manifest["warnings"][0]
    assert warning.startswith(f"telemetry: the GPU metrics endpoint never answered: GET {url}: ") and why in warning
    assert "\n" not in warning
    line = manifest["telemetry"]["sources"]["gpu_metrics"]
    assert line.startswith(f"{url}: 0 ok, ") and f"(first error: GET {url}: " in line and why in line


def test_credentials_in_the_exporter_url_are_sent_and_never_written(tmp_path, server, exporter):
    url = exporter("dcgm", auth="scraper:s3cret")
    with_auth = url.replace("http://", "http://scraper:s3cret@")
    run_dir, manifest, _ = load(tmp_path, server.url, gpu_metrics_url=with_auth, metrics_interval_s=0.25)
    assert manifest["warnings"] == [] and manifest["config"]["gpu_metrics_url"] == url
    assert re.fullmatch(re.escape(url) + r": \d+ ok, 0 failed", manifest["telemetry"]["sources"]["gpu_metrics"])
    for path in run_dir.iterdir():
        assert b"s3cret" not in path.read_bytes(), path.name
    assert public_argv(["varcas", "load", "--gpu-metrics-url", with_auth, f"--gpu-metrics-url={with_auth}"]) == [
        "varcas", "load", "--gpu-metrics-url", url, f"--gpu-metrics-url={url}"]


@pytest.mark.parametrize("cfg, error", [
    (dict(gpu_metrics_url="gpu-host:9400/metrics"), "must look like http://HOST:9400/metrics"),
    (dict(gpu_metrics_url="http://gpu-host:9400/metrics", metrics_interval_s=0.0), "needs telemetry on"),
])
def test_a_gpu_metrics_url_that_cannot_work_is_an_error_before_the_run(cfg, error):
    with pytest.raises(VarcasError, match=error):
        prepare(LoadConfig(url="http://127.0.0.1:1", num_requests=1, **cfg))


def test_nvml_samples_in_the_scraper_process_when_the_server_is_on_this_host(tmp_path, exporter, monkeypatch):
    """The fake pynvml stands in for nvidia-ml-py in the scraper process (PYTHONPATH)."""
    monkeypatch.setenv("PYTHONPATH", str(HERE / "fake_pynvml"))
    scraper = scrape.start(exporter("none"), tmp_path, 0.1, {}, False, None, True)
    time.sleep(0.5)
    summary, warnings = scrape.finish(scraper, tmp_path, 0.1)
    assert warnings == [] and re.fullmatch(r"NVML, 2 GPUs: \d+ ok, 0 failed", summary["sources"]["nvml"]), summary
    table = metricsfile.read(tmp_path)
    names = set(table["name"].cast(pa.string()).to_pylist())
    assert names == {"nvml:gpu_utilization_percent", "nvml:memory_utilization_percent", "nvml:memory_used_bytes",
                     "nvml:memory_total_bytes", "nvml:sm_clock_mhz", "nvml:power_watts",
                     "nvml:dram_bandwidth_utilization_percent", "nvml:sm_utilization_percent",
                     "nvml:tensor_utilization_percent"}
    assert json.loads(table["labels"][0].as_py()) == {
        "gpu": "0", "model": "NVIDIA H100 80GB HBM3", "uuid": "GPU-00000000-aaaa-bbbb-cccc-dddddddddddd"}


@pytest.mark.parametrize("wanted, here, line", [
    (False, True, "off"),
    (True, False, "off (the server is not on this host)"),
])
def test_nvml_is_off_when_not_wanted_or_the_server_is_elsewhere(tmp_path, exporter, monkeypatch, wanted, here, line):
    monkeypatch.setenv("PYTHONPATH", str(HERE / "fake_pynvml"))  # it would answer if asked
    monkeypatch.setattr(scrape, "on_this_host", lambda url: here)
    scraper = scrape.start(exporter("none"), tmp_path, 0.1, {}, False, None, wanted)
    summary, warnings = scrape.finish(scraper, tmp_path, 0.1)
    assert summary["sources"]["nvml"] == line and warnings == []
    assert not (tmp_path / metricsfile.METRICS_PARQUET).exists()  # nothing answered: no file


@pytest.mark.parametrize("url, here", [
    ("http://127.0.0.1:8000", True), ("http://localhost:8000", True), ("http://[::1]:8000", True),
    (f"http://{socket.gethostname()}:8000", True), ("http://192.0.2.1:8000", False),
    ("http://gpu-box.invalid:8000", False),
])
def test_on_this_host(url, here):
    assert scrape.on_this_host(url) is here


class Died:
    """A Scraper whose process died without its report."""

    proc = type("Proc", (), {"returncode": -9})

    def stop(self):
        return None


def test_a_scraper_that_died_is_a_warning_and_what_it_wrote_is_kept(tmp_path):
    with pa.OSFile(str(tmp_path / metricsfile.METRICS_ARROWS), "wb") as sink, \
            pa.ipc.new_stream(sink, metricsfile.METRICS_SCHEMA) as writer:
        writer.write_batch(metricsfile.batch(1, ["DCGM_FI_DEV_GPU_UTIL"], ['{"gpu":"0"}'], [87.0]))
    summary, warnings = scrape.finish(Died(), tmp_path, 0.5)
    assert summary == {"metrics_interval_s": 0.5, "error": "the scraper exited with status -9", "rows": 1}
    assert warnings == ["telemetry: the scraper exited with status -9; metrics.parquet keeps what it wrote until then"]
