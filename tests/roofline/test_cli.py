"""`varcas roofline`: card, phase table, operators, JSON, and one-line errors with exit 2."""
import json

import pytest

from varcas.cli import main
from varcas.roofline import decode, hardware, memory, model, prefill


def run(capsys, *args):
    try:
        code = main(["roofline", *args])
    except SystemExit as exc:  # argparse rejects a flag's value: one line, exit 2
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_seed_command_prints_card_and_phase_table(capsys):
    code, out, err = run(capsys, "--model", "llama-2-7b", "--gpu", "t4", "--quant", "awq",
                         "--batch", "1,8", "--prompt", "128,512", "--context", "512,2048")
    assert code == 0 and err == ""
    for text in ("Peak fp16: 65.0 TFLOPS", "Memory BW: 320 GB/s", "Ridge point: 203.1 FLOP/byte",
                 "Parameters: 6.74 B (6,738,415,616)", "Weights: 3.89 GB (4.62 bits/param)",
                 "KV cache: 524,288 B/token", "Memory: 16.0 GiB (15.00 exposed)",
                 "Fits: 9 seqs @ 2048 (util 0.90)"):  # tests/roofline/test_formulas.py: 1164 blocks
        assert text in out
    rows = [r for r in map(str.split, out.splitlines())
            if r[:1] in (["prefill"], ["decode"]) and r[1].isdigit()]
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("prefill", "1", "128"), ("prefill", "1", "512"), ("prefill", "8", "128"), ("prefill", "8", "512"),
        ("decode", "1", "512"), ("decode", "1", "2048"), ("decode", "8", "512"), ("decode", "8", "2048")]
    expected = decode(hardware("t4"), model("llama-2-7b", "awq"), 1, 512)
    assert rows[4][7] == f"{expected.ai:.1f}" and rows[4][10] == "memory"
    assert rows[1][10] == "compute"
    assert "decode C=2048: stays memory-bound up to B=512" in out


def test_ops_and_json_output(capsys, tmp_path):
    path = tmp_path / "out.json"
    code, out, _ = run(capsys, "--model", "mixtral-8x7b", "--gpu", "h100", "--batch", "4",
                       "--prompt", "256", "--context", "1024", "--ops", "--sweep",
                       "--latency-target-ms", "40", "--json", str(path))
    assert code == 0
    for name in ("experts_gate_up", "router", "lm_head", "attention"):
        assert name in out
    doc = json.loads(path.read_text())
    hw, m = hardware("h100"), model("mixtral-8x7b")
    p, d = prefill(hw, m, 4, 256), decode(hw, m, 4, 1024)
    assert [x["flops"] for x in doc["phases"]] == [p.flops, d.flops]
    assert doc["phases"][1]["realistic_time_s"] == d.realistic_time_s
    assert [o["name"] for o in doc["phases"][0]["ops"]] == [o.name for o in p.ops]
    assert doc["model"]["params"] == 46_702_792_704
    assert doc["memory"][0]["max_sequences"] == memory(hw, m, 1024).max_sequences
    sweep = doc["decode_sweeps"][0]
    assert len(sweep["batch"]) == 512 and sweep["latency_target_s"] == 0.04


def test_custom_gpu_and_overrides(capsys):
    code, out, _ = run(capsys, "--model", "llama-3-8b", "--gpu", "box:bw_gbps=1000,fp16_tflops=200,mem_gb=48",
                       "--quant", "fp16", "--kv-dtype", "fp8", "--bw-efficiency", "0.8", "--overhead-ms", "0")
    assert code == 0
    assert "Ridge point: 200.0 FLOP/byte" in out and "KV fp8" in out and "80% BW" in out


@pytest.mark.parametrize("args, message", [
    (["--model", "llama-2-7b", "--gpu", "v100"], "unknown GPU 'v100' (known: t4, a10g"),
    (["--model", "gpt-5", "--gpu", "t4"], "unknown model 'gpt-5' (known: llama-2-13b"),
    (["--model", "llama-3-8b", "--gpu", "t4"], "t4 has no published bf16"),
    (["--model", "llama-2-7b", "--gpu", "t4", "--bw-efficiency", "2"], "bandwidth efficiency"),
    (["--model", "llama-2-7b", "--gpu", "t4", "--context", "x"], "comma-separated integers"),
    (["--model", "llama-2-7b", "--gpu", "t4", "--latency-target-ms", "0"], "latency-target-ms"),
])
def test_errors_are_one_line_exit_2(capsys, args, message):
    code, out, err = run(capsys, *args)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_missing_config_field_is_named(capsys, tmp_path):
    (tmp_path / "config.json").write_text('{"hidden_size": 64, "num_hidden_layers": 2}')
    code, _, err = run(capsys, "--model", str(tmp_path), "--gpu", "t4")
    assert code == 2 and "missing 'num_attention_heads'" in err


def test_a_reader_that_goes_away_costs_neither_the_json_nor_a_traceback(tmp_path):
    """`varcas roofline ... --json F | head`: the file is written first; the broken pipe is quiet."""
    import subprocess
    import sys

    out = tmp_path / "r.json"
    proc = subprocess.Popen([sys.executable, "-m", "varcas.cli", "roofline", "--model", "llama-2-7b", "--gpu", "t4",
                             "--ops", "--json", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before anything is printed
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141 and err == ""
    assert json.loads(out.read_text())["gpu"]
