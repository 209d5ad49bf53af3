"""Measured points on the roofline: exact figures for hand-built digests (the model's FLOPs and
bytes from roofline.decode, the rest by hand), the inferred batch, vLLM's estimated counters
from a metrics.parquet, the rows the terminal and the report share, and the simulator's
bandwidth efficiency read back from its own runs."""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from varcas import metricsfile, roofline
from varcas.load.runner import LoadConfig
from varcas.optimize.render import print_comparison
from varcas.results.digest import Digest, Timeline, digest
from varcas.results.explain import explain
from varcas.results.measured import (
    VALIDATION_HEADERS,
    VLLM_HEADERS,
    decode_point,
    validation_headers,
    validation_rows,
)
from varcas.sim import SimConfig, resolve
from varcas.targets.offline import simulate

HW = roofline.hardware("t4")  # 65 TFLOP/s fp16 (AWQ matmuls run in fp16), 320 GB/s
M = roofline.model("llama-2-7b", "awq")
START_NS = 10**12
WINDOW = {"start_s": 10.0, "end_s": 20.0, "source": "auto"}


def make_digest(path="/nowhere", *, itl_ms=40.0, running=None, in_flight=3.0, scope="steady", tokens=(200.0, 100.0),
                output_throughput=150.0) -> Digest:
    """A digest with what decode_point reads: the window's ITL median, the server's running batch
    (None: no /metrics), the mean in flight and the mean input and output tokens."""
    block = {"median_itl_ms": itl_ms, "output_throughput": output_throughput, "request_throughput": 1.0}
    summary = {"steady": block if scope == "steady" else None, "window": WINDOW if scope == "steady" else None,
               "server": None if running is None else {"running": {"mean": running}},
               "verdict": {"overloaded": False, "steady_state": scope == "steady", "text": "Steady.", "reasons": []},
               "warnings": [], **({} if scope == "steady" else block)}
    return Digest(key={}, run="run", path=str(path), workload="chat_medium", scope=scope, summary=summary,
                  offered_rps=1.0, mean_in_flight=in_flight, mean_input_tokens=tokens[0], mean_output_tokens=tokens[1],
                  cdf_percents=(0.0, 100.0), cdf_ms={"ttft": None, "tpot": None, "itl": None, "e2el": None},
                  timeline=Timeline((0.0,), (1,), (1,), (1,), (100,), (0,)))


def test_a_servers_batch_and_the_itl_median_give_the_measured_point_exactly():
    p = decode_point(make_digest(running=8.0), HW, M, 16)
    step = roofline.decode(HW, M, 8, 250)  # context: 200 in + 100 out / 2
    assert (p["batch"], p["batch_source"], p["context"], p["step_s"]) == (8.0, "server", 250, 0.04)
    assert p["tokens_per_s"] == pytest.approx(200.0)  # 8 sequences, one token each per 40 ms step
    assert (p["work_source"], p["vllm"]) == ("model", None)
    assert (p["flops_per_step"], p["bytes_per_step"]) == (step.flops, step.bytes)
    assert p["flops_per_s"] == pytest.approx(step.flops / 0.04)
    assert p["bytes_per_s"] == pytest.approx(step.bytes / 0.04)
    assert p["ai"] == p["model_ai"] == pytest.approx(step.flops / step.bytes)
    assert p["compute_fraction"] == pytest.approx(step.flops / 0.04 / 65e12)
    assert p["bandwidth_fraction"] == pytest.approx(step.bytes / 0.04 / 320e9)
    assert p["predicted_step_s"] == pytest.approx(step.realistic_time_s)
    assert p["predicted_tokens_per_s"] == pytest.approx(8 / step.realistic_time_s)
    assert p["step_ratio"] == pytest.approx(0.04 / step.realistic_time_s)


