"""varcas.calibrate: the roofline's efficiencies and per-step overhead fitted to measured runs.

    from varcas import calibrate
    result = calibrate.calibrate(["sweeps/t4"], "llama-2-7b", "t4", "awq")
    result.fit.values           # {"bw_efficiency": ..., "compute_efficiency": ..., "step_overhead_ms": ...}
    result.fit.errors           # their standard errors (None: not determined, or at a bound)
    result.document()           # the calibration file (varcas.roofline.calibration reads it back)

Modules: points (measured step times from run rows: decode per batch size, prefill from idle
arrivals, their weights), fit (weighted least squares of the roofline's piecewise-linear step time,
pure numpy), result (the two joined through the roofline's coefficients; report and file), cli
(`varcas calibrate`). The file format lives in varcas.roofline.calibration, below every reader.
"""
from .fit import Fit
from .points import Point, points, run_dirs
from .result import Result, calibrate

__all__ = ["Fit", "Point", "Result", "calibrate", "points", "run_dirs"]
