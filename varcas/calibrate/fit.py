"""Weighted least squares of the roofline's step time over its three settings (pure numpy).

The model is roofline.StepCost's realistic time: for a step whose operator i takes F_i seconds
of FLOPs at the GPU's peak and B_i seconds of bytes at its bandwidth,

    t = overhead + sum_i max(F_i / compute_efficiency, B_i / bw_efficiency)

With x = 1 / bw_efficiency, y = 1 / compute_efficiency and o = overhead this is piecewise linear:
once each operator is classified (compute-bound when y F_i >= x B_i), t = o + x M + y C, with M
the byte seconds of the memory-bound operators and C the FLOP seconds of the compute-bound ones.
So the fit is Gauss-Newton on the exact model: classify every operator of every point at the
current estimate, solve the linear weighted least squares with the bounds x >= 1, y >= 1, o >= 0
(exactly, by trying every set of parameters pinned at their bound: three parameters, eight
sets), classify again, until no operator changes side (at most MAX_ITERATIONS; the estimate
with the least weighted residual wins if it cycles). Weights are 1 / sigma^2 per point.

A parameter no point depends on at the solution (compute efficiency when every operator of
every point is memory-bound) is not determined: it keeps its start value (the roofline's
default) and is reported so, never invented. Standard errors come from the Jacobian at the
solution, (J^T W J)^-1 scaled by the residual variance (weighted RSS / degrees of freedom), and
carry over to the efficiencies by the delta method (se(1/x) = se(x) / x^2). A parameter pinned at
its bound has none.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ..errors import VarcasError

NAMES = ("bw_efficiency", "compute_efficiency", "step_overhead_ms")
LABELS = ("bandwidth efficiency", "compute efficiency", "per-step overhead")
LOWER = np.array([1.0, 1.0, 0.0])  # x = 1/bw_eff >= 1, y = 1/compute_eff >= 1, overhead >= 0 s
MAX_ITERATIONS = 50
RANK_TOLERANCE = 1e-9  # smallest singular value, relative, of the column-scaled weighted design


@dataclass(frozen=True)
class Fit:
    """The fitted settings (user units: efficiencies, overhead in ms) and what backs them."""

    values: dict  # NAMES -> value: fitted, or the start value where not determined
    errors: dict  # NAMES -> standard error, None where not fitted or pinned at a bound
    determined: dict  # NAMES -> bool: some point depends on it
    at_bound: tuple  # names pinned at their bound (efficiency 1, overhead 0)
    predicted_s: np.ndarray  # per point, at the solution
    iterations: int
    dof: int  # points - fitted parameters


def to_theta(values: dict) -> np.ndarray:
    """(1 / bw_efficiency, 1 / compute_efficiency, overhead in s) of user-unit settings."""
    return np.array([1 / values[NAMES[0]], 1 / values[NAMES[1]], values[NAMES[2]] / 1e3])


def predict(theta: np.ndarray, flop_s: np.ndarray, byte_s: np.ndarray) -> np.ndarray:
    """Step seconds per point: o + sum over operators of max(y F, x B) (arrays: points x ops)."""
    x, y, o = theta
    return o + np.maximum(y * flop_s, x * byte_s).sum(axis=1)


def compute_bound(theta: np.ndarray, flop_s: np.ndarray, byte_s: np.ndarray) -> np.ndarray:
    """Which operator of which point is compute-bound at theta (roofline's rule: FLOP time >= byte time)."""
    return theta[1] * flop_s >= theta[0] * byte_s


def design(theta: np.ndarray, flop_s: np.ndarray, byte_s: np.ndarray) -> np.ndarray:
    """The model's Jacobian at theta (points x 3): memory-bound byte seconds, compute-bound FLOP
    seconds, 1. Exact away from an operator's ridge, where the classification flips."""
    compute = compute_bound(theta, flop_s, byte_s)
    return np.column_stack([np.where(compute, 0.0, byte_s).sum(axis=1),
                            np.where(compute, flop_s, 0.0).sum(axis=1), np.ones(len(flop_s))])


def fit(flop_s, byte_s, observed_s, sigma_s, start: dict, what: str) -> Fit:
    """Fit NAMES to the observed step times from the start values (user units). `what` describes
    the points for the one-line errors (too few of them, or too alike to separate parameters)."""
    flop_s, byte_s = np.asarray(flop_s, float), np.asarray(byte_s, float)
    observed, w = np.asarray(observed_s, float), 1.0 / np.asarray(sigma_s, float) ** 2
    theta = to_theta(start)
    best, seen = None, {compute_bound(theta, flop_s, byte_s).tobytes()}
    for iteration in range(1, MAX_ITERATIONS + 1):
        a = design(theta, flop_s, byte_s)
        free = a.any(axis=0)
        _check_enough(a, w, free, what)
        theta, pinned = _bounded_wls(a, observed, w, theta, free)
        rss = float(w @ (observed - predict(theta, flop_s, byte_s)) ** 2)
        if best is None or rss < best[0]:
            best = (rss, theta, free, pinned, iteration)
        classes = compute_bound(theta, flop_s, byte_s).tobytes()
        if classes in seen:  # unchanged (converged) or seen before (a cycle): done
            break
        seen.add(classes)
    return _result(best, flop_s, byte_s, observed, w)


def _check_enough(a, w, free, what: str) -> None:
    names = [LABELS[i] for i in np.flatnonzero(free)]
    if len(w) < len(names) + 1:
        raise VarcasError(f"{what} cannot fit {len(names)} parameters ({', '.join(names)}): need at least "
                          f"{len(names) + 1}; add runs at more batch sizes (decode points) or a run at low "
                          "load (a prefill point: requests that find the server idle)")
    scaled = a[:, free] * np.sqrt(w)[:, None]
    scaled = scaled / np.linalg.norm(scaled, axis=0)
    s = np.linalg.svd(scaled, compute_uv=False)
    if s[-1] < RANK_TOLERANCE * s[0]:
        raise VarcasError(f"{what} cannot separate {', '.join(names)}: their steps differ too little; add runs "
                          "at other batch sizes or prompt lengths")


def _bounded_wls(a, y, w, theta, free) -> tuple[np.ndarray, tuple]:
    """The least-squares theta for design a (free columns fitted, others held at theta) under the
    lower bounds: the best feasible solution over every set of free parameters pinned at a bound."""
    best = None
    indices = np.flatnonzero(free)
    for k in range(len(indices) + 1):
        for pinned in itertools.combinations(indices, k):
            trial = theta.copy()
            trial[list(pinned)] = LOWER[list(pinned)]
            solve = [i for i in indices if i not in pinned]
            if solve:
                held = np.delete(np.arange(3), solve)
                rhs = y - a[:, held] @ trial[held]
                sw = np.sqrt(w)
                trial[solve] = np.linalg.lstsq(a[:, solve] * sw[:, None], rhs * sw, rcond=None)[0]
            if np.any(trial[solve] < LOWER[solve]):
                continue
            rss = float(w @ (y - a @ trial) ** 2)
            if best is None or rss < best[0]:
                best = (rss, trial, pinned)
    assert best is not None  # every free parameter pinned at its bound is always feasible
    return best[1], best[2]


def _result(best, flop_s, byte_s, observed, w) -> Fit:
    rss, theta, free, pinned, iterations = best
    a = design(theta, flop_s, byte_s)
    fitted = [i for i in np.flatnonzero(free) if i not in pinned]
    dof = len(observed) - len(fitted)
    errors = dict.fromkeys(NAMES)
    if fitted and dof > 0:
        cov = np.linalg.inv((a[:, fitted] * w[:, None]).T @ a[:, fitted]) * (rss / dof)
        se = np.sqrt(np.diag(cov))
        for i, e in zip(fitted, se):
            errors[NAMES[i]] = float(e * 1e3 if i == 2 else e / theta[i] ** 2)
    values = {NAMES[0]: 1 / theta[0], NAMES[1]: 1 / theta[1], NAMES[2]: theta[2] * 1e3}
    return Fit(values={k: float(v) for k, v in values.items()}, errors=errors,
               determined={n: bool(free[i]) for i, n in enumerate(NAMES)},
               at_bound=tuple(NAMES[i] for i in pinned), predicted_s=predict(theta, flop_s, byte_s),
               iterations=iterations, dof=dof)
