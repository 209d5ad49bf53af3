"""Measured points on the roofline: what a run's decode steps achieved, from its own timings,
placed beside what varcas.roofline predicts for the same steps.

Per run, over its steady window (the whole run where it has none):
  step time  the window's ITL median. A running sequence gets one token per engine step, so
             the typical gap between its tokens is one decode step. The median, not the mean:
             gaps that also span a prefill step or a preemption form the upper tail and would
             count that work as decode time.
  batch      the server's own mean vllm:num_requests_running over the window (source "server"),
             else the window's mean requests in flight (source "inferred": by Little's law that
             is throughput x mean E2E; it counts requests queued or prefilling too, so it is an
             upper bound on the decode batch), kept within [1, max_num_seqs]. Both are time
             averages: on a server idle part of the time they understate the batch of the steps
             that ran.
  context    mean input + half the mean output tokens: a sequence's context grows by one token
             per step, so over its decode it averages its prompt plus half its output.
  work       FLOPs and bytes of one decode step of that batch at that context: the roofline
             model's own counts (roofline.decode). A fractional batch takes the two whole
             batches around it, interpolated; each count is linear in the batch (MoE expert
             reads excepted), so this is the model's count, not a new formula.
Achieved: tokens/s = batch / step; FLOP/s = step FLOPs / step; bytes/s = step bytes / step;
AI = FLOPs / bytes; their fractions of the GPU's dense peak for the model's matmul dtype and of
its datasheet bandwidth (no efficiency factor: these are fractions of the hardware). Beside
them, the model's realistic step time for the same batch and context (efficiencies and
per-step overhead included) and measured / predicted step time.

vLLM's own estimate of the work (vllm:estimated_flops_per_gpu_total, ..._read_bytes_...,
..._write_bytes_..., exported with --enable-mfu-metrics): where the run's metrics.parquet has
them, their increase over the window (metricsfile.counter_deltas, between the scrapes that
bracket it) is set against the model's count of the same work: the window's generated tokens
(vllm:generation_tokens_total) as decode steps of the batch at the context, one token of each
prompt sampled by its prefill, and its prompt tokens (vllm:prompt_tokens_total) as prefills of
the mean prompt, one per step. The counters cover prefill and decode alike, so the point uses
vLLM's accounting by scaling the model's decode step by vLLM / model (one factor per quantity
for both phases: an assumption). work_source says which count the achieved FLOP/s, bytes/s and
AI came from ("vllm" or "model"); the model's own counts and both ratios stay in the point.
vLLM counts per GPU: under tensor parallelism expect ratios near 1 / tensor_parallel_size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from .. import metricsfile, roofline, rundir
from ..analyze.catalog import BY_NAME, SERVER_METRICS
from .digest import Digest
from .labels import cell

ITL_MEDIAN = BY_NAME["itl"].key("median")  # median_itl_ms
_TOKENS = {m.name: m.sources[0] for m in SERVER_METRICS if m.name in ("generation_tokens", "prompt_tokens")}
VLLM_WORK = {"flops": "vllm:estimated_flops_per_gpu_total", "read_bytes": "vllm:estimated_read_bytes_per_gpu_total",
             "write_bytes": "vllm:estimated_write_bytes_per_gpu_total", **_TOKENS}


@dataclass(frozen=True)
class Work:
    """One decode step as the roofline model counts it, at a possibly fractional batch."""

    flops: float
    bytes: float
    realistic_s: float  # predicted step time: efficiencies and the per-step overhead included
    peak: float  # FLOP/s: the dense peak of the model's matmul dtype


def decode_work(hw: roofline.Hardware, m: roofline.Model, batch: float, context: int) -> Work:
    """roofline.decode at `batch` sequences, interpolated between the whole batches around a fractional one."""
    lo = max(1, math.floor(batch))
    low = roofline.decode(hw, m, lo, context)
    w = batch - lo
    if w <= 0:
        return Work(low.flops, low.bytes, low.realistic_time_s, low.peak)
    high = roofline.decode(hw, m, lo + 1, context)
    return Work((1 - w) * low.flops + w * high.flops, (1 - w) * low.bytes + w * high.bytes,
                (1 - w) * low.realistic_time_s + w * high.realistic_time_s, low.peak)


def scope_block(d: Digest) -> dict:
    """The summary block the run's figures come from: its steady window, else the whole run."""
    return d.summary["steady"] if d.scope == "steady" else d.summary


