"""Kernels measured by Nsight Compute, placed on the roofline of a GPU.

Input: the text `ncu --csv --page raw` writes (docs/roofline.md has the exact command). Its
layout: ncu's own messages (lines starting "==", e.g. "==PROF== Connected to process"), then a
header row ("ID","Process ID","Process Name","Host Name","Kernel Name",...,"Device","CC", then one
column per metric), a units row (empty cells under the non-metric columns, then "byte", "Mbyte",
"nsecond", "usecond", "inst", ...), then one row per profiled kernel launch. Values may carry
thousands separators ("1,234.5") and "n/a" where ncu has no value. A second process repeats the
header and its units row. Units with a K/M/G/T prefix are decimal; `--print-units base` avoids them.

Per launch (all counters are sums over the whole GPU):
  FLOPs = FADD + FMUL + 2 FFMA                    fp32 thread instructions (CUDA cores)
        + 2 HADD + 2 HMUL + 4 HFMA                fp16 thread instructions, packed pairs
        + tensor-core ops                          sm__ops_path_tensor_src_* counters
  bytes = dram__bytes_read.sum + dram__bytes_write.sum;  time = gpu__time_duration.sum
The SASS weights are those of Nsight Compute's own roofline sections
(SpeedOfLight_RooflineChart.section: FADD + FMUL + FFMA x 2; the 2025 releases'
SpeedOfLight_HierarchicalHalfRooflineChart.section: HADD x 2 + HMUL x 2 + HFMA x 4, the counted
instructions being HADD2/HMUL2/HFMA2; older releases weighted them 1, 1, 2). Tensor-core work is
read from the ops counters, one op taken as one FLOP, as the Tensor Core roofline section plots
them against `...peak_sustained` with no factor. The tensor-pipe instruction counter
(sm__inst_executed_pipe_tensor) is not used: its FLOPs per instruction depend on the MMA shape
(the 512 of old ncu sections fits Volta's HMMA; Ampere's m16n8k16 is 4096 per warp instruction).

Kernels are grouped by name (launches summed) and classified by name (KERNEL_CLASSES, first match
wins). Each kernel's roof is min(peak, AI x bandwidth) with the peak of its dominant tensor dtype
(the caller's default dtype when it has no tensor work); its roof time is max(FLOPs/peak,
bytes/bandwidth), and the fraction of roof reached is roof time / measured time (= achieved FLOP/s
over the roof at its AI). Groups sum FLOPs, bytes, time and roof time, so their rates and
fractions are time-weighted. Bad input is a one-line VarcasError, never a traceback.
"""
from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import VarcasError
from .gpus import Hardware

DRAM_READ = "dram__bytes_read.sum"
DRAM_WRITE = "dram__bytes_write.sum"
DURATION = "gpu__time_duration.sum"
# CUDA-core FLOPs per predicated-on thread instruction, Nsight Compute's roofline weights.
SASS_FLOPS = (("fadd", 1), ("fmul", 1), ("ffma", 2), ("hadd", 2), ("hmul", 2), ("hfma", 4))
SASS_PREFIXES = ("sm", "smsp")  # the same counter summed per SM or per SM sub-partition
# Tensor-core ops counters -> the dtype whose peak bounds them. Disjoint on any one GPU:
# the fp16_bf16_tf32 one is Turing's (T4), where the fp16_dst_fp32 one does not exist.
TENSOR_OPS = {
    "sm__ops_path_tensor_src_fp16_dst_fp16.sum": "fp16",
    "sm__ops_path_tensor_src_fp16_dst_fp32.sum": "fp16",
    "sm__ops_path_tensor_src_fp16_bf16_tf32_dst_fp32.sum": "fp16",
    "sm__ops_path_tensor_src_bf16_dst_fp32.sum": "bf16",
    "sm__ops_path_tensor_src_fp8.sum": "fp8",
    "sm__ops_path_tensor_src_int8.sum": "int8",
}
# What `varcas roofline --ncu` asks ncu to collect (Ampere and later; docs/roofline.md has the variants).
CAPTURE_METRICS = (DRAM_READ, DRAM_WRITE, DURATION,
                   *(f"sm__sass_thread_inst_executed_op_{op}_pred_on.sum" for op, _ in SASS_FLOPS),
                   "sm__ops_path_tensor_src_fp16_dst_fp16.sum", "sm__ops_path_tensor_src_fp16_dst_fp32.sum",
                   "sm__ops_path_tensor_src_bf16_dst_fp32.sum")
