"""Pure-numpy twins of the kernels in kernels.py: slow, obviously right, and what tests trust.

Each function takes the same arguments and returns the same values as its kernel.
"""
from __future__ import annotations

import numpy as np


def percentiles(a, q):
    return np.percentile(a, q).astype(np.float64)


def moments(a):
    if a.size == 0:
        return 0, np.nan, np.nan
    return a.size, float(np.mean(a)), float(np.std(a))


def itl_gaps(offsets, values, row_mask):
    lengths = np.diff(offsets)
    keep = row_mask & (lengths > 1)
    counts = np.where(keep, lengths - 1, 0)
    gap_offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    owner = np.repeat(np.arange(lengths.size), lengths)  # row of each value
    diffs = np.diff(values[offsets[0]:offsets[-1]])
    same_row = owner[1:] == owner[:-1]
    gaps = diffs[same_row & keep[owner[1:]]]
    return gap_offsets, gaps


def bin_counts(offsets, values, row_mask, t0, width, nbins):
    lengths = np.diff(offsets)
    selected = values[offsets[0]:offsets[-1]][np.repeat(row_mask, lengths)]
    selected = selected[selected >= t0]
    index = (selected - t0) // width
    return np.bincount(index[index < nbins], minlength=nbins).astype(np.int64)


def grouped_percentiles(group, values, ngroups, qq):
    out = np.full((ngroups, len(qq)), np.nan)
    for g in range(ngroups):
        part = values[group == g]
        if part.size:
            out[g] = np.quantile(part, qq)
    return out


def slo_mask(ttft, tpot, e2el, max_ttft, max_tpot, max_e2el):
    return (ttft <= max_ttft) & (tpot <= max_tpot) & (e2el <= max_e2el)


def peak_overlap(starts, ends):
    if starts.size == 0:
        return 0
    times = np.concatenate((ends, starts))
    steps = np.concatenate((np.full(ends.size, -1), np.full(starts.size, 1)))
    order = np.lexsort((steps, times))  # by time; at a tie, ends (-1) before starts
    return int(np.cumsum(steps[order]).max())
