"""The calibration file: a model's bandwidth efficiency, compute efficiency and per-step overhead
on one GPU, fitted to measured runs by `varcas calibrate` (varcas.calibrate), read by every
command that models the hardware (`--calibration FILE`: roofline, sim, optimize, sweep-rate,
pipeline). The format lives here, below all of them; the fit that writes it lives above.

    {"format_version": 1, "kind": "varcas calibration",
     "model": "llama-2-7b", "gpu": "t4", "quant": "awq",          # roofline's canonical names
     "bw_efficiency": 0.55, "compute_efficiency": 0.72, "step_overhead_ms": 3.0,
     "determined": {"bw_efficiency": true, "compute_efficiency": false, "step_overhead_ms": true},
     "uncertainty": {...}, "points": [...], "residuals": {...}, ...}   # the fit's report, not read here

A setting the fit could not determine keeps the roofline's default in the file and is not applied:
the reader's own default (or flag) stands. A calibration is refused, in one line, for another GPU,
model or quantization than the command's: efficiencies are fractions of one GPU's figures for one
model's kernels (docs/roofline.md, "Calibration").
Format history: 1, the first.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..bounded import read_json_object
from ..errors import VarcasError
from .gpus import Hardware, hardware
from .models import Model

FORMAT_VERSION = 1
KIND = "varcas calibration"
SETTINGS = ("bw_efficiency", "compute_efficiency", "step_overhead_ms")
MAX_BYTES = 16 << 20  # a calibration is kilobytes


@dataclass(frozen=True)
class Calibration:
    """What a calibration file says: for which model, quantization and GPU, and the settings the
    fit determined (a subset of SETTINGS; the others are left to the reader's defaults)."""

    path: str
    model: str
    quant: str
    gpu: str
    values: dict  # determined settings only: {name in SETTINGS: value}

    def engine_settings(self) -> dict:
        """The determined settings under the simulator's names (varcas.sim's SimConfig fields)."""
        return dict(self.values)

    def hardware_settings(self) -> dict:
        """The determined settings as roofline.Hardware's fields (the overhead in seconds)."""
        out = {k: v for k, v in self.values.items() if k != "step_overhead_ms"}
        if "step_overhead_ms" in self.values:
            out["step_overhead_s"] = self.values["step_overhead_ms"] / 1e3
        return out

    def check(self, gpu_name: str, m: Model | None = None) -> None:
        """VarcasError unless this calibration is of this GPU (canonical name) and, when given, this
        model and quantization."""
        pairs = [("GPU", self.gpu, gpu_name)]
        if m is not None:
            pairs += [("model", self.model, m.config.name), ("quantization", self.quant, m.precision.name)]
        wrong = [f"{what} {fitted!r}, not {have!r}" for what, fitted, have in pairs if fitted != have]
        if wrong:
            raise VarcasError(f"--calibration {self.path}: fitted for {'; '.join(wrong)}: calibrate "
                              "this model on this GPU (varcas calibrate), or drop --calibration")


def document(model: Model, gpu_name: str, values: dict, determined: dict, **report) -> dict:
    """A calibration file's content: the format's keys, then the fit's report (uncertainty, points,
    residuals, ...). values holds every setting of SETTINGS; determined says which the fit found."""
    return {"format_version": FORMAT_VERSION, "kind": KIND, "model": model.config.name,
            "gpu": gpu_name, "quant": model.precision.name, **{k: values[k] for k in SETTINGS},
            "determined": {k: bool(determined[k]) for k in SETTINGS}, **report}


def read(path) -> Calibration:
    """A calibration file, checked: its kind and version, the names, each setting's type and range.
    Every problem is a one-line VarcasError that names the file."""
    data = _load(Path(path))
    if data.get("kind") != KIND:
        raise VarcasError(f"--calibration {path}: not a calibration file (no \"kind\": \"{KIND}\"; "
                          "write one with varcas calibrate --json)")
    version = data.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        newer = type(version) is int and version > FORMAT_VERSION
        raise VarcasError(f"--calibration {path}: format {version!r}, this varcas reads {FORMAT_VERSION} "
                          f"({'upgrade varcas' if newer else 'rerun varcas calibrate'})")
    names: dict[str, str] = {}
    for key in ("model", "quant", "gpu"):
        value = data.get(key)
        if not isinstance(value, str) or not value:
            raise VarcasError(f"--calibration {path}: \"{key}\" must be a non-empty string, got {value!r}")
        names[key] = value
    determined = data.get("determined")
    if not isinstance(determined, dict) or any(type(determined.get(k)) is not bool for k in SETTINGS):
        raise VarcasError(f"--calibration {path}: \"determined\" must map {', '.join(SETTINGS)} to true or false")
    values = {k: _setting(path, k, data.get(k)) for k in SETTINGS if determined[k]}
    return Calibration(str(path), names["model"], names["quant"], names["gpu"], values)


def _load(path: Path) -> dict:
    try:
        return read_json_object(path, "calibration file", MAX_BYTES)
    except VarcasError as exc:
        raise VarcasError(f"--calibration {exc}") from None


def _setting(path, key: str, value) -> float:
    """One setting's value: a number in (0, 1] for an efficiency, a finite number >= 0 for the overhead."""
    if type(value) not in (int, float) or not math.isfinite(value):
        raise VarcasError(f"--calibration {path}: \"{key}\" must be a number, got {value!r}")
    ok = value >= 0 if key == "step_overhead_ms" else 0 < value <= 1
    if not ok:
        limits = ">= 0 ms" if key == "step_overhead_ms" else "in (0, 1]"
        raise VarcasError(f"--calibration {path}: \"{key}\" must be {limits}, got {value}")
    return float(value)


def calibrated_hardware(gpu: str, gpu_file=None, path=None, m: Model | None = None, **explicit) -> Hardware:
    """gpus.hardware(gpu, gpu_file) with the calibration at `path` (if any) under the explicit
    settings (Hardware's fields; None: not given): a flag the user typed wins over the file.
    The calibration is checked against this GPU and, when given, model m."""
    given = {k: v for k, v in explicit.items() if v is not None}
    if path is None:
        return hardware(gpu, gpu_file, **given)
    cal = read(path)
    hw = hardware(gpu, gpu_file, **{**cal.hardware_settings(), **given})
    cal.check(hw.gpu.name, m)
    return hw
