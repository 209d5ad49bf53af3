"""The C timing core (varcas._timing) and its Python twin on exact, hand-checked cases:
real vLLM completion and chat streams, HTTP framing corners, limits, JSON validity (against
orjson), the buffer protocol and the timerfd Timer. Random splits and mutations are in
test_parser_diff.py.
"""

from __future__ import annotations

import gc
import os
import select
import time

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from varcas._timing import StreamParser, Timer, monotonic_ns
from varcas.load.parser_py import PyStreamParser

PARSERS = pytest.mark.parametrize("make", [StreamParser, PyStreamParser], ids=["c", "py"])
UVICORN_HEAD = (
    b"HTTP/1.1 200 OK\r\ndate: Thu, 27 Nov 2025 20:00:00 GMT\r\nserver: uvicorn\r\n"
    b"content-type: text/event-stream; charset=utf-8\r\ntransfer-encoding: chunked\r\n\r\n"
)
SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"


def chunk(payload: bytes) -> bytes:
    """One HTTP chunk, as uvicorn frames each string the server's generator yields."""
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def timestamps(p) -> list[int]:
    return np.frombuffer(p, dtype=np.int64).tolist() if isinstance(p, StreamParser) else p.tokens().tolist()


def feed_all(p, reads: list[bytes], t0: int = 1000, step: int = 1000) -> list[int]:
    return [p.feed(r, t0 + k * step) for k, r in enumerate(reads)]


# vllm/entrypoints/openai/serving_completion.py: one chunk per engine step, then the usage
# chunk (exclude_none) when stream_options.include_usage, then [DONE].
COMPLETION_EVENTS = [
    b'data: {"id":"cmpl-5d0f","object":"text_completion","created":1732737600,"model":"m",'
    b'"choices":[{"index":0,"text":"%s","logprobs":null,"finish_reason":%s,"stop_reason":null}],'
    b'"usage":null}\n\n' % (text, finish)
    for text, finish in [
        (b" The", b"null"), (b" \\\"quick\\\"", b"null"), (b" caf\\u00e9", b"null"), (b"!", b'"length"')
    ]
] + [
    b'data: {"id":"cmpl-5d0f","object":"text_completion","created":1732737600,"model":"m","choices":[],'
    b'"usage":{"prompt_tokens":6,"total_tokens":10,"completion_tokens":4}}\n\n',
    b"data: [DONE]\n\n",
]

# vllm/entrypoints/openai/serving_chat.py: a role-only first chunk, content deltas, a final
# delta with the finish reason, the usage chunk, [DONE].
CHAT_EVENTS = [
    b'data: {"id":"chatcmpl-9c1","object":"chat.completion.chunk","created":1732737600,"model":"m",'
    b'"choices":[{"index":0,"delta":%s,"logprobs":null,"finish_reason":%s}]}\n\n' % (delta, finish)
    for delta, finish in [
        (b'{"role":"assistant","content":""}', b"null"),
        (b'{"reasoning_content":"Let me think."}', b"null"),
        (b'{"content":"Hello"}', b"null"),
        (b'{"content":"\\n\\ud83d\\ude00"}', b"null"),
        (b'{"content":""}', b'"stop"'),
    ]
] + [
    b'data: {"id":"chatcmpl-9c1","object":"chat.completion.chunk","created":1732737600,"model":"m",'
    b'"choices":[],"usage":{"prompt_tokens":12,"total_tokens":15,"completion_tokens":3}}\n\n',
    b"data: [DONE]\n\n",
]


@PARSERS
def test_vllm_completion_stream_one_chunk_per_read(make):
    p = make()
    reads = [UVICORN_HEAD] + [chunk(e) for e in COMPLETION_EVENTS] + [b"0\r\n\r\n"]
    assert feed_all(p, reads) == [0] * 7 + [1]
    assert timestamps(p) == [2000, 3000, 4000, 5000]
    assert (p.n_events, p.first_token_ns, p.last_token_ns) == (4, 2000, 5000)
    assert p.usage == b'{"prompt_tokens":6,"total_tokens":10,"completion_tokens":4}'
    assert p.finish_reason == "length"
    assert (p.status, p.keep_alive, p.is_sse, p.trailing) == (200, True, True, False)
    assert (p.first_byte_ns, p.done_ns, p.end_ns) == (1000, 7000, 8000)
    assert (p.error_event, p.errmsg, p.body_excerpt) == (None, None, b"")


