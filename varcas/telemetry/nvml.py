"""Local GPU telemetry through NVML (the nvidia-ml-py package, `pip install 'varcas[gpu]'`),
read by the scraper process when the server runs on this host, into metrics.parquet beside
the server's own /metrics. pynvml is imported by the scraper process only (open_sampler), never
by the load generator's.

Series written, one per GPU, labels {"gpu": index, "uuid": ..., "model": ...}:

  nvml:gpu_utilization_percent      % of NVML's last sample period (1/6 s to 1 s, by product)
                                    in which a kernel ran (nvmlDeviceGetUtilizationRates .gpu)
  nvml:memory_utilization_percent   % of it in which device memory was read or written (.memory):
                                    the memory controller's busy time, not bytes over peak
  nvml:memory_used_bytes            nvmlDeviceGetMemoryInfo .used
  nvml:memory_total_bytes           nvmlDeviceGetMemoryInfo .total
  nvml:sm_clock_mhz                 nvmlDeviceGetClockInfo(NVML_CLOCK_SM)
  nvml:power_watts                  nvmlDeviceGetPowerUsage (milliwatts) / 1000

and where the GPU has GPU Performance Monitoring (Hopper and later: nvmlGpmQueryDeviceSupport),
over the interval between two samples:

  nvml:dram_bandwidth_utilization_percent   NVML_GPM_METRIC_DRAM_BW_UTIL: DRAM bandwidth used / peak
  nvml:sm_utilization_percent               NVML_GPM_METRIC_SM_UTIL: share of SMs busy
  nvml:tensor_utilization_percent           NVML_GPM_METRIC_ANY_TENSOR_UTIL: tensor-core activity

A reading the GPU does not support is left out (its first error is kept for the run's manifest).
Sampler takes the pynvml module as an argument so that tests can hand it a fake.
"""
from __future__ import annotations

import importlib

import orjson

# name -> how to read it from pynvml and a device handle
READINGS = {
    "nvml:gpu_utilization_percent": lambda nv, h: nv.nvmlDeviceGetUtilizationRates(h).gpu,
    "nvml:memory_utilization_percent": lambda nv, h: nv.nvmlDeviceGetUtilizationRates(h).memory,
    "nvml:memory_used_bytes": lambda nv, h: nv.nvmlDeviceGetMemoryInfo(h).used,
    "nvml:memory_total_bytes": lambda nv, h: nv.nvmlDeviceGetMemoryInfo(h).total,
    "nvml:sm_clock_mhz": lambda nv, h: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM),
    "nvml:power_watts": lambda nv, h: nv.nvmlDeviceGetPowerUsage(h) / 1000,
}
# name -> pynvml's GPM metric constant
GPM_READINGS = {
    "nvml:dram_bandwidth_utilization_percent": "NVML_GPM_METRIC_DRAM_BW_UTIL",
    "nvml:sm_utilization_percent": "NVML_GPM_METRIC_SM_UTIL",
    "nvml:tensor_utilization_percent": "NVML_GPM_METRIC_ANY_TENSOR_UTIL",
}
INSTALL_HINT = "pip install 'varcas[gpu]'"


def _text(value) -> str:
    """NVML strings: bytes in older nvidia-ml-py releases, str in newer ones."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class _Gpm:
    """A GPU's two GPM sample buffers, filled in turn: each sample is compared with the one before."""

    def __init__(self, nv):
        self.buffers, self.taken = (nv.nvmlGpmSampleAlloc(), nv.nvmlGpmSampleAlloc()), 0


class Sampler:
    """Every GPU's NVML readings, one call per sample; close() shuts NVML down. Raises the
    module's NVMLError when NVML cannot start (no driver, no library)."""

    def __init__(self, nv):
        self.nv = nv
        self.error: str | None = None  # the first reading that failed, in words
        nv.nvmlInit()
        self.gpus = []  # (handle, labels as JSON, GPM sample buffers or None)
        for i in range(nv.nvmlDeviceGetCount()):
            h = nv.nvmlDeviceGetHandleByIndex(i)
            labels = {"gpu": str(i), "uuid": _text(nv.nvmlDeviceGetUUID(h)), "model": _text(nv.nvmlDeviceGetName(h))}
            self.gpus.append((h, orjson.dumps(labels, option=orjson.OPT_SORT_KEYS).decode(), self._gpm_buffers(h)))

    def _gpm_buffers(self, h) -> _Gpm | None:
        """GPM sample buffers where the GPU has GPM, else None (older GPUs, older nvidia-ml-py)."""
        nv = self.nv
        try:
            return _Gpm(nv) if nv.nvmlGpmQueryDeviceSupport(h).isSupportedDevice else None
        except (AttributeError, nv.NVMLError) as exc:
            self._failed("nvmlGpmQueryDeviceSupport", exc)
            return None

    def _failed(self, what: str, exc: Exception) -> None:
        self.error = self.error or f"{what}: {exc}"

    def sample(self) -> tuple[list[str], list[str], list[float]]:
        """(names, labels, values) of every reading of every GPU that answered."""
        names, labels, values = [], [], []
        for h, label, gpm in self.gpus:
            got = [(name, self._read(name, read, h)) for name, read in READINGS.items()]
            got += self._gpm(h, gpm) if gpm is not None else []
            for name, value in got:
                if value is not None:
                    names.append(name)
                    labels.append(label)
                    values.append(float(value))
        return names, labels, values

    def _read(self, name: str, read, h) -> float | None:
        try:
            return read(self.nv, h)
        except self.nv.NVMLError as exc:
            self._failed(name, exc)
            return None

    def _gpm(self, h, gpm: _Gpm) -> list[tuple[str, float]]:
        """GPM metrics over the interval since the previous sample (none at the first)."""
        nv = self.nv
        current, previous = gpm.buffers[gpm.taken % 2], gpm.buffers[(gpm.taken + 1) % 2]
        try:
            nv.nvmlGpmSampleGet(h, current)
        except nv.NVMLError as exc:
            self._failed("nvmlGpmSampleGet", exc)
            return []
        gpm.taken += 1
        if gpm.taken == 1:
            return []
        query = nv.c_nvmlGpmMetricsGet_t()
        query.version, query.numMetrics = nv.NVML_GPM_METRICS_GET_VERSION, len(GPM_READINGS)
        query.sample1, query.sample2 = previous, current
        for i, constant in enumerate(GPM_READINGS.values()):
            query.metrics[i].metricId = getattr(nv, constant)
        try:
            nv.nvmlGpmMetricsGet(query)
        except nv.NVMLError as exc:
            self._failed("nvmlGpmMetricsGet", exc)
            return []
        return [(name, query.metrics[i].value) for i, name in enumerate(GPM_READINGS)
                if query.metrics[i].nvmlReturn == nv.NVML_SUCCESS]

    def close(self) -> None:
        try:
            self.nv.nvmlShutdown()
        except self.nv.NVMLError:
            pass  # the process ends next: nothing to release that the OS will not


def open_sampler() -> tuple[Sampler | None, str]:
    """A Sampler of this host's GPUs, or None and why not ("not available (...)")."""
    try:
        nv = importlib.import_module("pynvml")
    except ImportError:
        return None, f"not available (nvidia-ml-py is not installed: {INSTALL_HINT})"
    try:
        sampler = Sampler(nv)
    except nv.NVMLError as exc:
        return None, f"not available ({exc})"
    if not sampler.gpus:
        sampler.close()
        return None, "not available (NVML sees no GPU)"
    return sampler, f"NVML, {len(sampler.gpus)} GPU{'s' * (len(sampler.gpus) != 1)}"
