"""What the simulated server is: a model on a GPU (from varcas.roofline) plus vLLM's engine
settings, resolved once into the numbers the engine needs (KV blocks, token budget, limits).

Defaults follow vLLM's (vllm/engine/arg_utils.py, V0 engine, which a T4 runs):
  --max-num-seqs 256; --gpu-memory-utilization 0.9; blocks of 16 tokens;
  --max-model-len = the model's max_position_embeddings;
  --max-num-batched-tokens = max(max_model_len, 2048) without chunked prefill, 2048 with it;
  chunked prefill off (vLLM V0 turns it on by default only for max_model_len > 32K).
vLLM's start-up checks are kept, with its advice: the KV cache must hold one sequence of
max_model_len tokens; without chunked prefill the token budget must cover max_model_len;
the budget must cover max_num_seqs. Each failure is a one-line VarcasError.

The KV block count is vLLM's: floor((utilization * GPU memory - weights) / (16 * KV bytes per
token)), from roofline.memory (its max_sequences at a context of one block *is* the block
count). Admitting a new request keeps 1% of the blocks free (vLLM V0's block-manager
watermark), so running sequences have room to grow before anyone is preempted.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .. import __version__, roofline
from ..errors import VarcasError
from ..resources import data_path

BLOCK_SIZE = roofline.DEFAULT_BLOCK_SIZE
WATERMARK = 0.01  # vLLM V0 BlockSpaceManager(watermark=0.01)
SERVER_NAME = "varcas-sim"  # its Server header and start-up line
SERVER_VERSION = f"{SERVER_NAME} {__version__}"  # what GET /version and run manifests say
DEFAULT_BUDGET = 2048  # vLLM's default max_num_batched_tokens floor (and the chunked default)


@dataclass(frozen=True)
class SimConfig:
    """The flags of `varcas sim` (None: vLLM's default, or the roofline's for efficiencies)."""

    model: str = "llama-2-7b"
    gpu: str = "t4"
    quant: str = "awq"
    max_num_seqs: int = 256
    max_num_batched_tokens: int | None = None
    enable_chunked_prefill: bool = False
    gpu_memory_utilization: float = roofline.DEFAULT_GPU_MEMORY_UTILIZATION
    max_model_len: int | None = None
    served_model_name: str | None = None
    gpu_file: str | None = None
    bw_efficiency: float | None = None
    compute_efficiency: float | None = None
    step_overhead_ms: float | None = None


@dataclass(frozen=True)
class Setup:
    """A SimConfig resolved against the roofline model: everything the engine reads."""

    config: SimConfig
    hw: roofline.Hardware
    model: roofline.Model
    served_name: str
    num_blocks: int
    watermark_blocks: int
    max_model_len: int
    max_num_seqs: int
    max_num_batched_tokens: int
    chunked_prefill: bool

    def params(self) -> dict:
        """The simulator's parameters as recorded in a run's manifest."""
        c = self.config
        return {
            "model": c.model, "gpu": self.hw.gpu.name, "quant": self.model.precision.name,
            "served_model_name": self.served_name, "max_num_seqs": self.max_num_seqs,
            "max_num_batched_tokens": self.max_num_batched_tokens,
            "enable_chunked_prefill": self.chunked_prefill,
            "gpu_memory_utilization": c.gpu_memory_utilization, "max_model_len": self.max_model_len,
            "block_size": BLOCK_SIZE, "num_gpu_blocks": self.num_blocks,
            "bw_efficiency": self.hw.bw_efficiency, "compute_efficiency": self.hw.compute_efficiency,
            "step_overhead_ms": self.hw.step_overhead_s * 1e3,
        }

    def describe(self) -> str:
        """One line: what is simulated."""
        return (f"{self.served_name} on {self.hw.gpu.display_name}: {self.num_blocks} KV blocks of "
                f"{BLOCK_SIZE} tokens, max-num-seqs {self.max_num_seqs}, max-num-batched-tokens "
                f"{self.max_num_batched_tokens}, chunked prefill "
                f"{'on' if self.chunked_prefill else 'off'}")


def blocks_for(tokens: int) -> int:
    """KV blocks a sequence of `tokens` tokens holds."""
    return -(-tokens // BLOCK_SIZE)


def _hardware(c: SimConfig) -> roofline.Hardware:
    overrides = {k: v for k, v in (("bw_efficiency", c.bw_efficiency),
                                   ("compute_efficiency", c.compute_efficiency)) if v is not None}
    if c.step_overhead_ms is not None:
        overrides["step_overhead_s"] = c.step_overhead_ms / 1e3
    return roofline.hardware(c.gpu, c.gpu_file, **overrides)


def max_position_embeddings(name_or_path: str) -> int | None:
    """The context length a model's config.json declares (roofline.ModelConfig does not keep
    it); None when absent. Resolves names as roofline.load_config does: shipped name first."""
    shipped = data_path("models", f"{name_or_path.strip().lower()}.json")
    path = shipped if shipped.is_file() else Path(name_or_path)
    if path.is_dir():
        path = path / "config.json"
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(cfg, dict) and "max_position_embeddings" not in cfg:
        cfg = cfg.get("text_config") or {}
    value = cfg.get("max_position_embeddings") if isinstance(cfg, dict) else None
    return value if type(value) is int and value > 0 else None


def _check_int(flag: str, value, low: int = 1) -> None:
    if value is not None and (type(value) is not int or value < low):
        raise VarcasError(f"{flag} must be an integer >= {low}, got {value!r}")


def resolve(c: SimConfig) -> Setup:
    """Check a SimConfig and derive the engine's numbers; VarcasError names the bad setting."""
    _check_int("--max-num-seqs", c.max_num_seqs)
    _check_int("--max-num-batched-tokens", c.max_num_batched_tokens)
    _check_int("--max-model-len", c.max_model_len)
    hw = _hardware(c)
    m = roofline.model(c.model, quant=c.quant)
    # memory() at a context of one block: max_sequences is then the number of blocks.
    mem = roofline.memory(hw, m, BLOCK_SIZE, c.gpu_memory_utilization, BLOCK_SIZE)
    if mem.max_sequences < 1:
        raise VarcasError(
            f"{m.config.name} ({m.precision.name}) weights take {mem.weight_bytes / 2**30:.1f} GiB; "
            f"nothing is left for the KV cache in {c.gpu_memory_utilization:g} x "
            f"{mem.gpu_memory_bytes / 2**30:.0f} GiB of {hw.gpu.name} (raise --gpu-memory-utilization, "
            "quantize with --quant, or pick a bigger --gpu)")
    blocks = mem.max_sequences
    watermark = int(WATERMARK * blocks)
    max_len = c.max_model_len or max_position_embeddings(c.model) or DEFAULT_BUDGET
    capacity = (blocks - watermark) * BLOCK_SIZE
    if max_len > capacity:
        raise VarcasError(
            f"the model's max seq len ({max_len}) is larger than the maximum number of tokens that "
            f"can be stored in KV cache ({capacity}); increase --gpu-memory-utilization or "
            "decrease --max-model-len")
    chunked = bool(c.enable_chunked_prefill)
    budget = c.max_num_batched_tokens or (DEFAULT_BUDGET if chunked else max(max_len, DEFAULT_BUDGET))
    if not chunked and budget < max_len:
        raise VarcasError(
            f"--max-num-batched-tokens ({budget}) is smaller than --max-model-len ({max_len}); "
            "without chunked prefill that rejects longer prompts: raise it, lower --max-model-len "
            "or pass --enable-chunked-prefill")
    if budget < c.max_num_seqs:
        raise VarcasError(f"--max-num-batched-tokens ({budget}) must be >= --max-num-seqs ({c.max_num_seqs})")
    served = c.served_model_name or f"{m.config.name}-{m.precision.name}"
    return Setup(c, hw, m, served, blocks, watermark, max_len, c.max_num_seqs, budget, chunked)

