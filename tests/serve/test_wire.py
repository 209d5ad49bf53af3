"""The shared wire pieces: request checks with a pluggable token counter, /v1/models, headers."""
from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from varcas.serve.http11 import response, stream_head
from varcas.serve.openai_wire import ApiError, Body, GenRequest, models_body, parse_body


def test_text_is_counted_by_the_callers_counter_and_token_ids_are_not():
    tenfold = lambda words: 10 * words  # noqa: E731
    assert parse_body(b'{"prompt": "a b  c"}', False, "m", tenfold).prompt_tokens == 30
    assert parse_body(b'{"prompt": [7, 0, 7]}', False, "m", tenfold).prompt_tokens == 3
    chat = (b'{"messages": [{"role": "system", "content": "a b"}, {"role": "user", "content":'
            b' [{"type": "text", "text": "c"}, {"type": "image_url"}]}, {"role": "assistant", "content": null}]}')
    assert parse_body(chat, True, "m", tenfold).prompt_tokens == 30    # counted once, over all words
    assert parse_body(chat, True, "m").prompt_tokens == 3              # default: a word is a token


def test_body_fields_and_the_request_it_becomes():
    body = parse_body(b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 9,'
                      b' "max_completion_tokens": 4, "stream": true, "stream_options": {"include_usage": true},'
                      b' "ignore_eos": 1}', True, "m")
    assert (body.chat, body.prompt_tokens, body.max_tokens_key, body.max_tokens, body.stream,
            body.include_usage) == (True, 1, "max_completion_tokens", 4, True, True)
    assert body.fields["ignore_eos"] == 1   # left for the server's own checks
    assert body.request(6) == GenRequest(True, True, 6, 1, True)
    bare = parse_body(b'{"prompt": "x"}', False, "m")
    assert (bare.max_tokens_key, bare.max_tokens, bare.stream, bare.include_usage) == ("max_tokens", None, False, False)


PROMPT_ERROR = "prompt must be a string or a list of token ids (batched prompts are not supported)"


@pytest.mark.parametrize("raw, status, message", [
    (b'"x"', 400, "request body must be a JSON object"),
    (b'{"prompt": "x", "model": "other"}', 404, "The model `other` does not exist."),
    (b'{"prompt": "x", "n": 3}', 400, "only n=1 is supported (one sequence per request: n must be 1)"),
    (b'{"prompt": [1, -1]}', 400, PROMPT_ERROR),
    (b'{"prompt": ["a", "b"]}', 400, PROMPT_ERROR),
    (b'{"prompt": "x", "max_tokens": 0}', 400, "max_tokens must be an integer >= 1, got 0"),
    (b'{"prompt": "x", "max_tokens": 2.0}', 400, "max_tokens must be an integer >= 1, got 2.0"),
    (b'{"prompt": "x", "stream": 1}', 400, "stream must be a boolean"),
    (b'{"prompt": "x", "stream": true, "stream_options": []}', 400, "stream_options must be an object"),
    (b'{"messages": {}}', 400, "messages must be a non-empty list"),
])
def test_rejections(raw, status, message):
    with pytest.raises(ApiError) as info:
        parse_body(raw, b"messages" in raw, "m")
    assert (info.value.status, info.value.message) == (status, message)


def test_json_errors_say_where():
    with pytest.raises(ApiError) as info:
        parse_body(b'{"prompt": "x",', False, "m")
    assert info.value.status == 400 and info.value.message.startswith("request body is not valid JSON: ")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(
        ["prompt", "messages", "role", "content", "text", "max_tokens", "max_completion_tokens", "n",
         "stream", "stream_options", "include_usage", "model"]), inner, max_size=5),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(json_values, st.booleans())
def test_any_json_is_a_checked_body_or_an_api_error(value, chat):
    try:
        body = parse_body(json.dumps(value).encode(), chat, "m")
    except ApiError as exc:
        assert exc.status in (400, 404) and exc.message
    else:
        assert isinstance(body, Body) and body.prompt_tokens >= 0 and body.fields == value
        assert body.max_tokens is None or (type(body.max_tokens) is int and body.max_tokens >= 1)


def test_models_body_reports_max_model_len_when_given():
    card = {"id": "m", "object": "model", "created": 5, "owned_by": "vllm", "root": "m", "parent": None,
            "max_model_len": None, "permission": []}
    assert orjson.loads(models_body("m", 5)) == {"object": "list", "data": [card]}
    assert models_body("m", 5, 4096) == (b'{"object":"list","data":[{"id":"m","object":"model","created":5,'
                                         b'"owned_by":"vllm","root":"m","parent":null,"max_model_len":4096,'
                                         b'"permission":[]}]}')


def test_the_server_header_is_the_callers():
    assert response(404, b"{}", False, "srv-a") == (
        b"HTTP/1.1 404 Not Found\r\nserver: srv-a\r\ncontent-type: application/json\r\n"
        b"content-length: 2\r\nconnection: close\r\n\r\n{}")
    assert stream_head(True, "srv-b") == (
        b"HTTP/1.1 200 OK\r\nserver: srv-b\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
        b"transfer-encoding: chunked\r\nconnection: keep-alive\r\n\r\n")
