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

Capacity follows vLLM 0.32 (memory(), below): the KV budget is gpu_memory_utilization x the
memory the GPU exposes - weights - the activation peak of vLLM's profile run - its CUDA-graph
estimate - a non-torch allowance, split into blocks of block_size tokens; a sequence at context C
holds ceil(C / block_size) blocks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import VarcasError
from .formulas import Coefficients, coefficients, phase_features, step_features
from .gpus import GIB, GPU, Hardware
from .models import BITS, Model

DEFAULT_GPU_MEMORY_UTILIZATION = 0.9  # vLLM's --gpu-memory-utilization default
DEFAULT_BLOCK_SIZE = 16  # vLLM's default KV block size (tokens)
# Memory vLLM holds outside torch's allocator that its profile counts (cuBLAS/kernel-module growth
# after start-up; one GPU, no NCCL): its own log on one H100, "non_torch_memory takes 0.16GiB"
# (vLLM V0 worker.py, quoted in generative-computing/mellea PR #416). 0.32 no longer logs it apart.
NON_TORCH_BYTES = 0.16 * GIB
# CUDA-graph memory per captured graph per decoder layer. 0.32 measures it at start-up
# (v1/worker/gpu/cudagraph_utils.py, profile_cudagraph_memory); one log of that measurement:
# "PIECEWISE=51 (largest=512), FULL=35 (largest=256) ... Estimated CUDA graph memory: 0.52 GiB"
# for Qwen3-8B, 36 layers (LMCache issue #3430): 0.52 GiB / (86 graphs x 36 layers).
CUDA_GRAPH_BYTES_PER_LAYER = 0.52 * GIB / (86 * 36)
CUDA_GRAPH_MAX_SIZE = 512  # vLLM's default capture ceiling in tokens (config/vllm.py; 1024 on Blackwell)


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


def vllm_batch_defaults(gpu: GPU) -> tuple[int, int]:
    """vLLM 0.32's OpenAI-server (max_num_batched_tokens, max_num_seqs) on this GPU, by its memory
    and name (engine/arg_utils.py, EngineArgs.get_batch_defaults: A100s keep the small budget)."""
    memory = gpu.exposed_memory_bytes
    if memory >= 160 * GIB:
        return 16384, 1024
    if memory >= 70 * GIB and "a100" not in gpu.name:
        return 8192, 1024
    return 2048, 256


def activation_peak_bytes(m: Model, tokens: int, seqs: int) -> float:
    """The transient peak of vLLM's profile run (v1/worker/gpu/model_runner.py, profile_run): a
    forward of `tokens` tokens, then the sampler on min(seqs, tokens) rows. The largest set of
    tensors alive at once, in the 16-bit base dtype: in a layer's MLP the residual and normed
    input (2h) with the gate_up output (2I, per routed expert) and its activation (I); in its
    attention the same 2h with q/k/v and the attention output; in the sampler the hidden states
    with the sampled rows' hidden states and logits (compute_logits, model dtype)."""
    c = m.config
    rows = min(seqs, tokens)
    mlp = tokens * 2 * c.hidden + tokens * max(c.top_k, 1) * 3 * c.intermediate
    attention = tokens * (2 * c.hidden + c.qkv_out + c.heads * c.head_dim)
    sampler = tokens * c.hidden + rows * (c.hidden + c.vocab)
    return BITS[m.precision.base] // 8 * max(mlp, attention, sampler)


def cuda_graph_sizes(tokens: int, seqs: int) -> list[int]:
    """The batch sizes vLLM 0.32 captures by default (config/vllm.py, VllmConfig's capture sizes):
    1, 2, 4, then every 8 below 256, every 16 from 256, up to min(2 x seqs, 512, tokens)."""
    top = min(2 * seqs, CUDA_GRAPH_MAX_SIZE, tokens)
    sizes = [s for s in (1, 2, 4) if s <= top] + list(range(8, min(top + 1, 256), 8)) + list(range(256, top + 1, 16))
    extra = [x for x in (tokens, seqs) if x <= top]  # max_num_batched_tokens and the widest decode batch
    return sorted(set(sizes + extra))


def cuda_graph_bytes(m: Model, tokens: int, seqs: int) -> float:
    """vLLM 0.32's CUDA-graph estimate, subtracted from the KV budget: a PIECEWISE graph per
    capture size plus a FULL decode graph per size up to seqs, each CUDA_GRAPH_BYTES_PER_LAYER
    per layer (FULL_AND_PIECEWISE, the default mode)."""
    sizes = cuda_graph_sizes(tokens, seqs)
    graphs = len(sizes) + sum(1 for s in sizes if s <= seqs)
    return graphs * m.config.layers * CUDA_GRAPH_BYTES_PER_LAYER


@dataclass(frozen=True)
class MemoryReport:
    weight_bytes: float
    kv_bytes_per_token: int
    gpu_memory_bytes: float  # what the GPU exposes (nvidia-smi's total)
    gpu_memory_utilization: float
    activation_bytes: float  # the profile run's transient peak
    cuda_graph_bytes: float
    non_torch_bytes: float
    max_num_batched_tokens: int  # the profile run's shape
    max_num_seqs: int
    kv_budget_bytes: float  # utilization x memory - weights - activations - CUDA graphs - non-torch (may be < 0)
    block_size: int
    context: int
    max_sequences: int  # concurrent sequences whose KV fits at `context`: caps the batch

    @property
    def fits(self) -> bool:
        return self.kv_budget_bytes > 0


def memory(hw: Hardware, m: Model, context: int,
           gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
           block_size: int = DEFAULT_BLOCK_SIZE, *, max_num_batched_tokens: int | None = None,
           max_num_seqs: int | None = None, cuda_graphs: bool = True) -> MemoryReport:
    """The KV cache vLLM 0.32 allocates and how many sequences at `context` it holds
    (v1/worker/gpu_worker.py, Worker.determine_available_memory: requested memory - the profile's
    non-KV memory - the CUDA-graph estimate). The profile runs max_num_batched_tokens tokens and
    max_num_seqs sampled rows (None: vLLM's defaults for this GPU); cuda_graphs=False for an
    engine that captures its graphs after sizing the cache (V0, --enforce-eager)."""
    _check_positive("context and block size", (context, block_size))
    if not 0.0 < gpu_memory_utilization <= 1.0:
        raise VarcasError(f"gpu memory utilization must be in (0, 1], got {gpu_memory_utilization}")
    default_tokens, default_seqs = vllm_batch_defaults(hw.gpu)
    tokens = max_num_batched_tokens or default_tokens
    seqs = max_num_seqs or min(default_seqs, tokens)  # vLLM caps its default at the token budget
    kv_token = m.config.kv_bytes_per_token(m.precision.kv)
    activations = activation_peak_bytes(m, tokens, seqs)
    graphs = cuda_graph_bytes(m, tokens, seqs) if cuda_graphs else 0.0
    exposed = hw.gpu.exposed_memory_bytes
    budget = gpu_memory_utilization * exposed - m.weight_bytes - activations - graphs - NON_TORCH_BYTES
    blocks = math.floor(budget / (kv_token * block_size)) if budget > 0 else 0
    return MemoryReport(m.weight_bytes, kv_token, exposed, gpu_memory_utilization, activations, graphs,
                        NON_TORCH_BYTES, tokens, seqs, budget, block_size, context,
                        blocks // math.ceil(context / block_size))


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
