"""Text and JSON rendering of roofline results for `varcas roofline`.

Text: the hardware and model card (peak, bandwidth, ridge, parameters, weight and KV memory),
the phase table, the decode-vs-batch summary and, on request, per-operator tables; for kernels
measured by Nsight Compute (ncu.py), a table per class and per kernel. JSON: the same numbers in
SI units (FLOPs, bytes, seconds) so other tools need no parsing of text.
Weight memory is reported in bytes and bits per parameter, never as "effective parameters".
"""
from __future__ import annotations

from .analysis import DecodeSweep, MemoryReport, PhaseResult
from .gpus import Hardware
from .models import Model
from .ncu import KernelReport, Stats


def _si(value: float, unit: str) -> str:
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def _table(headers: list[str], rows: list[list[str]], left: int = 0) -> list[str]:
    """Columns padded to their widest cell; the first `left` columns (names) align left."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    head = line(headers)
    return [head, "-" * len(head)] + [line(r) for r in rows]


def card(hw: Hardware, m: Model, mem: MemoryReport) -> list[str]:
    """The two-column hardware / model box."""
    g, c, p = hw.gpu, m.config, m.precision
    peak = g.peak(p.act)
    left = [f"GPU: {g.display_name} ({g.name})",
            f"Peak {p.act}: {peak / 1e12:.1f} TFLOPS dense",
            f"Memory BW: {g.bandwidth / 1e9:.0f} GB/s",
            f"Ridge point: {peak / g.bandwidth:.1f} FLOP/byte",
            f"Memory: {g.memory_bytes / 2**30:.1f} GiB ({g.exposed_memory_bytes / 2**30:.2f} exposed)",
            f"Realistic: {hw.bw_efficiency:.0%} BW, {hw.compute_efficiency:.0%} FLOPs, "
            f"+{hw.step_overhead_s * 1e3:.2g} ms/step"]
    kv_seq = mem.kv_bytes_per_token * mem.context
    right = [f"Model: {c.name}" + (f" ({c.experts} experts, top-{c.top_k})" if c.experts else ""),
             f"Parameters: {c.params / 1e9:.2f} B ({c.params:,})",
             f"Precision: {p.describe()}",
             f"Weights: {mem.weight_bytes / 1e9:.2f} GB ({8 * mem.weight_bytes / c.params:.2f} bits/param)",
             f"KV cache: {mem.kv_bytes_per_token:,} B/token; {kv_seq / 1e9:.2f} GB/seq @ {mem.context}",
             (f"Fits: {mem.max_sequences} seqs @ {mem.context} (util {mem.gpu_memory_utilization:.2f})"
              if mem.fits else f"Does not fit: weights exceed {mem.gpu_memory_utilization:.0%} of memory")]
    marks = ["", "├── ", "├── ", "├── ", "├── ", "└── "]
    left = [mk + t for mk, t in zip(marks, left)]
    right = [mk + t for mk, t in zip(marks, right)]
    wl, wr = max(map(len, left)) + 2, max(map(len, right)) + 2
    out = ["┌" + "─" * wl + "┬" + "─" * wr + "┐"]
    out += [f"│ {a:<{wl - 1}}│ {b:<{wr - 1}}│" for a, b in zip(left, right)]
    return out + ["└" + "─" * wl + "┴" + "─" * wr + "┘"]


def phase_rows(results: list[PhaseResult]) -> list[str]:
    headers = ["phase", "B", "S|C", "FLOPs", "bytes", "AI", "attain TFLOPS", "% peak", "bound",
               "time ms", "bound ms", "real ms", "tok/s", "real tok/s"]
    rows = [[r.phase, str(r.batch), str(r.length), _si(r.flops, ""), _si(r.bytes, "B"),
             f"{r.ai:.1f}", f"{r.attainable / 1e12:.2f}", f"{r.pct_of_peak:.1f}", r.bound,
             f"{r.time_s * 1e3:.2f}", f"{r.bound_time_s * 1e3:.2f}", f"{r.realistic_time_s * 1e3:.2f}",
             f"{r.tokens_per_s:,.0f}", f"{r.realistic_tokens_per_s:,.0f}"] for r in results]
    return _table(headers, rows)


def op_rows(r: PhaseResult) -> list[str]:
    headers = ["operator", "x", "FLOPs", "bytes", "AI", "bound", "time ms", "real ms", "% time"]
    rows = [[o.name, str(o.count), _si(o.flops, ""), _si(o.bytes, "B"), f"{o.ai:.1f}", o.bound,
             f"{o.time_s * 1e3:.3f}", f"{o.realistic_time_s * 1e3:.3f}", f"{100 * o.time_s / r.time_s:.1f}"]
            for o in r.ops]
    length = f"{'S' if r.phase == 'prefill' else 'C'}={r.length}"
    title = f"{r.phase} B={r.batch} {length} (x = instances per step)"
    return [title] + _table(headers, rows)


def sweep_summary(s: DecodeSweep, full: bool) -> list[str]:
    n = s.batch.size
    turn = (f"turns compute-bound at B={s.compute_bound_batch}" if s.compute_bound_batch
            else f"stays memory-bound up to B={n} (KV reads grow with B)")
    target = f" within {s.latency_target_s * 1e3:g} ms/token" if s.latency_target_s else ""
    best = (f"best B={s.best_batch}{target}: {s.tokens_per_s[s.best_batch - 1]:,.0f} tok/s "
            f"({s.realistic_time_s[s.best_batch - 1] * 1e3:.2f} ms/step)" if s.best_batch
            else f"no batch meets the limits{target}")
    out = [f"decode C={s.context}: {turn}; KV fits {s.max_sequences} seqs; {best}"]
    if full:
        shown = [b for b in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048) if b <= n]
        rows = [[str(b), f"{s.time_s[b - 1] * 1e3:.2f}", f"{s.realistic_time_s[b - 1] * 1e3:.2f}",
                 f"{s.tokens_per_s[b - 1]:,.0f}", "yes" if b <= s.max_sequences else "no"] for b in shown]
        out += _table(["B", "step ms", "real ms", "real tok/s", "KV fits"], rows)
    return out


def gpu_line(hw: Hardware, dtype: str) -> list[str]:
    """The GPU alone, for a roofline of measured kernels without a model."""
    g = hw.gpu
    return [f"GPU: {g.display_name} ({g.name}); peak {dtype} {g.peak(dtype) / 1e12:.1f} TFLOPS dense; "
            f"memory BW {g.bandwidth / 1e9:.0f} GB/s; ridge point {g.ridge(dtype):.1f} FLOP/byte"]


def gpu_json(hw: Hardware, dtype: str) -> dict:
    """The GPU's figures in SI units, the ridge point at `dtype`."""
    g = hw.gpu
    return {"name": g.name, "display_name": g.display_name, "memory_bytes": g.memory_bytes,
            "exposed_memory_bytes": g.exposed_memory_bytes, "bandwidth_bytes_per_s": g.bandwidth, "peak_flops": dict(g.peaks),
            "ridge_flop_per_byte": g.ridge(dtype), "source": g.source, "confidence": g.confidence}