@PARSERS
def test_vllm_chat_stream_in_two_reads_and_reset(make):
    p = make()
    raw = UVICORN_HEAD + b"".join(chunk(e) for e in CHAT_EVENTS) + b"0\r\n\r\n"
    cut = raw.index(b"Hello")
    assert feed_all(p, [raw[:cut], raw[cut:]]) == [0, 1]
    # reasoning_content counts; the role-only chunk, the empty final delta and usage do not
    assert timestamps(p) == [1000, 2000, 2000]
    assert (p.finish_reason, p.done_ns, p.end_ns) == ("stop", 2000, 2000)
    assert p.usage == b'{"prompt_tokens":12,"total_tokens":15,"completion_tokens":3}'
    p.reset()
    assert (p.status, p.n_events, p.usage, p.finish_reason, p.first_byte_ns, p.end_ns) == (0, 0, None, None, 0, 0)
    assert feed_all(p, [raw], t0=9000) == [1]
    assert timestamps(p) == [9000, 9000, 9000] and p.first_byte_ns == 9000


@PARSERS
def test_in_stream_error_event_is_kept_and_is_not_content(make):
    p = make()
    err = b'{"error": {"message": "boom", "type": "BadRequestError", "param": null, "code": 400}}'
    old = b'{"object":"error","message":"later","type":"InternalServerError","param":null,"code":500}'
    body = COMPLETION_EVENTS[0] + b"data: " + err + b"\n\ndata: " + old + b"\n\ndata: [DONE]\n\n"
    assert p.feed(SSE_HEAD.replace(b"\r\n\r\n", b"\r\nContent-Length: %d\r\n\r\n" % len(body)) + body, 5) == 1
    assert (p.n_events, p.error_event, p.done_ns, p.end_ns) == (1, err, 5, 5)


@PARSERS
def test_http_error_body_is_an_excerpt_not_parsed(make):
    p = make(10)
    body = b'{"object":"error","message":"data: {}"}'
    raw = b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    assert feed_all(p, [raw + body[:5], body[5:]]) == [0, 1]
    assert (p.status, p.is_sse, p.keep_alive, p.n_events, p.error_event) == (400, False, True, 0, None)
    assert (p.body_excerpt, p.end_ns) == (body[:10], 2000)


@PARSERS
def test_sse_body_with_non_2xx_status_is_not_parsed(make):
    p = make()
    assert p.feed(b"HTTP/1.1 503 Busy\r\nContent-Type: text/event-stream\r\n\r\n" + COMPLETION_EVENTS[0], 1) == 0
    assert (p.n_events, p.is_sse, p.keep_alive, p.body_excerpt) == (0, True, False, COMPLETION_EVENTS[0])


@PARSERS
def test_close_delimited_body_completes_at_eof_and_chunked_does_not(make):
    p = make()
    assert p.feed(b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\n" + COMPLETION_EVENTS[0], 7) == 0
    assert (p.keep_alive, p.eof(9), p.end_ns, timestamps(p)) == (False, 1, 9, [7])
    q = make()
    assert q.feed(UVICORN_HEAD + chunk(COMPLETION_EVENTS[0])[:-4], 7) == 0
    assert (q.eof(9), q.end_ns, q.errmsg) == (0, 0, None)


@PARSERS
def test_interim_100_continue_is_skipped(make):
    p = make()
    assert p.feed(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n", 1) == 0
    assert p.status == 0
    assert p.feed(b"HTTP/1.1 204 No Content\r\n", 2) == 0 and p.status == 204
    assert p.feed(b"Content-Type: text/event-stream\r\n\r\nXY", 2) == 1
    assert (p.status, p.is_sse, p.keep_alive, p.end_ns, p.trailing, p.first_byte_ns) == (204, True, True, 2, True, 1)


@PARSERS
@pytest.mark.parametrize(
    "head, complete, keep_alive",
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 1, True),
        (b"HTTP/1.1 200 OK\r\nConnection: Upgrade, CLOSE\r\nContent-Length: 0\r\n\r\n", 1, False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 1, False),
        (b"HTTP/1.0 200 OK\nconnection:keep-alive\ncontent-length:0\n\n", 1, True),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 0\r\n\r\n", 0, False),  # until close
    ],
)
def test_keep_alive(make, head, complete, keep_alive):
    p = make()
    assert p.feed(head, 5) == complete
    assert (p.status, p.keep_alive, p.end_ns) == (200, keep_alive, 5 * complete)