def test_a_fractional_batch_interpolates_the_models_counts_between_whole_batches():
    p = decode_point(make_digest(running=6.4), HW, M, 16)
    six, seven = roofline.decode(HW, M, 6, 250), roofline.decode(HW, M, 7, 250)
    assert p["batch"] == 6.4 and p["tokens_per_s"] == pytest.approx(6.4 / 0.04)
    assert p["model_flops_per_step"] == pytest.approx(0.6 * six.flops + 0.4 * seven.flops)
    assert p["model_bytes_per_step"] == pytest.approx(0.6 * six.bytes + 0.4 * seven.bytes)
    assert p["predicted_step_s"] == pytest.approx(0.6 * six.realistic_time_s + 0.4 * seven.realistic_time_s)


@pytest.mark.parametrize("in_flight, max_batch, batch", [(14.6, 16, 14.6), (14.6, 8, 8.0), (0.3, 16, 1.0)])
def test_without_metrics_the_batch_is_inferred_from_requests_in_flight(in_flight, max_batch, batch):
    p = decode_point(make_digest(in_flight=in_flight), HW, M, max_batch)
    assert (p["batch"], p["batch_source"]) == (batch, "inferred")


def test_without_a_steady_window_the_whole_runs_itl_median_is_used():
    p = decode_point(make_digest(itl_ms=25.0, running=4.0, scope="whole"), HW, M, 16)
    assert p["step_s"] == 0.025 and p["tokens_per_s"] == pytest.approx(160.0)


def test_no_token_gap_no_measured_point():
    assert decode_point(make_digest(itl_ms=None), HW, M, 16) is None


def write_run(path, scrapes) -> None:
    """run.json and a metrics.parquet of [(seconds after START_NS, {name: value}), ...]."""
    path.mkdir()
    (path / "run.json").write_text(json.dumps({"schema_version": 1, "start_ns": START_NS}))
    batches = [metricsfile.batch(START_NS + round(t * 1e9), list(values), ['{"engine":"0"}'] * len(values),
                                 list(values.values())) for t, values in scrapes]
    pq.write_table(pa.Table.from_batches(batches, schema=metricsfile.METRICS_SCHEMA), path / "metrics.parquet")


VLLM = ("vllm:estimated_flops_per_gpu_total", "vllm:estimated_read_bytes_per_gpu_total",
        "vllm:estimated_write_bytes_per_gpu_total", "vllm:generation_tokens_total", "vllm:prompt_tokens_total")


def counters(flops, read, write, generated, prompt) -> dict:
    return dict(zip(VLLM, (flops, read, write, generated, prompt)))


def test_vllms_estimated_counters_over_the_window_set_the_points_work(tmp_path):
    # the window is 10-20 s: counted between the scrapes that bracket it (9 s and 21 s), not before or after
    write_run(tmp_path / "run", [(5.0, counters(0.0, 0.0, 0.0, 0.0, 0.0)),
                                 (9.0, counters(1e15, 1e13, 1e12, 1000.0, 400.0)),
                                 (15.0, counters(2e15, 3e13, 2e12, 6000.0, 2400.0)),
                                 (21.0, counters(3.5e15, 5e13, 3e12, 11000.0, 4400.0)),
                                 (30.0, counters(9e15, 9e13, 9e12, 99000.0, 9400.0))])
    p = decode_point(make_digest(tmp_path / "run", running=8.0), HW, M, 16)
    v = p["vllm"]
    assert {k: v[k] for k in ("flops", "read_bytes", "write_bytes", "generation_tokens", "prompt_tokens")} == \
        {"flops": 2.5e15, "read_bytes": 4e13, "write_bytes": 2e12, "generation_tokens": 10000.0, "prompt_tokens": 4000.0}
    # the model's count of the same tokens: 4000 prompt tokens are 20 prefills of 200 tokens, each of which
    # sampled one of the 10000 generated tokens; the other 9980 came from decode steps of 8 at context 250
    step, prefill = roofline.decode(HW, M, 8, 250), roofline.prefill(HW, M, 1, 200)
    assert v["model_flops"] == pytest.approx(9980 / 8 * step.flops + 20 * prefill.flops)
    assert v["model_bytes"] == pytest.approx(9980 / 8 * step.bytes + 20 * prefill.bytes)
    assert v["flops_ratio"] == pytest.approx(2.5e15 / v["model_flops"])
    assert v["bytes_ratio"] == pytest.approx(4.2e13 / v["model_bytes"])
    # the point counts work as vLLM does: the model's decode step scaled by vLLM / model; the model's own beside it
    assert p["work_source"] == "vllm" and p["model_flops_per_step"] == step.flops
    assert p["flops_per_step"] == pytest.approx(step.flops * v["flops_ratio"])
    assert p["bytes_per_s"] == pytest.approx(step.bytes * v["bytes_ratio"] / 0.04)
    assert p["ai"] == pytest.approx(p["model_ai"] * v["flops_ratio"] / v["bytes_ratio"])
    assert p["compute_fraction"] == pytest.approx(p["flops_per_step"] / 0.04 / 65e12)
    assert p["predicted_step_s"] == pytest.approx(step.realistic_time_s)  # the prediction is the model's alone


