"""The server section's GPU block: figures from DCGM or NVML names, in one unit each, over the
window only; DCGM first where a run has both; no GPU samples, no block."""
from __future__ import annotations

from varcas.analyze.server import gpu_side

from .synth import metrics_table as table_of

G0, G1 = '{"gpu":"0"}', '{"gpu":"1"}'


def test_dcgm_figures_in_their_units_over_the_window_only():
    table = table_of([
        (5, [("DCGM_FI_DEV_GPU_UTIL", G0, 0.0)]),  # before the window
        (10, [("DCGM_FI_DEV_GPU_UTIL", G0, 80.0), ("DCGM_FI_DEV_GPU_UTIL", G1, 100.0),
              ("DCGM_FI_PROF_DRAM_ACTIVE", G0, 0.5), ("DCGM_FI_DEV_FB_USED", G0, 2.0),
              ("nvml:gpu_utilization_percent", G0, 1.0)]),  # NVML too: DCGM wins
        (20, [("DCGM_FI_DEV_GPU_UTIL", G0, 60.0), ("DCGM_FI_DEV_GPU_UTIL", G1, 100.0),
              ("DCGM_FI_PROF_DRAM_ACTIVE", G0, 0.75), ("DCGM_FI_DEV_FB_USED", G0, 4.0)]),
        (30, [("DCGM_FI_DEV_GPU_UTIL", G0, 0.0)]),  # at the window's end: outside
    ])
    assert gpu_side(table, 10, 30) == {
        "gpus": 2, "scrapes": 2,
        "util_pct": {"name": "DCGM_FI_DEV_GPU_UTIL", "mean": 85.0, "max": 100.0},
        "dram_active_pct": {"name": "DCGM_FI_PROF_DRAM_ACTIVE", "mean": 62.5, "max": 75.0},
        "memory_used_bytes": {"name": "DCGM_FI_DEV_FB_USED", "mean": 3.0 * 2**20, "max": 4.0 * 2**20},
    }


def test_nvml_figures_where_there_is_no_dcgm():
    table = table_of([(10, [("nvml:gpu_utilization_percent", G0, 40.0), ("nvml:power_watts", G0, 300.5),
                            ("nvml:memory_used_bytes", G0, 1e9), ("vllm:num_requests_running", "{}", 3.0)])])
    assert gpu_side(table, 0, 100) == {
        "gpus": 1, "scrapes": 1,
        "util_pct": {"name": "nvml:gpu_utilization_percent", "mean": 40.0, "max": 40.0},
        "power_w": {"name": "nvml:power_watts", "mean": 300.5, "max": 300.5},
        "memory_used_bytes": {"name": "nvml:memory_used_bytes", "mean": 1e9, "max": 1e9},
    }


def test_no_gpu_samples_in_the_window_no_block():
    table = table_of([(10, [("vllm:num_requests_running", "{}", 3.0)]), (50, [("DCGM_FI_DEV_GPU_UTIL", G0, 9.0)])])
    assert gpu_side(table, 0, 40) is None