def _short(name: str, width: int = 60) -> str:
    """A kernel name fit for a table: no "void ", anonymous namespaces or arguments, at most `width` characters."""
    name = name.removeprefix("void ").replace("(anonymous namespace)::", "").split("(")[0] or name
    return name if len(name) <= width else name[:width - 3] + "..."


def _stats_cells(s: Stats, total_s: float) -> list[str]:
    roof = s.roof_flops_per_s
    return [str(s.launches), f"{100 * s.time_s / total_s:.1f}", f"{s.time_s * 1e6:,.1f}",
            "-" if s.ai is None else f"{s.ai:.1f}", f"{s.flops_per_s / 1e12:.3g}", f"{s.bytes_per_s / 1e9:,.0f}",
            "-" if roof is None else f"{roof / 1e12:.3g}", f"{100 * s.fraction_of_roof:.0f}"]


def kernel_rows(r: KernelReport) -> list[str]:
    """Measured kernels per class, then per kernel: time share, AI, achieved rates, roof at that AI."""
    stats = ["launches", "% time", "time us", "AI", "TFLOP/s", "GB/s", "roof TFLOP/s", "% roof"]
    title = (f"Kernels measured by Nsight Compute ({r.source}): {r.time_s * 1e6:,.1f} us of GPU time; "
             f"roof = min(peak of the kernel's dtype, AI x {r.bandwidth / 1e9:.0f} GB/s)")
    groups = _table(["class", *stats], [[g.name, *_stats_cells(g, r.time_s)] for g in r.groups], left=1)
    kernels = _table(["kernel", "class", "dtype", *stats],
                     [[_short(k.name), k.kind, k.dtype, *_stats_cells(k, r.time_s)] for k in r.kernels], left=3)
    return [title] + groups + [""] + kernels


