"""Prompt builders: exact length and format, ID range, wrap-around, determinism,
distinct starts per request, JSON escaping of text, and bad arguments."""
import json

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from varcas.errors import VarcasError
from varcas.load.prompts import WORDS_PER_TOKEN, TextPrompts, TokenPrompts
from varcas.resources import data_path

TOKENS = TokenPrompts(9, pool_tokens=4096)
TEXT = TextPrompts(4)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**40), low=st.integers(0, 200_000), span=st.integers(1, 200_000),
       pool=st.integers(1, 300), i=st.integers(0, 10**12), length=st.integers(1, 2000))
def test_token_fragment_is_exact_length_in_range_and_compact_json(seed, low, span, pool, i, length):
    tp = TokenPrompts(seed, vocab_low=low, vocab_high=low + span, pool_tokens=pool)
    frag = tp.fragment(i, length)
    ids = json.loads(frag)
    assert len(ids) == length
    assert all(low <= x < low + span for x in ids)
    assert frag == orjson.dumps(ids)  # no spaces, plain decimal ints
    assert frag == TokenPrompts(seed, vocab_low=low, vocab_high=low + span, pool_tokens=pool).fragment(i, length)


def test_first_token_steps_with_the_request_index():
    tp = TokenPrompts(5, vocab_low=100, vocab_high=110, pool_tokens=50)
    firsts = [json.loads(tp.fragment(i, 3))[0] for i in range(25)]
    assert all((b - a) % 10 == 1 for a, b in zip(firsts, firsts[1:]))
    assert tp.fragment(0, 1) == b"[%d]" % firsts[0]


def test_long_prompt_wraps_the_pool_with_its_period():
    pool = 97
    ids = json.loads(TokenPrompts(1, pool_tokens=pool).fragment(3, 1 + 3 * pool + 5))
    body = ids[1:]
    assert body[:pool] * 3 + body[:5] == body


def test_consecutive_requests_start_at_distinct_pool_positions():
    pool = 97
    tp = TokenPrompts(2, pool_tokens=pool)
    windows = {tuple(json.loads(tp.fragment(i, pool + 1))[1:]) for i in range(pool)}
    assert len(windows) == pool  # every rotation of the pool exactly once


@settings(max_examples=30, deadline=None)
@given(i=st.integers(0, 10**6), a=st.integers(1, 3000), b=st.integers(1, 3000))
def test_shorter_prompt_is_a_prefix_of_a_longer_one(i, a, b):
    short, long = sorted((a, b))
    assert json.loads(TOKENS.fragment(i, long))[:short] == json.loads(TOKENS.fragment(i, short))



def test_default_pool_handles_lengths_beyond_it():
    tp = TokenPrompts(0)
    ids = json.loads(tp.fragment(17, (1 << 20) + 10))
    assert len(ids) == (1 << 20) + 10
    assert min(ids) >= 1000 and max(ids) < 29000
    assert tp.fragment(1, 50) != TokenPrompts(1).fragment(1, 50)  # the seed matters


@pytest.mark.parametrize("kwargs, message", [
    ({"seed": -1}, "seed must be an integer >= 0"),
    ({"seed": 1.5}, "seed must be an integer >= 0"),
    ({"seed": 0, "vocab_low": -1}, "vocab_low must be an integer >= 0"),
    ({"seed": 0, "vocab_low": 10, "vocab_high": 10}, "vocab_high must be an integer >= 11"),
    ({"seed": 0, "pool_tokens": 0}, "pool_tokens must be an integer >= 1"),
])
def test_token_prompts_constructor_rejects(kwargs, message):
    with pytest.raises(VarcasError, match=message):
        TokenPrompts(**kwargs)


@pytest.mark.parametrize("args, message", [
    ((-1, 10), "request index must be an integer >= 0"),
    ((0, 0), "prompt length must be an integer >= 1"),
    ((0, 2.5), "prompt length must be an integer >= 1"),
    ((0, True), "prompt length must be an integer >= 1"),
])
def test_fragment_rejects(args, message):
    with pytest.raises(VarcasError, match=message):
        TOKENS.fragment(*args)
    with pytest.raises(VarcasError, match=message):
        TEXT.fragment(*args)



def test_shipped_corpus_is_original_sized_plain_text():
    raw = data_path("corpus.txt").read_bytes()
    assert 40_000 <= len(raw) <= 80_000
    words = raw.decode("ascii").split()
    assert len(set(w.lower().strip('.,;:') for w in words)) > 2000  # varied, not repeated


@settings(max_examples=40, deadline=None)
@given(i=st.integers(0, 10**9), approx=st.integers(1, 20_000))
def test_text_fragment_has_the_promised_word_count(i, approx):
    text = json.loads(TEXT.fragment(i, approx))
    assert len(text.split(" ")) == max(1, round(approx * WORDS_PER_TOKEN))


def test_text_is_a_cyclic_window_of_the_corpus_escaped_as_json(tmp_path):
    corpus = tmp_path / "c.txt"
    words = ['He', 'said', '"hi"', 'back\\slash', 'caf\u00e9', 'tab\there', 'end.']
    corpus.write_text(" ".join(words[:5]) + "\n\n " + words[5] + " " + words[6] + "\n", encoding="utf-8")
    tp = TextPrompts(3, corpus_path=corpus)
    # 'tab\there' splits at the tab: whitespace is normalised.
    flat = " ".join(words).split()
    n = len(flat)
    starts = set()
    for i in range(n):
        frag = tp.fragment(i, 16)  # 12 words: wraps the 8-word corpus
        assert frag.isascii()
        got = json.loads(frag).split(" ")
        start = next(s for s in range(n) if [flat[(s + k) % n] for k in range(12)] == got)
        starts.add(start)
    assert len(starts) == n  # n consecutive requests start at n different words


def test_text_prompts_errors(tmp_path):
    with pytest.raises(VarcasError, match="cannot read corpus .*nope.txt"):
        TextPrompts(0, corpus_path=tmp_path / "nope.txt")
    (tmp_path / "empty.txt").write_text("  \n\t ")
    with pytest.raises(VarcasError, match="has no words"):
        TextPrompts(0, corpus_path=tmp_path / "empty.txt")
    with pytest.raises(VarcasError, match="seed must be an integer >= 0"):
        TextPrompts(-2)


def test_text_is_deterministic_per_seed():
    assert TextPrompts(4).fragment(10, 300) == TEXT.fragment(10, 300)
    assert TextPrompts(5).fragment(10, 300) != TEXT.fragment(10, 300)
    assert TEXT.fragment(10, 300) != TEXT.fragment(11, 300)


def test_pool_ids_are_uniform_over_the_vocabulary():
    ids = np.array(json.loads(TokenPrompts(3, vocab_low=0, vocab_high=10, pool_tokens=20_000).fragment(0, 20_000)))
    counts = np.bincount(ids, minlength=10)
    assert counts.min() > 1800 and counts.max() < 2200  # expected 2000, sd ~42
