"""Conservation, for any settings and any schedule: every accepted request completes (or is
rejected for length), tokens emitted equal tokens requested, KV blocks in use never exceed the
cache, and nothing waits forever, preemptions included."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from varcas.sim.config import blocks_for

from .helpers import setup_with, virtual


def _check_blocks(run):
    """Wrap the engine's schedule() with the block-accounting invariant, checked every step."""
    eng = run.engine
    plan = eng.schedule
    total = eng.total_blocks

    def checked():
        step = plan()
        held = sum(s.blocks for s in eng.running)
        assert 0 <= eng.free_blocks and held + eng.free_blocks == total
        for s, n in step.chunks if step else ():
            assert s.blocks == blocks_for(s.computed + n)
        for s in step.decodes if step else ():
            assert s.blocks == blocks_for(s.computed + 1)
        return step

    eng.schedule = checked


def _conserved(setup, when, inp, out, rows, run):
    assert sorted(rows) == list(range(len(when)))
    for i, r in rows.items():
        if inp[i] + out[i] > setup.max_model_len:
            assert (r["http_status"], r["error"], r["token_ns"]) == (400, "http", [])
            continue
        assert r["error"] is None and r["http_status"] == 200 and r["finish_reason"] == "length"
        assert r["output_tokens"] == out[i] == len(r["token_ns"]) and r["input_tokens"] == inp[i]
        times = r["token_ns"]
        assert when[i] < times[0] == r["first_token_ns"] and times[-1] == r["end_ns"]
        assert all(b > a for a, b in zip(times, times[1:]))
    accepted = [i for i in rows if rows[i]["http_status"] == 200]
    assert run.engine.finished == len(accepted) and run.engine.idle
    assert run.engine.generation_tokens == sum(out[i] for i in accepted)
    assert run.engine.free_blocks == run.engine.total_blocks
    assert int(run.log.arrays()["used_blocks"].max(initial=0)) <= run.engine.total_blocks


requests = st.lists(st.tuples(st.integers(0, 50_000_000), st.integers(1, 120), st.integers(1, 90)),
                    min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(requests, st.integers(9, 40), st.integers(1, 6), st.sampled_from(("v1", "v0")), st.booleans(),
       st.integers(0, 2), st.integers(6, 200))
def test_any_schedule_is_conserved(reqs, blocks, max_seqs, scheduler, chunked, watermark, budget):
    max_len = min(128, (blocks - watermark) * 16)
    if not chunked:
        budget = max(budget, max_len)   # vLLM's rule without chunked prefill (config.resolve)
    setup = setup_with(num_blocks=blocks, watermark_blocks=watermark, max_num_seqs=max_seqs, scheduler=scheduler,
                       chunked_prefill=chunked, max_num_batched_tokens=max(budget, max_seqs),
                       max_model_len=max_len)
    gaps, inp, out = (list(x) for x in zip(*reqs))
    when = np.cumsum(gaps)
    run, rows = virtual(setup, when, inp, out, check=_check_blocks)
    _conserved(setup, when, inp, out, rows, run)


def test_a_long_schedule_with_preemptions_drains():
    for scheduler, chunked in (("v0", False), ("v0", True), ("v1", False), ("v1", True)):
        rng = np.random.default_rng(7)
        n = 1000
        when = np.cumsum(rng.exponential(1e9, n)).astype(np.int64)   # 1 req/s, ~100 tokens/s
        inp = np.clip(rng.lognormal(np.log(120), 0.8, n), 1, 600).astype(np.int32)
        out = np.clip(rng.lognormal(np.log(100), 1.0, n), 1, 400).astype(np.int32)
        # 80 blocks = 1,280 tokens for up to 32 sequences: the cache, not the cap, binds.
        setup = setup_with(num_blocks=80, watermark_blocks=0, max_num_seqs=32, chunked_prefill=chunked,
                           scheduler=scheduler, max_num_batched_tokens=1024, max_model_len=1024)
        run, rows = virtual(setup, when, inp, out, check=_check_blocks)
        _conserved(setup, when, inp, out, rows, run)
        assert run.engine.preemptions > 100
        # The cache keeps up on average, so preemptions cost seconds, never unbounded waits.
        waits = [rows[i]["first_token_ns"] - when[i] for i in rows if rows[i]["http_status"] == 200]
        assert max(waits) < 60e9 and run.end_ns - when[-1] < 60e9