@PARSERS
def test_chunked_wins_over_content_length_and_extensions_and_trailers_are_allowed(make):
    p = make()
    raw = (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: text/event-stream\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n" + b"%X ;ext=1\r\n" % len(COMPLETION_EVENTS[0]) + COMPLETION_EVENTS[0]
           + b"\r\n0\r\nX-Checksum: 1\r\n\r\n")
    assert p.feed(raw, 3) == 1 and p.n_events == 1


@PARSERS
@pytest.mark.parametrize(
    "raw, errmsg",
    [
        (b"HTTP/2 200 OK\r\n", "malformed status line"),
        (b"HTTP/1.1 20 OK\r\n", "malformed status line"),
        (b"HTTP/1.1 200OK\r\n", "malformed status line"),
        (b"HTTP/1.1 200 OK\r\n folded\r\n", "obsolete header line folding"),
        (b"HTTP/1.1 200 OK\r\nBad Name: x\r\n", "malformed header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n", "invalid Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n", "invalid Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "malformed chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n", "missing CRLF after chunk data"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8000000000000000\r\n", "chunk size overflow"),
        (SSE_HEAD + b"data: {\"choices\": [}\n\n", "invalid JSON in SSE data"),
    ],
)
def test_malformed_input_freezes_with_a_message(make, raw, errmsg):
    p = make()
    assert p.feed(raw, 1) == -1
    assert p.errmsg == errmsg
    assert p.feed(SSE_HEAD, 2) == -1 and p.eof(3) == -1 and p.errmsg == errmsg


@PARSERS
def test_largest_chunk_size_is_accepted(make):
    p = make()
    assert p.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7fffFFFFffffffff\r\nabc", 1) == 0
    assert p.errmsg is None


@PARSERS
def test_head_limit_is_64_kib_with_line_ends(make):
    status, tail = b"HTTP/1.1 200 OK\r\n", b"\r\n"
    filler = 64 * 1024 - len(status) - len(tail) - len(b"X: \r\n")
    exact = status + b"X: " + b"a" * filler + b"\r\n" + tail
    p = make()
    assert len(exact) == 64 * 1024 and p.feed(exact[:1000], 1) == 0 and p.feed(exact[1000:], 2) == 0
    assert p.status == 200 and p.errmsg is None
    q = make()
    assert q.feed(status + b"X: " + b"a" * (filler + 1) + b"\r\n", 1) == 0
    assert q.feed(tail, 2) == -1 and q.errmsg == "response head exceeds 64 KiB"


@PARSERS
def test_sse_event_and_line_limits_are_16_mib(make):
    mib = 1024 * 1024
    p = make()  # joined data: (8 MiB - 1) + LF + (8 MiB - 1) + LF = 16 MiB exactly
    assert p.feed(SSE_HEAD + b"data:" + b"x" * (8 * mib - 1) + b"\ndata:" + b"y" * (8 * mib - 1) + b"\n", 1) == 0
    assert p.errmsg is None
    assert p.feed(b"data:\n", 2) == -1 and p.errmsg == "SSE event exceeds 16 MiB"
    q = make()  # a line still open at 16 MiB is fine; one more byte is not
    assert q.feed(SSE_HEAD + b":" + b"c" * (16 * mib - 1), 1) == 0
    assert q.feed(b"c", 2) == -1 and q.errmsg == "SSE event exceeds 16 MiB"


