"""A stand-in for nvidia-ml-py's pynvml: two H100s with constant readings and GPM, for the NVML
sampler's tests. In-process tests load it by path and change what they need; the scraper
process imports it when this directory leads PYTHONPATH. Only what varcas.telemetry.nvml calls."""
from types import SimpleNamespace

NVML_SUCCESS = 0
NVML_CLOCK_SM = 1
NVML_GPM_METRICS_GET_VERSION = 1
NVML_GPM_METRIC_SM_UTIL = 2
NVML_GPM_METRIC_ANY_TENSOR_UTIL = 5
NVML_GPM_METRIC_DRAM_BW_UTIL = 10
GPM_VALUES = {NVML_GPM_METRIC_SM_UTIL: 80.0, NVML_GPM_METRIC_ANY_TENSOR_UTIL: 25.0, NVML_GPM_METRIC_DRAM_BW_UTIL: 62.5}
GPUS = 2
calls = []  # (function, handle) of the GPM calls, in order


class NVMLError(Exception):
    pass


def nvmlInit():
    pass


def nvmlShutdown():
    pass


def nvmlDeviceGetCount():
    return GPUS


def nvmlDeviceGetHandleByIndex(i):
    return i


def nvmlDeviceGetUUID(h):
    return f"GPU-0000000{h}-aaaa-bbbb-cccc-dddddddddddd"


def nvmlDeviceGetName(h):
    return b"NVIDIA H100 80GB HBM3"  # bytes, as older releases return it


def nvmlDeviceGetUtilizationRates(h):
    return SimpleNamespace(gpu=87 + 4 * h, memory=41 + 4 * h)


def nvmlDeviceGetMemoryInfo(h):
    return SimpleNamespace(used=(74210 - 10 * h) << 20, total=81559 << 20, free=0)


def nvmlDeviceGetClockInfo(h, clock):
    assert clock == NVML_CLOCK_SM
    return 1980


def nvmlDeviceGetPowerUsage(h):
    return 512250 - 24500 * h  # milliwatts


def nvmlGpmQueryDeviceSupport(h):
    return SimpleNamespace(isSupportedDevice=1)


def nvmlGpmSampleAlloc():
    return SimpleNamespace(taken=None)


def nvmlGpmSampleGet(h, sample):
    calls.append(("nvmlGpmSampleGet", h))
    sample.taken = len(calls)
    return sample


class c_nvmlGpmMetricsGet_t:
    def __init__(self):
        self.metrics = [SimpleNamespace(metricId=0, nvmlReturn=NVML_SUCCESS, value=0.0) for _ in range(8)]


def nvmlGpmMetricsGet(query):
    assert query.version == NVML_GPM_METRICS_GET_VERSION
    assert query.sample1.taken < query.sample2.taken  # compares a sample with the one before
    for m in query.metrics[:query.numMetrics]:
        m.value = GPM_VALUES[m.metricId]
    return query
