"""The simulator's engine settings as flags, declared once: vLLM's names, types and help.

add_engine_flags() builds `varcas sim`'s argparse group from the table; config() turns a
{setting: value} mapping (typed values, or the strings of a sweep's --param) into a SimConfig
without any parser; argv() writes settings back as the flags of a `python -m varcas.sim` child.
Defaults are SimConfig's, so the table carries none of its own. A switch is vLLM's
BooleanOptionalAction: --enable-chunked-prefill / --no-enable-chunked-prefill, unset by default.
calibrated() puts a calibration file's efficiencies and overhead (`--calibration FILE`,
varcas.roofline.calibration) under the settings given explicitly, which win.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, fields
from typing import Any

from ..errors import VarcasError
from ..roofline import calibration
from .config import SCHEDULERS, SimConfig, resolve


@dataclass(frozen=True)
class Flag:
    """One engine setting: the SimConfig field, its value type (bool: a switch), its help, and
    the values it takes where they are few."""

    name: str
    kind: type
    help: str
    choices: tuple = ()

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")


ENGINE_FLAGS = (
    Flag("model", str, f"shipped model name or config.json path (default {SimConfig.model})"),
    Flag("gpu", str, f"GPU name, or NAME:bw_gbps=...,fp16_tflops=...,mem_gb=... (default {SimConfig.gpu})"),
    Flag("gpu_file", str, "CSV/JSON of extra or overriding GPUs"),
    Flag("quant", str, f"auto, fp16, bf16, fp8, int8, awq, gptq (default {SimConfig.quant})"),
    Flag("scheduler", str, "v1: vLLM 0.32's engine and defaults (default); v0: vLLM V0's (chunked prefill "
         "off, max-num-seqs 256, max-num-batched-tokens max(max-model-len, 2048), 1%% watermark)", SCHEDULERS),
    Flag("max_num_seqs", int, "running sequences cap (default: vLLM's for the GPU, 256 or 1024; v0: 256)"),
    Flag("max_num_batched_tokens", int, "tokens per step (default: vLLM's for the GPU, 2048, 8192 or 16384, at least "
         "max-model-len without chunked prefill; v0: max(max-model-len, 2048), 2048 with chunked prefill)"),
    Flag("enable_chunked_prefill", bool, "split prompts into chunks that share steps with decodes (default: on; "
         "v0: off)"),
    Flag("gpu_memory_utilization", float, "share of GPU memory for weights + KV (default 0.9)"),
    Flag("max_model_len", int, "context limit (default: the model's max_position_embeddings)"),
    Flag("served_model_name", str, "model id the API serves (default MODEL-QUANT)"),
    Flag("bw_efficiency", float, "achieved share of memory bandwidth (default: roofline's)"),
    Flag("compute_efficiency", float, "achieved share of peak FLOP/s (default: roofline's)"),
    Flag("step_overhead_ms", float, "fixed time added to every step, >= 0 (default: roofline's)"),
)
BY_NAME = {f.name: f for f in ENGINE_FLAGS}
assert set(BY_NAME) == {f.name for f in fields(SimConfig)}, "one flag per SimConfig field"


def convert(flag: Flag, value) -> object:
    """A setting's value from text or an already typed value; ValueError says what is wrong."""
    if flag.kind is bool:
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
        raise ValueError(f"values must be true or false, got {value}")
    if flag.kind is str:
        if flag.choices and str(value) not in flag.choices:
            raise ValueError(f"must be one of {', '.join(flag.choices)}, got {value}")
        return str(value)
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    if flag.kind is int:
        try:
            whole = int(value)
        except (TypeError, ValueError):
            raise ValueError(f"not an integer: {value!r}") from None
        if whole < 1 or whole != float(value):
            raise ValueError(f"must be an integer >= 1, got {value}")
        return whole
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"not a number: {value!r}") from None
    low_ok = number >= 0 if flag.name == "step_overhead_ms" else number > 0
    if not low_ok or math.isinf(number) or math.isnan(number):
        raise ValueError(f"must be a {'non-negative' if flag.name == 'step_overhead_ms' else 'positive'} "
                         f"finite number, got {value}")
    return number


def _flag(name: str) -> Flag:
    flag = BY_NAME.get(name)
    if flag is None:
        raise VarcasError(f"the simulator has no setting {name!r} (it has: {', '.join(BY_NAME)})")
    return flag


def config(values: dict) -> SimConfig:
    """A SimConfig of these settings (SimConfig's defaults for the rest); VarcasError names a bad one."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        flag = _flag(name)
        try:
            out[name] = convert(flag, value)
        except ValueError as exc:
            raise VarcasError(f"{flag.option}: {exc}") from None
    return SimConfig(**out)


def argv(values: dict) -> list[str]:
    """The flags of these settings for `python -m varcas.sim` (a switch: --name when true,
    --no-name when false). Values are written as given, so a {name} placeholder passes through."""
    words: list[str] = []
    for name, value in values.items():
        flag = _flag(name)
        if flag.kind is bool:
            words += [flag.option] if value in (True, "true") else ["--no-" + flag.option[2:]]
        else:
            words += [flag.option, str(value)]
    return words


def calibrated(values: dict, path) -> dict:
    """Settings {name: value} with the calibration file at `path` (None: none) under them: its
    determined efficiencies and overhead fill the settings not given. VarcasError when the file is
    bad or was fitted for another model, quantization or GPU than these settings simulate."""
    if path is None:
        return values
    cal = calibration.read(path)
    merged = {**cal.engine_settings(), **values}
    setup = resolve(config(merged))
    cal.check(setup.hw.gpu.name, setup.model)
    return merged


def add_engine_flags(group) -> None:
    """The engine flags on an argparse parser or group, with SimConfig's defaults, and --calibration."""
    defaults = SimConfig()
    for flag in ENGINE_FLAGS:
        if flag.kind is bool:
            group.add_argument(flag.option, action=argparse.BooleanOptionalAction, help=flag.help)
        else:
            group.add_argument(flag.option, type=_argtype(flag), default=getattr(defaults, flag.name), help=flag.help)
    group.add_argument("--calibration", metavar="FILE", help="efficiencies and per-step overhead fitted by varcas "
                       "calibrate (its --json file) for the simulated model and GPU; an explicit --bw-efficiency, "
                       "--compute-efficiency or --step-overhead-ms wins")


def _argtype(flag: Flag):
    def parse(text: str):
        try:
            return convert(flag, text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = flag.kind.__name__
    return parse


def from_args(args) -> SimConfig:
    """The SimConfig of parsed add_engine_flags() flags, --calibration's settings under the given ones."""
    given = {f.name: v for f in ENGINE_FLAGS if (v := getattr(args, f.name)) is not None}
    return config(calibrated(given, args.calibration))


SIM_CHOICES = ("model", "gpu", "quant", "scheduler", "max_num_seqs")  # what a command targeting the simulator picks


def add_sim_choice_flags(group) -> None:
    """--sim-model, --sim-gpu, --sim-quant, --sim-scheduler, --sim-max-num-seqs: the simulator a
    command targets when it is given no server (unset: the simulator's defaults)."""
    for name in SIM_CHOICES:
        flag = BY_NAME[name]
        group.add_argument("--sim-" + flag.option[2:], dest="sim_" + name, type=_argtype(flag),
                           help="the simulator's " + flag.option + ": " + flag.help)


def sim_choices(args) -> dict:
    """The --sim-* flags that were given, as {setting: value}."""
    return {k: v for k in SIM_CHOICES if (v := getattr(args, "sim_" + k)) is not None}
