"""`varcas roofline`: the static roofline of a model on a GPU, as text and optionally JSON.

    varcas roofline --model llama-2-7b --gpu t4 --quant awq --batch 1,8 --prompt 128,512 \
        --context 512,2048 [--ops] [--sweep] [--ncu kernels.csv] [--json out.json]
    varcas roofline --gpu h100 --ncu kernels.csv [--act bf16] [--json out.json]

A thin layer over varcas.roofline: parse flags, build Hardware (with --calibration's fitted
efficiencies and overhead under the explicit flags) and Model, call static() (or
kernel_roofline() when --ncu comes without --model: the measured kernels need only the GPU; --act
then names the peak for kernels without tensor-core work, fp16 by default), print. Bad names,
files and values are one-line VarcasErrors.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..clikit import OneLineParser
from ..errors import VarcasError
from . import analysis, gpus, models
from .calibration import calibrated_hardware
from .static import kernel_roofline, static


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return values


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = OneLineParser(prog=prog, description="Static roofline of prefill and decode for a model on a GPU, "
                      "and kernels measured by Nsight Compute on it (--ncu).")
    p.add_argument("--model", help=f"shipped name ({', '.join(models.known_models())}) "
                   "or path of a config.json (or its folder); optional with --ncu")
    p.add_argument("--gpu", required=True, help="GPU name (e.g. t4, a100-80gb, h100) or "
                   "NAME:bw_gbps=..,fp16_tflops=..,mem_gb=.. (known NAME: override those fields)")
    p.add_argument("--gpu-file", help="CSV or JSON of GPUs that add to / replace the shipped table")
    p.add_argument("--quant", default="auto", choices=models.QUANT_PRESETS,
                   help="precision preset; auto = config.json's quantization_config or torch_dtype")
    p.add_argument("--weights", choices=tuple(models.BITS), help="override the weight dtype")
    p.add_argument("--act", choices=models.ACT_DTYPES, help="override the activation (matmul) dtype")
    p.add_argument("--kv-dtype", choices=models.KV_DTYPES, help="override the KV-cache dtype")
    p.add_argument("--group-size", type=int, help="quantization group size (0: none)")
    p.add_argument("--attention", default="fused", choices=models.ATTENTION_MODES,
                   help="fused (flash-style, default, as vLLM) or naive (scores in memory)")
    p.add_argument("--batch", type=_ints, default=[1, 8], help="batch sizes, e.g. 1,8")
    p.add_argument("--prompt", type=_ints, default=[128, 512], help="prefill prompt lengths")
    p.add_argument("--context", type=_ints, default=[512, 2048], help="decode context lengths")
    p.add_argument("--ops", action="store_true", help="print the per-operator breakdown")
    p.add_argument("--sweep", action="store_true", help="print decode step time vs batch size")
    p.add_argument("--max-batch", type=int, default=512, help="largest batch of the decode sweep")
    p.add_argument("--latency-target-ms", type=float,
                   help="per-token (decode step) latency target for the best-batch search")
    p.add_argument("--gpu-memory-utilization", type=float,
                   default=analysis.DEFAULT_GPU_MEMORY_UTILIZATION, help="as vLLM's flag (0.9)")
    p.add_argument("--bw-efficiency", type=float,
                   help=f"achievable fraction of peak bandwidth (realistic model; default {gpus.DEFAULT_BW_EFFICIENCY})")
    p.add_argument("--compute-efficiency", type=float, help="achievable fraction of peak FLOP/s (realistic "
                   f"model; default {gpus.DEFAULT_COMPUTE_EFFICIENCY})")
    p.add_argument("--overhead-ms", type=float, help="fixed per-step overhead in ms (realistic model; default "
                   f"{gpus.DEFAULT_STEP_OVERHEAD_S * 1e3:g})")
    p.add_argument("--calibration", metavar="FILE", help="efficiencies and overhead fitted by varcas calibrate "
                   "for this model and GPU; the three flags above, where given, win")
    p.add_argument("--ncu", metavar="FILE.csv", help="kernels measured by Nsight Compute (ncu --csv --page raw "
                   "output, docs/roofline.md) placed on the same roofline")
    p.add_argument("--json", metavar="PATH", help="also write all numbers as JSON to PATH")
    return p


def run(args: argparse.Namespace) -> int:
    if args.max_batch < 1:
        raise VarcasError(f"--max-batch must be >= 1, got {args.max_batch}")
    if args.latency_target_ms is not None and not args.latency_target_ms > 0:
        raise VarcasError(f"--latency-target-ms must be > 0, got {args.latency_target_ms}")
    if args.model is None and args.ncu is None:
        raise VarcasError("--model is required (without a model, --ncu FILE.csv places measured kernels alone)")
    m = None if args.model is None else models.model(
        args.model, args.quant, attention=args.attention, weights=args.weights, act=args.act,
        kv=args.kv_dtype, group_size=args.group_size)
    hw = calibrated_hardware(args.gpu, args.gpu_file, args.calibration, m, bw_efficiency=args.bw_efficiency,
                             compute_efficiency=args.compute_efficiency,
                             step_overhead_s=None if args.overhead_ms is None else args.overhead_ms / 1e3)
    if m is None:
        out = kernel_roofline(hw, args.ncu, args.act or "fp16")
    else:
        target = args.latency_target_ms / 1e3 if args.latency_target_ms else None
        out = static(hw, m, args.batch, args.prompt, args.context, gpu_memory_utilization=args.gpu_memory_utilization,
                     max_batch=args.max_batch, latency_target_s=target, ops=args.ops, sweep=args.sweep,
                     ncu_csv=args.ncu)
    if args.json:  # before printing: a reader that stops early (| head) must not cost the file
        try:
            Path(args.json).write_text(json.dumps(out.doc, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise VarcasError(f"cannot write {args.json}: {exc.strerror}") from None
    print("\n".join(out.lines))
    return 0
