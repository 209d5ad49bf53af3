"""The NVML sampler against a fake pynvml (this machine has no GPU): the readings per GPU, GPM
between two samples, a reading the GPU lacks, and NVML absent or without a GPU (skipped, said why)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import orjson
import pytest

from varcas.analyze.server import GPU_METRICS
from varcas.telemetry import nvml

FAKE = Path(__file__).parent / "fake_pynvml" / "pynvml.py"


@pytest.fixture
def fake():
    """A fresh fake pynvml module, which a test may change."""
    spec = importlib.util.spec_from_file_location("pynvml", FAKE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def by_gpu(sample) -> dict:
    """{gpu index: {name: value}} of a sample."""
    out = {}
    for name, labels, value in zip(*sample):
        out.setdefault(orjson.loads(labels)["gpu"], {})[name] = value
    return out


def test_every_gpus_readings_and_gpm_from_the_second_sample_on(fake):
    sampler = nvml.Sampler(fake)
    first = by_gpu(sampler.sample())
    assert first["1"] == {"nvml:gpu_utilization_percent": 91.0, "nvml:memory_utilization_percent": 45.0,
                          "nvml:memory_used_bytes": 74200.0 * 2**20, "nvml:memory_total_bytes": 81559.0 * 2**20,
                          "nvml:sm_clock_mhz": 1980.0, "nvml:power_watts": 487.75}
    second = by_gpu(sampler.sample())
    assert second["0"] == {**first["0"], "nvml:dram_bandwidth_utilization_percent": 62.5,
                           "nvml:sm_utilization_percent": 80.0, "nvml:tensor_utilization_percent": 25.0}
    assert sampler.error is None
    labels = orjson.loads(sampler.gpus[0][1])
    assert labels == {"gpu": "0", "model": "NVIDIA H100 80GB HBM3", "uuid": "GPU-00000000-aaaa-bbbb-cccc-dddddddddddd"}
    # each GPU's two buffers in turn: its third sample is compared with its second
    assert sampler.sample() and sampler.gpus[0][2].taken == 3


def test_a_reading_the_gpu_lacks_is_left_out_and_its_first_error_kept(fake):
    def power(h):
        raise fake.NVMLError("Not Supported")

    fake.nvmlDeviceGetPowerUsage = power
    del fake.nvmlGpmQueryDeviceSupport  # an nvidia-ml-py from before GPM
    sampler = nvml.Sampler(fake)
    got = by_gpu(sampler.sample())
    assert set(got) == {"0", "1"} and "nvml:power_watts" not in got["0"] and len(got["0"]) == 5
    assert by_gpu(sampler.sample()) == got  # no GPM, ever
    assert sampler.error.startswith("nvmlGpmQueryDeviceSupport: ")
    fake.nvmlGpmQueryDeviceSupport = lambda h: type("S", (), {"isSupportedDevice": 0})
    sampler = nvml.Sampler(fake)
    sampler.sample()
    assert sampler.error == "nvml:power_watts: Not Supported"


def test_nvml_absent_is_skipped_and_says_why(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    assert nvml.open_sampler() == (None, "not available (nvidia-ml-py is not installed: pip install 'varcas[gpu]')")


def test_nvml_without_a_driver_or_a_gpu_is_skipped_and_says_why(fake, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    fake.GPUS = 0
    assert nvml.open_sampler() == (None, "not available (NVML sees no GPU)")

    def no_library():
        raise fake.NVMLError("NVML Shared Library Not Found")

    fake.nvmlInit = no_library
    assert nvml.open_sampler() == (None, "not available (NVML Shared Library Not Found)")


def test_open_sampler_with_gpus(fake, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    sampler, what = nvml.open_sampler()
    assert what == "NVML, 2 GPUs" and len(sampler.gpus) == 2


def test_the_analysis_reads_the_names_the_sampler_writes():
    written = set(nvml.READINGS) | set(nvml.GPM_READINGS)
    read = {name for m in GPU_METRICS for name, _ in m.sources if name.startswith("nvml:")}
    assert read <= written and len(read) == len(GPU_METRICS)  # every figure has its NVML source
