"""Request validation and the Prometheus histogram, unit by unit."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from varcas.serve.openai_wire import ApiError
from varcas.sim.api import check_lengths, parse, words_to_tokens
from varcas.sim.metrics import Histogram


def test_context_length_checks_are_vllms():
    assert check_lengths(100, 50, 4096) == 50
    assert check_lengths(100, None, 4096) == 3996    # absent max_tokens: the rest of the context
    assert check_lengths(4000, 96, 4096) == 96       # exactly full is allowed
    with pytest.raises(ApiError) as info:
        check_lengths(4000, 97, 4096)
    assert info.value.status == 400 and info.value.message == (
        "This model's maximum context length is 4096 tokens. However, you requested 4097 tokens "
        "(4000 in the messages, 97 in the completion). Please reduce the length of the messages or completion.")
    with pytest.raises(ApiError, match="you requested 4096 tokens in the messages"):
        check_lengths(4096, None, 4096)


def test_prompt_lengths_in_tokens():
    assert words_to_tokens(30) == 40 and words_to_tokens(3) == 4
    gen = parse(b'{"prompt": [1, 2, 3], "max_tokens": 7, "stream": true}', False, "m", 100)
    assert (gen.prompt_tokens, gen.output_tokens, gen.stream, gen.include_usage) == (3, 7, True, False)
    gen = parse(b'{"model": "m", "messages": [{"role": "system", "content": "a b c"}, '
                b'{"role": "user", "content": [{"type": "text", "text": "d e f"}]}]}', True, "m", 100)
    assert (gen.prompt_tokens, gen.output_tokens, gen.chat) == (8, 92, True)


def test_histogram_buckets_are_inclusive_upper_bounds():
    h = Histogram((0.1, 1.0))
    for v in (0.05, 0.1, 0.5, 1.0, 3.0):
        h.observe(v)
    assert h.counts == [2, 2, 1] and h.sum == pytest.approx(4.65)
    assert h.samples("x", 'model_name="m"') == [
        'x_bucket{le="0.1",model_name="m"} 2.0', 'x_bucket{le="1.0",model_name="m"} 4.0',
        'x_bucket{le="+Inf",model_name="m"} 5.0', 'x_count{model_name="m"} 5.0', 'x_sum{model_name="m"} 4.65']


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(
        ["prompt", "messages", "role", "content", "text", "max_tokens", "max_completion_tokens", "n",
         "stream", "stream_options", "include_usage", "model", "ignore_eos"]), inner, max_size=5),
    max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(json_values, st.booleans())
def test_any_json_is_a_request_or_an_api_error(value, chat):
    try:
        gen = parse(json.dumps(value).encode(), chat, "m", 64)
    except ApiError as exc:
        assert exc.status in (400, 404) and exc.message
    else:
        assert gen.prompt_tokens >= 1 and gen.output_tokens >= 1 and gen.prompt_tokens + gen.output_tokens <= 64