@PARSERS
def test_sse_framing_corners(make):
    p = make()
    text = b'{"choices":[{"text":"x"}]}'
    reads = [
        SSE_HEAD + b"\xef\xbb\xbf: comment\r",  # BOM, a comment, CR of a CRLF ...
        b"\nevent: message\rid: 1\r\ndata:" + text[:10],  # ... whose LF comes in the next read
        b"\ndata" + b"\r\n" + b"data: " + text[10:] + b"\r",  # data without colon adds an empty line
        b"\r",
        b"data:[DONE]\n\ndata\n\n",  # an event with empty data is ignored
    ]
    assert feed_all(p, reads) == [0] * 5
    assert (timestamps(p), p.done_ns, p.errmsg) == ([4000], 5000, None)


@PARSERS
def test_done_ns_is_the_first_done(make):
    p = make()
    assert feed_all(p, [SSE_HEAD + b"data: [DONE]\n\n", b"data: [DONE]\n\n"]) == [0, 0]
    assert p.done_ns == 1000


@PARSERS
def test_feed_accepts_any_buffer_and_keywords(make):
    p = make(excerpt_limit=4)
    assert p.feed(data=memoryview(b"HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\n"), now_ns=5) == 0
    assert p.feed(bytearray(b"abcde"), now_ns=6) == 1
    assert (p.body_excerpt, p.end_ns, p.first_byte_ns) == (b"abcd", 6, 5)


def test_arguments_are_checked():
    p = StreamParser()
    with pytest.raises(TypeError):
        p.feed("text")
    with pytest.raises(TypeError):
        p.feed(b"x", 1, 2)
    with pytest.raises(TypeError):
        p.feed(b"x", when=1)
    with pytest.raises(TypeError):
        p.feed(now_ns=1)
    with pytest.raises(ValueError):
        StreamParser(-1)
    with pytest.raises(ValueError):
        PyStreamParser(-1)


def test_feed_without_now_uses_the_monotonic_clock():
    p = StreamParser()
    before = time.monotonic_ns()
    p.feed(SSE_HEAD + COMPLETION_EVENTS[0])
    after = time.monotonic_ns()
    assert before <= p.first_byte_ns == p.first_token_ns <= after
    assert before <= monotonic_ns() and time.monotonic_ns() >= after


# ---- guards: per-request caps, non-HTTP peers, unasked compression, data after [DONE] -----

ROLE_EVENT = CHAT_EVENTS[0]  # a chunk without content: not counted as a content event
DONE_EVENT = b"data: [DONE]\n\n"


def sse_length_response(body: bytes) -> bytes:
    return SSE_HEAD.replace(b"\r\n\r\n", b"\r\nContent-Length: %d\r\n\r\n" % len(body)) + body


@PARSERS
def test_content_events_beyond_2_per_token_plus_64_fail(make):
    p = make()
    p.reset(max_tokens=3)  # cap: 2 * 3 + 64 = 70 content events
    assert p.feed(SSE_HEAD + COMPLETION_EVENTS[0] * 70 + ROLE_EVENT * 100, 1) == 0
    assert (p.n_events, p.errmsg) == (70, None)
    assert p.feed(COMPLETION_EVENTS[1], 2) == -1
    assert p.errmsg == "more than 70 content events for max_tokens 3"
    assert (p.n_events, p.last_token_ns, p.finish_reason) == (70, 1, None)  # the 71st is not kept
    assert p.feed(DONE_EVENT, 3) == -1 and p.done_ns == 0


@PARSERS
def test_content_events_at_the_cap_complete(make):
    p = make()
    p.reset(3)
    assert p.feed(sse_length_response(COMPLETION_EVENTS[0] * 70 + DONE_EVENT), 1) == 1
    assert (p.n_events, p.done_ns, p.errmsg) == (70, 1, None)


