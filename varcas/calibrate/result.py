"""calibrate(): measured runs -> the model's fitted bandwidth efficiency, compute efficiency and
per-step overhead on a GPU, with their uncertainty, the residual of every point and plain-word
notes where a figure should not be trusted. Points come from points.py, the fit from fit.py;
the roofline gives each point's FLOP and byte seconds per operator (the same coefficients the
simulator's step time uses, so a calibrated simulator reproduces the runs)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import roofline
from ..errors import VarcasError
from ..roofline import calibration
from ..roofline.formulas import phase_features
from . import fit as F
from .points import MODEL_FLOOR, points, run_dirs

WEAK = 0.10  # relative standard error above which a fitted setting is called uncertain
OFF = 0.10  # a point predicted this far off is named


@dataclass(frozen=True)
class Result:
    """A calibration: what was fitted to which points, and what to say about it."""

    model: roofline.Model
    gpu: str  # canonical GPU name
    points: tuple  # Point, decode points first
    fit: F.Fit
    notes: tuple  # plain-word warnings

    def ratios(self) -> np.ndarray:
        """Observed / predicted step time per point."""
        return np.array([p.observed_s for p in self.points]) / self.fit.predicted_s

    def lines(self) -> list[str]:
        """The terminal report: the fitted settings with their standard errors, every point against
        the model, the notes."""
        kinds = sum(p.kind == "decode" for p in self.points)
        out = [f"Calibration of {self.model.config.name} ({self.model.precision.name}) on {self.gpu}: "
               f"{len(self.points)} points ({kinds} decode, {len(self.points) - kinds} prefill), "
               f"{self.fit.dof} degrees of freedom"]
        for name, label in zip(F.NAMES, F.LABELS):
            value, error = self.fit.values[name], self.fit.errors[name]
            spread = "not determined (default kept)" if not self.fit.determined[name] else (
                "at its bound" if error is None else f"+- {error:.2g}")
            out.append(f"  {label:<22} {value:>8.4g} {'ms' if name == 'step_overhead_ms' else '  '}  {spread}")
        out += ["", f"{'kind':<8}{'batch':>6}{'length':>9}{'samples':>9}{'measured ms':>13}{'model ms':>10}"
                    f"{'ratio':>7}  run"]
        for p, t, r in zip(self.points, self.fit.predicted_s, self.ratios()):
            out.append(f"{p.kind:<8}{p.batch:>6}{p.length:>9.1f}{p.samples:>9}{p.observed_s * 1e3:>13.3f}"
                       f"{t * 1e3:>10.3f}{r:>7.3f}  {p.run}")
        return out + ([""] + [f"note: {n}" for n in self.notes] if self.notes else [])

    def document(self) -> dict:
        """The calibration file (roofline.calibration's format) with the fit's report."""
        ratios = self.ratios()
        rows = [{"run": p.run, "kind": p.kind, "batch": p.batch, "length": round(p.length, 1),
                 "samples": p.samples, "observed_ms": p.observed_s * 1e3, "sigma_ms": p.sigma_s * 1e3,
                 "predicted_ms": float(t * 1e3), "ratio": float(r)}
                for p, t, r in zip(self.points, self.fit.predicted_s, ratios)]
        spread = np.abs(ratios - 1)
        return calibration.document(
            self.model, self.gpu, self.fit.values, self.fit.determined,
            uncertainty={"standard_error": self.fit.errors, "at_bound": list(self.fit.at_bound),
                         "dof": self.fit.dof},
            points=rows,
            residuals={"rms_relative": float(np.sqrt(np.mean((ratios - 1) ** 2))),
                       "max_relative": float(spread.max())},
            fit={"model": "step = overhead + sum over operators of max(FLOPs / (compute_eff x peak), "
                          "bytes / (bw_eff x bandwidth))",
                 "weights": f"1 / sigma^2: the median's standard error and {MODEL_FLOOR:.0%} of the step",
                 "solver": "Gauss-Newton over the operators' compute/memory classification, bounded linear WLS",
                 "iterations": self.fit.iterations},
            notes=list(self.notes))


def calibrate(paths, model: str, gpu: str, quant: str = "auto", gpu_file=None) -> Result:
    """Fit the roofline's efficiencies and overhead for `model` on `gpu` to the runs under `paths`
    (run, sweep or pipeline directories). Read-only. VarcasError for bad names, inputs without
    decode data, or too few points to fit."""
    hw = roofline.hardware(gpu, gpu_file)
    m = roofline.model(model, quant)
    found, notes = [], []
    for run in run_dirs(paths):
        run_points, manifest = points(run)
        _check_simulated(manifest, hw, m, run)
        found += run_points
        if not run_points:
            notes.append(f"{run}: no point (fewer than a few decode steps at any batch size, no idle arrivals)")
    decode = [p for p in found if p.kind == "decode"]
    if not decode:
        raise VarcasError("no decode steps in these runs (each needs requests of 2+ output tokens): nothing to "
                          "fit the bandwidth efficiency and the per-step overhead to")
    pts = tuple(decode + [p for p in found if p.kind == "prefill"])
    flop_s, byte_s = step_seconds(hw, m, pts)
    what = f"{len(pts)} points ({len(decode)} decode, {len(pts) - len(decode)} prefill)"
    start = {"bw_efficiency": hw.bw_efficiency, "compute_efficiency": hw.compute_efficiency,
             "step_overhead_ms": hw.step_overhead_s * 1e3}
    result = F.fit(flop_s, byte_s, [p.observed_s for p in pts], [p.sigma_s for p in pts], start, what)
    return Result(m, hw.gpu.name, pts, result, tuple(notes + _fit_notes(result, pts)))


def step_seconds(hw: roofline.Hardware, m: roofline.Model, pts) -> tuple[np.ndarray, np.ndarray]:
    """Per point and operator: FLOP seconds at the GPU's peak and byte seconds at its bandwidth."""
    coef = roofline.coefficients(hw, m)
    phi = np.stack([phase_features(p.kind, p.batch, p.length, coef) for p in pts])
    return (phi @ coef.flops.T) * coef.inv_peak, (phi @ coef.bytes.T) * coef.inv_bw


def _check_simulated(manifest: dict, hw, m, run) -> None:
    """A run of varcas's simulator must have simulated this GPU, model and quantization."""
    target = manifest.get("target")
    target = target if isinstance(target, dict) else {}
    params = target.get("params")
    if target.get("kind") != "sim" or not isinstance(params, dict):
        return
    ran = (params.get("gpu"), _model_name(params.get("model")) or m.config.name, params.get("quant"))
    wanted = (hw.gpu.name, m.config.name, m.precision.name)
    if ran != wanted:
        raise VarcasError(f"{run}: simulated {ran[1]} ({ran[2]}) on {ran[0]}, not {wanted[1]} ({wanted[2]}) on "
                          f"{wanted[0]}: calibrate with runs of the model and GPU named")


def _model_name(name) -> str | None:
    """The roofline's name of a simulated model (a shipped name or a config path); None when it
    cannot be read here (then only the GPU and quantization are compared)."""
    try:
        return roofline.load_config(str(name)).name
    except VarcasError:
        return None


def _fit_notes(fit: F.Fit, pts) -> list[str]:
    notes = []
    for name, label in zip(F.NAMES, F.LABELS):
        value, error = fit.values[name], fit.errors[name]
        if not fit.determined[name]:
            notes.append(f"{label} not determined: no point depends on it (every operator of every point is "
                         f"{'memory' if name == 'compute_efficiency' else 'compute'}-bound); kept the default "
                         f"{value:g} and left it out of the file's settings (add a run at low load with long "
                         "prompts for compute-bound prefill points)")
        elif name in fit.at_bound:
            notes.append(f"{label} at its bound ({value:g}): the points ask for more than the model allows")
        elif error is not None and value > 0 and error / value > WEAK:
            notes.append(f"{label} uncertain: {value:.3g} +- {error:.2g} ({error / value:.0%})")
    if fit.dof < 2:
        notes.append(f"only {fit.dof} degree(s) of freedom: the uncertainty rests on very few residuals")
    for p, t in zip(pts, fit.predicted_s):
        if abs(p.observed_s / t - 1) > OFF:
            notes.append(f"{p.run}: {p.kind} at batch {p.batch}, length {p.length:.0f}: measured "
                         f"{p.observed_s * 1e3:.2f} ms, model {t * 1e3:.2f} ms ({p.observed_s / t - 1:+.0%})")
    return notes