def test_without_vllms_counters_the_model_counts_the_work(tmp_path):
    write_run(tmp_path / "run", [(t, {"vllm:generation_tokens_total": t * 100, "vllm:prompt_tokens_total": t * 40,
                                      "vllm:num_requests_running": 8.0}) for t in (9.0, 21.0)])
    p = decode_point(make_digest(tmp_path / "run", running=8.0), HW, M, 16)
    assert (p["work_source"], p["vllm"]) == ("model", None)


def test_counters_that_did_not_grow_leave_the_work_to_the_model(tmp_path):
    """vLLM exports the counters but estimated nothing (its MFU metrics off): no ratio of zero."""
    write_run(tmp_path / "run", [(9.0, counters(0.0, 0.0, 0.0, 1000.0, 400.0)),
                                 (21.0, counters(0.0, 0.0, 0.0, 11000.0, 4400.0))])
    p = decode_point(make_digest(tmp_path / "run", running=8.0), HW, M, 16)
    assert (p["work_source"], p["vllm"]) == ("model", None)


def test_explain_puts_the_point_beside_the_prediction_with_the_simulators_efficiencies():
    rows = [{"config": "max_num_seqs-16", "params": {"max_num_seqs": "16"}, "metrics": {"output_throughput": 150.0}}]
    sim = {"bw_efficiency": "0.5", "step_overhead_ms": 0}
    roof = explain(rows, {"max_num_seqs-16": make_digest(running=8.0)}, "llama-2-7b", "t4", "awq", sim)
    (point,) = roof["points"]
    step = roofline.decode(roofline.hardware("t4", bw_efficiency=0.5, step_overhead_s=0.0), M, 8, 250)
    assert point["measured"]["predicted_step_s"] == pytest.approx(step.realistic_time_s)
    assert point["measured_fraction"] == pytest.approx(150.0 / (8 / step.realistic_time_s))
    assert (point["batch"], point["context"], point["prompt"]) == (16, 250, 200)
    assert (roof["peak_flops"], roof["bandwidth"]) == (65e12, 320e9)


def points_for(**runs) -> list[dict]:
    rows = [{"config": c, "params": {"max_num_seqs": "16"}, "metrics": {"output_throughput": 150.0}} for c in runs]
    return explain(rows, runs, "llama-2-7b", "t4", "awq")["points"]


def test_the_validation_rows_say_batch_source_times_rates_and_fractions():
    (p,) = points_for(a=make_digest(running=8.0))
    x = p["measured"]
    (row,) = validation_rows([p])
    assert validation_headers([p]) == list(VALIDATION_HEADERS)
    assert row[:3] == ["a", "8 (server)", f"{x['predicted_step_s'] * 1e3:.3g}"]
    assert row[4:7] == ["40", "200", f"{x['step_ratio']:.2f}x"]
    assert row[8] == f"{x['bandwidth_fraction']:.0%}" and row[10] == f"{x['compute_fraction']:.1%}"
    assert row[-1] == "model"


