"""GPU specifications and the efficiency assumptions that turn them into a realistic machine.

The shipped table is varcas/data/gpus.csv: dense (no 2:4 sparsity) tensor-core peaks per dtype,
memory bandwidth and size, and the document each figure came from (the first rows copied from
the project's sourced reference table, later ones sourced in docs/roofline.md). An empty peak means the GPU has no tensor-core rate for that dtype
(T4: no bf16, no fp8; Ampere: no fp8); asking for it is an error, never a silent fallback.

Users add or override GPUs without editing the package:
  * a file (CSV with the same header, or JSON: a list of objects or {name: object}), whose rows
    replace shipped rows of the same name;
  * inline, "name:key=value,...": a known name is overridden field by field; a new name must
    give bw_gbps, fp16_tflops and mem_gb.

`Hardware` pairs a GPU with the efficiency factors of the realistic model (see
DEFAULT_BW_EFFICIENCY below for where they come from). Units inside: bytes, bytes/s, FLOP/s.
memory_gb is read as GiB (2**30 bytes): datasheet "16 GB" HBM/GDDR capacities are binary.
exposed_memory_mib is what the device really offers, as nvidia-smi reports it (ECC reserve
already taken out: a T4 sold as 16 GB shows 15360 MiB); the KV-capacity model uses it. Where a
row has none (a user's file, an inline GPU given mem_gb), memory_gb stands in for it.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import VarcasError
from ..resources import data_path

DTYPES = ("fp16", "bf16", "fp8", "int8", "int4")
GIB = 2 ** 30
MIB = 2 ** 20

# Efficiency defaults of the realistic model (all overridable).
# Bandwidth: gpt-fast (pytorch-labs/gpt-fast README, A100-80GB power-limited to 330 W) decodes
# Llama-2-7B fp16 at 1397 GB/s of 2039 GB/s peak (68.5%) and Llama-2-70B int8 at 1323 GB/s
# (64.9%); well-tuned memory-bound decode kernels are commonly quoted at 70-80%. We take 0.70.
DEFAULT_BW_EFFICIENCY = 0.70
# Compute: FlashAttention-2 (Dao 2023, arXiv:2307.08691) reaches 225 TFLOP/s per A100 end to end,
# "72% model FLOPs utilization", with its attention kernel at 50-73% of peak. We take 0.72.
DEFAULT_COMPUTE_EFFICIENCY = 0.72
# Fixed per-step cost (scheduling, sampling, kernel launches) added once per engine step.
# No published fixed figure was found (vLLM's v0.6.0 post reports CPU overhead only as shares of
# run time), so 1 ms is an assumption; override it with --overhead-ms / step_overhead_s.
DEFAULT_STEP_OVERHEAD_S = 1e-3

# Inline/override keys -> table columns.
_INLINE_KEYS = {
    "bw_gbps": "mem_bw_gbps", "mem_bw_gbps": "mem_bw_gbps",
    "mem_gb": "memory_gb", "memory_gb": "memory_gb",
    "exposed_mib": "exposed_memory_mib", "exposed_memory_mib": "exposed_memory_mib",
    "fp16_tflops": "fp16_tflops", "bf16_tflops": "bf16_tflops", "fp8_tflops": "fp8_tflops",
    "int8_tops": "int8_tops", "int4_tops": "int4_tops",
}
_REQUIRED = ("mem_bw_gbps", "fp16_tflops", "memory_gb")
_PEAK_COLUMNS = {"fp16": "fp16_tflops", "bf16": "bf16_tflops", "fp8": "fp8_tflops",
                 "int8": "int8_tops", "int4": "int4_tops"}


@dataclass(frozen=True)
class GPU:
    """One GPU's published figures. Peaks are dense tensor-core FLOP/s; None = not supported."""

    name: str
    display_name: str
    memory_bytes: float
    bandwidth: float  # bytes/s
    peaks: tuple  # ((dtype, FLOP/s or None), ...) in DTYPES order
    exposed_memory_bytes: float  # what nvidia-smi reports (memory_bytes where the row has none)
    source: str = ""
    confidence: str = ""

    def peak(self, dtype: str) -> float:
        """Dense peak FLOP/s (or OP/s) for matmuls in `dtype`; VarcasError if unsupported."""
        value = dict(self.peaks).get(dtype)
        if value is None:
            have = ", ".join(d for d, v in self.peaks if v is not None)
            raise VarcasError(f"{self.name} has no published {dtype} tensor-core rate (has: {have}); "
                              "choose a precision it supports (--quant, --act)")
        return value

    def ridge(self, dtype: str = "fp16") -> float:
        """Ridge point in FLOP/byte: peak / bandwidth."""
        return self.peak(dtype) / self.bandwidth


