"""Roofline over large (batch, length) grids: a numba kernel and its pure-numpy reference.

Both evaluate, for every pair (batch[i], length[j]), the same operator sum as the phase tables
(formulas.py): features of a uniform prefill (length = prompt S) or decode step (length =
context C), then per operator FLOPs and bytes from the coefficient matrices and time =
sum over operators of max(FLOPs / peak, bytes / bandwidth), plus the per-step overhead when
realistic. The kernel recomputes the features inline (no (n, ops) temporaries), which is what
makes 10^6 points take milliseconds; the reference builds them with phase_features and matrix
products, and the tests hold the two to each other.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from ..errors import VarcasError
from .analysis import cached_coefficients
from .formulas import phase_features
from .gpus import Hardware
from .models import Model


@dataclass(frozen=True)
class GridResult:
    batch: np.ndarray  # (nb,)
    length: np.ndarray  # (ns,)
    time_s: np.ndarray  # (nb, ns)
    flops: np.ndarray  # (nb, ns)
    bytes: np.ndarray  # (nb, ns)

    @property
    def ai(self) -> np.ndarray:
        return self.flops / self.bytes


# Serial on purpose: on the 2-core CI-class machine, parallel=True with prange measured no gain
# (about 60 ns per point either way, bounded by the three output writes) and doubled compile time.
@njit(cache=True)
def _grid_kernel(flops, moved, inv_peak, inv_bw, overhead, decode, causal, experts, top_k,
                 batch, length, out_time, out_flops, out_bytes):
    n_ops = flops.shape[0]
    for i in range(batch.shape[0]):
        b = batch[i]
        for j in range(length.shape[0]):
            s = length[j]
            if decode:
                tokens = b
                pairs = b * s
                kv = b * s
            else:
                tokens = b * s
                pairs = b * s * (s + 1.0) * 0.5 if causal else b * s * s
                kv = tokens
            touched = experts * (1.0 - (1.0 - top_k / experts) ** tokens) if experts > 0 else 0.0
            t = 0.0
            f_sum = 0.0
            b_sum = 0.0
            for o in range(n_ops):
                f = (flops[o, 0] + flops[o, 1] * tokens + flops[o, 2] * b + flops[o, 3] * pairs
                     + flops[o, 4] * kv + flops[o, 5] * touched)
                m = (moved[o, 0] + moved[o, 1] * tokens + moved[o, 2] * b + moved[o, 3] * pairs
                     + moved[o, 4] * kv + moved[o, 5] * touched)
                t += max(f * inv_peak[o], m * inv_bw)
                f_sum += f
                b_sum += m
            out_time[i, j] = t + overhead
            out_flops[i, j] = f_sum
            out_bytes[i, j] = b_sum


def _axis(label: str, values) -> np.ndarray:
    arr = np.ascontiguousarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr < 1):
        raise VarcasError(f"grid {label} must be a non-empty 1-D array of values >= 1")
    return arr


def _setup(hw: Hardware, m: Model, kind: str, realistic: bool):
    if kind not in ("prefill", "decode"):
        raise VarcasError(f"phase must be 'prefill' or 'decode', got {kind!r}")
    coef = cached_coefficients(hw, m)
    if realistic:
        return coef, coef.inv_peak_real, coef.inv_bw_real, coef.overhead_s
    return coef, coef.inv_peak, coef.inv_bw, 0.0


def grid(hw: Hardware, m: Model, kind: str, batches, lengths, *, realistic: bool = False) -> GridResult:
    """Time, FLOPs and bytes of `kind` ('prefill' or 'decode') for every batch x length pair."""
    b, s = _axis("batches", batches), _axis("lengths", lengths)
    coef, inv_peak, inv_bw, overhead = _setup(hw, m, kind, realistic)
    shape = (b.size, s.size)
    time_s, flops, moved = np.empty(shape), np.empty(shape), np.empty(shape)
    _grid_kernel(np.ascontiguousarray(coef.flops), np.ascontiguousarray(coef.bytes),
                 np.ascontiguousarray(inv_peak), inv_bw, overhead, kind == "decode", coef.causal,
                 float(coef.experts), float(coef.top_k), b, s, time_s, flops, moved)
    return GridResult(b, s, time_s, flops, moved)


def grid_reference(hw: Hardware, m: Model, kind: str, batches, lengths, *,
                   realistic: bool = False) -> GridResult:
    """Pure-numpy twin of grid(): the same formulas through phase_features and matmuls."""
    b, s = _axis("batches", batches), _axis("lengths", lengths)
    coef, inv_peak, inv_bw, overhead = _setup(hw, m, kind, realistic)
    phi = phase_features(kind, b[:, None], s[None, :], coef)
    fl, by = phi @ coef.flops.T, phi @ coef.bytes.T
    time_s = np.maximum(fl * inv_peak, by * inv_bw).sum(axis=-1) + overhead
    return GridResult(b, s, time_s, fl.sum(axis=-1), by.sum(axis=-1))
