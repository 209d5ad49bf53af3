"""The roofline explanation of a batch-size sweep: for each configuration, what the roofline
model predicts for decode at its batch size, beside what the run measured.

Prediction (labelled as such everywhere it is shown): a decode step of B sequences at the
run's mean context (mean prompt + half the mean output), from varcas.roofline with its
realistic efficiencies: arithmetic intensity, attainable FLOP/s, bound, tokens/s. B is the
configuration's max_num_seqs (the ceiling) and, separately, the batch the server actually ran:
its own mean vllm:num_requests_running over the window where the run scraped /metrics
(achieved_batch_source "server"), else the run's mean number of requests in flight capped at
max_num_seqs ("in flight": an upper bound, since requests waiting in its queue are in flight too).
Measurement: the steady window's output tokens/s. The measured fraction is measured tokens/s
over the decode-only prediction at the achieved batch; it counts prefill time and idle time
against the server, so it is at most about 1 and well below 1 on an under-loaded server.
The measured point on the roofline plot is measured tokens/s x the model's decode FLOPs per
token, placed at the model's AI for the achieved batch (no hardware counters are read).
"""
from __future__ import annotations

from .. import roofline
from ..errors import VarcasError

DEFAULT_MAX_NUM_SEQS = 256  # vLLM's


def batch_of(params: dict, sim: dict) -> int:
    """The configuration's max_num_seqs (param, else simulator flag, else vLLM's default)."""
    value = params.get("max_num_seqs", sim.get("max_num_seqs", DEFAULT_MAX_NUM_SEQS))
    try:
        return max(1, int(value))
    except ValueError:
        raise VarcasError(f"max_num_seqs must be an integer, got {value!r}") from None


def explain(rows: list[dict], model: str, gpu: str, quant: str, sim: dict | None = None) -> dict:
    """Hardware ceilings plus one prediction-vs-measurement entry per measured row."""
    sim = sim or {}
    hw = roofline.hardware(gpu)
    m = roofline.model(model, quant)
    points = []
    for r in rows:
        if "metrics" not in r or r["mean_input_tokens"] is None:
            continue
        batch = batch_of(r["params"], sim)
        context = max(1, round(r["mean_input_tokens"] + r["mean_output_tokens"] / 2))
        running = r.get("server_running")
        source = "server" if running is not None else "in flight"
        achieved = min(batch, max(1, round(running if running is not None else (r["mean_in_flight"] or 1))))
        ceiling = roofline.decode(hw, m, batch, context)
        at_load = roofline.decode(hw, m, achieved, context)
        pre = roofline.prefill(hw, m, 1, max(1, round(r["mean_input_tokens"])))
        measured = r["metrics"]["output_throughput"]
        points.append({
            "config": r["config"], "batch": batch, "context": context, "achieved_batch": achieved,
            "achieved_batch_source": source,
            "decode_ai": ceiling.ai, "decode_attainable_flops": ceiling.attainable, "decode_bound": ceiling.bound,
            "predicted_tokens_per_s": ceiling.realistic_tokens_per_s,
            "achieved_ai": at_load.ai, "predicted_tokens_per_s_achieved": at_load.realistic_tokens_per_s,
            "measured_tokens_per_s": measured,
            "measured_fraction": None if measured is None else measured / at_load.realistic_tokens_per_s,
            "measured_flops": None if measured is None else measured * at_load.flops / at_load.new_tokens,
            "prefill_ai": pre.ai, "prefill_attainable_flops": pre.attainable, "prefill_bound": pre.bound,
            "prompt": pre.length,
        })
    unit = roofline.decode(hw, m, 1, 1)  # its peak and ridge are the model's precision's
    return {"gpu": hw.gpu.name, "model": m.config.name, "precision": m.precision.describe(),
            "peak_flops": unit.peak, "bandwidth": hw.gpu.bandwidth, "ridge": unit.ridge, "points": points}
