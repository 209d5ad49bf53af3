"""step_time_s: the simulator's per-step call is the phase tables' model, batch by batch."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from varcas.roofline import StepCost, decode, hardware, model, prefill, step_time_s
from varcas.roofline.analysis import cached_coefficients
from varcas.roofline.formulas import step_features

T4 = hardware("t4")
AWQ = model("llama-2-7b", "awq")
MIX = model("mixtral-8x7b", "fp16")
H100 = hardware("h100")


@pytest.mark.parametrize("hw, m", [(T4, AWQ), (H100, MIX)])
def test_uniform_decode_step_equals_the_decode_phase(hw, m):
    r = decode(hw, m, 16, 900)
    assert step_time_s(hw, m, [], [900] * 16) == pytest.approx(r.realistic_time_s, rel=1e-12)
    assert step_time_s(hw, m, [], np.full(16, 900), realistic=False) == pytest.approx(r.time_s, rel=1e-12)


@pytest.mark.parametrize("hw, m", [(T4, AWQ), (H100, MIX)])
def test_whole_prompt_chunks_equal_the_prefill_phase(hw, m):
    r = prefill(hw, m, 3, 256)
    assert step_time_s(hw, m, [(256, 0)] * 3, []) == pytest.approx(r.realistic_time_s, rel=1e-12)


def test_chunked_prefill_features():
    coef = cached_coefficients(T4, AWQ)
    # 256 new tokens after 256 already cached: each attends to the cache and, causally, itself.
    assert step_features([(256, 256)], [], coef) == (1.0, 256, 1, 256 * 256 + 256 * 257 / 2, 512, 0.0)
    mixed = step_features([(100, 0), (50, 200)], np.array([10, 20, 30]), coef)
    assert mixed == (1.0, 153, 5, 100 * 101 / 2 + 50 * 200 + 50 * 51 / 2 + 60, 100 + 250 + 60, 0.0)
    moe = step_features([(3, 0)], [5], cached_coefficients(H100, MIX))
    assert moe[-1] == pytest.approx(8 * (1 - 0.75 ** 4), rel=1e-15)  # 4 tokens in the step


def test_weights_are_read_once_per_step():
    chunk, decodes = [(512, 0)], [1000] * 8
    together = step_time_s(T4, AWQ, chunk, decodes, realistic=False)
    apart = (step_time_s(T4, AWQ, chunk, [], realistic=False)
             + step_time_s(T4, AWQ, [], decodes, realistic=False))
    assert together < apart


def test_overhead_once_per_step_and_empty_steps_cost_nothing():
    realistic = step_time_s(T4, AWQ, [], [100])
    assert realistic > step_time_s(T4, AWQ, [], [100], realistic=False) + 1e-3
    assert step_time_s(T4, AWQ, [], []) == 0.0
    assert StepCost(T4, AWQ).time_s([], np.array([], dtype=np.int64)) == 0.0


@settings(max_examples=60, deadline=None)
@given(contexts=st.lists(st.integers(1, 8192), min_size=0, max_size=64),
       chunks=st.lists(st.tuples(st.integers(1, 2048), st.integers(0, 4096)), max_size=3),
       extra=st.integers(1, 8192))
def test_one_more_sequence_never_makes_a_step_faster(contexts, chunks, extra):
    for m, hw in ((AWQ, T4), (MIX, H100)):
        before = step_time_s(hw, m, chunks, contexts)
        assert step_time_s(hw, m, chunks, contexts + [extra]) > before
        assert step_time_s(hw, m, chunks, np.array(contexts + [extra])) == \
            step_time_s(hw, m, chunks, contexts + [extra])


def test_alternating_models_get_their_own_times():
    expected = {id(m): StepCost(hw, m).time_s([(64, 0)], [300, 400]) for hw, m in ((T4, AWQ), (H100, MIX))}
    for _ in range(3):
        for hw, m in ((T4, AWQ), (H100, MIX)):
            assert step_time_s(hw, m, [(64, 0)], [300, 400]) == expected[id(m)]
    assert expected[id(AWQ)] != expected[id(MIX)]
