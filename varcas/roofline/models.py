"""Model architecture (from a Hugging Face config.json) and the precision it is served in.

ModelConfig reads the fields the roofline needs from a HF config.json: hidden_size,
num_hidden_layers, num_attention_heads, intermediate_size, vocab_size (required);
num_key_value_heads (GQA; default = heads), head_dim (default hidden/heads), tie_word_embeddings
(default false, as in LlamaConfig/MistralConfig/Qwen2Config), attention_bias / mlp_bias (Llama),
the q/k/v bias every Qwen2 model has (Qwen2Attention builds q/k/v with bias=True, o without), and
Mixtral-style MoE (num_local_experts or num_experts, num_experts_per_tok, moe_intermediate_size).
The MLP is gated (SwiGLU: gate, up, down), as in every shipped model. Architectures this model
cannot represent (shared experts, MLA, dense-first MoE stacks) are refused by name.

Parameter count (exact, matches the checkpoints):
  P = V*h [embedding] + L*(2h [norms] + h*q + q*qkv_bias + Hd*h + h*o_bias + mlp) + h [final norm]
      + V*h unless tied,   q = (H + 2K)*d
  mlp = 3*h*I (+ 2I + h with mlp_bias);  MoE: h*E [router] + E*3*h*I
Llama-2-7B: 6,738,415,616.

Precision: weights fp16/bf16/fp8/int8/int4; activations fp16/bf16/fp8/int8; KV cache fp16/bf16/fp8.
Only the decoder's linear layers are quantized; embedding, lm_head, norms, biases and the MoE
router stay in the 16-bit `base` dtype (as AutoAWQ, GPTQ and vLLM's fp8 checkpoints leave them).
Group quantization (AWQ/GPTQ) stores per group of `group_size` input rows, per output column, one
fp16 scale (2 bytes) and one zero point packed at the weight width (0.5 byte at 4 bits).
Matmuls run in the activation dtype: 4-bit weights are dequantized and multiplied in fp16.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import VarcasError
from ..resources import data_path

BITS = {"fp16": 16, "bf16": 16, "fp8": 8, "int8": 8, "int4": 4}
ACT_DTYPES = ("fp16", "bf16", "fp8", "int8")
KV_DTYPES = ("fp16", "bf16", "fp8")
QUANT_PRESETS = ("auto", "fp16", "bf16", "fp8", "int8", "awq", "gptq")
ATTENTION_MODES = ("fused", "naive")
_TORCH_DTYPES = {"float16": "fp16", "half": "fp16", "bfloat16": "bf16", "float32": "fp16",
                 "float": "fp16"}
_UNSUPPORTED = {"shared_expert_intermediate_size": "shared experts",
                "n_shared_experts": "shared experts", "kv_lora_rank": "multi-head latent attention",
                "first_k_dense_replace": "dense-first MoE layers"}
_REQUIRED = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
             "vocab_size")


@dataclass(frozen=True)
class ModelConfig:
    """The architecture numbers the roofline uses (names follow HF where they exist)."""

    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied: bool = False
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    experts: int = 0  # 0: dense MLP
    top_k: int = 0
    torch_dtype: str = "fp16"
    quantization: tuple = ()  # checkpoint quantization_config as sorted (key, value) pairs

    @property
    def qkv_out(self) -> int:
        return (self.heads + 2 * self.kv_heads) * self.head_dim

    @property
    def mlp_params(self) -> int:
        gated = 3 * self.hidden * self.intermediate
        bias = (2 * self.intermediate + self.hidden) if self.mlp_bias else 0
        if self.experts:
            return self.hidden * self.experts + self.experts * (gated + bias)
        return gated + bias

    @property
    def layer_params(self) -> int:
        h, q, hd = self.hidden, self.qkv_out, self.heads * self.head_dim
        return (2 * h + h * q + q * self.qkv_bias + hd * h + h * self.o_bias + self.mlp_params)

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden

    @property
    def params(self) -> int:
        """Distinct parameters (a tied lm_head counts once)."""
        head = 0 if self.tied else self.embedding_params
        return self.embedding_params + self.layers * self.layer_params + self.hidden + head

    def kv_bytes_per_token(self, kv_dtype: str) -> int:
        """K and V for every layer: 2 * L * K * d * bytes."""
        return 2 * self.layers * self.kv_heads * self.head_dim * BITS[kv_dtype] // 8


@dataclass(frozen=True)
class Precision:
    """How weights, activations and the KV cache are stored, and the dtype matmuls run in."""

    name: str
    weights: str
    act: str
    kv: str
    base: str  # 16-bit dtype of unquantized tensors and non-GEMM compute
    group_size: int = 0  # 0: no per-group scales (per-tensor/channel scales are negligible)

    def __post_init__(self):
        for label, value, allowed in (("weight", self.weights, tuple(BITS)),
                                      ("activation", self.act, ACT_DTYPES),
                                      ("KV cache", self.kv, KV_DTYPES),
                                      ("base", self.base, ("fp16", "bf16"))):
            if value not in allowed:
                raise VarcasError(f"{label} dtype {value!r} not in {', '.join(allowed)}")
        if self.group_size < 0:
            raise VarcasError(f"group size must be >= 0, got {self.group_size}")

    def linear_bytes(self, n_in: int, n_out: int) -> float:
        """Bytes of an n_in x n_out quantized weight matrix, with group scales and zeros."""
        bits = BITS[self.weights]
        groups = math.ceil(n_in / self.group_size) if self.group_size else 0
        per_group = 2 + bits / 8  # fp16 scale + zero point packed at the weight width
        return n_in * n_out * bits / 8 + groups * n_out * per_group

    def describe(self) -> str:
        group = f", g{self.group_size}" if self.group_size else ""
        return f"{self.name}: weights {self.weights}{group}, act {self.act}, KV {self.kv}"


@dataclass(frozen=True)
class Model:
    """A model as served: architecture, precision and attention implementation."""

    config: ModelConfig
    precision: Precision
    attention: str = "fused"

    def __post_init__(self):
        if self.attention not in ATTENTION_MODES:
            raise VarcasError(f"attention must be one of {', '.join(ATTENTION_MODES)}")

    @property
    def weight_bytes(self) -> float:
        """Resident weight bytes: quantized decoder linears, 16-bit everything else."""
        c, p = self.config, self.precision
        w16 = BITS[p.base] // 8
        hd = c.heads * c.head_dim
        linears = (p.linear_bytes(c.hidden, c.qkv_out) + p.linear_bytes(hd, c.hidden)
                   + max(c.experts, 1) * (p.linear_bytes(c.hidden, 2 * c.intermediate)
                                          + p.linear_bytes(c.intermediate, c.hidden)))
        vectors = (2 * c.hidden + c.qkv_out * c.qkv_bias + c.hidden * c.o_bias
                   + max(c.experts, 1) * (2 * c.intermediate + c.hidden) * c.mlp_bias
                   + c.hidden * c.experts)
        tables = c.embedding_params * (1 if c.tied else 2) + c.hidden
        return c.layers * (linears + vectors * w16) + tables * w16


def _field(cfg: dict, key: str, origin: str, default=None, minimum: int = 1) -> int:
    value = cfg.get(key, default)
    if value is None:
        raise VarcasError(f"{origin}: config is missing '{key}'")
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise VarcasError(f"{origin}: '{key}' must be an integer >= {minimum}, got {value!r}")
    return value


def parse_config(cfg: dict, name: str, origin: str) -> ModelConfig:
    """ModelConfig from the dict of a HF config.json; VarcasError names a missing/bad field."""
    if not isinstance(cfg, dict):
        raise VarcasError(f"{origin}: config.json must hold a JSON object")
    if "hidden_size" not in cfg and isinstance(cfg.get("text_config"), dict):
        cfg = {**cfg, **cfg["text_config"]}  # multimodal wrappers nest the decoder's config
    for key, what in _UNSUPPORTED.items():
        if cfg.get(key):
            raise VarcasError(f"{origin}: unsupported architecture ({what}: '{key}')")
    hidden, layers, heads, inter, vocab = (_field(cfg, k, origin) for k in _REQUIRED)
    kv_heads = _field(cfg, "num_key_value_heads", origin, default=heads)
    if heads % kv_heads:
        raise VarcasError(f"{origin}: num_attention_heads {heads} is not a multiple of "
                          f"num_key_value_heads {kv_heads}")
    if cfg.get("head_dim") is None and hidden % heads:
        raise VarcasError(f"{origin}: config is missing 'head_dim' (hidden_size {hidden} is not "
                          f"divisible by num_attention_heads {heads})")
    head_dim = _field(cfg, "head_dim", origin, default=hidden // heads)
    experts_key = "num_local_experts" if "num_local_experts" in cfg else "num_experts"
    experts = _field(cfg, experts_key, origin, default=0, minimum=0) if cfg.get(experts_key) else 0
    top_k = _field(cfg, "num_experts_per_tok", origin) if experts > 1 else 0
    if experts > 1:
        inter = _field(cfg, "moe_intermediate_size", origin, default=inter)
        if top_k > experts:
            raise VarcasError(f"{origin}: num_experts_per_tok {top_k} > experts {experts}")
        if cfg.get("decoder_sparse_step", 1) != 1 or cfg.get("mlp_only_layers"):
            raise VarcasError(f"{origin}: unsupported architecture (MoE on only some layers)")
    attention_bias = bool(cfg.get("attention_bias", False))
    qwen2 = str(cfg.get("model_type", "")).startswith("qwen2")
    quant = cfg.get("quantization_config") or {}
    return ModelConfig(
        name=name, hidden=hidden, layers=layers, heads=heads, kv_heads=kv_heads,
        head_dim=head_dim, intermediate=inter, vocab=vocab,
        tied=bool(cfg.get("tie_word_embeddings", False)), qkv_bias=attention_bias or qwen2,
        o_bias=attention_bias, mlp_bias=bool(cfg.get("mlp_bias", False)),
        experts=experts if experts > 1 else 0, top_k=top_k,
        torch_dtype=_TORCH_DTYPES.get(str(cfg.get("torch_dtype") or cfg.get("dtype") or "float16"), "fp16"),
        quantization=tuple(sorted((k, v) for k, v in quant.items()
                                  if isinstance(v, (str, int, float, bool)))))


def known_models() -> list[str]:
    """Short names of the shipped configs."""
    return sorted(p.stem for p in data_path("models").glob("*.json"))


def load_config(name_or_path: str) -> ModelConfig:
    """A shipped config by short name (case-insensitive), or a local config.json / its folder."""
    shipped = data_path("models", f"{name_or_path.strip().lower()}.json")
    path = Path(name_or_path)
    if shipped.is_file():
        path, name = shipped, shipped.stem
    elif path.is_dir() and (path / "config.json").is_file():
        path, name = path / "config.json", path.name
    elif path.is_file():
        name = path.parent.name if path.name == "config.json" else path.stem
    else:
        raise VarcasError(f"unknown model {name_or_path!r} (known: {', '.join(known_models())}; "
                          "or give the path of a config.json)")
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise VarcasError(f"cannot read {path}: {exc}") from None
    return parse_config(cfg, name, str(path))


def _preset(quant: str, config: ModelConfig) -> Precision:
    base = "bf16" if config.torch_dtype == "bf16" else "fp16"
    if quant == "auto":
        q = dict(config.quantization)
        method = str(q.get("quant_method", "")).lower()
        if not q:
            return Precision(base, base, base, base, base)
        if method in ("awq", "gptq"):
            bits = q.get("bits", 4)
            if bits not in (4, 8):
                raise VarcasError(f"{config.name}: {method} with {bits}-bit weights is not modelled")
            return Precision(method, "int4" if bits == 4 else "int8", "fp16", "fp16", "fp16",
                             int(q.get("group_size", 128)) if q.get("group_size", 128) > 0 else 0)
        if method == "fp8":
            return Precision("fp8", "fp8", "fp8", base, base)
        raise VarcasError(f"{config.name}: quantization {method!r} in config.json is not modelled; "
                          f"pass --quant ({', '.join(QUANT_PRESETS[1:])})")
    if quant in ("fp16", "bf16"):
        return Precision(quant, quant, quant, quant, quant)
    if quant in ("fp8", "int8"):  # W8A8, as vLLM's fp8 / int8 (SmoothQuant-style) kernels run
        return Precision(quant, quant, quant, base, base)
    if quant in ("awq", "gptq"):  # 4-bit weights, groups of 128, fp16 activations and KV
        return Precision(quant, "int4", "fp16", "fp16", "fp16", 128)
    raise VarcasError(f"unknown --quant {quant!r} (known: {', '.join(QUANT_PRESETS)})")


def precision(config: ModelConfig, quant: str = "auto", *, weights: str | None = None,
              act: str | None = None, kv: str | None = None,
              group_size: int | None = None) -> Precision:
    """A preset (auto = the checkpoint's quantization_config, else its torch_dtype) with
    optional per-field overrides. 4-bit weights default to groups of 128."""
    p = _preset(quant.lower(), config)
    weights = weights or p.weights
    act = act or p.act
    if group_size is None:
        group_size = p.group_size if weights == p.weights else (128 if weights == "int4" else 0)
    base = weights if weights in ("fp16", "bf16") else (act if act in ("fp16", "bf16") else p.base)
    name = p.name if (weights, act, kv or p.kv) == (p.weights, p.act, p.kv) else "custom"
    return Precision(name, weights, act, kv or p.kv, base, group_size)


def model(name_or_path: str, quant: str = "auto", *, attention: str = "fused", **overrides) -> Model:
    """Load a config and pick its precision: the library's one-call entry point."""
    config = load_config(name_or_path)
    return Model(config, precision(config, quant, **overrides), attention)
