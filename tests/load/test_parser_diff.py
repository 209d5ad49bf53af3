"""Differential and oracle tests: the C StreamParser against its Python twin and against
what the generator knows it built.

Hypothesis builds whole HTTP responses (1xx interim heads, random header case and line
ends, chunked / Content-Length / close-delimited bodies, chunk extensions and trailers,
SSE events with comments, other fields, multi-line data, CR / LF / CRLF line ends, escaped
and reordered JSON keys, unicode text), cuts them into reads at random points and feeds
both parsers. After every read every attribute and the timestamp arrays must agree; at the
end they must equal the ground truth the generator recorded. Mutated responses must still
agree and the C parser must only ever answer 0, 1 or -1. The guards (per-request caps,
unasked Content-Encoding, data after [DONE]) are driven to their edges the same way.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from varcas._timing import StreamParser
from varcas.load.parser_py import PyStreamParser

ATTRS = (
    "status", "keep_alive", "is_sse", "first_byte_ns", "first_token_ns", "last_token_ns", "done_ns",
    "end_ns", "n_events", "usage", "finish_reason", "error_event", "body_excerpt", "errmsg", "trailing",
)
EOF_NS = 10**12
# VARCAS_FUZZ_EXAMPLES raises the example count for a long local or nightly run.
SETTINGS = settings(max_examples=int(os.environ.get("VARCAS_FUZZ_EXAMPLES", "150")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def assert_same(c: StreamParser, py: PyStreamParser) -> None:
    for name in ATTRS:
        assert getattr(c, name) == getattr(py, name), name
    assert np.frombuffer(c, dtype=np.int64).tolist() == py.tokens().tolist()


def feed_both(raw: bytes, cuts: list[int], limit: int, eof: bool,
              max_tokens: int = 0) -> tuple[StreamParser, list[int]]:
    """Feed raw cut at cuts to both parsers (capped for max_tokens), comparing after each read;
    returns the C parser and the results of its feed() calls."""
    c, py = StreamParser(limit), PyStreamParser(limit)
    c.reset(max_tokens)
    py.reset(max_tokens)
    bounds = [0, *sorted(set(cuts)), len(raw)]
    results = []
    for k, (a, b) in enumerate(zip(bounds, bounds[1:])):
        r = c.feed(raw[a:b], 1000 * (k + 1))
        assert r == py.feed(raw[a:b], 1000 * (k + 1))
        assert r in (0, 1, -1)
        results.append(r)
        assert_same(c, py)
    if eof:
        assert c.eof(EOF_NS) == py.eof(EOF_NS)
        assert_same(c, py)
    return c, results


# ---- building responses with their ground truth ------------------------------------------


@dataclass
class Built:
    parts: list[bytes] = field(default_factory=list)
    token_at: list[int] = field(default_factory=list)  # raw offset that dispatches each content event
    done_at: int | None = None
    finish_reason: str | None = None
    usage: bytes | None = None
    error_event: bytes | None = None
    data_after_done: bool = False  # an event with data other than "" or [DONE] follows [DONE]

    @property
    def size(self) -> int:
        return sum(map(len, self.parts))

    def add(self, b: bytes) -> None:
        self.parts.append(b)


texts = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8) | st.sampled_from(
    ["", '"', "\\", "\n", "é"]
)
ws = st.sampled_from(["", "", " ", "\n", "\t"])
ows = st.sampled_from(["", " ", "\t", "  "])


@dataclass
class RawJSON:
    """A value already serialised (the usage object, whose exact bytes are expected back)."""

    text: str


@st.composite
def json_text(draw, value) -> str:
    """A JSON text for value (str, int, None, list, dict) with random whitespace, escaping
    and one escaped key character now and then."""
    if isinstance(value, dict):
        members = []
        for k, v in value.items():
            key = json.dumps(k)
            if draw(st.booleans()) and k:
                i = draw(st.integers(0, len(k) - 1))
                key = json.dumps(k[:i])[:-1] + "\\u%04x" % ord(k[i]) + json.dumps(k[i + 1 :])[1:]
            members.append(draw(ws) + key + draw(ws) + ":" + draw(ws) + draw(json_text(v)) + draw(ws))
        return "{" + ",".join(members) + "}"
    if isinstance(value, list):
        return "[" + ",".join(draw(ws) + draw(json_text(v)) for v in value) + draw(ws) + "]"
    if isinstance(value, RawJSON):
        return value.text
    return json.dumps(value, ensure_ascii=draw(st.booleans()))


@st.composite
def sse_event(draw, b: Built) -> tuple[list[str], str]:
    """One event's data text, updating the ground truth in b; returns (data, kind)."""
    kinds = ["completion", "completion", "chat", "chat", "usage", "error", "done", "other", "empty"]
    kind = draw(st.sampled_from(kinds))
    if kind in ("done", "empty"):
        return ("[DONE]" if kind == "done" else ""), kind
    if kind == "other":
        return draw(st.sampled_from(["[1, 2]", '"text"', "3.5", "null", '{"choices": 1}', '{"choices": [7]}'])), kind
    finish = draw(st.sampled_from([None, None, "stop", "length", "ünï"]))
    usage = draw(st.sampled_from([None, {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}]))
    usage_raw = RawJSON(draw(json_text(usage))) if usage else None
    text = draw(texts)
    if kind == "completion":
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish, "stop_reason": None}
    elif kind == "chat":
        delta_key = draw(st.sampled_from(["content", "reasoning_content", "role_only"]))
        delta = {"role": "assistant", "content": ""} if delta_key == "role_only" else {delta_key: text}
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    if kind == "usage":
        obj = {"id": "cmpl-1", "object": "text_completion", "choices": [], "usage": usage_raw or RawJSON("{}")}
        usage_raw = obj["usage"]
    elif kind == "error":
        usage_raw = None
        obj = draw(st.sampled_from([{"error": {"message": text, "code": 400}}, {"object": "error", "message": text}]))
    else:
        obj = {"id": "chatcmpl-1", "object": "chunk", "model": "m", "choices": [choice], "usage": usage_raw}
        if text and not (kind == "chat" and delta_key == "role_only"):
            kind = "content"
        if finish is not None:
            b.finish_reason = finish
    if usage_raw is not None:
        b.usage = usage_raw.text.encode()
    keys = draw(st.permutations(list(obj)))
    data = draw(json_text({k: obj[k] for k in keys}))
    if kind == "error" and b.error_event is None:
        b.error_event = data.encode()
    return data, kind


