"""The roofline explanation of a sweep or of load runs: for each configuration, what the roofline
model predicts for decode, beside what the run measured.

Prediction (labelled as such everywhere it is shown): a decode step of max_num_seqs sequences
(the configuration's ceiling) at the run's mean context (mean prompt + half the mean output),
from varcas.roofline with its realistic efficiencies (the simulator's own where the run was
simulated): arithmetic intensity, attainable FLOP/s, bound, tokens/s.
Measurement: the run's measured decode point (measured.decode_point: the step time from the ITL
median, the batch the server ran, achieved tokens/s, FLOP/s and bytes/s, their fractions of the
GPU's peaks, and the model's prediction for that same step), and its steady-window output
tokens/s. measured_fraction is that output tokens/s over the decode-only prediction at the batch
reached: it counts prefill time and idle time against the server, so it is at most about 1 and
well below 1 on an under-loaded server.
"""
from __future__ import annotations

from .. import roofline
from ..errors import VarcasError
from .digest import Digest
from .measured import context_of, decode_point

V0_MAX_NUM_SEQS = 256  # vLLM's before 0.32's GPU-dependent defaults (the simulator's --scheduler v0)
EFFICIENCIES = ("bw_efficiency", "compute_efficiency")  # the simulator's settings that are Hardware's fields


def batch_of(params: dict, sim: dict, gpu: roofline.GPU) -> int:
    """The configuration's max_num_seqs: its param, else the simulator's setting, else vLLM 0.32's
    default on this GPU (256, or 1024 on 70 GiB and larger GPUs but A100s; 256 with --scheduler v0)."""
    default = V0_MAX_NUM_SEQS if sim.get("scheduler") == "v0" else roofline.vllm_batch_defaults(gpu)[1]
    value = params.get("max_num_seqs", sim.get("max_num_seqs", default))
    try:
        return max(1, int(value))
    except ValueError:
        raise VarcasError(f"max_num_seqs must be an integer, got {value!r}") from None


def hardware_of(gpu: str, settings: dict) -> roofline.Hardware:
    """The GPU with the efficiencies and per-step overhead a simulated run set (its settings as the
    simulator records them: sim.Setup.params or a sweep's sim flags and params), roofline's defaults otherwise."""
    efficiency = {k: float(settings[k]) for k in EFFICIENCIES if settings.get(k) is not None}
    if settings.get("step_overhead_ms") is not None:
        efficiency["step_overhead_s"] = float(settings["step_overhead_ms"]) / 1e3
    return roofline.hardware(gpu, settings.get("gpu_file"), **efficiency)


def explain(rows: list[dict], digests: dict[str, Digest], model: str, gpu: str, quant: str,
            sim: dict | None = None) -> dict:
    """Hardware ceilings plus one prediction-vs-measurement entry per measured row (digests: row
    config -> the digest of its run)."""
    sim = sim or {}
    m = roofline.model(model, quant)
    points = []
    for r in rows:
        d = digests.get(r["config"])
        if "metrics" not in r or d is None or d.mean_input_tokens is None:
            continue
        hw = hardware_of(gpu, {**sim, **r["params"]})
        batch = batch_of(r["params"], sim, hw.gpu)
        context = context_of(d)
        ceiling = roofline.decode(hw, m, batch, context)
        pre = roofline.prefill(hw, m, 1, max(1, round(d.mean_input_tokens)))
        point = decode_point(d, hw, m, batch)
        output = r["metrics"]["output_throughput"]
        points.append({
            "config": r["config"], "batch": batch, "context": context,
            "decode_ai": ceiling.ai, "decode_attainable_flops": ceiling.attainable, "decode_bound": ceiling.bound,
            "predicted_tokens_per_s": ceiling.realistic_tokens_per_s,
            "measured_tokens_per_s": output,
            "measured_fraction": None if output is None or point is None else output / point["predicted_tokens_per_s"],
            "measured": point,
            "prefill_ai": pre.ai, "prefill_attainable_flops": pre.attainable, "prefill_bound": pre.bound,
            "prompt": pre.length,
        })
    hw = hardware_of(gpu, sim)
    unit = roofline.decode(hw, m, 1, 1)  # its peak and ridge are the model's precision's
    return {"gpu": hw.gpu.name, "model": m.config.name, "precision": m.precision.describe(),
            "peak_flops": unit.peak, "bandwidth": hw.gpu.bandwidth, "ridge": unit.ridge, "points": points}
