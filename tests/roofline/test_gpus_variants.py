"""GPU variants users run (issue 12) and the shipped table's provenance: every row of gpus.csv
names its source and a confidence, and each added variant resolves by name and alias to exactly
the CSV's figures."""
import csv

import pytest

from varcas.errors import VarcasError
from varcas.resources import data_path
from varcas.roofline import decode, gpu, hardware, model

COLUMNS = ["name", "aliases", "display_name", "memory_gb", "exposed_memory_mib", "mem_bw_gbps", "fp16_tflops",
           "bf16_tflops", "fp8_tflops", "int8_tops", "int4_tops", "confidence", "source",
           "found_via", "notes", "exposed_memory_source"]
PEAKS = {"fp16": "fp16_tflops", "bf16": "bf16_tflops", "fp8": "fp8_tflops",
         "int8": "int8_tops", "int4": "int4_tops"}
# name -> (aliases to try, has fp8)
VARIANTS = {
    "h100-pcie": (["H100-PCIe-80GB", "nvidia h100 pcie"], True),
    "h100-nvl": (["H100NVL", "h100_nvl_94gb"], True),
    "h800-sxm": (["H800", "NVIDIA H800 SXM5", "h800-80gb"], True),
    "a800-80gb": (["A800", "a800-sxm4-80gb", "A800_80G"], False),
    "l20": (["NVIDIA L20", "L20-48GB"], True),
    "l40": (["L40", "nvidia_l40_48gb"], True),
    "rtx-6000-ada": (["NVIDIA RTX 6000 Ada Generation", "RTX6000-Ada"], True),
    "a10": (["NVIDIA A10"], False),
}


def _rows() -> dict:
    with open(data_path("gpus.csv"), encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS  # the layout is a contract: no column added or moved
        return {row["name"]: row for row in reader}


ROWS = _rows()


def test_every_row_names_its_source_and_confidence():
    for name, row in ROWS.items():
        assert row["source"].strip(), name
        assert row["found_via"].strip(), name
        assert row["confidence"].strip().split()[0] in ("high", "medium", "low"), name
        # the memory the device exposes: below the marketed size read as GiB, with its own source
        assert 0.9 * float(row["memory_gb"]) * 1024 < float(row["exposed_memory_mib"]) <= float(row["memory_gb"]) * 1024
        assert row["exposed_memory_source"].split(":")[0] in ("high", "medium", "low"), name


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_resolves_by_name_and_alias_to_the_csv_figures(name):
    row = ROWS[name]
    aliases, _ = VARIANTS[name]
    g = gpu(name)
    assert all(gpu(alias).name == name for alias in aliases)
    assert g.memory_bytes == float(row["memory_gb"]) * 2**30  # GB as marketed, read as GiB
    assert g.exposed_memory_bytes == float(row["exposed_memory_mib"]) * 2**20  # as nvidia-smi reports it
    assert g.bandwidth == float(row["mem_bw_gbps"]) * 1e9
    for dtype, column in PEAKS.items():
        expected = float(row[column]) * 1e12 if row[column] else None
        assert dict(g.peaks)[dtype] == expected, (name, dtype)
    assert (g.source, g.confidence) == (row["source"], row["confidence"])


@pytest.mark.parametrize("name, fp16, fp8, bw, mem_gb", [
    ("h100-nvl", 835.5e12, 1670.5e12, 3900e9, 94),
    ("h800-sxm", 989.4e12, 1978.9e12, 3350e9, 80),
    ("a800-80gb", 312e12, None, 2039e9, 80),
    ("l20", 119.5e12, 239e12, 864e9, 48),
    ("l40", 181.05e12, 362e12, 864e9, 48),
    ("rtx-6000-ada", 364.25e12, 728.5e12, 960e9, 48),
])
def test_published_dense_figures(name, fp16, fp8, bw, mem_gb):
    g = gpu(name)
    assert (dict(g.peaks)["fp16"], dict(g.peaks)["fp8"], g.bandwidth, g.memory_bytes) == \
        (fp16, fp8, bw, mem_gb * 2**30)


def test_export_variants_match_their_parents_on_one_gpu():
    # H800 and A800 differ from H100 SXM and A100 80GB in NVLink (and H800 in FP64) only.
    for variant, parent in (("h800-sxm", "h100-sxm"), ("a800-80gb", "a100-80gb")):
        v, p = gpu(variant), gpu(parent)
        assert (v.peaks, v.bandwidth, v.memory_bytes) == (p.peaks, p.bandwidth, p.memory_bytes)


@pytest.mark.parametrize("name", [n for n, (_, fp8) in VARIANTS.items() if not fp8])
def test_gpu_without_fp8_refuses_an_fp8_model(name):
    with pytest.raises(VarcasError, match="no published fp8"):
        decode(hardware(name), model("llama-3-8b", "fp8"), 1, 128)


@pytest.mark.parametrize("name", [n for n, (_, fp8) in VARIANTS.items() if fp8])
def test_gpu_with_fp8_runs_an_fp8_model(name):
    assert decode(hardware(name), model("llama-3-8b", "fp8"), 1, 128).realistic_time_s > 0


@pytest.mark.parametrize("name, dtype", [("rtx-6000-ada", "int8"), ("rtx-6000-ada", "int4"),
                                         ("l20", "int4"), ("h100-nvl", "int4"),
                                         ("h800-sxm", "int4")])
def test_unpublished_rates_of_the_variants_are_errors(name, dtype):
    with pytest.raises(VarcasError, match=f"no published {dtype}"):
        gpu(name).peak(dtype)


def test_ambiguous_names_are_not_aliases():
    # "RTX 6000" is also the Turing Quadro RTX 6000; "H100" stays the SXM part.
    with pytest.raises(VarcasError, match="unknown GPU"):
        gpu("rtx-6000")
    assert gpu("h100").name == "h100-sxm"