def _stats_json(s: Stats, total_s: float) -> dict:
    return {"name": s.name, "class": s.kind, "launches": s.launches, "dtype": s.dtype, "peak_flops": s.peak_flops,
            "time_s": s.time_s, "time_share": s.time_s / total_s, "flops": s.flops, "tensor_flops": s.tensor_flops,
            "bytes": s.bytes, "ai": s.ai, "flops_per_s": s.flops_per_s, "bytes_per_s": s.bytes_per_s,
            "roof_flops_per_s": s.roof_flops_per_s, "roof_time_s": s.roof_time_s,
            "fraction_of_roof": s.fraction_of_roof}


def kernels_json(r: KernelReport) -> dict:
    """The kernel tables in SI units; "ai" and "roof_flops_per_s" are null where no byte or FLOP was counted."""
    return {"source": r.source, "default_dtype": r.default_dtype, "bandwidth_bytes_per_s": r.bandwidth,
            "time_s": r.time_s, "groups": [_stats_json(g, r.time_s) for g in r.groups],
            "kernels": [_stats_json(k, r.time_s) for k in r.kernels]}


def to_json(hw: Hardware, m: Model, mems: list[MemoryReport], results: list[PhaseResult],
            sweeps: list[DecodeSweep]) -> dict:
    """Everything the text shows, in SI units."""
    c, p = m.config, m.precision
    return {
        "gpu": gpu_json(hw, p.act),
        "efficiency": {"bandwidth": hw.bw_efficiency, "compute": hw.compute_efficiency,
                       "step_overhead_s": hw.step_overhead_s},
        "model": {"name": c.name, "params": c.params, "embedding_params": c.embedding_params,
                  "layers": c.layers, "hidden": c.hidden, "heads": c.heads, "kv_heads": c.kv_heads,
                  "head_dim": c.head_dim, "intermediate": c.intermediate, "vocab": c.vocab,
                  "tied_embeddings": c.tied, "experts": c.experts, "top_k": c.top_k,
                  "attention": m.attention},
        "precision": {"name": p.name, "weights": p.weights, "activations": p.act, "kv": p.kv,
                      "base": p.base, "group_size": p.group_size},
        "memory": [vars(x) | {"fits": x.fits} for x in mems],
        "phases": [{k: v for k, v in vars(r).items() if k != "ops"}
                   | {"pct_of_peak": r.pct_of_peak, "tokens_per_s": r.tokens_per_s,
                      "realistic_tokens_per_s": r.realistic_tokens_per_s,
                      "ops": [vars(o) for o in r.ops]} for r in results],
        "decode_sweeps": [{"context": s.context, "compute_bound_batch": s.compute_bound_batch,
                           "max_sequences": s.max_sequences, "latency_target_s": s.latency_target_s,
                           "best_batch": s.best_batch, "batch": s.batch.tolist(),
                           "time_s": s.time_s.tolist(), "realistic_time_s": s.realistic_time_s.tolist(),
                           "tokens_per_s": s.tokens_per_s.tolist()} for s in sweeps],
    }