@dataclass(frozen=True)
class Hardware:
    """A GPU plus the realistic model's efficiency factors and per-step overhead."""

    gpu: GPU
    bw_efficiency: float = DEFAULT_BW_EFFICIENCY
    compute_efficiency: float = DEFAULT_COMPUTE_EFFICIENCY
    step_overhead_s: float = DEFAULT_STEP_OVERHEAD_S

    def __post_init__(self):
        for label, v in (("bandwidth efficiency", self.bw_efficiency),
                         ("compute efficiency", self.compute_efficiency)):
            if not (0.0 < v <= 1.0):
                raise VarcasError(f"{label} must be in (0, 1], got {v}")
        if not (self.step_overhead_s >= 0.0 and math.isfinite(self.step_overhead_s)):
            raise VarcasError(f"per-step overhead must be >= 0 s, got {self.step_overhead_s}")


def normalize_name(name: str) -> str:
    """Case-insensitive key: lower case, spaces/underscores as hyphens, vendor prefix dropped."""
    key = name.strip().lower().replace("_", "-").replace(" ", "-")
    for prefix in ("nvidia-", "amd-"):
        if key.startswith(prefix):
            key = key[len(prefix):]
    return key


def _number(row: dict, column: str, origin: str, required: bool) -> float | None:
    raw = row.get(column)
    raw = "" if raw is None else str(raw).strip()
    if raw == "":
        if required:
            raise VarcasError(f"{origin}: GPU {row.get('name')!r} is missing {column}")
        return None
    try:
        value = float(raw)
    except ValueError:
        raise VarcasError(f"{origin}: GPU {row.get('name')!r}: {column}={raw!r} is not a number") from None
    if not (value > 0 and math.isfinite(value)):
        raise VarcasError(f"{origin}: GPU {row.get('name')!r}: {column} must be > 0, got {raw}")
    return value


def _required(row: dict, column: str, origin: str) -> float:
    value = _number(row, column, origin, True)
    assert value is not None  # _number raises for a required column without a number
    return value


def gpu_from_row(row: dict, origin: str) -> GPU:
    """Build a GPU from a table row (column names as in gpus.csv). bf16 defaults to fp16 when
    the column is absent (it is present but empty for GPUs without bf16, e.g. T4)."""
    name = normalize_name(str(row.get("name") or ""))
    if not name:
        raise VarcasError(f"{origin}: a GPU row has no name")
    row = dict(row)
    if "bf16_tflops" not in row:
        row["bf16_tflops"] = row.get("fp16_tflops")
    values = {c: _required(row, c, origin) for c in _REQUIRED}
    peaks = tuple((d, None if (v := _number(row, _PEAK_COLUMNS[d], origin, False)) is None else v * 1e12)
                  for d in DTYPES)
    exposed = _number(row, "exposed_memory_mib", origin, False)
    return GPU(name=name, display_name=str(row.get("display_name") or name),
               memory_bytes=values["memory_gb"] * GIB, bandwidth=values["mem_bw_gbps"] * 1e9,
               peaks=peaks, exposed_memory_bytes=values["memory_gb"] * GIB if exposed is None else exposed * MIB,
               source=str(row.get("source") or origin),
               confidence=str(row.get("confidence") or ""))