def batch_reached(d: Digest, max_batch: int) -> tuple[float, str]:
    """The mean decode batch and where it came from: the server's running requests ("server"),
    else the client's requests in flight ("inferred"), within [1, max_batch]."""
    running = ((d.summary.get("server") or {}).get("running") or {}).get("mean")
    batch, source = (running, "server") if running is not None else (d.mean_in_flight or 1.0, "inferred")
    return min(float(max_batch), max(1.0, batch)), source


def context_of(d: Digest) -> int:
    """A running sequence's mean context: mean input + half the mean output tokens (of a run with
    measured requests: callers check mean_input_tokens)."""
    # the token means are both set or both None (digest.compute: the same requests)
    assert d.mean_input_tokens is not None and d.mean_output_tokens is not None
    return max(1, round(d.mean_input_tokens + d.mean_output_tokens / 2))


def decode_point(d: Digest, hw: roofline.Hardware, m: roofline.Model, max_batch: int) -> dict | None:
    """The run's measured decode point (module docstring) beside the model's prediction for it;
    None when the run has no token gap (no request streamed two tokens)."""
    itl_ms = scope_block(d).get(ITL_MEDIAN)
    if not itl_ms or d.mean_input_tokens is None:
        return None
    step_s = itl_ms / 1e3
    batch, source = batch_reached(d, max_batch)
    context = context_of(d)
    model = decode_work(hw, m, batch, context)
    vllm = vllm_work(d, hw, m, batch, model)
    flops = model.flops * vllm["flops_ratio"] if vllm else model.flops
    moved = model.bytes * vllm["bytes_ratio"] if vllm else model.bytes
    return {
        "batch": batch, "batch_source": source, "context": context, "step_s": step_s,
        "tokens_per_s": batch / step_s, "predicted_step_s": model.realistic_s,
        "predicted_tokens_per_s": batch / model.realistic_s, "step_ratio": step_s / model.realistic_s,
        "work_source": "vllm" if vllm else "model", "flops_per_step": flops, "bytes_per_step": moved,
        "model_flops_per_step": model.flops, "model_bytes_per_step": model.bytes, "model_ai": model.flops / model.bytes,
        "flops_per_s": flops / step_s, "bytes_per_s": moved / step_s, "ai": flops / moved,
        "compute_fraction": flops / step_s / model.peak, "bandwidth_fraction": moved / step_s / hw.gpu.bandwidth,
        "vllm": vllm,
    }


def vllm_work(d: Digest, hw: roofline.Hardware, m: roofline.Model, batch: float, step: Work) -> dict | None:
    """vLLM's estimated work over the run's window beside the model's count of the same tokens, its
    decode steps being `step` (module docstring); None when the run's metrics lack the counters or
    they did not grow in the window (no token, or vLLM not estimating)."""
    got = window_deltas(d)
    if got is None or not (got["generation_tokens"] or got["prompt_tokens"]) \
            or got["flops"] <= 0 or got["read_bytes"] + got["write_bytes"] <= 0:
        return None
    assert d.mean_input_tokens is not None  # decode_point checked it
    prompt = max(1, round(d.mean_input_tokens))
    prefills = got["prompt_tokens"] / prompt
    steps = max(0.0, got["generation_tokens"] - prefills) / batch
    pre = roofline.prefill(hw, m, 1, prompt)
    model_flops = steps * step.flops + prefills * pre.flops
    model_bytes = steps * step.bytes + prefills * pre.bytes
    moved = got["read_bytes"] + got["write_bytes"]
    return {**got, "model_flops": model_flops, "model_bytes": model_bytes,
            "flops_ratio": got["flops"] / model_flops, "bytes_ratio": moved / model_bytes}


