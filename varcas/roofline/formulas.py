"""Per-operator FLOPs and bytes of one forward step, as coefficients over six batch features.

Every operator's FLOPs and bytes are linear in six numbers that describe what a step processes:

  one        1 (weights: read once per step, shared by every token in the batch)
  tokens     T, new tokens in the step (prefill chunk tokens + one per decoding sequence)
  seqs       N, sequences in the step (each produces one row of logits: vLLM computes logits
             for the last token of a prefill only, via its logits_indices)
  pairs      attention (query, key) pairs: causal sum_i [S_i*P_i + S_i(S_i+1)/2] with fused
             attention, the full rectangle sum_i S_i*(P_i+S_i) with naive attention (the
             masked half is computed too); a decode token at context C contributes C
  kv_tokens  tokens whose K and V are read from the cache: sum_i (P_i + S_i)
  experts    expected distinct experts one MoE layer touches for T tokens (0 for dense)

(S_i new tokens of sequence i, P_i tokens already in its context; decode at context C is S=1,
P=C-1: the token attends to C keys, its own included.) So one coefficient matrix per model
serves the phase tables, the simulator's step time and the numba grid alike.

Formulas and where they come from:
  * FLOPs: 2 per weight per token for every non-embedding parameter (one multiply-add; Kaplan
    et al. 2020, "Scaling Laws for Neural Language Models", Table 1: C_forward = 2N + ...). Exact
    for matmuls; for norm scales and biases (<0.01% of parameters) it is the same convention.
    Decode of one token therefore costs 2*(P - V*h) + 4*L*H*d*C FLOPs for an untied model.
  * Attention: 4*H*d FLOPs per (query, key) pair, 2*d for QK^T and 2*d for PV per head (PaLM,
    Chowdhery et al. 2022, App. B: 6N + 12*L*H*Q*T per training token = 3 x forward).
    Softmax, SiLU, RoPE and residual adds are not counted as FLOPs (they are memory-bound
    elementwise work, counted in bytes where they are separate kernels).
  * Bytes: each weight is read once per step (why batching raises decode intensity; the same
    accounting as LLM-Viewer, Yuan et al. 2024, arXiv:2402.16363). Each operator reads its
    input activations and writes its outputs once, at vLLM's kernel granularity: fused
    add+RMSNorm (reads x and residual, writes both), fused QKV, attention with the KV-cache
    write, fused gate_up, silu_and_mul, down. Activations are stored in the activation dtype.
  * Fused attention (FlashAttention, Dao et al. 2022; vLLM's default): scores stay on chip; Q
    read, O written, new K/V written to the paged cache, cached K/V read once (PagedAttention,
    Kwon et al. 2023). Naive attention also materialises H*S*(P+S) scores: written by QK^T,
    read and written by softmax, read by PV: 4 accesses per score.
  * MoE (Mixtral): router h*E; each token runs its top-k experts (FLOPs for k experts); weight
    bytes for every distinct expert the step touches. With uniform routing a token leaves an
    expert untouched with probability 1 - k/E, so T independent tokens touch on average
    E * (1 - (1 - k/E)^T) experts (k for T=1, tending to E).
  * Embedding: a gather of T rows (not the table); lm_head: the full V x h matrix for N rows.
Matmuls of quantized linears run at the activation dtype's peak; everything else (attention,
lm_head, router, norms) at the 16-bit base dtype's peak.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import VarcasError
from .gpus import Hardware
from .models import BITS, Model

FEATURES = ("one", "tokens", "seqs", "pairs", "kv_tokens", "experts")
ONE, TOK = FEATURES.index("one"), FEATURES.index("tokens")


def _vec(**terms: float) -> tuple:
    out = [0.0] * len(FEATURES)
    for key, value in terms.items():
        out[FEATURES.index(key)] = float(value)
    return tuple(out)


@dataclass(frozen=True)
class Operator:
    """One operator: coefficients per instance over FEATURES, `count` instances per step."""

    name: str
    count: int
    dtype: str  # the dtype whose peak bounds its FLOPs
    flops: tuple
    bytes: tuple


def _norm(name: str, m: Model, count: int, final: bool = False) -> Operator:
    h, a, w16 = m.config.hidden, BITS[m.precision.act] / 8, BITS[m.precision.base] / 8
    moved = 3 if final else 4  # x and residual in; normed x (and residual) out
    return Operator(name, count, m.precision.base, _vec(tokens=2 * h),
                    _vec(one=h * w16, tokens=moved * h * a))


def _linear(name: str, m: Model, n_in: int, n_out: int, bias: bool, count: int) -> Operator:
    p, a = m.precision, BITS[m.precision.act] / 8
    bias_bytes = n_out * BITS[p.base] / 8 if bias else 0.0
    return Operator(name, count, p.act, _vec(tokens=2 * n_out * (n_in + bias)),
                    _vec(one=p.linear_bytes(n_in, n_out) + bias_bytes, tokens=(n_in + n_out) * a))


def _attention(m: Model) -> Operator:
    c, p = m.config, m.precision
    a, kv = BITS[p.act] / 8, BITS[p.kv] / 8
    q_width, kv_width = c.heads * c.head_dim, 2 * c.kv_heads * c.head_dim
    per_token = 2 * q_width * a + kv_width * (a + kv)  # Q in, O out; new K,V in and to cache
    scores = 4 * c.heads * a if m.attention == "naive" else 0.0
    return Operator("attention", c.layers, p.base, _vec(pairs=4 * c.heads * c.head_dim),
                    _vec(tokens=per_token, kv_tokens=kv_width * kv, pairs=scores))


def _mlp(m: Model) -> list[Operator]:
    c, p = m.config, m.precision
    h, inter, a, L = c.hidden, c.intermediate, BITS[p.act] / 8, c.layers
    act = Operator("act", L, p.base, _vec(), _vec(tokens=3 * inter * a))  # silu(gate)*up
    if not c.experts:
        return [_linear("gate_up_proj", m, h, 2 * inter, c.mlp_bias, L), act,
                _linear("down_proj", m, inter, h, c.mlp_bias, L)]
    k, w16 = c.top_k, BITS[p.base] / 8
    router = Operator("router", L, p.base, _vec(tokens=2 * h * c.experts),
                      _vec(one=h * c.experts * w16, tokens=(h + c.experts) * a))
    experts = []
    for name, n_in, n_out in (("experts_gate_up", h, 2 * inter), ("experts_down", inter, h)):
        dense = _linear(name, m, n_in, n_out, c.mlp_bias, L)
        # Per distinct expert touched: its weights; per token: k experts' FLOPs and activations.
        experts.append(Operator(name, L, p.act, tuple(k * f for f in dense.flops),
                                _vec(experts=dense.bytes[ONE], tokens=k * dense.bytes[TOK])))
    expert_act = Operator("experts_act", L, p.base, _vec(), _vec(tokens=3 * inter * a * k))
    return [router, experts[0], expert_act, experts[1]]


def operators(m: Model) -> list[Operator]:
    """The operators of one forward step, in execution order."""
    c, p = m.config, m.precision
    h, L, a, w16 = c.hidden, c.layers, BITS[p.act] / 8, BITS[p.base] / 8
    embed = Operator("embed", 1, p.base, _vec(), _vec(tokens=h * (w16 + a)))  # gather T rows
    lm_head = Operator("lm_head", 1, p.base, _vec(seqs=2 * h * c.vocab),
                       _vec(one=h * c.vocab * w16, seqs=(h + c.vocab) * a))
    return [embed, _norm("attn_norm", m, L),
            _linear("qkv_proj", m, h, c.qkv_out, c.qkv_bias, L), _attention(m),
            _linear("o_proj", m, c.heads * c.head_dim, h, c.o_bias, L), _norm("mlp_norm", m, L),
            *_mlp(m), _norm("final_norm", m, 1, final=True), lm_head]


@dataclass(frozen=True)
class Coefficients:
    """Operator coefficients bound to a GPU: what every time computation multiplies."""

    names: tuple
    counts: tuple
    flops: np.ndarray  # (ops, features), summed over instances
    bytes: np.ndarray
    peaks: np.ndarray  # (ops,) FLOP/s of each operator's dtype
    inv_peak: np.ndarray  # (ops,) s/FLOP at the theoretical peak
    inv_bw: float  # s/byte at the theoretical bandwidth
    inv_peak_real: np.ndarray  # with the compute efficiency
    inv_bw_real: float  # with the bandwidth efficiency
    overhead_s: float
    experts: int
    top_k: int
    causal: bool


def coefficients(hw: Hardware, m: Model) -> Coefficients:
    """Bind a model's operators to a GPU (VarcasError if the GPU lacks a dtype's peak)."""
    ops = operators(m)
    peaks = np.array([hw.gpu.peak(op.dtype) for op in ops])
    flops = np.array([np.array(op.flops) * op.count for op in ops])
    moved = np.array([np.array(op.bytes) * op.count for op in ops])
    for arr in (flops, moved, peaks):
        arr.setflags(write=False)
    inv_peak = 1.0 / peaks
    inv_peak.setflags(write=False)
    inv_peak_real = inv_peak / hw.compute_efficiency
    inv_peak_real.setflags(write=False)
    return Coefficients(
        names=tuple(op.name for op in ops), counts=tuple(op.count for op in ops),
        flops=flops, bytes=moved, peaks=peaks, inv_peak=inv_peak, inv_bw=1.0 / hw.gpu.bandwidth,
        inv_peak_real=inv_peak_real, inv_bw_real=1.0 / (hw.gpu.bandwidth * hw.bw_efficiency),
        overhead_s=hw.step_overhead_s,
        experts=m.config.experts, top_k=m.config.top_k, causal=m.attention == "fused")


def expected_experts(tokens, experts: int, top_k: int):
    """Expected distinct experts touched by `tokens` tokens (a float or a float array) that
    each route to top_k of `experts`; 0 for a dense model."""
    if not experts:
        return 0.0 * tokens
    return experts * (1.0 - (1.0 - top_k / experts) ** tokens)


def phase_features(phase: str, batch, length, coef: Coefficients) -> np.ndarray:
    """Features (..., 6) of a uniform batch: prefill of `batch` prompts of `length` tokens, or
    one decode step of `batch` sequences at context `length`. Arrays broadcast."""
    b = np.asarray(batch, dtype=np.float64)
    s = np.asarray(length, dtype=np.float64)
    b, s = np.broadcast_arrays(b, s)
    if phase == "prefill":
        tokens = b * s
        pairs = b * s * (s + 1) / 2 if coef.causal else b * s * s
        kv = tokens
    elif phase == "decode":
        tokens, pairs, kv = b, b * s, b * s
    else:
        raise VarcasError(f"phase must be 'prefill' or 'decode', got {phase!r}")
    experts = expected_experts(tokens, coef.experts, coef.top_k)
    return np.stack([np.ones_like(b), tokens, b, pairs, kv, experts], axis=-1)


def step_features(prefill_chunks, decode_contexts, coef: Coefficients) -> tuple:
    """Features of one continuous-batching step: prefill chunks as (new_tokens, already_in_
    context) pairs, plus one decode token per entry of decode_contexts (context lengths)."""
    n_dec = len(decode_contexts)
    ctx = float(decode_contexts.sum() if isinstance(decode_contexts, np.ndarray) else sum(decode_contexts))
    tokens, seqs, pairs, kv = float(n_dec), float(n_dec), ctx, ctx
    for new, done in prefill_chunks:
        tokens += new
        seqs += 1
        kv += new + done
        pairs += new * done + (new * (new + 1) / 2 if coef.causal else new * new)
    return (1.0, tokens, seqs, pairs, kv, expected_experts(tokens, coef.experts, coef.top_k))
