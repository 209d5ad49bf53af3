"""Numba kernels of the analysis: plain functions over numpy arrays, fast over 10^8 samples.

Every kernel is compiled with @njit(cache=True) and has a pure-numpy twin in reference.py
that tests/analyze/test_kernels.py checks it against with hypothesis.

- percentiles(a, q): exact percentiles by selection, identical to numpy.percentile's default
  linear method. Order statistics are found by radix selection on an order-preserving int64
  key (float64 bit patterns are mapped so that integer order is float order): one pass for
  the key range, one histogram pass and one gather pass that copies only the few buckets
  holding the wanted ranks; those buckets are refined the same way until small enough to
  sort. The input is never copied or reordered, unlike numpy's partition of a full copy.
- moments(a): count, mean and population std without numpy's full-size temporaries.
- itl_gaps: inter-token gaps straight from a list column's offsets and values.
- bin_counts: events per time bin over a list column (a flat array is a list of length 1).
- grouped_percentiles: percentiles per group (per-second TTFT p50/p99 of the timeline).
- slo_mask: which requests meet every SLO (goodput).
- peak_overlap: the largest number of [start, end) intervals open at once (peak concurrency).

The selection passes, itl_gaps and bin_counts (10^8 values) run in parallel; the others work
on per-request arrays (10^6) where one core suffices and compiles faster. Parallel kernels
split their input into one contiguous chunk per numba thread and keep per-thread counters,
so results never depend on the thread count or scheduling; the chunking is decided by a
Python wrapper because numba.get_num_threads() inside a kernel would defeat cache=True.
Inputs are assumed free of NaN (the analysis never produces one); int64 arithmetic wraps
exactly as numpy's does.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

_LOW63 = np.int64(0x7FFFFFFFFFFFFFFF)
_I64_MIN = np.iinfo(np.int64).min
_I64_MAX = np.iinfo(np.int64).max

BUCKETS = 1 << 12  # buckets per selection pass: a thread's counters (32 KiB) stay in L1
SORT_MAX = 1 << 15  # a candidate set this small is sorted instead of refined further


# ---------------------------------------------------------------- interpolation (numpy's)


@njit(cache=True)
def position(n, q):
    """Lower and upper rank and weight of quantile q (0..1) of n sorted samples.

    Same float operations as numpy's linear method: virtual index (n - 1) * q, clamped to
    the last sample.
    """
    v = (n - 1) * q
    if v >= n - 1:
        return n - 1, n - 1, v - (n - 1)
    lo = np.int64(np.floor(v))
    return lo, lo + 1, v - np.floor(v)


@njit(cache=True)
def lerp(a, b, g):
    """numpy's _lerp: a + (b - a) * g, computed from b's side when g >= 0.5."""
    diff = b - a
    if g >= 0.5:
        return b - diff * (1.0 - g)
    return a + diff * g


# ---------------------------------------------------------------- selection


@njit(cache=True, inline="always")
def _key(bits, is_float):
    # A float64's bit pattern read as int64 orders non-negative floats correctly and
    # negative ones backwards; flipping the low 63 bits of negatives fixes the order.
    if is_float:
        return bits ^ ((bits >> 63) & _LOW63)
    return bits


@njit(cache=True, inline="always")
def _chunk(bits, t, nt):
    """Thread t's contiguous share of bits."""
    return bits[t * bits.size // nt:(t + 1) * bits.size // nt]


@njit(cache=True, parallel=True)
def _key_range(bits, is_float, nt):
    lows = np.full(nt, _I64_MAX)
    highs = np.full(nt, _I64_MIN)
    for t in prange(nt):
        chunk = _chunk(bits, t, nt)
        low, high = _I64_MAX, _I64_MIN
        # Two loops, so that the plain integer one vectorises.
        if is_float:
            for i in range(chunk.size):
                k = _key(chunk[i], True)
                low, high = min(low, k), max(high, k)
        else:
            for i in range(chunk.size):
                low, high = min(low, chunk[i]), max(high, chunk[i])
        lows[t], highs[t] = low, high
    return lows.min(), highs.max()


# Bucket of key k: (k - kmin) >> shift in uint64, which cannot overflow for any int64 pair;
# indexing with the unsigned value also spares numba's negative-index check (a third faster).
@njit(cache=True, parallel=True)
def _histogram(bits, is_float, kmin, shift, nbuckets, nt):
    counts = np.zeros((nt, nbuckets), np.int64)
    base, shift = np.uint64(kmin), np.uint64(shift)
    for t in prange(nt):
        chunk, mine = _chunk(bits, t, nt), counts[t]
        for i in range(chunk.size):
            mine[(np.uint64(_key(chunk[i], is_float)) - base) >> shift] += 1
    return counts


@njit(cache=True, parallel=True)
def _gather(bits, is_float, kmin, shift, slot_of_bucket, write_at, total):
    # write_at[t, s]: where thread t's first key of slot s goes (from the histogram), so
    # the gather is stable and needs no atomics.
    nt = write_at.shape[0]
    out = np.empty(total, np.int64)
    base, shift = np.uint64(kmin), np.uint64(shift)
    for t in prange(nt):
        chunk, pos = _chunk(bits, t, nt), write_at[t].copy()
        for i in range(chunk.size):
            k = _key(chunk[i], is_float)
            s = slot_of_bucket[(np.uint64(k) - base) >> shift]
            if s >= 0:
                out[pos[s]] = k
                pos[s] += 1
    return out


def _keys(bits, is_float):
    """_key over a whole array, in numpy."""
    return bits ^ ((bits >> 63) & _LOW63) if is_float else bits


def _select(bits, is_float, ranks, nbuckets, sort_max):
    """Keys of the given sorted, distinct ranks of bits (see the module docstring)."""
    if bits.size <= sort_max:
        return np.sort(_keys(bits, is_float))[ranks]
    nt = numba.get_num_threads()
    kmin, kmax = _key_range(bits, is_float, nt)
    span = int(kmax) - int(kmin)
    shift = max(0, span.bit_length() - (nbuckets.bit_length() - 1))
    counts = _histogram(bits, is_float, kmin, shift, nbuckets, nt)
    per_bucket = counts.sum(axis=0)
    ends = np.cumsum(per_bucket)
    bucket = np.searchsorted(ends, ranks, side="right")
    if shift == 0:  # one key per bucket: the bucket is the answer
        return kmin + bucket.astype(np.int64)
    wanted, slot = np.unique(bucket, return_inverse=True)
    slot_of_bucket = np.full(nbuckets, -1, np.intp)
    slot_of_bucket[wanted] = np.arange(wanted.size)
    sizes = per_bucket[wanted]
    slot_start = np.cumsum(sizes) - sizes
    thread_counts = counts[:, wanted]
    write_at = slot_start + np.cumsum(thread_counts, axis=0) - thread_counts
    gathered = _gather(bits, is_float, kmin, shift, slot_of_bucket, write_at, int(sizes.sum()))
    keys = np.empty(ranks.size, np.int64)
    local = ranks - (ends[bucket] - per_bucket[bucket])
    for s in range(wanted.size):
        mine = slot == s
        part = gathered[slot_start[s]:slot_start[s] + sizes[s]]
        keys[mine] = _select(part, False, local[mine], nbuckets, sort_max)
    return keys


def percentiles(a, q, *, nbuckets=BUCKETS, sort_max=SORT_MAX):
    """numpy.percentile(a, q) (linear interpolation) for int64/float64 a, by selection.

    Returns float64 values, one per entry of q (percent, 0..100). a must be non-empty and
    NaN-free; it is neither copied nor modified. nbuckets (a power of two) and sort_max only
    tune speed; tests shrink them to exercise every refinement level on small inputs.
    """
    a = np.ascontiguousarray(a)
    if a.dtype not in (np.int64, np.float64):
        raise TypeError(f"percentiles takes int64 or float64, not {a.dtype}")
    if a.size == 0:
        raise ValueError("percentiles of an empty array")
    qq = np.true_divide(np.asarray(q, np.float64).ravel(), 100)
    if not ((qq >= 0) & (qq <= 1)).all():
        raise ValueError(f"percentiles must lie in [0, 100], got {q}")
    bounds = [position(a.size, x) for x in qq]
    ranks = np.unique(np.array([r for lo, hi, _ in bounds for r in (lo, hi)], np.int64))
    is_float = a.dtype == np.float64
    keys = _select(a.view(np.int64), is_float, ranks, nbuckets, sort_max)
    values = _keys(keys, is_float).view(a.dtype)
    at = dict(zip(ranks.tolist(), values))
    return np.array([lerp(at[lo], at[hi], g) for lo, hi, g in bounds], np.float64)


# ---------------------------------------------------------------- moments


@njit(cache=True)
def moments(a):
    """(count, mean, population std) of a, in two passes without numpy's temporaries.

    Four running sums instead of one break the chain of dependent float additions: faster
    on one core than a parallel single-sum loop, and much quicker to compile.
    """
    n = a.size
    if n == 0:
        return 0, np.nan, np.nan
    whole = n - n % 4
    s0 = s1 = s2 = s3 = 0.0
    for i in range(0, whole, 4):
        s0 += a[i]
        s1 += a[i + 1]
        s2 += a[i + 2]
        s3 += a[i + 3]
    for i in range(whole, n):
        s0 += a[i]
    mean = (s0 + s1 + s2 + s3) / n
    q0 = q1 = q2 = q3 = 0.0
    for i in range(0, whole, 4):
        d0, d1, d2, d3 = a[i] - mean, a[i + 1] - mean, a[i + 2] - mean, a[i + 3] - mean
        q0 += d0 * d0
        q1 += d1 * d1
        q2 += d2 * d2
        q3 += d3 * d3
    for i in range(whole, n):
        d = a[i] - mean
        q0 += d * d
    return n, mean, np.sqrt((q0 + q1 + q2 + q3) / n)


# ---------------------------------------------------------------- list columns and timelines


@njit(cache=True, parallel=True)
def itl_gaps(offsets, values, row_mask):
    """Successive differences of each selected row of a list column.

    Returns (gap_offsets, gaps): row i's gaps are gaps[gap_offsets[i]:gap_offsets[i + 1]]
    (empty for unselected rows and rows with fewer than two values).
    """
    n = offsets.size - 1
    gap_offsets = np.zeros(n + 1, np.int64)
    for i in range(n):
        length = offsets[i + 1] - offsets[i]
        gap_offsets[i + 1] = gap_offsets[i] + (length - 1 if row_mask[i] and length > 1 else 0)
    gaps = np.empty(gap_offsets[n], values.dtype)
    for i in prange(n):
        out, src = gap_offsets[i], offsets[i]
        for j in range(gap_offsets[i + 1] - out):
            gaps[out + j] = values[src + j + 1] - values[src + j]
    return gap_offsets, gaps


def bin_counts(offsets, values, row_mask, t0, width, nbins):
    """Number of values of the selected rows in each bin [t0 + i*width, t0 + (i+1)*width).

    Values outside the nbins bins are ignored. Threads take row ranges holding equal
    numbers of values, so one long row does not serialise the work.
    """
    nt = numba.get_num_threads()
    shares = offsets[0] + (offsets[-1] - offsets[0]) * np.arange(nt + 1) // nt
    bounds = np.searchsorted(offsets, shares, side="right") - 1
    bounds[-1] = offsets.size - 1
    return _bin_counts(offsets, values, row_mask, t0, width, nbins, bounds)


@njit(cache=True, parallel=True)
def _bin_counts(offsets, values, row_mask, t0, width, nbins, bounds):
    nt = bounds.size - 1
    counts = np.zeros((nt, nbins), np.int64)
    for t in prange(nt):
        mine = counts[t]
        for i in range(bounds[t], bounds[t + 1]):
            if not row_mask[i]:
                continue
            for j in range(offsets[i], offsets[i + 1]):
                v = values[j]
                if v >= t0:
                    b = (v - t0) // width
                    if b < nbins:
                        mine[b] += 1
    return counts.sum(axis=0)


@njit(cache=True)
def grouped_percentiles(group, values, ngroups, qq):
    """Percentiles (quantiles qq in 0..1, numpy's linear method) of values per group.

    group[i] in [0, ngroups) assigns values[i]; other group numbers are ignored. Returns an
    (ngroups, len(qq)) float64 array, NaN for empty groups.
    """
    starts = np.zeros(ngroups + 1, np.int64)
    for g in group:
        if 0 <= g < ngroups:
            starts[g + 1] += 1
    starts = np.cumsum(starts)
    fill = starts[:-1].copy()
    grouped = np.empty(starts[-1], values.dtype)
    for i in range(group.size):
        g = group[i]
        if 0 <= g < ngroups:
            grouped[fill[g]] = values[i]
            fill[g] += 1
    out = np.full((ngroups, qq.size), np.nan)
    for g in range(ngroups):
        part = np.sort(grouped[starts[g]:starts[g + 1]])
        if part.size == 0:
            continue
        for j in range(qq.size):
            lo, hi, w = position(part.size, qq[j])
            out[g, j] = lerp(part[lo], part[hi], w)
    return out


@njit(cache=True)
def slo_mask(ttft, tpot, e2el, max_ttft, max_tpot, max_e2el):
    """True where a request meets every SLO (value <= limit; an absent SLO is +inf)."""
    ok = np.empty(ttft.size, np.bool_)
    for i in range(ttft.size):
        ok[i] = ttft[i] <= max_ttft and tpot[i] <= max_tpot and e2el[i] <= max_e2el
    return ok


@njit(cache=True)
def peak_overlap(starts, ends):
    """Largest number of intervals [starts[i], ends[i]) open at one instant."""
    s = np.sort(starts)
    e = np.sort(ends)
    open_now = peak = j = 0
    for i in range(s.size):
        while j < e.size and e[j] <= s[i]:  # an interval ending as another starts: not overlapping
            open_now -= 1
            j += 1
        open_now += 1
        peak = max(peak, open_now)
    return peak