@PARSERS
def test_response_bytes_beyond_128_kib_plus_4_kib_per_token_fail(make):
    cap = 128 * 1024 + 4 * 1024  # max_tokens 1
    head = SSE_HEAD.replace(b"\r\n\r\n", b"\r\nContent-Length: %d\r\n\r\n")
    for extra in (0, 1):  # a response of exactly cap bytes, then one byte longer
        filler = cap + extra - len(head % 100000) - len(b":\n" + DONE_EVENT)
        body = b":" + b"p" * filler + b"\n" + DONE_EVENT
        raw = head % len(body) + body
        assert len(raw) == cap + extra
        p = make()
        p.reset(max_tokens=1)
        assert p.feed(raw[:1000], 1) == 0 and p.feed(raw[1000:-1], 2) == 0
        if extra:
            assert p.feed(raw[-1:], 3) == -1 and p.errmsg == f"more than {cap} response bytes for max_tokens 1"
            assert p.done_ns == 0 and p.end_ns == 0
        else:  # bytes after a complete response are not counted against it
            assert p.feed(raw[-1:] + b"HTTP/1.1 200 OK\r\n", 3) == 1
            assert (p.errmsg, p.trailing, p.done_ns, p.end_ns) == (None, True, 3, 3)


@PARSERS
def test_byte_cap_also_ends_a_body_that_is_not_an_event_stream(make):
    p = make(excerpt_limit=8)
    p.reset(1)
    assert p.feed(b"HTTP/1.0 500 Oops\r\n\r\n" + b"x" * 200_000, 1) == -1
    assert (p.status, p.body_excerpt) == (500, b"x" * 8)
    assert p.errmsg == "more than 135168 response bytes for max_tokens 1"


@PARSERS
def test_reset_without_max_tokens_lifts_the_caps(make):
    p = make()
    p.reset(1)
    p.reset()
    assert p.feed(SSE_HEAD + COMPLETION_EVENTS[0] * 5000 + b": " + b"p" * 300_000 + b"\n", 1) == 0
    assert (p.n_events, p.errmsg) == (5000, None)
    p.reset(0)  # 0 means no cap too
    assert p.feed(SSE_HEAD + COMPLETION_EVENTS[0] * 100, 1) == 0 and p.n_events == 100


@PARSERS
def test_max_tokens_is_checked(make):
    p = make()
    for bad in (-1, 2**32):
        with pytest.raises(ValueError, match=r"max_tokens must be in \[0, 4294967295\]"):
            p.reset(bad)
    for args in (("8",), (8, 1)):
        with pytest.raises(TypeError):
            p.reset(*args)
    p.reset(max_tokens=np.int32(8))
    p.reset(2**32 - 1)
    assert p.feed(SSE_HEAD + COMPLETION_EVENTS[0], 1) == 0 and p.n_events == 1


@PARSERS
@pytest.mark.parametrize(
    "raw",
    [
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"\x15\x03\x03\x00\x02\x02\x46",  # a TLS alert (protocol_version) to a plain-HTTP hello
        b"S",
        b"HTTX",
        b"http/1.1 200 OK\r\n",  # the HTTP-version is case-sensitive
        b"\r\nHTTP/1.1 200 OK\r\n",
        b"HTT\n",
        b"X" * 70_000,  # no line end: still at the first byte, not at the 64 KiB head limit
        b"HTTP/1.1 100 Continue\r\n\r\n<html>",  # the final response's status line too
    ],
)
def test_first_bytes_that_cannot_start_http_fail_at_once(make, raw):
    p = make()
    assert p.feed(raw, 1) == -1
    assert p.errmsg == "response does not start with HTTP/"
    assert p.first_byte_ns == 1


@PARSERS
def test_a_status_line_split_byte_by_byte_is_accepted(make):
    p = make()
    raw = b"HTTP/1.1 200 OK\r\n"
    assert feed_all(p, [raw[k : k + 1] for k in range(len(raw))]) == [0] * len(raw)
    assert (p.status, p.errmsg) == (200, None)
    q = make()
    assert feed_all(q, [b"HT", b"TPS"]) == [0, -1] and q.errmsg == "response does not start with HTTP/"