@st.composite
def sse_body(draw, b: Built, after_done: bool = False) -> bytes:
    """An SSE body. The offsets it records in b are body offsets; response() maps them to
    offsets in the raw response once the head and any chunk framing are known. Events after
    [DONE] are only [DONE] or empty, unless after_done (then b.data_after_done tells)."""
    out = bytearray(b"\xef\xbb\xbf" if draw(st.booleans()) else b"")
    prev_cr = False

    def line(text: str) -> int:
        nonlocal prev_cr
        eol = draw(st.sampled_from(["\n", "\r\n", "\r"] if text or not prev_cr else ["\r\n", "\r"]))
        out.extend(text.encode())
        at = len(out)
        out.extend(eol.encode())
        prev_cr = eol == "\r"
        return at

    for _ in range(draw(st.integers(0, 8))):
        if b.done_at is not None and not after_done:
            data, kind = draw(st.sampled_from([("[DONE]", "done"), ("", "empty")]))
        else:
            data, kind = draw(sse_event(b))
        if b.done_at is not None and kind not in ("done", "empty"):
            b.data_after_done = True
        others = st.sampled_from([": ping", ":", "event: message", "id: 7", "retry: 10"])
        for extra in draw(st.lists(others, max_size=2)):
            line(extra)
        for value in data.split("\n"):
            line(("data:" if value[:1] != " " and draw(st.booleans()) else "data: ") + value)
        at = line("")
        if kind == "content":
            b.token_at.append(at)
        if kind == "done" and b.done_at is None:
            b.done_at = at
    return bytes(out)


@st.composite
def chunked(draw, body: bytes, base: int) -> tuple[bytes, list[int]]:
    """Chunk-frame body starting at raw offset base; returns the framed bytes and, for each
    body offset, its raw offset."""
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(body) - 1)), max_size=4)))) if body else []
    out, where = bytearray(), []
    for a, z in zip([0, *cuts], [*cuts, len(body)]):
        if a >= z:
            continue
        size = draw(st.sampled_from(["%x", "%X", "0%x"])) % (z - a)
        ext = draw(st.sampled_from(["", " ", ";name=value", ' ; q="1"']))
        out += (size + ext + draw(st.sampled_from(["\r\n", "\n"]))).encode()
        where.extend(range(base + len(out), base + len(out) + z - a))
        out += body[a:z] + draw(st.sampled_from([b"\r\n", b"\n"]))
    out += b"0\r\n" + draw(st.sampled_from([b"", b"X-Trailer: 1\r\n"])) + b"\r\n"
    return bytes(out), where


