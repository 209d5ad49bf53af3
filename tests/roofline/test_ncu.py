"""Kernels from Nsight Compute (`ncu --csv --page raw`): parsing, FLOPs and bytes, classes, roof,
the CLI and the chart.

The fixtures in data/ were BUILT from Nsight Compute's documented raw-page layout, not captured
on a GPU (none was at hand): ==PROF== message lines, the header row ("ID","Process ID","Process
Name","Host Name","Kernel Name","Context","Stream","Block Size","Grid Size","Device","CC", then
the metrics in alphabetical order), the units row, one row per launch, thousands separators and
"n/a". ncu_decode.csv is one decode step of an 8B bf16 model on an H100 with ncu's scaled units
(Mbyte, Kbyte, usecond); ncu_matmul_attention.csv is a 4096^3 fp16 matmul and a causal flash
attention (B=4, H=32, S=1024, d=128) with `--print-units base`. Their counter values were chosen
by hand (e.g. tensor ops = 2*M*N*K), so the expected numbers below are exact. The tensor ops
counters' unit cell is left empty: its spelling was not found in NVIDIA's documentation.
Replace them with real captures when a GPU with ncu is at hand.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from varcas.cli import main
from varcas.errors import VarcasError
from varcas.roofline import (
    classify,
    hardware,
    kernel_report,
    kernel_roofline,
    model,
    read_ncu,
    static,
)

DATA = Path(__file__).parent / "data"
DECODE, BASE = DATA / "ncu_decode.csv", DATA / "ncu_matmul_attention.csv"
H100_PEAK, H100_BW = 989.4e12, 3350e9  # gpus.csv: h100-sxm dense fp16/bf16, HBM3
IDS = ["ID", "Process ID", "Process Name", "Host Name", "Kernel Name", "Context", "Stream", "Block Size",
       "Grid Size", "Device", "CC"]
SASS = ("fadd", "fmul", "ffma", "hadd", "hmul", "hfma")
ONE_LAUNCH = {  # metric -> (unit, value) of a small valid launch
    "dram__bytes_read.sum": ("byte", "1,000"), "dram__bytes_write.sum": ("byte", "24"),
    "gpu__time_duration.sum": ("nsecond", "2,048"), "sm__ops_path_tensor_src_fp16_dst_fp32.sum": ("", "4096"),
    **{f"sm__sass_thread_inst_executed_op_{op}_pred_on.sum": ("inst", "1") for op in SASS},
}


def raw_csv(metrics: dict = ONE_LAUNCH, kernel: str = "my_gemm_kernel", launches: int = 1) -> str:
    """ncu --csv --page raw text with the given metric columns, `launches` identical rows."""
    def line(cells):
        return ",".join(f'"{c}"' for c in cells) + "\n"

    names = sorted(metrics)
    rows = [line([str(i), "1", "app", "127.0.0.1", kernel, "1", "7", "(128, 1, 1)", "(4, 1, 1)", "0", "9.0",
                  *(metrics[n][1] for n in names)]) for i in range(launches)]
    return ("==PROF== Connected to process 1 (/usr/bin/app)\n" + line(IDS + names)
            + line([""] * len(IDS) + [metrics[n][0] for n in names]) + "".join(rows))


def write(tmp_path, text: str | bytes) -> Path:
    path = tmp_path / "kernels.csv"
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    return path


def test_decode_fixture_launches_in_base_units():
    """Mbyte, Kbyte and usecond scaled; thousands separators; n/a counts 0; half FMA = 4 FLOPs."""
    launches = read_ncu(DECODE)
    assert [x.name.split("<")[0] for x in launches] == [
        "void vllm::fused_add_rms_norm_kernel", "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize64x64x64_"
        "warpgroupsize1x1x1_execute_segment_k_off_kernel__5x_cublas", "void vllm::rotary_embedding_kernel",
        "void flash::flash_fwd_splitkv_kernel", launches[1].name, "void vllm::act_and_mul_kernel",
        "void at::native::(anonymous namespace)::cunn_SoftMaxForward"]
    norm, gemm, rope, attn, gemm2, silu, softmax = launches
    assert norm.time_s == pytest.approx(3.10e-6) and norm.bytes == pytest.approx(140_000 + 131_070)
    assert norm.cuda_flops == 65_536 + 98_304 + 2 * 32_768
    assert gemm.tensor_flops == (("fp16", 0.0), ("fp16", 0.0), ("bf16", 805_306_368.0))
    assert gemm.cuda_flops == 12_288 + 98_304 and gemm.bytes == pytest.approx(50_500_000 + 98_300)
    assert rope.cuda_flops == 8_192 + 2 * 16_384 + 2 * 32_768 + 4 * 65_536
    assert attn.cuda_flops == 1_048_576 + 2_097_152 + 2 * 4_194_304
    assert gemm2.time_s == pytest.approx(25.2e-6) and silu.bytes == pytest.approx(460_000 + 229_380)
    assert softmax.bytes == pytest.approx(4_100_000 + 4_104_190)  # "4,104.19" Kbyte


def test_decode_fixture_kernels_classes_and_roof():
    r = kernel_report(hardware("h100"), read_ncu(DECODE), "bf16", "ncu_decode.csv")
    assert [(k.kind, k.launches) for k in r.kernels] == [
        ("gemm", 2), ("attention", 1), ("other", 1), ("norm", 1), ("elementwise", 1), ("elementwise", 1)]
    gemm = r.kernels[0]
    flops, nbytes, time_s = 2 * (805_306_368 + 12_288 + 98_304), 50_598_300 + 50_396_100, 50.8e-6
    assert (gemm.flops, gemm.tensor_flops, gemm.dtype, gemm.peak_flops) == (flops, 2 * 805_306_368, "bf16", H100_PEAK)
    assert gemm.bytes == pytest.approx(nbytes) and gemm.time_s == pytest.approx(time_s)
    assert gemm.ai == pytest.approx(flops / nbytes) and gemm.flops_per_s == pytest.approx(flops / time_s)
    assert gemm.roof_time_s == pytest.approx(nbytes / H100_BW)  # AI 15.9, far left of the ridge (295)
    assert gemm.roof_flops_per_s == pytest.approx(gemm.ai * H100_BW)
    assert gemm.fraction_of_roof == pytest.approx(nbytes / H100_BW / time_s)
    attn = r.kernels[1]
    assert attn.ai == pytest.approx(279_969_792 / 67_634_290) and attn.bytes_per_s == pytest.approx(67_634_290 / 31.5e-6)
    assert r.kernels[2].dtype == "bf16"  # no tensor work: the default dtype's peak
    assert [g.name for g in r.groups] == ["gemm", "attention", "other", "elementwise", "norm"]
    ew = r.groups[3]
    assert (ew.launches, ew.dtype) == (2, None) and ew.flops == 368_640 + 114_688 + 229_376
    assert ew.time_s == pytest.approx(5.3e-6) and r.time_s == pytest.approx(100.5e-6)
    members = [k for k in r.kernels if k.kind == "elementwise"]
    assert ew.fraction_of_roof == pytest.approx(sum(k.time_s * k.fraction_of_roof for k in members) / ew.time_s)


def test_base_units_fixture_matmul_is_compute_bound_attention_memory_bound():
    r = kernel_report(hardware("h100"), read_ncu(BASE))
    mm, fa = r.kernels
    assert (mm.kind, fa.kind, mm.dtype, fa.dtype) == ("gemm", "attention", "fp16", "fp16")
    assert mm.flops == 2 * 4096 ** 3 + 16_777_216 and mm.bytes == 104_857_600 and mm.time_s == pytest.approx(160_256e-9)
    assert mm.ai == pytest.approx(1310.88, abs=0.01) and mm.roof_flops_per_s == pytest.approx(H100_PEAK)
    assert mm.fraction_of_roof == pytest.approx(mm.flops / H100_PEAK / 160_256e-9)
    attention_flops = 2 * 4 * 32 * 1024 ** 2 * 128  # 4 B H S^2 d, halved by the causal mask
    assert fa.flops == attention_flops + 67_108_864 + 134_217_728 + 2 * 268_435_456
    assert fa.bytes == 134_742_016 and fa.ai == pytest.approx(260.49, abs=0.01)
    assert fa.roof_time_s == pytest.approx(134_742_016 / H100_BW)  # AI below the ridge: bandwidth-bound


@pytest.mark.parametrize("name, kind", [
    ("void flash::flash_fwd_kernel<Flash_fwd_kernel_traits<128, 64, cutlass::half_t>>(Flash_fwd_params)", "attention"),
    ("fmha_cutlassF_f16_aligned_64x64_rf_sm80", "attention"),
    ("void vllm::paged_attention_v2_kernel<__nv_bfloat16, 128>(...)", "attention"),
    ("void vllm::reshape_and_cache_flash_kernel<__nv_bfloat16>(...)", "attention"),
    ("ampere_bf16_s16816gemm_bf16_128x64_ldg8_f2f_stages_64x3_tn", "gemm"),
    ("sm90_xmma_gemm_f16f16_f16f32_f32_nn_n_tilesize128x256x64", "gemm"),
    ("void cutlass::Kernel<cutlass_80_tensorop_s16816gemm_f16_64x64_64x5_nn>(Params)", "gemm"),
    ("void gemv2T_kernel_val<int, int, __nv_bfloat16, float, 128, 16>(...)", "gemm"),
    ("void vllm::rms_norm_kernel<c10::Half>(...)", "norm"),
    ("void at::native::vectorized_layer_norm_kernel<float, float>(...)", "norm"),
    ("void vllm::act_and_mul_kernel<c10::BFloat16, &vllm::silu_kernel>(...)", "elementwise"),
    ("void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>>(...)", "elementwise"),
    ("triton_poi_fused_add_0", "other"),
])
def test_classify(name, kind):
    assert classify(name) == kind


def test_unit_prefixes_smsp_counters_and_turing_tensor_counter(tmp_path):
    metrics = {**{k.replace("sm__sass", "smsp__sass"): v for k, v in ONE_LAUNCH.items() if "sass" in k},
               "dram__bytes_read.sum": ("Gbyte", "1.5"), "dram__bytes_write.sum": ("Kbyte", "2"),
               "gpu__time_duration.sum": ("msecond", "0.25"),
               "sm__ops_path_tensor_src_fp16_bf16_tf32_dst_fp32.sum": ("Kinst", "3")}
    (launch,) = read_ncu(write(tmp_path, raw_csv(metrics)))
    assert (launch.bytes, launch.time_s) == (1.5e9 + 2e3, 0.25e-3)
    assert launch.cuda_flops == 12 and launch.tensor_flops == (("fp16", 3000.0),)
    k = kernel_report(hardware("t4"), [launch]).kernels[0]
    assert k.peak_flops == 65e12 and k.roof_time_s == pytest.approx((1.5e9 + 2e3) / 320e9)


def test_a_second_process_repeats_header_and_units(tmp_path):
    one = raw_csv()
    scaled = one.replace('"nsecond"', '"usecond"')  # the second table's own units apply to its rows
    text = one + scaled.split("\n", 1)[1]
    launches = read_ncu(write(tmp_path, text))
    assert [x.time_s for x in launches] == pytest.approx([2048e-9, 2048e-6])


def _broken(metrics=ONE_LAUNCH, **changes) -> dict:
    """ONE_LAUNCH with some metrics' (unit, value) replaced, or removed when given None."""
    out = {**metrics, **changes}
    return {k: v for k, v in out.items() if v is not None}


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("   \n\n", "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "not text"),
    ('{"kernels": [1, 2, 3]}\n', 'no header row with "ID" and "Kernel Name"'),
    ("a,b,c\n1,2,3\n", "expected the output of: ncu --target-processes all --csv --page raw"),
    ('"ID","Process ID","Kernel Name","Section Name","Metric Name","Metric Unit","Metric Value"\n'
     '"0","1","k","Command line profiler metrics","gpu__time_duration.sum","nsecond","1,024"\n', "details page"),
    (raw_csv(_broken(**{"dram__bytes_write.sum": None, "sm__sass_thread_inst_executed_op_hfma_pred_on.sum": None})),
     "missing ncu metrics: dram__bytes_write.sum, sm__sass_thread_inst_executed_op_hfma_pred_on.sum; capture with: ncu "),
    (raw_csv(_broken(**{"sm__ops_path_tensor_src_fp16_dst_fp32.sum": None})), "a tensor-core ops counter"),
    (raw_csv().rsplit("\n", 2)[0] + "\n", "no kernel launches"),
    (raw_csv().replace('"","","","","","","","","","","",', ""), "fields, the header has"),
    ("\n".join(line for line in raw_csv().splitlines() if not line.startswith('"",')), "no units row"),
    (raw_csv(_broken(**{"dram__bytes_read.sum": ("%", "1")})), "unit '%' of dram__bytes_read.sum is not a bytes unit"),
    (raw_csv(_broken(**{"gpu__time_duration.sum": ("cycle", "1")})), "is not a time unit"),
    (raw_csv(_broken(**{"gpu__time_duration.sum": ("nsecond", "n/a")})), "gpu__time_duration.sum: no value (n/a)"),
    (raw_csv(_broken(**{"gpu__time_duration.sum": ("nsecond", "0")})), "zero gpu__time_duration.sum"),
    (raw_csv(_broken(**{"dram__bytes_read.sum": ("byte", "lots")})), "'lots' is not a number"),
    (raw_csv(_broken(**{"dram__bytes_read.sum": ("byte", "-5")})), "is not a count >= 0"),
    (raw_csv(_broken(**{"dram__bytes_read.sum": ("byte", "1e400")})), "is not a count >= 0"),
    (raw_csv(_broken(**{"dram__bytes_read.sum": ("Tbyte", "9" * 400)})), "is not a count >= 0"),
    (raw_csv(_broken(**{"sm__sass_thread_inst_executed_op_ffma_pred_on.sum": ("inst", "1e308")})), "too large"),
    (raw_csv(_broken(**{"gpu__time_duration.sum": ("nsecond", "1e-300")})), "too large"),
    ('"ID","Kernel Name"\n"unterminated\n', "missing ncu metrics"),
    ('"ID","Kernel Name"\n"' + "x" * 200_000 + '"\n', "line 2: not CSV (field larger than field limit"),
])
def test_bad_input_is_one_line_varcas_error(tmp_path, text, message):
    with pytest.raises(VarcasError) as err:
        kernel_report(hardware("h100"), read_ncu(write(tmp_path, text)))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_unreadable_file(tmp_path):
    with pytest.raises(VarcasError, match="cannot read .*nope.csv"):
        read_ncu(tmp_path / "nope.csv")


