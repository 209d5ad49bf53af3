"""Text and JSON rendering of roofline results for `varcas roofline`.

Text: the hardware and model card (peak, bandwidth, ridge, parameters, weight and KV memory),
the phase table, the decode-vs-batch summary and, on request, per-operator tables. JSON: the same
numbers in SI units (FLOPs, bytes, seconds) so other tools need no parsing of text.
Weight memory is reported in bytes and bits per parameter, never as "effective parameters".
"""
from __future__ import annotations

from .analysis import DecodeSweep, MemoryReport, PhaseResult
from .gpus import Hardware
from .models import Model


def _si(value: float, unit: str) -> str:
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.rjust(w) for h, w in zip(headers, widths))
    out = [line, "-" * len(line)]
    out += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    return out


def card(hw: Hardware, m: Model, mem: MemoryReport) -> list[str]:
    """The two-column hardware / model box."""
    g, c, p = hw.gpu, m.config, m.precision
    peak = g.peak(p.act)
    left = [f"GPU: {g.display_name} ({g.name})",
            f"Peak {p.act}: {peak / 1e12:.1f} TFLOPS dense",
            f"Memory BW: {g.bandwidth / 1e9:.0f} GB/s",
            f"Ridge point: {peak / g.bandwidth:.1f} FLOP/byte",
            f"Memory: {g.memory_bytes / 2**30:.1f} GiB",
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


def to_json(hw: Hardware, m: Model, mems: list[MemoryReport], results: list[PhaseResult],
            sweeps: list[DecodeSweep]) -> dict:
    """Everything the text shows, in SI units."""
    g, c, p = hw.gpu, m.config, m.precision
    return {
        "gpu": {"name": g.name, "display_name": g.display_name, "memory_bytes": g.memory_bytes,
                "bandwidth_bytes_per_s": g.bandwidth, "peak_flops": dict(g.peaks),
                "ridge_flop_per_byte": g.ridge(p.act), "source": g.source, "confidence": g.confidence},
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
