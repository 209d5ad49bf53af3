"""Virtual time: the seed's findings emerging from the model, decode steps on the roofline,
determinism, and the run directory an offline simulation writes."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.cli_helpers import T4
from varcas import roofline
from varcas.analyze import load_run, summarize
from varcas.load.runner import LoadConfig
from varcas.rundir import read_manifest, read_requests
from varcas.sim import SimConfig, resolve
from varcas.targets.offline import STEPS_FILE, simulate

from .helpers import setup_with, virtual


def _offline(tmp_path, name, max_num_seqs, **load):
    setup = resolve(SimConfig(**T4, max_num_seqs=max_num_seqs))
    cfg = dict(workload="chat_medium", rps=20.0, duration_s=60.0, out=str(tmp_path / name), quiet=True)
    cfg.update(load)
    return simulate(setup, LoadConfig(**cfg))


@pytest.fixture(scope="module")
def seed_runs(tmp_path_factory):
    """The seed's experiment: llama-2-7b-awq on a T4, chat_medium at 20 RPS, max-num-seqs 1 and 8.
    30 s of arrivals, and clients patient enough (1 h) that every request is served."""
    tmp = tmp_path_factory.mktemp("seed")
    return {n: _offline(tmp, f"mns{n}", n, duration_s=30.0, request_timeout_s=3600.0) for n in (1, 8)}


def test_one_sequence_at_a_time_is_saturated_and_the_queue_grows(seed_runs):
    result = seed_runs[1]
    assert summarize(load_run(result.run_dir)).verdict.overloaded
    steps, start = result.steps, result.manifest["start_ns"]
    t = steps["start_ns"]
    waiting = [steps["waiting"][np.searchsorted(t, start + f * 30e9)] for f in (0.25, 0.5, 0.75, 1.0)]
    assert waiting[0] > 50 and all(b > a + 100 for a, b in zip(waiting, waiting[1:]))
    assert steps["running"].max() == 1 and result.manifest["counts"]["ok"] == result.manifest["counts"]["scheduled"]


def test_eight_sequences_raise_throughput_several_fold_and_tpot(seed_runs):
    one, eight = (summarize(load_run(seed_runs[n].run_dir)).to_dict() for n in (1, 8))
    assert eight["output_throughput"] > 3 * one["output_throughput"]
    assert eight["median_tpot_ms"] > 1.2 * one["median_tpot_ms"]
    # Alone, a decode step is the roofline's batch-1 decode: the weights read once per token.
    hw, m = roofline.hardware("t4"), roofline.model("llama-2-7b", quant="awq")
    single = roofline.decode(hw, m, 1, 300).realistic_time_s * 1e3
    assert single * 0.95 < one["median_tpot_ms"] < single * 1.1


def test_decode_step_time_follows_the_roofline_in_batch():
    setup = setup_with(max_num_seqs=512, num_blocks=1379, max_num_batched_tokens=8192)
    hw, m = setup.hw, setup.model
    batches = [1, 2, 4, 8, 16, 32, 200, 250, 300, 350, 400]
    measured = {}
    for b in batches:   # b prompts of 16 tokens at t=0, prefilled in one step (b x 16 <= 8192):
        # the next step decodes all b at context 17
        run, _ = virtual(setup, [0] * b, [16] * b, [2] * b)
        log = run.log.arrays()
        first_decode = np.flatnonzero(log["decode_seqs"] == b)[0]
        measured[b] = int(log["dur_ns"][first_decode])
        assert measured[b] == round(roofline.decode(hw, m, b, 17).realistic_time_s * 1e9)
    flat = [measured[b] / measured[1] for b in (2, 4, 8, 16, 32)]
    assert max(flat) < 1.2   # memory-bound: the weights dominate, a bigger batch costs little
    sweep = roofline.decode_sweep(hw, m, 17, max_batch=400)
    assert sweep.compute_bound_batch < 200
    slopes = np.diff([measured[b] for b in batches[6:]]) / 50
    assert np.ptp(slopes) < 0.01 * slopes.mean()   # compute-bound: linear in the batch
    assert slopes.mean() > 3 * (measured[32] - measured[1]) / 31   # and steeper than before


@pytest.mark.parametrize("max_num_seqs, blocks, steps, preemptions, last_token_ns", [
    (8, 1379, 17760, 0, 524_975_728_377),     # the seed run, as the V0 engine ran it
    (64, 300, 17245, 336, 550_560_515_170),   # a cache short enough to preempt
])
def test_scheduler_v0_runs_exactly_as_before(tmp_path, max_num_seqs, blocks, steps, preemptions, last_token_ns):
    # --scheduler v0 keeps vLLM V0's engine untouched: given the KV blocks it had before KV capacity
    # counted vLLM's profile (1379 = (0.9 x 16 GiB - weights) / 8 MiB), every step is as it was
    # (figures recorded from the engine before vLLM 0.32 became the default).
    setup = resolve(SimConfig(**T4, scheduler="v0", max_num_seqs=max_num_seqs))
    setup = dataclasses.replace(setup, num_blocks=blocks, watermark_blocks=blocks // 100)
    result = simulate(setup, LoadConfig(workload="chat_medium", rps=20.0, duration_s=30.0, request_timeout_s=3600.0,
                                        out=str(tmp_path / "run"), quiet=True))
    sim = result.manifest["sim"]
    assert (setup.max_num_batched_tokens, setup.chunked_prefill) == (4096, False)
    assert (sim["steps"], sim["preemptions"], sim["generation_tokens"]) == (steps, preemptions, 132714)
    table = read_requests(result.run_dir).to_pydict()
    assert max(t[-1] for t in table["token_ns"]) - result.manifest["start_ns"] == last_token_ns


def test_same_seed_same_run_and_another_seed_differs(tmp_path):
    def rows(name, seed):
        result = _offline(tmp_path, name, 8, duration_s=10.0, seed=seed)
        table = read_requests(result.run_dir).sort_by("request_id").to_pydict()
        start = result.manifest["start_ns"]
        return [(r, s - start, [t - start for t in toks]) for r, s, toks in
                zip(table["request_id"], table["scheduled_ns"], table["token_ns"])]

    assert rows("a", 3) == rows("b", 3)
    assert rows("a2", 3) != rows("c", 4)


def test_the_run_directory_is_a_normal_flagged_one(tmp_path):
    result = _offline(tmp_path, "run", 8, duration_s=5.0, arrival="constant", rps=4.0, input_len=3000,
                      output_len=1500, request_timeout_s=20.0)
    manifest = read_manifest(result.run_dir)
    assert manifest["simulated"] is True and manifest["status"] == "complete"
    assert manifest["target"]["kind"] == "sim" and manifest["target"]["url"] is None
    params = manifest["target"]["params"]
    assert (params["gpu"], params["quant"], params["max_num_seqs"], params["max_model_len"]) == ("t4", "awq", 8, 4096)
    assert params["num_gpu_blocks"] == resolve(SimConfig(**T4, max_num_seqs=8)).num_blocks
    # 3000 + 1500 > 4096: vLLM answers 400 at once, as the simulated server does.
    table = read_requests(result.run_dir).to_pydict()
    assert set(table["http_status"]) == {400} and set(table["error"]) == {"http"}
    assert manifest["counts"] == {"scheduled": 20, "sent": 20, "ok": 0, "failed": 20,
                                  "errors": {"http": 20}, "recorded": 20}
    assert json.loads(pq.read_metadata(result.run_dir / "requests.parquet").metadata[b"varcas.run"])["simulated"]
    assert pq.read_table(result.run_dir / STEPS_FILE).num_rows == 0


def test_clients_time_out_with_the_tokens_they_got(tmp_path):
    result = _offline(tmp_path, "run", 1, duration_s=30.0, request_timeout_s=10.0)
    table = read_requests(result.run_dir).to_pydict()
    timed_out = [i for i, e in enumerate(table["error"]) if e == "timeout"]
    ok = [i for i, e in enumerate(table["error"]) if e is None]
    assert len(timed_out) > 100 and ok
    for i in timed_out:
        assert table["end_ns"][i] == table["sent_ns"][i] + 10_000_000_000
        assert all(t <= table["end_ns"][i] for t in table["token_ns"][i])
        assert table["output_tokens"][i] is None
    for i in ok:
        assert table["end_ns"][i] - table["sent_ns"][i] <= 10_000_000_000
        assert len(table["token_ns"][i]) == table["output_tokens"][i] == table["requested_output_tokens"][i]
    sim = result.manifest["sim"]
    assert sim["generation_tokens"] >= sum(len(table["token_ns"][i]) for i in ok + timed_out)