def test_cli_prints_the_tables_and_exits_0():
    proc = subprocess.run([sys.executable, "-m", "varcas.cli", "roofline", "--gpu", "h100", "--ncu", str(BASE)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr == ""
    assert "GPU: H100 SXM5 80GB (h100-sxm); peak fp16 989.4 TFLOPS dense" in proc.stdout
    assert "Kernels measured by Nsight Compute (ncu_matmul_attention.csv)" in proc.stdout
    rows = [line.split() for line in proc.stdout.splitlines()]
    gemm = next(r for r in rows if r[:1] == ["gemm"])
    assert gemm[1:] == ["1", "72.3", "160.3", "1310.9", "858", "654", "989", "87"]
    assert any(r[:1] == ["pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<1..."] for r in rows)


def test_cli_bad_file_is_one_line_exit_2(tmp_path):
    bad = write(tmp_path, "name,value\nx,1\n")
    proc = subprocess.run([sys.executable, "-m", "varcas.cli", "roofline", "--gpu", "h100", "--ncu", str(bad)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert "no header row" in proc.stderr


def test_cli_without_model_or_ncu_is_an_error(capsys):
    assert main(["roofline", "--gpu", "h100"]) == 2
    assert "--model is required" in capsys.readouterr().err


def test_json_has_the_kernels_beside_the_model(tmp_path, capsys):
    path = tmp_path / "r.json"
    assert main(["roofline", "--model", "llama-3-8b", "--gpu", "h100", "--batch", "8", "--prompt", "128",
                 "--context", "2048", "--ncu", str(DECODE), "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "decode C=2048" in out and "Kernels measured by Nsight Compute (ncu_decode.csv)" in out
    doc = json.loads(path.read_text())
    assert doc["phases"] and doc["kernels"]["source"] == "ncu_decode.csv"
    kernels = doc["kernels"]["kernels"]
    assert [k["class"] for k in kernels] == ["gemm", "attention", "other", "norm", "elementwise", "elementwise"]
    assert kernels[0]["flops"] == 2 * (805_306_368 + 12_288 + 98_304) and kernels[0]["launches"] == 2
    assert doc["kernels"]["default_dtype"] == "bf16"  # llama-3-8b runs its matmuls in bf16
    assert sum(g["time_share"] for g in doc["kernels"]["groups"]) == pytest.approx(1.0)


def test_library_static_and_kernel_roofline_agree():
    hw = hardware("h100")
    alone = kernel_roofline(hw, BASE)
    joined = static(hw, model("llama-2-7b"), [1], [128], [512], ncu_csv=BASE)
    assert alone.doc["kernels"] == joined.doc["kernels"] and set(alone.doc) == {"gpu", "kernels"}
    assert alone.lines[-len(alone.lines) + 2:] == joined.lines[-len(alone.lines) + 2:]


def test_the_report_chart_places_the_kernels():
    from varcas.report.plots import static_roofline

    doc = static(hardware("h100"), model("llama-2-7b"), [1], [128], [512], ncu_csv=BASE).doc
    fig = static_roofline(doc)
    (measured,) = [t for t in fig.data if t.name == "measured"]
    assert list(measured.x) == pytest.approx([k["ai"] for k in doc["kernels"]["kernels"]])
    assert list(measured.y) == pytest.approx([k["flops_per_s"] for k in doc["kernels"]["kernels"]])
    assert not [t for t in static_roofline({k: v for k, v in doc.items() if k != "kernels"}).data
                if t.name == "measured"]
