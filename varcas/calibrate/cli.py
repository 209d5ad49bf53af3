"""`varcas calibrate`: fit a model's bandwidth efficiency, compute efficiency and per-step overhead
on a GPU to measured runs, print them with their uncertainty and residuals, and with --json write
the calibration file that `--calibration FILE` reads (roofline, sim, optimize, sweep-rate, pipeline).

    varcas calibrate runs/a runs/b sweeps/t4 --model llama-2-7b --gpu t4 --quant awq --json t4.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..clikit import OneLineParser
from ..errors import VarcasError
from ..roofline import models
from .result import calibrate


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = OneLineParser(prog=prog, description="Fit the roofline's bandwidth efficiency, compute efficiency and "
                      "per-step overhead to measured runs (decode steps from inter-token gaps, prefill steps "
                      "from requests that found the server idle).")
    p.add_argument("paths", nargs="+", metavar="RUN_OR_SWEEP",
                   help="run, sweep (varcas optimize) or pipeline directories; read only")
    p.add_argument("--model", required=True, help="the model the server ran (shipped name or config.json path)")
    p.add_argument("--gpu", required=True, help="its GPU (as varcas roofline's --gpu)")
    p.add_argument("--gpu-file", help="CSV or JSON of GPUs that add to / replace the shipped table")
    p.add_argument("--quant", default="auto", choices=models.QUANT_PRESETS, help="its precision (default auto)")
    p.add_argument("--json", metavar="FILE", help="write the calibration file (read by --calibration)")
    return p


def run(args: argparse.Namespace) -> int:
    result = calibrate(args.paths, args.model, args.gpu, args.quant, args.gpu_file)
    if args.json:  # before printing: a reader that stops early (| head) must not cost the file
        try:
            Path(args.json).write_text(json.dumps(result.document(), indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise VarcasError(f"cannot write {args.json}: {exc.strerror}") from None
    print("\n".join(result.lines()))
    return 0