@PARSERS
@pytest.mark.parametrize(
    "value, coding",
    [
        (b"gzip", "gzip"),
        (b"GZip", "GZip"),
        (b"br", "br"),
        (b"identity, deflate", "deflate"),
        (b" , zstd ,gzip", "zstd"),
        (b"x" * 40, "x" * 32),  # shown up to 32 bytes ...
        (b"g\xffz\x01", "g?z?"),  # ... of printable ASCII
    ],
)
def test_compressed_2xx_response_fails_at_the_end_of_its_head(make, value, coding):
    p = make()
    raw = UVICORN_HEAD.replace(b"\r\n\r\n", b"\r\nContent-Encoding: " + value + b"\r\n\r\n")
    assert p.feed(raw + b"1f\r\n\x1f\x8b", 1) == -1
    assert p.errmsg == f"compressed response (Content-Encoding: {coding}) that was not asked for"
    assert (p.status, p.is_sse, p.keep_alive, p.n_events) == (200, True, False, 0)


@PARSERS
def test_identity_coding_and_compressed_error_responses_pass(make):
    p = make()
    raw = UVICORN_HEAD.replace(b"\r\n\r\n", b"\r\nContent-Encoding: identity\r\ncontent-encoding: \r\n\r\n")
    assert p.feed(raw + chunk(COMPLETION_EVENTS[0]) + b"0\r\n\r\n", 1) == 1
    assert (p.errmsg, p.n_events) == (None, 1)
    q = make()  # an HTTP error stays an HTTP error (the status says more than the encoding)
    body = b"\x1f\x8b\x08\x00"
    assert q.feed(b"HTTP/1.1 503 Busy\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\n" + body, 1) == 1
    assert (q.errmsg, q.status, q.body_excerpt) == (None, 503, body)
    r = make()  # an interim head's fields do not carry over to the final head
    assert r.feed(b"HTTP/1.1 100 Continue\r\nContent-Encoding: gzip\r\n\r\n" + raw + b"0\r\n\r\n", 1) == 1
    assert r.errmsg is None


@PARSERS
@pytest.mark.parametrize(
    "after",
    [
        COMPLETION_EVENTS[0],
        CHAT_EVENTS[0],  # no content, still data
        COMPLETION_EVENTS[4],  # usage
        b'data: {"error": {"message": "late"}}\n\n',
        b"data: not json\n\n",
        b"data:\ndata:\n\n",  # joined data is one LF: not empty
    ],
)
def test_data_after_done_fails(make, after):
    p = make()
    assert p.feed(SSE_HEAD + COMPLETION_EVENTS[0] + DONE_EVENT + after, 1) == -1
    assert p.errmsg == "data after [DONE]"
    assert (p.n_events, p.done_ns, p.usage, p.error_event) == (1, 1, None, None)


@PARSERS
def test_keep_alives_and_repeated_done_after_done_pass(make):
    p = make()
    after = b": ping\n\ndata:\n\nevent: x\nid: 3\n\n\n\ndata: [DONE]\n\n"
    assert p.feed(sse_length_response(COMPLETION_EVENTS[0] + DONE_EVENT + after), 1) == 1
    assert (p.errmsg, p.n_events, p.done_ns, p.end_ns) == (None, 1, 1, 1)


# ---- JSON: validity exactly as orjson, content as a dict would see it ---------------------

OVERFLOW = str(2**1024 - 2**970)  # the smallest decimal that rounds to infinity


def sse_json(data: bytes) -> bytes:
    return SSE_HEAD + b"".join(b"data:" + line + b"\n" for line in data.split(b"\n")) + b"\n"