NCU_COMMAND = (f"ncu --target-processes all --csv --page raw --print-units base "
               f"--metrics {','.join(CAPTURE_METRICS)} --log-file kernels.csv <application>")
# Kernel classes by name (case-insensitive search), first match wins: attention before GEMM,
# since flash-attention kernels carry "cutlass" in their template arguments.
KERNEL_CLASSES = (
    ("attention", r"flash|fmha|attention|attn|reshape_and_cache"),
    ("gemm", r"gemm|gemv|cutlass|xmma|cublas|matmul"),
    ("norm", r"rms_?norm|layer_?norm"),
    ("elementwise", r"silu|gelu|act_and_mul|elementwise|rotary"),
)
OTHER = "other"
_PREFIX = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}
_TIME = {"nsecond": 1e-9, "usecond": 1e-6, "msecond": 1e-3, "second": 1.0,
         "ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
_UNIT = {"bytes": re.compile(r"([KMGTP]?)byte"), "count": re.compile(r"([KMGTP]?)[a-z]*")}


@dataclass(frozen=True)
class Launch:
    """One profiled kernel launch in base units: seconds, DRAM bytes, FLOPs."""

    name: str
    time_s: float
    bytes: float
    cuda_flops: float  # fp32 and fp16 thread instructions, weighted
    tensor_flops: tuple  # ((dtype, FLOPs), ...) per TENSOR_OPS counter present


@dataclass(frozen=True)
class Stats:
    """A kernel (launches of one name) or a class of kernels: sums, roof, and rates."""

    name: str
    kind: str  # class from KERNEL_CLASSES, or OTHER
    launches: int
    time_s: float
    bytes: float
    flops: float
    tensor_flops: float
    roof_time_s: float  # sum of max(FLOPs/peak, bytes/bandwidth) per kernel
    dtype: str | None = None  # the peak's dtype (kernels only)
    peak_flops: float | None = None

    @property
    def ai(self) -> float | None:
        return self.flops / self.bytes if self.bytes else None

    @property
    def flops_per_s(self) -> float:
        return self.flops / self.time_s

    @property
    def bytes_per_s(self) -> float:
        return self.bytes / self.time_s

    @property
    def roof_flops_per_s(self) -> float | None:
        """FLOP/s at the roof: min(peak, AI x bandwidth) for one kernel, time-weighted for a class."""
        return self.flops / self.roof_time_s if self.roof_time_s else None

    @property
    def fraction_of_roof(self) -> float:
        return self.roof_time_s / self.time_s


@dataclass(frozen=True)
class KernelReport:
    """Kernels and their classes, each sorted by time (longest first)."""

    source: str
    default_dtype: str
    bandwidth: float
    kernels: list
    groups: list

    @property
    def time_s(self) -> float:
        return sum(k.time_s for k in self.kernels)


def classify(name: str) -> str:
    """The class of a kernel by its name (KERNEL_CLASSES), OTHER when none matches."""
    return next((kind for kind, pattern in KERNEL_CLASSES if re.search(pattern, name, re.IGNORECASE)), OTHER)


def read_ncu(path: str | Path) -> list[Launch]:
    """Every kernel launch in an `ncu --csv --page raw` file, counters in base units."""
    rows = [(n, r) for n, r in _csv_rows(_text(path), path) if r]
    at = next((i for i, (_, r) in enumerate(rows) if "ID" in r and "Kernel Name" in r), None)
    if at is None:
        raise VarcasError(f"{path}: no header row with \"ID\" and \"Kernel Name\"; expected the output of: {NCU_COMMAND}")
    header = rows[at][1]
    if "Metric Name" in header and "Metric Value" in header:
        raise VarcasError(f"{path}: ncu's details page (one metric per row); capture with --csv --page raw")
    columns = _columns(header, path)
    launches, units = [], None
    for line, row in rows[at + 1:]:
        if row == header:  # the next process's table
            units = None
        elif len(row) != len(header):
            raise VarcasError(f"{path} line {line}: {len(row)} fields, the header has {len(header)}")
        elif not row[columns["id"]].strip():
            units = _scales(row, columns, path, line)
        elif units is None:
            raise VarcasError(f"{path} line {line}: no units row under the header (not ncu --csv --page raw output)")
        else:
            launches.append(_launch(row, columns, units, f"{path} line {line}"))
    if not launches:
        raise VarcasError(f"{path}: no kernel launches under the header")
    return launches


def kernel_report(hw: Hardware, launches: list[Launch], default_dtype: str = "fp16",
                  source: str = "ncu CSV") -> KernelReport:
    """Launches grouped by kernel name and by class, each placed under the roof of `hw`."""
    by_name: dict[str, list[Launch]] = {}
    for launch in launches:
        by_name.setdefault(launch.name, []).append(launch)
    kernels = sorted((_kernel(hw, n, ls, default_dtype) for n, ls in by_name.items()), key=lambda k: -k.time_s)
    for k in kernels:
        if not all(map(math.isfinite, (k.flops, k.bytes, k.flops_per_s, k.bytes_per_s, k.roof_time_s))):
            raise VarcasError(f"{source}: kernel {k.name[:80]!r}: counters too large to be a measurement")
    kinds = dict.fromkeys(k.kind for k in kernels)
    groups = sorted((_total(kind, [k for k in kernels if k.kind == kind]) for kind in kinds), key=lambda g: -g.time_s)
    return KernelReport(source, default_dtype, hw.gpu.bandwidth, kernels, groups)


def _kernel(hw: Hardware, name: str, launches: list[Launch], default_dtype: str) -> Stats:
    """The launches of one kernel, summed; its roof is the peak of its dominant tensor dtype."""
    tensor: dict[str, float] = {}
    for launch in launches:
        for dtype, flops in launch.tensor_flops:
            tensor[dtype] = tensor.get(dtype, 0.0) + flops
    dtype = max(tensor, key=tensor.__getitem__) if any(tensor.values()) else default_dtype
    peak = hw.gpu.peak(dtype)
    flops = sum(tensor.values()) + sum(x.cuda_flops for x in launches)
    nbytes = sum(x.bytes for x in launches)
    return Stats(name, classify(name), len(launches), sum(x.time_s for x in launches), nbytes, flops,
                 sum(tensor.values()), max(flops / peak, nbytes / hw.gpu.bandwidth), dtype, peak)


def _total(kind: str, kernels: list[Stats]) -> Stats:
    """A class of kernels: every extensive quantity summed."""
    def total(field: str) -> float:
        return sum(getattr(k, field) for k in kernels)

    return Stats(kind, kind, int(total("launches")), total("time_s"), total("bytes"), total("flops"),
                 total("tensor_flops"), total("roof_time_s"))


def _text(path: str | Path) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise VarcasError(f"cannot read {path}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise VarcasError(f"{path}: not text (expected ncu --csv --page raw output)") from None
    if not text.strip():
        raise VarcasError(f"{path}: empty (expected ncu --csv --page raw output)")
    return text


def _csv_rows(text: str, path) -> list[tuple[int, list[str]]]:
    """(line number, cells) of every CSV row; ncu's "==" message lines become empty rows."""
    lines = ["" if line.startswith("==") else line for line in text.splitlines()]
    reader = csv.reader(io.StringIO("\n".join(lines)))
    try:
        return [(reader.line_num, row) for row in reader]
    except csv.Error as exc:
        raise VarcasError(f"{path} line {reader.line_num}: not CSV ({exc})") from None


def _columns(header: list[str], path) -> dict:
    """Column indices of the identity cells and of every counter used; names what is missing."""
    index = {name: i for i, name in enumerate(header)}
    sass = [(next((index[n] for n in names if n in index), None), names[0], weight) for names, weight in
            ((tuple(f"{p}__sass_thread_inst_executed_op_{op}_pred_on.sum" for p in SASS_PREFIXES), w)
             for op, w in SASS_FLOPS)]
    missing = [n for n in (DRAM_READ, DRAM_WRITE, DURATION) if n not in index]
    missing += [name for i, name, _ in sass if i is None]
    tensor = [(index[n], dtype) for n, dtype in TENSOR_OPS.items() if n in index]
    if not tensor:
        missing.append(f"a tensor-core ops counter ({' or '.join(TENSOR_OPS)})")
    if missing:
        raise VarcasError(f"{path}: missing ncu metrics: {', '.join(missing)}; capture with: {NCU_COMMAND}")
    return {"header": header, "id": index["ID"], "name": index["Kernel Name"], "bytes": (index[DRAM_READ], index[DRAM_WRITE]),
            "time": index[DURATION], "sass": [(i, w) for i, _, w in sass], "tensor": tensor}


def _scales(units: list[str], columns: dict, path, line: int) -> dict:
    """Column index -> factor to base units (bytes, seconds, counts), from the units row."""
    kinds = {i: "bytes" for i in columns["bytes"]} | {columns["time"]: "time"}
    kinds |= {i: "count" for i, _ in (*columns["sass"], *columns["tensor"])}
    out = {i: _scale(units[i].strip(), kind) for i, kind in kinds.items()}
    for i, scale in out.items():
        if scale is None:
            raise VarcasError(f"{path} line {line}: unit {units[i].strip()!r} of {columns['header'][i]} "
                              f"is not a {kinds[i]} unit")
    return out


def _scale(unit: str, kind: str) -> float | None:
    """Factor from `unit` to base units in a bytes, time or count column; None if it is none of those."""
    if kind == "time":
        return _TIME.get(unit)
    match = _UNIT[kind].fullmatch(unit)
    return _PREFIX[match.group(1)] if match else None


def _value(row: list[str], i: int, scale: float, where: str, required: bool) -> float:
    """One cell in base units: thousands separators dropped, "n/a" or empty is 0 unless required."""
    raw = row[i].strip()
    if raw in ("", "n/a"):
        if required:
            raise VarcasError(f"{where}: no value ({raw or 'empty'})")
        return 0.0
    try:
        value = float(raw.replace(",", "")) * scale
    except ValueError:
        raise VarcasError(f"{where}: {raw[:40]!r} is not a number") from None
    if not (math.isfinite(value) and value >= 0):
        raise VarcasError(f"{where}: {raw[:40]!r} is not a count >= 0")
    return value


def _launch(row: list[str], columns: dict, scales: dict, where: str) -> Launch:
    """One data row as a Launch; a zero duration cannot be placed on a roofline."""
    name = row[columns["name"]]

    def value(i: int, required: bool = False) -> float:
        return _value(row, i, scales[i], f"{where}, kernel {name[:60]!r}, {columns['header'][i]}", required)

    time_s = value(columns["time"], True)
    if time_s == 0:
        raise VarcasError(f"{where}: kernel {name[:60]!r} has a zero {DURATION}")
    return Launch(name, time_s, sum(value(i, True) for i in columns["bytes"]),
                  sum(w * value(i) for i, w in columns["sass"]),
                  tuple((dtype, value(i)) for i, dtype in columns["tensor"]))