@st.composite
def response(draw, after_done: bool = False) -> tuple[Built, dict]:
    """A whole response and the attributes a correct parser must end with (after_done: see
    sse_body)."""
    b = Built()
    for _ in range(draw(st.integers(0, 1))):
        b.add(b"HTTP/1.1 100 Continue\r\n\r\n")
    minor = draw(st.integers(0, 1))
    status = draw(st.sampled_from([200, 200, 200, 200, 201, 204, 304, 400, 500]))
    ctype = draw(st.sampled_from(
        ["text/event-stream", "Text/Event-Stream; charset=utf-8", "application/json", None, "text/event-stream"]
    ))
    conn = draw(st.sampled_from([None, "close", "keep-alive", "Keep-Alive, Upgrade"]))
    framing = draw(st.sampled_from(["chunked", "length", "close"]))
    eol = draw(st.sampled_from(["\r\n", "\n"]))
    is_sse = ctype is not None and ctype.lower().startswith("text/event-stream")
    sse, no_body = status // 100 == 2 and is_sse, status in (204, 304)
    # Unasked compression fails a 2xx response (test_unasked_content_encoding_*), not others.
    codings = [None, None, "identity", " Identity ,"] + (["gzip", "br, gzip"] if status // 100 != 2 else [])
    headers = [("Content-Type", ctype), ("Connection", conn), ("X-Request-Id", "abc"),
               ("Content-Encoding", draw(st.sampled_from(codings)))]
    head_size = b.size
    if no_body:
        body = b""
    elif sse:
        body = draw(sse_body(b, after_done))
    else:
        body = draw(st.binary(max_size=40)) + b'{"detail": "bad"}'
    if framing == "chunked":
        headers.append(("Transfer-Encoding", draw(st.sampled_from(["chunked", "gzip, CHUNKED"]))))
    elif framing == "length":
        headers.append(("Content-Length", str(len(body))))
    head = "HTTP/1.%d %d%s%s" % (minor, status, draw(st.sampled_from(["", " ", " OK"])), eol)
    for name, value in draw(st.permutations(headers)):
        if value is not None:
            name = draw(st.sampled_from([name, name.lower(), name.upper()]))
            head += name + ":" + draw(ows) + value + draw(ows) + eol
    head_end = head_size + len(head + eol)
    b.add((head + eol).encode())
    if framing == "chunked" and not no_body:
        framed, where = draw(chunked(body, head_end))
    else:
        framed, where = body, list(range(head_end, head_end + len(body)))
    if not no_body:
        b.add(framed)
    b.token_at = [where[t] for t in b.token_at]
    b.done_at = where[b.done_at] if b.done_at is not None else None
    until_close = framing == "close" and not no_body
    expect = {
        "status": status,
        "is_sse": is_sse,
        "keep_alive": not until_close and conn != "close" and (minor == 1 or conn is not None),
        "body_excerpt": b"" if sse else body,
        "end_at": None if until_close else b.size - 1,
    }
    return b, expect


def time_of(offset: int, bounds: list[int]) -> int:
    """The now_ns of the read holding raw[offset], reads being raw[bounds[k]:bounds[k+1]]."""
    return 1000 * next(k + 1 for k in range(len(bounds) - 1) if bounds[k] <= offset < bounds[k + 1])


@SETTINGS
@given(response(), st.lists(st.integers(1, 4000), max_size=12), st.booleans(), st.booleans(),
       st.sampled_from([0, 1, 8]))
def test_valid_streams_match_twin_and_ground_truth(built, cuts, trailing, split_crlf, max_tokens):
    b, expect = built
    raw = b"".join(b.parts)
    cuts = [x for x in cuts if x < len(raw)]
    if split_crlf:  # the LF of every CRLF arrives in the next read
        cuts += [i for i in range(1, len(raw)) if raw[i - 1 : i + 1] == b"\r\n"]
    tail = b"HTTP/1.1 200 OK\r\n" if trailing and expect["end_at"] is not None else b""
    # a generated stream is far below the caps of any max_tokens (<= 8 events, a few KiB)
    c, results = feed_both(raw + tail, cuts, limit=10_000, eof=True, max_tokens=max_tokens)
    bounds = [0, *sorted(set(cuts)), len(raw + tail)]
    assert c.errmsg is None and results[-1] == (expect["end_at"] is not None)
    assert c.status == expect["status"] and c.is_sse == expect["is_sse"]
    assert c.keep_alive == expect["keep_alive"] and c.body_excerpt == expect["body_excerpt"]
    assert np.frombuffer(c, dtype=np.int64).tolist() == [time_of(t, bounds) for t in b.token_at]
    assert c.done_ns == (time_of(b.done_at, bounds) if b.done_at is not None else 0)
    assert c.end_ns == (EOF_NS if expect["end_at"] is None else time_of(expect["end_at"], bounds))
    assert (c.finish_reason, c.usage, c.error_event) == (b.finish_reason, b.usage, b.error_event)
    assert c.first_byte_ns == 1000 and c.trailing == bool(tail)


mutation = st.tuples(st.sampled_from(["flip", "delete", "insert", "duplicate"]), st.integers(0, 10**6),
                     st.integers(1, 40), st.binary(min_size=1, max_size=8))


def mutate(raw: bytes, ops) -> bytes:
    for op, pos, n, blob in ops:
        i = pos % (len(raw) + 1)
        if op == "flip" and raw:
            i %= len(raw)
            raw = raw[:i] + bytes([raw[i] ^ blob[0] or 1]) + raw[i + 1 :]
        elif op == "delete":
            raw = raw[:i] + raw[i + n :]
        elif op == "insert":
            raw = raw[:i] + blob + raw[i:]
        else:
            raw = raw[:i] + raw[i : i + n] + raw[i:]
    return raw


@SETTINGS
@given(response(), st.lists(mutation, min_size=1, max_size=4), st.lists(st.integers(1, 4000), max_size=8),
       st.integers(0, 64))
def test_mutated_streams_match_twin(built, ops, cuts, limit):
    raw = mutate(b"".join(built[0].parts), ops)
    feed_both(raw, [x for x in cuts if x < len(raw)], limit, eof=True)


@SETTINGS
@given(st.binary(max_size=300), st.lists(st.integers(1, 300), max_size=6))
def test_random_bytes_match_twin(raw, cuts):
    feed_both(raw, [x for x in cuts if x < len(raw)], 16, eof=True)


@SETTINGS
@given(st.binary(max_size=200), st.lists(st.integers(1, 300), max_size=6))
def test_random_bytes_after_a_valid_sse_head_match_twin(raw, cuts):
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
    feed_both(head + raw, [len(head)] + [len(head) + x for x in cuts if x < len(raw)], 16, eof=True)


# ---- guards -------------------------------------------------------------------------------


@SETTINGS
@given(response(after_done=True), st.lists(st.integers(1, 4000), max_size=12))
def test_data_after_done_matches_twin_and_ground_truth(built, cuts):
    b, _ = built
    raw = b"".join(b.parts)
    c, _ = feed_both(raw, [x for x in cuts if x < len(raw)], limit=64, eof=True)
    assert (c.errmsg == "data after [DONE]") == b.data_after_done


CONTENT = b'data: {"choices":[{"text":"t"}]}\n\n'
OTHER = b'data: {"choices":[{"delta":{"role":"assistant"}}]}\n\n'


@SETTINGS
@given(st.integers(1, 3), st.integers(-3, 3), st.integers(0, 4), st.sampled_from([None, -2, -1, 0, 1, 40]),
       st.sampled_from(["chunked", "length", "close"]), st.lists(st.integers(0, 10**6), max_size=8),
       st.lists(st.integers(-3, 3), max_size=3))
def test_caps_match_twin_at_their_edges(max_tokens, events_off, others, bytes_off, framing, cuts, near):
    """A stream of about the event cap's content events (events_off from it), padded by a
    comment to about the byte cap (bytes_off from it, or no padding), cut anywhere and at
    bytes around the byte cap."""
    max_events, max_bytes = 2 * max_tokens + 64, 128 * 1024 + 4 * 1024 * max_tokens
    n = max_events + events_off
    events = [CONTENT] * n + [OTHER] * others
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
    if framing == "chunked":
        head += b"Transfer-Encoding: chunked\r\n"
    frame = (lambda e: b"%x\r\n%s\r\n" % (len(e), e)) if framing == "chunked" else (lambda e: e)
    end = b"0\r\n\r\n" if framing == "chunked" else b""
    length_field = b"Content-Length: %08d\r\n" % 0 if framing == "length" else b""
    size = len(head + length_field + b"\r\n") + sum(len(frame(e)) for e in events + [b"data: [DONE]\n\n"]) + len(end)
    if bytes_off is not None:  # pad to max_bytes + bytes_off (a chunk's size line grows with it)
        pad = b":\n"
        while (miss := max_bytes + bytes_off - size - len(frame(pad))) != 0:
            pad = b":" + b"p" * (len(pad) - 2 + miss) + b"\n"
        events.insert(len(events) // 2, pad)
    body = b"".join(frame(e) for e in events + [b"data: [DONE]\n\n"]) + end
    if framing == "length":
        length_field = b"Content-Length: %08d\r\n" % len(body)
    raw = head + length_field + b"\r\n" + body
    assert bytes_off is None or len(raw) == max_bytes + bytes_off
    cuts = [x % len(raw) for x in cuts] + [max_bytes + d for d in near]
    c, results = feed_both(raw, [x for x in cuts if 0 < x < len(raw)], limit=16, eof=True, max_tokens=max_tokens)
    if n > max_events and c.errmsg == f"more than {max_events} content events for max_tokens {max_tokens}":
        assert c.n_events == max_events
    elif len(raw) > max_bytes:  # unless the event cap came first
        assert c.errmsg == f"more than {max_bytes} response bytes for max_tokens {max_tokens}"
    else:
        assert c.errmsg is None and c.n_events == n and c.done_ns > 0 and c.end_ns > 0


@SETTINGS
@given(st.sampled_from([200, 201, 204, 400, 503]), st.lists(st.sampled_from(
    ["gzip", "GZIP", "identity", "br", "", " ", "x-gzip", "\x7f\xff", "identity " * 5]), max_size=3),
    st.integers(0, 2), st.booleans(), st.lists(st.integers(1, 300), max_size=6))
def test_unasked_content_encoding_matches_twin_and_ground_truth(status, values, interim, chunked, cuts):
    head = b"HTTP/1.1 100 Continue\r\nContent-Encoding: gzip\r\n\r\n" * interim
    head += b"HTTP/1.1 %d X\r\nContent-Type: text/event-stream\r\n" % status
    head += b"".join(b"Content-Encoding:" + v.encode("latin-1") + b"\r\n" for v in values)
    head += b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" if chunked else b"Content-Length: 0\r\n\r\n"
    c, _ = feed_both(head, [x for x in cuts if x < len(head)], 16, eof=True)
    codings = [t.strip(" \t") for v in values for t in v.split(",")]
    unasked = [t for t in codings if t and t.lower() != "identity"]
    if status // 100 == 2 and unasked:
        shown = "".join(ch if " " <= ch < "\x7f" else "?" for ch in unasked[0][:32])
        assert c.errmsg == f"compressed response (Content-Encoding: {shown}) that was not asked for"
    else:
        assert c.errmsg is None and c.end_ns > 0


@SETTINGS
@given(st.binary(min_size=1, max_size=12), st.lists(st.integers(1, 12), max_size=4))
def test_non_http_first_bytes_match_twin_and_fail_at_once(raw, cuts):
    c, results = feed_both(raw, [x for x in cuts if x < len(raw)], 16, eof=True)
    bad = next((k for k in range(min(5, len(raw))) if raw[k] != b"HTTP/"[k]), None)
    if bad is not None:  # fails in the read that brings the first impossible byte
        bounds = sorted({0, *[x for x in cuts if x < len(raw)]})
        failing = max(i for i, at in enumerate(bounds) if at <= bad)
        assert results[failing:] == [-1] * (len(results) - failing) and -1 not in results[:failing]
        assert c.errmsg == "response does not start with HTTP/"
    else:
        assert c.errmsg != "response does not start with HTTP/"
