"""Roofline results: phase tables, per-operator breakdown, memory capacity, decode sweep, and
the step time the simulator calls once per engine step.

Time model (Williams, Waterman & Patterson 2009, "Roofline"): an operator takes
max(FLOPs / peak, bytes / bandwidth); a step takes the sum over its operators. That sum is the
predicted time; max(sum FLOPs/peak, sum bytes/bandwidth) is the phase-level bound (always <= the
sum). The realistic time divides peak and bandwidth by the efficiency factors and adds the
per-step overhead once. Phase quantities:
  AI = FLOPs / bytes;  ridge = peak / bandwidth;  attainable = min(peak, AI * bandwidth)
where `peak` is the FLOPs-weighted harmonic mean of the operators' peaks (the dtype peak itself
when all matmuls share a dtype), so that attainable, ridge and the compute/memory verdict agree.
A phase (or operator) is compute-bound when its FLOP time is at least its byte time.

Capacity follows vLLM: the KV budget is gpu_memory_utilization * memory - weights (- reserve),
split into blocks of block_size tokens; a sequence at context C holds ceil(C / block_size) blocks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import VarcasError
from .formulas import Coefficients, coefficients, phase_features, step_features
from .gpus import Hardware
from .models import Model

DEFAULT_GPU_MEMORY_UTILIZATION = 0.9  # vLLM's --gpu-memory-utilization default
DEFAULT_BLOCK_SIZE = 16  # vLLM's default KV block size (tokens)


@lru_cache(maxsize=64)
def cached_coefficients(hw: Hardware, m: Model) -> Coefficients:
    """coefficients(hw, m), computed once per (hardware, model) pair."""
    return coefficients(hw, m)


@dataclass(frozen=True)
class OpResult:
    name: str
    count: int  # instances per step (layers for per-layer operators)
    flops: float
    bytes: float
    ai: float
    time_s: float
    realistic_time_s: float
    bound: str  # "compute" or "memory"


@dataclass(frozen=True)
class PhaseResult:
    phase: str  # "prefill" or "decode"
    batch: int
    length: int  # prompt S for prefill, context C for decode
    new_tokens: int
    flops: float
    bytes: float
    ai: float
    peak: float  # FLOP/s
    ridge: float  # FLOP/byte
    attainable: float  # FLOP/s
    bound: str
    time_s: float  # sum over operators of max(FLOPs/peak, bytes/bw)
    bound_time_s: float  # max(total FLOPs/peak, total bytes/bw)
    realistic_time_s: float  # efficiencies applied, plus the per-step overhead
    ops: tuple

    @property
    def pct_of_peak(self) -> float:
        return 100.0 * self.attainable / self.peak

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.time_s

    @property
    def realistic_tokens_per_s(self) -> float:
        return self.new_tokens / self.realistic_time_s


def _check_positive(label: str, values) -> None:
    for v in np.atleast_1d(values):
        if not (v >= 1 and float(v).is_integer()):
            raise VarcasError(f"{label} must be whole numbers >= 1, got {v}")


def phase(hw: Hardware, m: Model, kind: str, batch: int, length: int) -> PhaseResult:
    """One prefill (batch prompts of `length` tokens in one step) or one decode step (batch
    sequences at context `length`), with its per-operator breakdown."""
    _check_positive("batch and length", (batch, length))
    coef = cached_coefficients(hw, m)
    phi = phase_features(kind, batch, length, coef)
    fl, by = coef.flops @ phi, coef.bytes @ phi
    t_flop, t_byte = fl * coef.inv_peak, by * coef.inv_bw
    t_real = np.maximum(fl * coef.inv_peak_real, by * coef.inv_bw_real)
    rows = zip(coef.names, coef.counts, fl, by, t_flop, t_byte, t_real)
    ops = tuple(OpResult(n, c, float(f), float(b), float(f / b), float(max(tf, tb)), float(tr),
                         "compute" if tf >= tb else "memory") for n, c, f, b, tf, tb, tr in rows)
    flops, moved = float(fl.sum()), float(by.sum())
    compute_s, memory_s = float(t_flop.sum()), float(t_byte.sum())
    used = coef.peaks[fl > 0]
    peak = float(used[0]) if np.all(used == used[0]) else flops / compute_s  # exact when uniform
    ai = flops / moved
    return PhaseResult(
        phase=kind, batch=int(batch), length=int(length),
        new_tokens=int(batch) * (int(length) if kind == "prefill" else 1),
        flops=flops, bytes=moved, ai=ai, peak=peak, ridge=peak / hw.gpu.bandwidth,
        attainable=min(peak, ai * hw.gpu.bandwidth),
        bound="compute" if compute_s >= memory_s else "memory",
        time_s=float(np.maximum(t_flop, t_byte).sum()), bound_time_s=max(compute_s, memory_s),
        realistic_time_s=float(t_real.sum()) + coef.overhead_s, ops=ops)


def prefill(hw: Hardware, m: Model, batch: int, prompt: int) -> PhaseResult:
    """Prefill of `batch` prompts of `prompt` tokens in one step (logits for the last token)."""
    return phase(hw, m, "prefill", batch, prompt)


def decode(hw: Hardware, m: Model, batch: int, context: int) -> PhaseResult:
    """One decode step of `batch` sequences, each attending to `context` tokens."""
    return phase(hw, m, "decode", batch, context)


def phase_table(hw: Hardware, m: Model, batches, prompts, contexts) -> list[PhaseResult]:
    """Prefill rows for every (batch, prompt), then decode rows for every (batch, context)."""
    return ([prefill(hw, m, b, s) for b in batches for s in prompts]
            + [decode(hw, m, b, c) for b in batches for c in contexts])


@dataclass(frozen=True)
class MemoryReport:
    weight_bytes: float
    kv_bytes_per_token: int
    gpu_memory_bytes: float
    gpu_memory_utilization: float
    kv_budget_bytes: float  # utilization * memory - weights - reserve (may be negative)
    block_size: int
    context: int
    max_sequences: int  # concurrent sequences whose KV fits at `context`: caps the batch

    @property
    def fits(self) -> bool:
        return self.kv_budget_bytes > 0


def memory(hw: Hardware, m: Model, context: int,
           gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
           block_size: int = DEFAULT_BLOCK_SIZE, reserve_bytes: float = 0.0) -> MemoryReport:
    """Weights, KV bytes per token, and how many sequences at `context` fit in the KV budget.
    reserve_bytes stands for what vLLM also sets aside (activation peak, CUDA graphs)."""
    _check_positive("context and block size", (context, block_size))
    if not 0.0 < gpu_memory_utilization <= 1.0:
        raise VarcasError(f"gpu memory utilization must be in (0, 1], got {gpu_memory_utilization}")
    kv_token = m.config.kv_bytes_per_token(m.precision.kv)
    budget = gpu_memory_utilization * hw.gpu.memory_bytes - m.weight_bytes - reserve_bytes
    blocks = math.floor(budget / (kv_token * block_size)) if budget > 0 else 0
    return MemoryReport(m.weight_bytes, kv_token, hw.gpu.memory_bytes, gpu_memory_utilization,
                        budget, block_size, context, blocks // math.ceil(context / block_size))


@dataclass(frozen=True)
class DecodeSweep:
    context: int
    batch: np.ndarray  # 1..max_batch
    time_s: np.ndarray  # theoretical step time (sum of operator maxima)
    realistic_time_s: np.ndarray
    compute_bound_batch: int | None  # first batch whose step is compute-bound; None: none <= max
    max_sequences: int  # KV capacity at this context
    latency_target_s: float | None
    best_batch: int | None  # max realistic tokens/s with step <= target and batch <= capacity

    @property
    def tokens_per_s(self) -> np.ndarray:
        return self.batch / self.realistic_time_s


def decode_sweep(hw: Hardware, m: Model, context: int, max_batch: int = 512,
                 latency_target_s: float | None = None,
                 gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION) -> DecodeSweep:
    """Decode step time and tokens/s for B = 1..max_batch at one context length."""
    _check_positive("context and max batch", (context, max_batch))
    coef = cached_coefficients(hw, m)
    batch = np.arange(1, max_batch + 1)
    phi = phase_features("decode", batch, context, coef)
    fl, by = phi @ coef.flops.T, phi @ coef.bytes.T
    t_flop, t_byte = fl * coef.inv_peak, by * coef.inv_bw
    real = np.maximum(fl * coef.inv_peak_real, by * coef.inv_bw_real).sum(axis=1) + coef.overhead_s
    compute = np.flatnonzero(t_flop.sum(axis=1) >= t_byte.sum(axis=1))
    capacity = memory(hw, m, context, gpu_memory_utilization).max_sequences
    ok = batch <= capacity
    if latency_target_s is not None:
        ok &= real <= latency_target_s
    best = int(batch[ok][np.argmax(batch[ok] / real[ok])]) if ok.any() else None
    return DecodeSweep(context, batch, np.maximum(t_flop, t_byte).sum(axis=1), real,
                       int(batch[compute[0]]) if compute.size else None, capacity,
                       latency_target_s, best)


class StepCost:
    """Time of one continuous-batching step for a fixed (hardware, model): the simulator's
    per-step call. Same operator sum as the phase tables; weights are read once per step."""

    def __init__(self, hw: Hardware, m: Model):
        coef = cached_coefficients(hw, m)
        self._coef = coef
        # FLOPs rows then bytes rows, so one matrix-vector product gives both.
        self._matrix = np.vstack([coef.flops, coef.bytes])
        n = len(coef.names)
        self._scale = {True: np.concatenate([coef.inv_peak_real, np.full(n, coef.inv_bw_real)]),
                       False: np.concatenate([coef.inv_peak, np.full(n, coef.inv_bw)])}
        self._overhead = {True: coef.overhead_s, False: 0.0}

    def time_s(self, prefill_chunks, decode_contexts, *, realistic: bool = True) -> float:
        """Seconds for a step running `prefill_chunks` ((new_tokens, tokens_already_in_context)
        pairs) and one decode token per context length in `decode_contexts`. 0 if empty."""
        if not prefill_chunks and not len(decode_contexts):
            return 0.0
        phi = np.array(step_features(prefill_chunks, decode_contexts, self._coef))
        seconds = (self._matrix @ phi) * self._scale[realistic]
        return float(seconds.reshape(2, -1).max(axis=0).sum()) + self._overhead[realistic]


@lru_cache(maxsize=64)
def step_cost(hw: Hardware, m: Model) -> StepCost:
    """The StepCost of (hw, m), built once."""
    return StepCost(hw, m)


_last: list = [None, None, None]  # (hw, model, cost): the simulator passes the same objects


def step_time_s(hw: Hardware, m: Model, prefill_chunks, decode_contexts, *,
                realistic: bool = True) -> float:
    """Seconds for one engine step: prefill chunks ((new_tokens, tokens_already_in_context)
    pairs, chunked prefill) plus one decode token for each context length in decode_contexts.
    Plus the per-step overhead when realistic. About 10 us for 256 decodes."""
    if _last[0] is not hw or _last[1] is not m:
        _last[:] = hw, m, step_cost(hw, m)
    return _last[2].time_s(prefill_chunks, decode_contexts, realistic=realistic)
