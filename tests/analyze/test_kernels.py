"""Each numba kernel against its pure-numpy twin (varcas/analyze/reference.py)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from varcas.analyze import kernels, reference
from varcas.analyze.run import NO_TIME

I64 = st.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max)
FINITE = st.floats(-1e300, 1e300, allow_nan=False, allow_infinity=False)
PERCENTS = st.lists(st.floats(0, 100), min_size=1, max_size=6)
# (buckets, sort_max): the default, and tiny ones that force many refinement levels
TUNING = st.sampled_from([(kernels.BUCKETS, kernels.SORT_MAX), (2, 1), (4, 3), (16, 8)])


def samples(dtype, elements):
    return hnp.arrays(dtype, st.integers(1, 200), elements=elements)


@settings(max_examples=150, deadline=None)
@given(a=st.one_of(samples(np.int64, I64), samples(np.int64, st.integers(-3, 3)),
                   samples(np.float64, FINITE), samples(np.float64, st.sampled_from([0.0, -0.0, 1.5, -2.0]))),
       q=PERCENTS, tuning=TUNING)
def test_percentiles_equal_numpy_exactly(a, q, tuning):
    before = a.copy()
    got = kernels.percentiles(a, q, nbuckets=tuning[0], sort_max=tuning[1])
    assert np.array_equal(got, reference.percentiles(a, q))
    assert np.array_equal(a, before)  # selection never reorders its input


@pytest.mark.parametrize("dtype", [np.int64, np.float64])
@pytest.mark.parametrize("shape", ["lognormal", "one outlier", "two values"])
def test_percentiles_of_large_arrays_take_every_path(dtype, shape):
    rng = np.random.default_rng(7)
    n = 300_000  # above SORT_MAX: histogram, gather and refinement run with default sizes
    a = {
        "lognormal": rng.lognormal(17, 1.0, n),
        "one outlier": np.concatenate((np.full(n - 1, 20e6), [9e15])),
        "two values": rng.choice([1e6, 3e6], n),
    }[shape].astype(dtype)
    q = [0, 0.1, 25, 50, 90, 99, 99.9, 99.99, 100]
    assert np.array_equal(kernels.percentiles(a, q), np.percentile(a, q))


def test_percentiles_reject_empty_and_other_dtypes():
    with pytest.raises(ValueError):
        kernels.percentiles(np.array([], np.int64), [50])
    with pytest.raises(TypeError):
        kernels.percentiles(np.array([1, 2], np.int32), [50])


@settings(max_examples=80, deadline=None)
@given(a=st.one_of(samples(np.int64, st.integers(-10**12, 10**12)), samples(np.float64, st.floats(-1e6, 1e6))))
def test_moments_match_numpy(a):
    n, mean, std = kernels.moments(a)
    ref_n, ref_mean, ref_std = reference.moments(a)
    assert n == ref_n
    assert mean == pytest.approx(ref_mean, rel=1e-9, abs=1e-6)
    assert std == pytest.approx(ref_std, rel=1e-9, abs=1e-6)


def test_moments_of_nothing_are_nan():
    n, mean, std = kernels.moments(np.array([], np.float64))
    assert n == 0 and np.isnan(mean) and np.isnan(std)


@st.composite
def list_columns(draw):
    """(offsets, values, row_mask) of a list<int64> column, offsets possibly not from 0."""
    lengths = draw(st.lists(st.integers(0, 6), max_size=25))
    lead = draw(st.integers(0, 3))  # a sliced column: offsets start after some values
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64) + lead
    values = draw(hnp.arrays(np.int64, int(offsets[-1]) + draw(st.integers(0, 3)),
                             elements=st.one_of(st.integers(-50, 10_000), st.just(NO_TIME))))
    mask = draw(hnp.arrays(np.bool_, len(lengths)))
    return offsets, values, mask


@settings(max_examples=200, deadline=None)
@given(column=list_columns())
def test_itl_gaps_match_numpy(column):
    got_offsets, got = kernels.itl_gaps(*column)
    ref_offsets, ref = reference.itl_gaps(*column)
    assert np.array_equal(got_offsets, ref_offsets)
    assert np.array_equal(got, ref)


def test_itl_gaps_by_hand():
    offsets = np.array([0, 3, 3, 4, 8])
    values = np.array([1, 2, 4, 10, 20, 21, 25, 30])
    gap_offsets, gaps = kernels.itl_gaps(offsets, values, np.array([True, True, True, True]))
    assert gap_offsets.tolist() == [0, 2, 2, 2, 5]
    assert gaps.tolist() == [1, 2, 1, 4, 5]
    _, gaps = kernels.itl_gaps(offsets, values, np.array([False, True, True, True]))
    assert gaps.tolist() == [1, 4, 5]


@settings(max_examples=200, deadline=None)
@given(column=list_columns(), t0=st.integers(-100, 5_000), width=st.integers(1, 3_000), nbins=st.integers(1, 8))
def test_bin_counts_match_numpy(column, t0, width, nbins):
    got = kernels.bin_counts(*column, t0, width, nbins)
    assert np.array_equal(got, reference.bin_counts(*column, t0, width, nbins))


@settings(max_examples=150, deadline=None)
@given(data=st.data(), ngroups=st.integers(1, 6),
       dtype=st.sampled_from([np.int64, np.float64]), qq=st.lists(st.floats(0, 1), min_size=1, max_size=4))
def test_grouped_percentiles_match_numpy(data, ngroups, dtype, qq):
    n = data.draw(st.integers(0, 60))
    group = data.draw(hnp.arrays(np.int64, n, elements=st.integers(-1, ngroups)))
    values = data.draw(hnp.arrays(dtype, n, elements=st.integers(-10**9, 10**9)))
    qq = np.array(qq)
    got = kernels.grouped_percentiles(group, values, ngroups, qq)
    assert np.array_equal(got, reference.grouped_percentiles(group, values, ngroups, qq), equal_nan=True)


@settings(max_examples=100, deadline=None)
@given(data=st.data(), limits=st.tuples(*[st.one_of(st.just(np.inf), st.floats(0, 100))] * 3))
def test_slo_mask_matches_numpy(data, limits):
    n = data.draw(st.integers(0, 40))
    ttft, e2el = (data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, 120))) for _ in range(2))
    tpot = data.draw(hnp.arrays(np.float64, n, elements=st.floats(0, 120)))
    got = kernels.slo_mask(ttft, tpot, e2el, *limits)
    assert np.array_equal(got, reference.slo_mask(ttft, tpot, e2el, *limits))


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_peak_overlap_matches_numpy(data):
    n = data.draw(st.integers(0, 40))
    starts = data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, 50)))
    ends = starts + data.draw(hnp.arrays(np.int64, n, elements=st.integers(1, 30)))
    assert kernels.peak_overlap(starts, ends) == reference.peak_overlap(starts, ends)


def test_peak_overlap_touching_intervals_do_not_overlap():
    assert kernels.peak_overlap(np.array([0, 10, 20]), np.array([10, 20, 30])) == 1
    assert kernels.peak_overlap(np.array([0, 9, 20]), np.array([10, 20, 30])) == 2
