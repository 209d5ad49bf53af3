"""What the simulated server is: a model on a GPU (from varcas.roofline) plus vLLM's engine
settings, resolved once into the numbers the engine needs (KV blocks, token budget, limits).

Defaults follow vLLM 0.32's OpenAI server (--scheduler v1; engine/arg_utils.py):
  chunked prefill on (_set_default_chunked_prefill_and_prefix_caching_args: every generative
  model supports it); max_num_batched_tokens and max_num_seqs by the GPU
  (get_batch_defaults, roofline.vllm_batch_defaults: 16384 / 1024 with >= 160 GiB, 8192 / 1024
  with >= 70 GiB unless an A100, else 2048 / 256), then as
  _set_default_max_num_seqs_and_batched_tokens_args adjusts them: without chunked prefill the
  budget is at least max_model_len, it is at most max_num_seqs x max_model_len, and a default
  max_num_seqs is at most the budget; no admission watermark (SchedulerConfig.watermark 0.0).
--scheduler v0 keeps the older engine (vLLM V0): chunked prefill off unless asked, max_num_seqs
256, max_num_batched_tokens max(max_model_len, 2048) (2048 with chunked prefill), 1% watermark.
Both: --gpu-memory-utilization 0.9, blocks of 16 tokens, --max-model-len = the model's
max_position_embeddings. vLLM's start-up checks are kept, with its advice: the KV cache must
hold one sequence of max_model_len tokens; without chunked prefill the token budget must cover
max_model_len; the budget must cover max_num_seqs. Each failure is a one-line VarcasError.

The defaults (llama-3-8b in fp8 on an H100 SXM, vLLM 0.32's own engine defaults there: 8192
tokens / 1024 sequences per step) are the embedded target of `varcas load` with no --url: it must
serve the design card's `--rps 50` of chat_medium comfortably, steady over 10 minutes. Measured
offline over 600 s: fp8 holds TTFT p50 13 ms and TPOT p50 7.6 ms at 50 req/s, is still steady at
80 and overloaded at 100 (50 is about 55% of its capacity); the same model in fp16 is steady at
50 but overloaded at 60 (about 90% of capacity, not comfortable), and llama-2-7b fp16 (MHA, 4x
the KV per token) is overloaded at 50. The seed's T4 / 4-bit 7B scenario is the documented
worked example (README), chosen with --model llama-2-7b --gpu t4 --quant awq.

The KV block count is roofline.memory's, vLLM 0.32's sizing for this engine's profile shape
(max_num_batched_tokens, max_num_seqs): its max_sequences at a context of one block *is* the block
count. V0 sized the cache before capturing CUDA graphs, so v0 reserves no graph memory.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .. import __version__, roofline
from ..errors import VarcasError
from ..resources import data_path

BLOCK_SIZE = roofline.DEFAULT_BLOCK_SIZE
V0_WATERMARK = 0.01  # vLLM V0 BlockSpaceManager(watermark=0.01); V1's SchedulerConfig.watermark is 0.0
SERVER_NAME = "varcas-sim"  # its Server header and start-up line
SERVER_VERSION = f"{SERVER_NAME} {__version__}"  # what GET /version and run manifests say
V0_BUDGET = 2048  # vLLM V0's max_num_batched_tokens floor (and its chunked default)
V0_MAX_NUM_SEQS = 256  # vLLM V0's max_num_seqs default
SCHEDULERS = ("v1", "v0")  # vLLM 0.32's engine (default), vLLM V0's


@dataclass(frozen=True)
class SimConfig:
    """The flags of `varcas sim` (None: vLLM's default for this GPU and scheduler, or the
    roofline's for efficiencies)."""

    model: str = "llama-3-8b"  # the embedded default target: see the module docstring
    gpu: str = "h100"
    quant: str = "fp8"
    scheduler: str = "v1"
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    enable_chunked_prefill: bool | None = None
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
    scheduler: str
    memory: roofline.MemoryReport  # how the KV budget was found (at a context of one block)

    def params(self) -> dict:
        """The simulator's parameters as recorded in a run's manifest."""
        c = self.config
        return {
            "model": c.model, "gpu": self.hw.gpu.name, "quant": self.model.precision.name,
            "served_model_name": self.served_name, "scheduler": self.scheduler, "max_num_seqs": self.max_num_seqs,
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
                f"{'on' if self.chunked_prefill else 'off'}, scheduler {self.scheduler}")


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


def _v1_limits(c: SimConfig, gpu: roofline.GPU, max_len: int) -> tuple[bool, int, int]:
    """(chunked prefill, max_num_batched_tokens, max_num_seqs) as vLLM 0.32's API server resolves
    them (engine/arg_utils.py, _set_default_max_num_seqs_and_batched_tokens_args)."""
    chunked = True if c.enable_chunked_prefill is None else c.enable_chunked_prefill
    default_budget, default_seqs = roofline.vllm_batch_defaults(gpu)
    seqs = c.max_num_seqs or default_seqs
    budget = c.max_num_batched_tokens
    if budget is None:
        budget = default_budget if chunked else max(max_len, default_budget)
        budget = min(seqs * max_len, budget)
    if c.max_num_seqs is None:
        seqs = min(seqs, budget)
    return chunked, budget, seqs


def _v0_limits(c: SimConfig, gpu: roofline.GPU, max_len: int) -> tuple[bool, int, int]:
    """(chunked prefill, max_num_batched_tokens, max_num_seqs) with vLLM V0's defaults."""
    chunked = bool(c.enable_chunked_prefill)
    budget = c.max_num_batched_tokens or (V0_BUDGET if chunked else max(max_len, V0_BUDGET))
    return chunked, budget, c.max_num_seqs or V0_MAX_NUM_SEQS


def _kv_memory(c: SimConfig, hw: roofline.Hardware, m: roofline.Model, budget: int,
               seqs: int) -> roofline.MemoryReport:
    """vLLM's KV budget for this engine (roofline.memory at a context of one block, where
    max_sequences is the block count); VarcasError when nothing is left for it."""
    mem = roofline.memory(hw, m, BLOCK_SIZE, c.gpu_memory_utilization, BLOCK_SIZE, max_num_batched_tokens=budget,
                          max_num_seqs=seqs, cuda_graphs=c.scheduler == "v1")
    if mem.max_sequences < 1:
        profile = mem.activation_bytes + mem.cuda_graph_bytes + mem.non_torch_bytes
        raise VarcasError(
            f"{m.config.name} ({m.precision.name}) weights take {mem.weight_bytes / 2**30:.1f} GiB and vLLM's "
            f"profile (activations, CUDA graphs, non-torch) {profile / 2**30:.1f} GiB; nothing is left for the KV "
            f"cache in {c.gpu_memory_utilization:g} x {mem.gpu_memory_bytes / 2**30:.1f} GiB of {hw.gpu.name} "
            "(raise --gpu-memory-utilization, quantize with --quant, or pick a bigger --gpu)")
    return mem


def resolve(c: SimConfig) -> Setup:
    """Check a SimConfig and derive the engine's numbers; VarcasError names the bad setting."""
    _check_int("--max-num-seqs", c.max_num_seqs)
    _check_int("--max-num-batched-tokens", c.max_num_batched_tokens)
    _check_int("--max-model-len", c.max_model_len)
    if c.scheduler not in SCHEDULERS:
        raise VarcasError(f"--scheduler must be one of {', '.join(SCHEDULERS)}, got {c.scheduler!r}")
    hw = _hardware(c)
    m = roofline.model(c.model, quant=c.quant)
    max_len = c.max_model_len or max_position_embeddings(c.model) or V0_BUDGET
    limits = _v1_limits if c.scheduler == "v1" else _v0_limits
    chunked, budget, seqs = limits(c, hw.gpu, max_len)
    mem = _kv_memory(c, hw, m, budget, seqs)
    blocks = mem.max_sequences
    watermark = int(V0_WATERMARK * blocks) if c.scheduler == "v0" else 0
    capacity = (blocks - watermark) * BLOCK_SIZE
    if max_len > capacity:
        raise VarcasError(
            f"the model's max seq len ({max_len}) is larger than the maximum number of tokens that "
            f"can be stored in KV cache ({capacity}); increase --gpu-memory-utilization or "
            "decrease --max-model-len")
    if not chunked and budget < max_len:
        raise VarcasError(
            f"--max-num-batched-tokens ({budget}) is smaller than --max-model-len ({max_len}); "
            "without chunked prefill that rejects longer prompts: raise it, lower --max-model-len "
            "or pass --enable-chunked-prefill")
    if budget < seqs:
        raise VarcasError(f"--max-num-batched-tokens ({budget}) must be >= --max-num-seqs ({seqs})")
    served = c.served_model_name or f"{m.config.name}-{m.precision.name}"
    return Setup(c, hw, m, served, blocks, watermark, max_len, seqs, budget, chunked, c.scheduler, mem)