def test_vllm_columns_appear_when_a_run_had_its_counters(tmp_path):
    write_run(tmp_path / "run", [(9.0, counters(1e15, 1e13, 1e12, 1000.0, 400.0)),
                                 (21.0, counters(3.5e15, 5e13, 3e12, 11000.0, 4400.0))])
    points = points_for(a=make_digest(tmp_path / "run", running=8.0), b=make_digest(running=4.0))
    assert validation_headers(points) == [*VALIDATION_HEADERS, *VLLM_HEADERS]
    with_vllm, without = validation_rows(points)
    v = points[0]["measured"]["vllm"]
    assert with_vllm[-3:] == ["vLLM", f"{v['flops_ratio']:.2f}", f"{v['bytes_ratio']:.2f}"]
    assert without[-3:] == ["model", "-", "-"]


def test_the_terminal_prints_the_validation_rows_after_varcas_optimize():
    points = points_for(a=make_digest(running=8.0), b=make_digest(in_flight=3.0))
    roof = {"model": "llama-2-7b", "precision": "awq", "gpu": "t4", "points": points}
    console = Console(record=True, width=300)
    print_comparison({"baseline": "a", "workloads": {"w": {"rows": [], "pareto": [], "recommendations": [],
                                                           "roofline": roof}}}, console)
    out = console.export_text()
    assert "validation of roofline predictions" in out
    for row in validation_rows(points):
        assert any(all(c in line for c in row) for line in out.splitlines()), row


def test_on_the_simulator_decode_moves_bytes_at_its_bandwidth_efficiency(tmp_path):
    """The simulator times a step as the sum over operators of max(FLOPs / (peak x compute eff.),
    bytes / (bandwidth x bandwidth eff.)) plus the overhead (roofline.step_time_s). With no overhead
    and every operator memory-bound (checked below), a decode step of b sequences takes exactly
    bytes / (bandwidth x 0.5), so the measured fraction is 0.5 x bytes(estimated batch and mean
    context) / bytes(the median-ITL step's own). Only the estimate differs from the step: the
    time-averaged running batch against the token-weighted median step, pushed up by gaps that span
    a prefill. Llama-3-8B bf16 moves 16 GB of weights and 128 KiB of KV per context token, about
    8 GB of KV at this load's ~100 sequences of ~640 tokens: the 5-15% batch error that leaves
    moves the bytes by under 5% (measured: 1-3% at 15-25 req/s), hence rel=0.05."""
    setup = resolve(SimConfig(model="llama-3-8b", gpu="h100", quant="bf16", bw_efficiency=0.5,
                              compute_efficiency=0.9, step_overhead_ms=0.0))
    run = simulate(setup, LoadConfig(rps=20.0, duration_s=60.0, input_len=512, output_len=256,
                                     out=str(tmp_path / "run"), quiet=True)).run_dir
    d = digest(run, store=False)
    p = decode_point(d, setup.hw, setup.model, setup.max_num_seqs)
    assert d.scope == "steady" and not d.summary["verdict"]["overloaded"] and p["batch"] > 40
    step = roofline.decode(setup.hw, setup.model, round(p["batch"]), p["context"])
    assert step.realistic_time_s == pytest.approx(step.bytes / (setup.hw.gpu.bandwidth * 0.5))  # memory-bound
    assert p["bandwidth_fraction"] == pytest.approx(0.5, rel=0.05)
    assert p["step_ratio"] == pytest.approx(1.0, rel=0.05)


def test_the_batch_of_an_unset_max_num_seqs_is_vllms_default_on_that_gpu():
    from varcas import roofline
    from varcas.results.explain import batch_of

    assert batch_of({}, {}, roofline.gpu("t4")) == 256
    assert batch_of({}, {}, roofline.gpu("h100")) == 1024
    assert batch_of({}, {}, roofline.gpu("a100-80gb")) == 256  # vLLM keeps A100s on the small defaults
    assert batch_of({}, {"scheduler": "v0"}, roofline.gpu("h100")) == 256
    assert batch_of({"max_num_seqs": "8"}, {"max_num_seqs": 4}, roofline.gpu("h100")) == 8
    assert batch_of({}, {"max_num_seqs": 4}, roofline.gpu("h100")) == 4