def window_deltas(d: Digest) -> dict | None:
    """Increase of each VLLM_WORK counter over the digest's scope (steady window, else the whole
    run), keyed as VLLM_WORK; None without metrics.parquet, without every counter, or when run.json
    has no start_ns to place the window on the metrics' clock."""
    run_dir = Path(d.path)
    table = metricsfile.read(run_dir)
    if table is None:
        return None
    exposed = set(pc.unique(table["name"].cast(pa.string())).to_pylist())
    if not exposed.issuperset(VLLM_WORK.values()):
        return None
    t0 = t1 = None
    if d.scope == "steady":
        start_ns = rundir.read_manifest(run_dir).get("start_ns")
        if start_ns is None:
            return None
        window = d.summary["window"]
        t0, t1 = start_ns + round(window["start_s"] * 1e9), start_ns + round(window["end_s"] * 1e9)
    grew = metricsfile.counter_deltas(table, tuple(VLLM_WORK.values()), t0, t1)
    return {key: grew[name] for key, name in VLLM_WORK.items()}


def batch_label(point: dict) -> str:
    """'6.4 (server)' or '14.6 (inferred)': the batch a run reached and where it came from."""
    return f"{cell(point['batch'], None)} ({point['batch_source']})"


VALIDATION_NOTE = ("Predicted: varcas's roofline model, realistic (efficiencies and per-step overhead), for one decode "
                   "step at the batch the run reached and its mean context (mean prompt + half the mean output). "
                   "Measured: the step time is the steady window's ITL median (one decode step as a running sequence "
                   "sees it); tokens/s = batch / step time. Batch: the server's mean running requests from its /metrics "
                   "(server), else the client's mean requests in flight (inferred: an upper bound, it counts queued and "
                   "prefilling requests). Achieved GB/s and TFLOP/s: one step's bytes and FLOPs / the measured step "
                   "time, as the roofline model counts them (model) or scaled to vLLM's own estimated counters (vLLM); "
                   "fractions are of the GPU's datasheet bandwidth and dense peak for the model's precision.")
VALIDATION_HEADERS = ("configuration", "batch (source)", "predicted step ms", "predicted tok/s", "measured step ms",
                      "measured tok/s", "measured / predicted step", "achieved GB/s", "of peak bandwidth",
                      "achieved TFLOP/s", "of peak compute", "AI, FLOP/byte", "work counted by")
VLLM_HEADERS = ("vLLM / model FLOPs", "vLLM / model bytes")


def validation_headers(points: list[dict]) -> list[str]:
    """The validation table's columns; vLLM's ratios only when some run had its counters."""
    return [*VALIDATION_HEADERS, *(VLLM_HEADERS if any((p["measured"] or {}).get("vllm") for p in points) else ())]


def validation_rows(points: list[dict], name=lambda p: p["config"]) -> list[list[str]]:
    """'Validation of roofline predictions': one row per explained configuration with a measured
    point (explain()'s points), as text; the terminal and the report both show these rows."""
    wide = len(validation_headers(points)) > len(VALIDATION_HEADERS)
    rows = []
    for p in points:
        x = p["measured"]
        if x is None:
            continue
        row = [name(p), batch_label(x), f"{x['predicted_step_s'] * 1e3:.3g}", cell(x["predicted_tokens_per_s"], None),
               f"{x['step_s'] * 1e3:.3g}", cell(x["tokens_per_s"], None), f"{x['step_ratio']:.2f}x",
               cell(x["bytes_per_s"] / 1e9, None), f"{x['bandwidth_fraction']:.0%}",
               f"{x['flops_per_s'] / 1e12:.3g}", f"{x['compute_fraction']:.1%}", f"{x['ai']:.3g}",
               "vLLM" if x["work_source"] == "vllm" else "model"]
        if wide:
            v = x["vllm"]
            row += [f"{v['flops_ratio']:.2f}", f"{v['bytes_ratio']:.2f}"] if v else ["-", "-"]
        rows.append(row)
    return rows
