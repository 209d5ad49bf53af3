"""Schedules: exact constant and trace offsets, arrival-process statistics, cut-offs,
determinism, independence of the length streams, and every bad argument."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from varcas.errors import VarcasError
from varcas.schedule.build import MAX_REQUESTS, Schedule, build_schedule, read_trace
from varcas.schedule.workloads import LengthDist, Workload

WL = Workload(name="t", description="", rps=10.0,
              input=LengthDist("lognormal", median=200, sigma=0.8),
              output=LengthDist("uniform", low=1, high=1000))


def sched(**kw):
    kw.setdefault("workload", WL)
    kw.setdefault("rps", None)
    return build_schedule(**kw)


# --- constant arrivals: exact values -------------------------------------------------

def test_constant_by_duration_is_i_over_rps_and_excludes_the_end():
    s = sched(rps=4, arrival="constant", duration_s=1.0)
    assert s.offset_ns.tolist() == [0, 250_000_000, 500_000_000, 750_000_000]
    assert s.offset_ns.dtype == np.int64
    assert len(s) == 4
    assert s.duration_s == 0.75


def test_constant_by_count_rounds_to_the_ns():
    s = sched(rps=3, arrival="constant", num_requests=5)
    assert s.offset_ns.tolist() == [0, 333_333_333, 666_666_667, 1_000_000_000, 1_333_333_333]


@pytest.mark.parametrize("duration_s, num_requests, expected", [(1.0, 4, 4), (0.35, 100, 4), (1.0, None, 10)])
def test_whichever_limit_comes_first(duration_s, num_requests, expected):
    s = sched(rps=10, arrival="constant", duration_s=duration_s, num_requests=num_requests)
    assert s.offset_ns.tolist() == [i * 100_000_000 for i in range(expected)]


def test_rps_none_takes_the_workload_rate():
    assert len(sched(arrival="constant", duration_s=2.0)) == 20


def test_fixed_lengths_override_the_distributions():
    s = sched(arrival="constant", num_requests=3, input_len=7, output_len=9)
    assert s.input_len.tolist() == [7, 7, 7] and s.input_len.dtype == np.int32
    assert s.output_len.tolist() == [9, 9, 9] and s.output_len.dtype == np.int32


# --- random arrivals ----------------------------------------------------------------

def test_poisson_is_the_cumsum_of_gaps_from_the_arrival_stream_starting_at_the_first_gap():
    # The documented contract: stream 0 of SeedSequence(seed).spawn(3), first request at
    # its first gap (not at 0), offsets rounded to the ns.
    rng = np.random.default_rng(np.random.SeedSequence(7).spawn(3)[0])
    expected = np.rint(np.cumsum(rng.exponential(1 / 25, 50)) * 1e9).astype(np.int64)
    np.testing.assert_array_equal(sched(rps=25, num_requests=50, seed=7).offset_ns, expected)


@settings(max_examples=10, deadline=None)
@given(rps=st.floats(0.5, 5000), seed=st.integers(0, 2**32))
def test_poisson_gaps_have_mean_one_over_rps_and_unit_cv(rps, seed):
    gaps = np.diff(sched(rps=rps, num_requests=20_000, seed=seed).offset_ns, prepend=0) / 1e9
    # Standard error of the mean gap is 0.7% at n=20k; 4% is more than 5 standard errors.
    assert gaps.mean() == pytest.approx(1 / rps, rel=0.04)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.05)


@settings(max_examples=10, deadline=None)
@given(rps=st.floats(0.5, 5000), seed=st.integers(0, 2**32))
def test_gamma_with_burstiness_one_matches_poisson(rps, seed):
    g = np.diff(sched(rps=rps, arrival="gamma", num_requests=20_000, seed=seed).offset_ns, prepend=0)
    p = np.diff(sched(rps=rps, num_requests=20_000, seed=seed + 1).offset_ns, prepend=0)
    assert g.mean() == pytest.approx(p.mean(), rel=0.06)
    assert g.std() / g.mean() == pytest.approx(p.std() / p.mean(), rel=0.08)


@pytest.mark.parametrize("burstiness", [0.25, 4.0])
def test_gamma_keeps_the_mean_and_sets_cv_to_one_over_sqrt_burstiness(burstiness):
    s = sched(rps=100, arrival="gamma", burstiness=burstiness, num_requests=20_000, seed=3)
    gaps = np.diff(s.offset_ns, prepend=0) / 1e9
    assert gaps.mean() == pytest.approx(0.01, rel=0.05)
    assert gaps.std() / gaps.mean() == pytest.approx(1 / math.sqrt(burstiness), rel=0.1)


ARRIVAL = st.sampled_from([("poisson", 1.0), ("gamma", 0.3), ("gamma", 3.0), ("constant", 1.0)])


@settings(max_examples=25, deadline=None)
@given(arrival=ARRIVAL, rps=st.floats(1, 2000), duration=st.floats(0.05, 20), seed=st.integers(0, 2**32))
def test_duration_cut_is_exact_and_a_prefix_of_the_count_schedule(arrival, rps, duration, seed):
    kind, burstiness = arrival
    common = dict(rps=rps, arrival=kind, burstiness=burstiness, seed=seed)
    try:
        by_time = sched(duration_s=duration, **common)
    except VarcasError as e:  # a slow, bursty process may send nothing in a short window
        assert "empty" in str(e) and kind != "constant"
        return
    n = len(by_time)
    by_count = sched(num_requests=n + 1, **common)
    np.testing.assert_array_equal(by_count.offset_ns[:n], by_time.offset_ns)
    np.testing.assert_array_equal(by_count.input_len[:n], by_time.input_len)
    assert by_time.offset_ns[-1] < duration * 1e9 <= by_count.offset_ns[n]
    assert by_time.offset_ns[0] >= 0 and np.all(np.diff(by_time.offset_ns) >= 0)


@settings(max_examples=15, deadline=None)
@given(arrival=ARRIVAL, seed=st.integers(0, 2**32), n=st.integers(1, 3000))
def test_same_seed_same_schedule_and_count_is_exact(arrival, seed, n):
    kind, burstiness = arrival
    a, b = (sched(rps=50, arrival=kind, burstiness=burstiness, num_requests=n,
                  duration_s=1e6, seed=seed) for _ in range(2))
    assert len(a) == n
    for name in ("offset_ns", "input_len", "output_len"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_different_seeds_differ():
    a, b = (sched(num_requests=100, seed=s) for s in (1, 2))
    assert not np.array_equal(a.offset_ns, b.offset_ns)
    assert not np.array_equal(a.input_len, b.input_len)


def test_lengths_do_not_depend_on_rate_or_arrival_process():
    a = sched(rps=5, num_requests=1000, seed=11)
    b = sched(rps=500, arrival="gamma", burstiness=0.5, num_requests=1000, seed=11)
    c = sched(rps=50, arrival="constant", duration_s=3.0, seed=11)  # 150 requests
    assert not np.array_equal(a.offset_ns, b.offset_ns)
    np.testing.assert_array_equal(a.input_len, b.input_len)
    np.testing.assert_array_equal(a.output_len, b.output_len)
    np.testing.assert_array_equal(a.input_len[:150], c.input_len)
    assert a.output_len.min() >= 1 and a.output_len.max() <= 1000


def test_long_duration_spans_several_blocks_and_keeps_the_rate():
    s = sched(rps=2000, duration_s=30.0, seed=5)
    assert len(s) == pytest.approx(60_000, rel=0.03)
    assert s.offset_ns[-1] < 30e9


# --- traces -------------------------------------------------------------------------

TRACE_JSONL = ('{"offset_s": 0.5, "input_tokens": 10, "output_tokens": 20}\n'
               '\n'
               '{"offset_s": 0.0, "input_tokens": 11, "output_tokens": 21, "note": "x"}\n'
               '{"offset_s": 0.5, "input_tokens": 12, "output_tokens": 22}\n')
TRACE_CSV = "input_tokens,offset_s,output_tokens,extra\n10,0.5,20,a\n\n11,0,21,b\n12, 0.5 ,22,c\n"
# Sorted by offset, stably: the 0.0 row first, then the two 0.5 rows in file order.
SORTED = ([0, 500_000_000, 500_000_000], [11, 10, 12], [21, 20, 22])


@pytest.mark.parametrize("name, text", [("t.jsonl", TRACE_JSONL), ("t.json", TRACE_JSONL),
                                        ("t.csv", TRACE_CSV), ("t.txt", TRACE_JSONL), ("t", TRACE_CSV)])
def test_trace_is_read_sorted_stably_in_every_format(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    s = sched(arrival="trace", trace_path=str(path))
    assert (s.offset_ns.tolist(), s.input_len.tolist(), s.output_len.tolist()) == SORTED
    assert s.input_len.dtype == np.int32 and s.offset_ns.dtype == np.int64


def test_trace_is_cut_by_duration_and_count_and_lengths_can_be_fixed(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(TRACE_JSONL)
    assert sched(arrival="trace", trace_path=str(path), duration_s=0.5).offset_ns.tolist() == [0]
    s = sched(arrival="trace", trace_path=str(path), num_requests=2, output_len=5)
    assert (s.offset_ns.tolist(), s.input_len.tolist(), s.output_len.tolist()) == ([0, 500_000_000], [11, 10], [5, 5])


@pytest.mark.parametrize("name, text, message", [
    ("a.jsonl", '{"offset_s": 0, "input_tokens": 1, "output_tokens": 1}\n{"offset_s": 1,\n', "line 2: invalid JSON"),
    ("a.jsonl", '\n\n[1, 2, 3]\n', "line 3: expected a JSON object"),
    ("a.jsonl", '{"offset_s": 0, "input_tokens": 1}\n', "line 1: missing 'output_tokens'"),
    ("a.jsonl", '{"offset_s": -1, "input_tokens": 1, "output_tokens": 1}\n', "line 1: offset_s must be a number in"),
    ("a.jsonl", '{"offset_s": "0", "input_tokens": 1, "output_tokens": 1}\n', "line 1: offset_s must be a number in"),
    ("a.jsonl", '{"offset_s": 1e10, "input_tokens": 1, "output_tokens": 1}\n', "line 1: offset_s must be a number in"),
    ("a.jsonl", '{"offset_s": 0, "input_tokens": 0, "output_tokens": 1}\n', "line 1: input_tokens must be an integer"),
    ("a.jsonl", '{"offset_s": 0, "input_tokens": 1, "output_tokens": 2.0}\n', "line 1: output_tokens must be an integer"),
    ("a.jsonl", '{"offset_s": 0, "input_tokens": true, "output_tokens": 2}\n', "line 1: input_tokens must be an integer"),
    ("a.csv", "offset_s,input_tokens\n0,1\n", "line 1: header lacks output_tokens"),
    ("a.csv", "offset_s,input_tokens,output_tokens\n0,1,1\n0,1\n", "line 3: 2 columns, the header has 3"),
    ("a.csv", "offset_s,input_tokens,output_tokens\n0,1,1\n\nnan,1,1\n", "line 4: offset_s must be a number in"),
    ("a.csv", "offset_s,input_tokens,output_tokens\n0,12.0,1\n", "line 2: input_tokens must be an integer in .*got '12.0'"),
    ("a.csv", "offset_s,input_tokens,output_tokens\n", "has no requests"),
    ("a.jsonl", "", "has no requests"),
])
def test_bad_trace_rows_name_file_and_line(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(VarcasError, match=message) as e:
        read_trace(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_unreadable_trace(tmp_path):
    with pytest.raises(VarcasError, match="cannot read trace file .*missing.csv"):
        sched(arrival="trace", trace_path=str(tmp_path / "missing.csv"))
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(VarcasError, match="cannot read trace file"):
        read_trace(tmp_path / "bin.csv")


# --- validation ---------------------------------------------------------------------

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("kwargs, message", [
    ({"rps": 0}, "rps must be a number > 0 or inf"),
    ({"rps": -2}, "rps must be a number > 0 or inf"),
    ({"rps": NAN}, "rps must be a number > 0 or inf"),
    ({"rps": INF}, "rps inf sends every request at once: give a number of requests"),
    ({"rps": True}, "rps must be a number > 0 or inf"),
    ({"arrival": "gamma", "burstiness": 0}, "burstiness must be a finite number > 0"),
    ({"arrival": "gamma", "burstiness": NAN}, "burstiness must be a finite number > 0"),
    ({"arrival": "gamma", "burstiness": -1}, "burstiness must be a finite number > 0"),
    ({"burstiness": 2.0}, "burstiness applies only to the gamma arrival process"),
    ({"duration_s": 0}, "duration must be a number of seconds in"),
    ({"duration_s": -1}, "duration must be a number of seconds in"),
    ({"duration_s": NAN}, "duration must be a number of seconds in"),
    ({"duration_s": INF}, "duration must be a number of seconds in"),
    ({"num_requests": 0}, "num_requests must be an integer in"),
    ({"num_requests": -5}, "num_requests must be an integer in"),
    ({"num_requests": 2.5}, "num_requests must be an integer in"),
    ({"num_requests": MAX_REQUESTS + 1}, "num_requests must be an integer in"),
    ({"input_len": 0}, "input_len must be an integer in"),
    ({"output_len": -3}, "output_len must be an integer in"),
    ({"output_len": 1.5}, "output_len must be an integer in"),
    ({"seed": -1}, "seed must be an integer >= 0"),
    ({"arrival": "uniform"}, "unknown arrival process 'uniform'; choose one of poisson, gamma, constant, trace"),
    ({"duration_s": None}, "give a duration, a number of requests, or both"),
    ({"arrival": "trace", "duration_s": 1.0}, "arrival 'trace' needs a trace file path"),
    ({"arrival": "trace", "rps": 3, "trace_path": "t.csv"}, "rps does not apply to a trace"),
    ({"trace_path": "t.csv"}, "a trace file was given but the arrival process is 'poisson'"),
    ({"rps": 1e6, "duration_s": 1e3}, "is ~1e\\+09 requests; the limit is"),
    ({"rps": 0.001, "duration_s": 0.001}, "the schedule is empty"),
    ({"rps": 1e-9, "duration_s": None, "num_requests": 10, "arrival": "constant"}, "the schedule spans more than"),
])
def test_bad_arguments_raise_one_line_errors(kwargs, message):
    kw = {"duration_s": 10.0, **kwargs}
    with pytest.raises(VarcasError, match=message) as e:
        sched(**kw)
    assert "\n" not in str(e.value)


def test_schedule_rejects_mismatched_arrays():
    ok = np.zeros(2, dtype=np.int32)
    with pytest.raises(ValueError, match="offset_ns must be a 1-d int64 array"):
        Schedule(offset_ns=np.zeros(2, dtype=np.float64), input_len=ok, output_len=ok)
    with pytest.raises(ValueError, match="output_len must be a 1-d int32 array of length 2"):
        Schedule(offset_ns=np.zeros(2, dtype=np.int64), input_len=ok, output_len=ok[:1])
    empty = Schedule(np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int32))
    assert len(empty) == 0 and empty.duration_s == 0.0