@pytest.mark.parametrize(
    "data",
    [
        b'{"choices":[{"text":"\\ud83d\\ude00"}]}', b'{"choices":[{"text":"\\ud83d"}]}', b'"\\udc00"',
        b'"\xff"', b'"\xed\xa0\x80"', b'"\xc0\x80"', b'"\xf4\x90\x80\x80"', b'"\xf0\x9f\x98\x80"', b'"\x1f"', b'"\x7f"',
        b"\xef\xbb\xbf{}", b"NaN", b"[1,]", b"01", b"1.", b"-", b".5", b"1e", b"-0", b"1E+5", b"tru", b"{} {}",
        OVERFLOW.encode(), str(2**1024 - 2**970 - 1).encode(), b"-" + OVERFLOW.encode(), b"1.7976931348623158e308",
        b"1.7976931348623159e308", b"0.000" + OVERFLOW.encode() + b"e312", b"0e99999999999999999999", b"1e-400",
        b"[" * 1024 + b"]" * 1024, b"[" * 1025 + b"]" * 1025, b'{"a":' * 1024 + b"1" + b"}" * 1024,
        b'{"choices":[{"text":"x"}],"choices":[]}', b'{"choices":[{"text":"x","text":""}]}',
        b'{"choices":[{"delta":{"content":"x"},"delta":{}}]}', b'{"choices":[{"delta":{"content":"x"},"delta":1}]}',
        b'{"choices":[{"t\\u0065xt":"x"}]}', b'{"choices":[{"finish_reason":"stop","finish_reason":null}]}',
        b'{"choices":[1,{"text":"x"}]}', b'{"object":"error","object":"chunk"}', b'{"\\u0065rror":0}',
        b'{"usage":{"a":1},"usage":null}', b'{"usage" : { "a" : [1, "}"] } , "x":1}',
    ],
)
def test_json_validity_and_fields_match_orjson_and_twin(data):
    c, py = StreamParser(), PyStreamParser()
    assert c.feed(sse_json(data), 1) == py.feed(sse_json(data), 1)
    try:
        orjson.loads(data)
        valid = True
    except orjson.JSONDecodeError:
        valid = False
    assert c.errmsg == (None if valid else "invalid JSON in SSE data")
    for name in ("n_events", "usage", "finish_reason", "error_event", "errmsg"):
        assert getattr(c, name) == getattr(py, name), name


@pytest.mark.parametrize(
    "special", [b'\\"', b"\\\\", b"\\u00e9", b"\x01", b"\x7f", "é😀".encode(), b"\xff", b"\xe9"]
)
def test_string_bytes_are_checked_at_every_offset_of_a_word(special):
    for k in range(18):  # the scanner reads 8 bytes at a time: every alignment, both ends
        for m in (0, 1, 9):
            data = b'{"choices":[{"text":"' + b"a" * k + special + b"b" * m + b'"}]}'
            c, py = StreamParser(), PyStreamParser()
            assert c.feed(sse_json(data), 1) == py.feed(sse_json(data), 1)
            assert (c.errmsg, c.n_events) == (py.errmsg, py.n_events), data


class Obj(list):
    """A JSON object as a list of (key, value) pairs, so keys may repeat."""


class Num(str):
    """A number already written out."""


leaf = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.sampled_from(["", "x", "error", 'é"\\\n'])
        | st.sampled_from([Num(OVERFLOW), Num("1.7976931348623157e308"), Num("-1e309"), Num("0.5e-9")]))


def obj(keys, values):
    return st.builds(Obj, st.lists(st.tuples(st.sampled_from(keys), values), max_size=4))


delta = obj(["content", "reasoning_content", "role"], leaf) | leaf
choice = obj(["text", "delta", "finish_reason", "index"], delta | leaf) | leaf
top = obj(["choices", "usage", "error", "object", "id"], st.lists(choice, max_size=3) | obj(["a"], leaf) | leaf)


@st.composite
def render(draw, v) -> str:
    sp = st.sampled_from(["", " ", "\n"])
    if isinstance(v, Obj):
        keys = [orjson.dumps(k).decode() if draw(st.booleans()) else '"\\u%04x%s' % (ord(k[0]), k[1:] + '"')
                for k, _ in v]
        return "{" + ",".join(k + draw(sp) + ":" + draw(render(x)) for k, (_, x) in zip(keys, v)) + draw(sp) + "}"
    if isinstance(v, list):
        return "[" + ",".join(draw(sp) + draw(render(x)) for x in v) + "]"
    return v if isinstance(v, Num) else orjson.dumps(v).decode()


