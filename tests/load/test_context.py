"""fit_to_context: refuse what cannot fit, clip prompts first when asked, touch nothing that fits."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from varcas.errors import VarcasError
from varcas.load.context import fit_to_context

lengths = st.lists(st.tuples(st.integers(1, 5000), st.integers(1, 3000)), min_size=1, max_size=50)


def arrays(pairs):
    a = np.array(pairs, dtype=np.int32)
    return a[:, 0].copy(), a[:, 1].copy()


def test_unknown_context_changes_nothing():
    i, o = arrays([(10_000, 10_000)])
    assert fit_to_context(i, o, None, False) == (i, o, None)


def test_refusal_names_the_count_and_the_largest_request():
    i, o = arrays([(100, 10), (500, 100), (200, 20)])
    with pytest.raises(VarcasError, match=r"^1 of 3 requests need more than the server's max_model_len of 512 "
                                          r"tokens \(the largest: 500 prompt \+ 100 output\).*--clip-to-context"):
        fit_to_context(i, o, 512, False)


@settings(max_examples=200, deadline=None)
@given(pairs=lengths, max_len=st.integers(3, 6000), extra=st.integers(0, 1))
def test_clipping_fits_every_request_and_changes_only_those_over(pairs, max_len, extra):
    i, o = arrays(pairs)
    new_i, new_o, note = fit_to_context(i, o, max_len, True, extra)
    over = i.astype(np.int64) + o > max_len
    assert np.all(new_i.astype(np.int64) + new_o <= max_len)
    assert np.all(new_i >= 1) and np.all(new_o >= 1)
    assert np.array_equal(new_i[~over], i[~over]) and np.array_equal(new_o[~over], o[~over])
    # the prompt is shortened first: max_tokens only shrinks when the prompt is already at its floor
    shrunk = new_o < o
    assert np.all(new_i[shrunk] == 1 + extra)
    assert (note is None) == (not over.any())
    if note:
        assert note.startswith(f"--clip-to-context: {int(over.sum())} of {len(i)} requests shortened")


def test_a_context_too_small_for_anything_is_an_error():
    i, o = arrays([(10, 10)])
    with pytest.raises(VarcasError, match="leaves no room"):
        fit_to_context(i, o, 5, True, extra=5)