@dataclass
class GPUTable:
    """Name -> row, plus aliases. Rows stay dicts so overrides can replace single fields."""

    rows: dict = field(default_factory=dict)
    aliases: dict = field(default_factory=dict)

    def add(self, row: dict, origin: str) -> None:
        gpu_from_row(row, origin)  # validate now, so a bad file fails at load with its origin
        name = normalize_name(str(row["name"]))
        self.rows[name] = dict(row, name=name)
        for alias in str(row.get("aliases") or "").split(";"):
            if alias.strip():
                self.aliases[normalize_name(alias)] = name

    def resolve(self, name: str) -> str | None:
        key = normalize_name(name)
        if key not in self.rows:  # a row's own name wins over another row's alias
            key = self.aliases.get(key, key)
        return key if key in self.rows else None

    def get(self, name: str) -> GPU:
        key = self.resolve(name)
        if key is None:
            raise VarcasError(f"unknown GPU {name!r} (known: {', '.join(self.rows)}; "
                              "or use --gpu-file / --gpu NAME:bw_gbps=...,fp16_tflops=...,mem_gb=...)")
        return gpu_from_row(self.rows[key], key)


def _read_rows(path: Path) -> list[dict]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise VarcasError(f"cannot read GPU file {path}: {exc.strerror}") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise VarcasError(f"{path}: not valid JSON ({exc})") from None
        if isinstance(data, dict):
            data = [dict(v, name=k) if isinstance(v, dict) else v for k, v in data.items()]
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise VarcasError(f"{path}: expected a list of GPU objects or {{name: object}}")
        return data
    return list(csv.DictReader(io.StringIO(text)))


def load_table(gpu_file: str | Path | None = None) -> GPUTable:
    """The shipped table, with the rows of `gpu_file` (CSV or JSON) added or replacing."""
    table = GPUTable()
    for row in _read_rows(data_path("gpus.csv")):
        table.add(row, "gpus.csv")
    if gpu_file is not None:
        path = Path(gpu_file)
        for row in _read_rows(path):
            table.add(row, str(path))
    return table


def parse_inline(spec: str, table: GPUTable) -> GPU:
    """'name:key=value,...' -> GPU. Known name: override its fields; new name: required keys."""
    name, _, assignments = spec.partition(":")
    known = table.resolve(name)
    row = dict(table.rows[known]) if known else {"name": name, "display_name": name,
                                                 "source": "inline --gpu"}
    if not known:
        row["bf16_tflops"] = None  # filled from fp16 below unless given
    given = set()
    for item in filter(None, (a.strip() for a in assignments.split(","))):
        key, eq, value = item.partition("=")
        column = _INLINE_KEYS.get(key.strip().lower())
        if not eq or column is None:
            raise VarcasError(f"--gpu {spec!r}: expected key=value with key in "
                              f"{', '.join(sorted(set(_INLINE_KEYS)))}; got {item!r}")
        row[column] = value.strip()
        given.add(column)
    if "memory_gb" in given and "exposed_memory_mib" not in given:
        row.pop("exposed_memory_mib", None)  # a new size: the shipped exposed figure no longer applies
    if not known:
        missing = [k for k, c in (("bw_gbps", "mem_bw_gbps"), ("fp16_tflops", "fp16_tflops"),
                                  ("mem_gb", "memory_gb")) if not row.get(c)]
        if missing:
            raise VarcasError(f"--gpu {spec!r}: unknown GPU {name!r} needs {', '.join(missing)} "
                              f"(known GPUs: {', '.join(table.rows)})")
        if not row.get("bf16_tflops"):
            row["bf16_tflops"] = row["fp16_tflops"]
    elif assignments:
        row["source"] = f"{row.get('source', '')} (overridden inline: {assignments})"
    return gpu_from_row(row, "--gpu")


def gpu(name: str, gpu_file: str | Path | None = None) -> GPU:
    """Look up a GPU by name or alias (case-insensitive), or parse an inline 'name:k=v,...'."""
    table = load_table(gpu_file)
    return parse_inline(name, table) if ":" in name else table.get(name)


def hardware(name: str, gpu_file: str | Path | None = None, **efficiency) -> Hardware:
    """GPU by name plus efficiency factors (bw_efficiency, compute_efficiency, step_overhead_s)."""
    return Hardware(gpu(name, gpu_file), **efficiency)


def known_gpus(gpu_file: str | Path | None = None) -> list[str]:
    """Names of all GPUs in the table (shipped plus the user file)."""
    return list(load_table(gpu_file).rows)