blobs = [b"", b",", b"]", b"}", b"{", b'"', b"\\", b":", b"-", b"0", b"e", b".",
         b"\\u", b"\\ud800", b"\xff", b"\x01", b"1e400"]
edits = st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(blobs)), max_size=2)


@settings(max_examples=int(os.environ.get("VARCAS_FUZZ_EXAMPLES", "300")), deadline=None)
@given(top.flatmap(render), edits)
def test_json_walker_matches_twin_on_generated_and_broken_json(text, changes):
    data = text.encode()
    for pos, blob in changes:  # insert blob, or delete one byte when blob is empty
        i = pos % (len(data) + 1)
        data = data[:i] + blob + data[i + (not blob) :]
    c, py = StreamParser(), PyStreamParser()
    assert c.feed(sse_json(data), 1) == py.feed(sse_json(data), 1)
    for name in ("n_events", "usage", "finish_reason", "error_event", "errmsg"):
        assert getattr(c, name) == getattr(py, name), name


# ---- buffer protocol ----------------------------------------------------------------------


def test_timestamps_are_a_readonly_int64_view_without_copy():
    p = StreamParser()
    p.feed(SSE_HEAD + COMPLETION_EVENTS[0] * 3, 42)
    m = memoryview(p)
    assert (m.format, m.itemsize, m.readonly, m.shape, m.tolist()) == ("q", 8, True, (3,), [42, 42, 42])
    a = np.frombuffer(p, dtype=np.int64)
    b = np.frombuffer(p, dtype=np.int64)
    assert a.ctypes.data == b.ctypes.data and not a.flags.writeable
    del m, a, b


def test_live_export_blocks_reset_and_growth_but_not_small_feeds():
    p = StreamParser()
    p.feed(SSE_HEAD, 1)
    view = np.frombuffer(p, dtype=np.int64)
    assert p.feed(COMPLETION_EVENTS[0], 2) == 0  # fits the preallocated capacity
    with pytest.raises(BufferError):
        p.reset()
    with pytest.raises(BufferError):
        p.feed(COMPLETION_EVENTS[0] * 2000, 3)
    assert p.n_events == 1 and view.tolist() == []  # the view keeps the length it was made with
    del view
    gc.collect()
    assert p.feed(COMPLETION_EVENTS[0] * 2000, 3) == 0 and p.n_events == 2001
    assert np.frombuffer(p, dtype=np.int64)[-1] == 3
    p.reset()
    assert np.frombuffer(p, dtype=np.int64).size == 0


def test_writable_export_is_refused():
    import ctypes

    with pytest.raises((BufferError, TypeError)):
        (ctypes.c_char * 8).from_buffer(StreamParser())


# ---- Timer ---------------------------------------------------------------------------------


def wait_readable(fd: int, timeout_s: float) -> bool:
    return bool(select.select([fd], [], [], timeout_s)[0])


def test_timer_fires_within_a_few_ms_of_its_deadline():
    t = Timer()
    try:
        lateness = []
        for _ in range(5):
            deadline = monotonic_ns() + 3_000_000
            t.arm(deadline)
            assert wait_readable(t.fileno(), 1.0)
            woke = monotonic_ns()
            assert t.consume() == 1 and t.consume() == 0
            assert woke >= deadline
            lateness.append(woke - deadline)
        assert sorted(lateness)[2] < 5_000_000  # median under 5 ms even on a busy CI box
    finally:
        t.close()


def test_timer_past_deadline_fires_at_once_and_zero_disarms():
    t = Timer()
    t.arm(1)
    assert wait_readable(t.fileno(), 1.0) and t.consume() == 1
    t.arm(monotonic_ns() + 30_000_000)
    t.arm(0)
    assert not wait_readable(t.fileno(), 0.06) and t.consume() == 0
    with pytest.raises(ValueError):
        t.arm(-5)
    t.close()
    t.close()
    with pytest.raises(ValueError):
        t.fileno()
