"""Lengths of vLLM's random dataset (range ratio, prefix) and of shaped schedules (shared
prefixes, conversations), exact for a seed against a hand computation."""
from __future__ import annotations

import math

import numpy as np
import pytest

from varcas.errors import VarcasError
from varcas.schedule import build_schedule, load_workload
from varcas.schedule.shapes import Shape

WORKLOAD = load_workload("chat_medium")


def sched(**kw):
    return build_schedule(workload=WORKLOAD, **{"rps": 10.0, "arrival": "constant", "seed": 11, **kw})


def stream(seed: int, k: int) -> np.random.Generator:
    """build_schedule's k-th RNG stream: 0 arrivals, 1 input lengths, 2 output lengths, 3 think times."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(4)[k])


@pytest.mark.parametrize("length, ratio", [(100, 0.5), (7, 0.9), (1024, 0.25), (3, 0.1)])
def test_range_ratio_draws_vllms_interval(length, ratio):
    s = sched(num_requests=500, input_len=length, output_len=2 * length, range_ratio=(ratio, ratio))
    low, high = max(math.floor(length * (1 - ratio)), 1), math.ceil(length * (1 + ratio))
    assert s.input_len.tolist() == stream(11, 1).integers(low, high, 500, endpoint=True).tolist()
    o_low, o_high = max(math.floor(2 * length * (1 - ratio)), 1), math.ceil(2 * length * (1 + ratio))
    assert s.output_len.tolist() == stream(11, 2).integers(o_low, o_high, 500, endpoint=True).tolist()
    assert s.input_len.min() >= low and s.input_len.max() <= high


def test_range_ratios_apply_per_side_and_need_a_fixed_length():
    s = sched(num_requests=50, input_len=40, output_len=8, range_ratio=(0.5, 0.0))
    assert set(s.output_len.tolist()) == {8} and len(set(s.input_len.tolist())) > 5
    with pytest.raises(VarcasError, match="spreads a fixed length"):
        sched(num_requests=5, range_ratio=(0.3, 0.3))
    with pytest.raises(VarcasError, match=r"in \[0, 1\)"):
        sched(num_requests=5, input_len=4, range_ratio=(1.0, 0.0))


def test_a_shared_prefix_is_part_of_every_prompt_length():
    plain = sched(num_requests=20, input_len=30, output_len=5, range_ratio=(0.5, 0.0))
    prefixed = sched(num_requests=20, input_len=30, output_len=5, range_ratio=(0.5, 0.0),
                     shape=Shape(prefix_len=64, prefix_groups=3))
    assert (prefixed.input_len == plain.input_len + 64).all()
    assert (prefixed.user_len == plain.input_len).all() and prefixed.think_ns is None
    assert (prefixed.offset_ns == plain.offset_ns).all() and prefixed.timed == 20


def test_conversations_are_turn_major_with_growing_prompts():
    s = sched(num_requests=7, shape=Shape(prefix_len=5, turns=3, think_s=2.0, think="fixed"))
    assert len(s) == 9 and s.timed == 3  # 7 requests round up to 3 conversations of 3 turns
    assert s.offset_ns[:3].tolist() == [0, 100_000_000, 200_000_000] and (s.offset_ns[3:] == -1).all()
    users = WORKLOAD.input.sample(stream(11, 1), 9).reshape(3, 3)
    answers = WORKLOAD.output.sample(stream(11, 2), 9).reshape(3, 3)
    assert (s.user_len.reshape(3, 3) == users).all() and (s.output_len.reshape(3, 3) == answers).all()
    for c in range(3):  # request k*3 + c is turn k of conversation c
        for k in range(3):
            earlier = sum(int(users[j, c]) + int(answers[j, c]) for j in range(k))
            assert s.input_len[k * 3 + c] == 5 + earlier + users[k, c]
    assert s.think_ns.tolist() == [0] * 3 + [2_000_000_000] * 6
    assert s.duration_s == 0.2


def test_exponential_think_times_are_seeded():
    s = sched(num_requests=40, shape=Shape(turns=4, think_s=1.5))
    want = np.rint(stream(11, 3).exponential(1.5e9, 40)).astype(np.int64)
    want[:10] = 0
    assert s.think_ns.tolist() == want.tolist()


def test_conversations_start_on_an_arrival_process():
    with pytest.raises(VarcasError, match="not on a trace"):
        build_schedule(workload=WORKLOAD, rps=None, arrival="trace", trace_path="x.csv", shape=Shape(turns=2))
    with pytest.raises(VarcasError, match="think time must be between"):
        Shape(turns=2, think_s=-1)
    with pytest.raises(VarcasError, match="prefix_len must be an integer >= 0"):
        Shape(prefix_len=-3)
