"""GPU table: shipped figures, lookups, user files and inline overrides."""
import json

import pytest

from varcas.errors import VarcasError
from varcas.roofline import Hardware, gpu, hardware, known_gpus

ISSUE_GPUS = ["t4", "a10g", "l4", "l40s", "a100-40gb", "a100-80gb", "h100-sxm", "h100-pcie",
              "h200", "mi300x", "rtx-4090"]


def test_t4_ridge_point():
    t4 = gpu("t4")
    assert t4.peak("fp16") == 65e12 and t4.bandwidth == 320e9
    assert t4.ridge("fp16") == 65e12 / 320e9 == 203.125


def test_every_issue_gpu_is_shipped_with_a_source():
    table = known_gpus()
    for name in ISSUE_GPUS:
        assert name in table
        g = gpu(name)
        assert g.peak("fp16") > 0 and g.bandwidth > 0 and g.memory_bytes > 0
        assert g.source


def test_published_figures_are_the_reference_ones():
    h100 = gpu("h100-sxm")
    assert (h100.peak("bf16"), h100.peak("fp8"), h100.bandwidth) == (989.4e12, 1978.9e12, 3350e9)
    assert gpu("a100-40gb").memory_bytes == 40 * 2**30
    assert gpu("rtx-4090").peak("int4") == 1321.2e12


@pytest.mark.parametrize("name, dtype", [("t4", "bf16"), ("t4", "fp8"), ("a100-80gb", "fp8"),
                                         ("h100-sxm", "int4")])
def test_unpublished_rates_are_errors_not_fallbacks(name, dtype):
    with pytest.raises(VarcasError, match=f"no published {dtype}"):
        gpu(name).peak(dtype)


@pytest.mark.parametrize("alias, name", [("H100", "h100-sxm"), ("NVIDIA_T4", "t4"),
                                         ("A100", "a100-80gb"), ("RTX 4090", "rtx-4090"),
                                         ("mi300", "mi300x"), ("Tesla-T4", "t4")])
def test_case_insensitive_names_and_aliases(alias, name):
    assert gpu(alias).name == name


def test_unknown_gpu_lists_the_known_ones():
    with pytest.raises(VarcasError) as err:
        gpu("v100")
    assert all(n in str(err.value) for n in ISSUE_GPUS)


def test_inline_custom_gpu():
    g = gpu("custom:bw_gbps=1000,fp16_tflops=100,mem_gb=24")
    assert (g.name, g.bandwidth, g.peak("fp16"), g.peak("bf16"), g.memory_bytes) == \
        ("custom", 1e12, 100e12, 100e12, 24 * 2**30)
    with pytest.raises(VarcasError, match="fp16_tflops, mem_gb"):
        gpu("custom:bw_gbps=1000")
    with pytest.raises(VarcasError, match="key=value"):
        gpu("custom:speed=3")


def test_inline_override_of_a_known_gpu():
    g = gpu("t4:bw_gbps=300")
    assert (g.bandwidth, g.peak("fp16"), g.name) == (300e9, 65e12, "t4")
    assert "overridden" in g.source


def test_exposed_memory_is_nvidia_smis_and_follows_an_inline_size():
    assert gpu("t4").exposed_memory_bytes == 15360 * 2**20 and gpu("t4").memory_bytes == 16 * 2**30
    assert gpu("t4:bw_gbps=300").exposed_memory_bytes == 15360 * 2**20
    assert gpu("t4:mem_gb=32").exposed_memory_bytes == 32 * 2**30   # a new size: the shipped figure no longer holds
    assert gpu("t4:mem_gb=32,exposed_mib=30000").exposed_memory_bytes == 30000 * 2**20
    assert gpu("custom:bw_gbps=1000,fp16_tflops=100,mem_gb=24").exposed_memory_bytes == 24 * 2**30


def test_gpu_files_add_and_replace(tmp_path):
    csv_file = tmp_path / "mine.csv"
    csv_file.write_text("name,memory_gb,mem_bw_gbps,fp16_tflops\nT4,16,250,65\nmy-card,8,100,20\n")
    assert gpu("t4", csv_file).bandwidth == 250e9
    assert gpu("my-card", csv_file).peak("bf16") == 20e12  # bf16 column absent: same as fp16
    json_file = tmp_path / "mine.json"
    json_file.write_text(json.dumps({"box": {"memory_gb": 4, "mem_bw_gbps": 50, "fp16_tflops": 5,
                                             "fp8_tflops": 10}}))
    assert gpu("box", json_file).peak("fp8") == 10e12
    assert "box" in known_gpus(json_file)
    own = tmp_path / "h100.json"  # a row named like another row's alias is found by its name
    own.write_text(json.dumps([{"name": "H100", "memory_gb": 80, "mem_bw_gbps": 3000,
                                "fp16_tflops": 900}]))
    assert gpu("h100", own).bandwidth == 3000e9 and gpu("h100-sxm", own).bandwidth == 3350e9


@pytest.mark.parametrize("content, message", [
    ("name,memory_gb,mem_bw_gbps,fp16_tflops\nx,16,fast,65\n", "mem_bw_gbps='fast' is not a number"),
    ("name,memory_gb,fp16_tflops\nx,16,65\n", "missing mem_bw_gbps"),
    ("name,memory_gb,mem_bw_gbps,fp16_tflops\nx,16,-1,65\n", "must be > 0"),
])
def test_bad_gpu_file_rows(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(VarcasError, match=message):
        gpu("t4", path)


def test_hardware_efficiency_defaults_and_validation():
    hw = hardware("t4")
    assert (hw.bw_efficiency, hw.compute_efficiency, hw.step_overhead_s) == (0.70, 0.72, 1e-3)
    with pytest.raises(VarcasError, match="bandwidth efficiency"):
        Hardware(hw.gpu, bw_efficiency=1.5)
    with pytest.raises(VarcasError, match="overhead"):
        Hardware(hw.gpu, step_overhead_s=-1.0)
