"""Pure-Python twin of varcas._timing.StreamParser: the readable reference for the C core.

Same constructor, methods and attributes; the content-event times come from tokens() (an
array('q')) instead of the buffer protocol. Differential tests feed both parsers the same
bytes split at random points and require identical results after every read, so each rule
below is also a rule of csrc/httpsse.c (the header csrc/httpsse.h lists them). JSON is
orjson's, which is what csrc/jsonscan.c matches (validity, duplicate keys, nesting limit).
Clarity first: this is not used on the hot path.
"""

from __future__ import annotations

import operator
import re
import time
from array import array

import orjson

HEAD_MAX = 64 * 1024  # head, trailer section, or one chunk-size line, line ends included
EVENT_MAX = 16 * 1024 * 1024  # one SSE line, and one event's joined data
# Per-request caps from max_tokens (why these margins: csrc/httpsse.h).
EVENTS_PER_TOKEN, EVENTS_BASE = 2, 64
BYTES_PER_TOKEN, BYTES_BASE = 4 * 1024, 128 * 1024
MAX_TOKENS_LIMIT = 2**32 - 1
CODING_SHOWN = 32  # bytes of an unasked Content-Encoding in errmsg
MORE, COMPLETE, ERROR = 0, 1, -1

_STATUS_LINE = re.compile(rb"HTTP/1\.([0-9]) ([1-5][0-9][0-9])(?: .*)?", re.S)
_CONTENT_LENGTH = re.compile(rb"[0-9]{1,18}")
_HEX_PREFIX = re.compile(rb"[0-9A-Fa-f]*")
_CHUNK_SIZE_REST = re.compile(rb"[ \t]*(?:;.*)?", re.S)
_EOL = re.compile(rb"[\r\n]")
_WS = re.compile(rb"[ \t\n\r]*")
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_STRING_OR_BRACKET = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.S)
_SCALAR = re.compile(rb"[^ \t\n\r,\]}]+")
_TOO_LONG = {
    "head": "response head exceeds 64 KiB",
    "trailer": "trailer section exceeds 64 KiB",
    "chunk_size": "chunk size line exceeds 64 KiB",
    "chunk_end": "chunk size line exceeds 64 KiB",
}


class _Head:
    """The response head being read; published when a final (non-1xx) head ends."""

    def __init__(self) -> None:
        self.seen_status = False
        self.status = self.minor = 0
        self.conn_close = self.conn_keep_alive = self.sse = False
        self.has_te = self.chunked = False
        self.length: int | None = None
        self.coding = ""  # the first Content-Encoding coding that is not identity


def _shown_coding(token: bytes) -> str:
    """A coding as errmsg shows it: its first CODING_SHOWN bytes, non-printable ones as '?'."""
    return "".join(chr(c) if 0x20 <= c < 0x7F else "?" for c in token[:CODING_SHOWN])


def _tokens(value: bytes) -> list[bytes]:
    """Comma-separated header tokens, trimmed and lowercased."""
    return [t.strip(b" \t").lower() for t in value.split(b",")]


def _end(pattern: re.Pattern[bytes], data: bytes, i: int) -> int:
    """Where pattern's match at data[i] ends, where a match is certain: _WS and _HEX_PREFIX match
    the empty string, the JSON patterns run over text already validated."""
    m = pattern.match(data, i)
    assert m is not None, "no match where one is certain"
    return m.end()


def _value_end(data: bytes, i: int) -> int:
    """End of the (valid) JSON value starting at data[i]."""
    if data[i : i + 1] == b'"':
        return _end(_STRING, data, i)
    if data[i : i + 1] not in (b"{", b"["):
        return _end(_SCALAR, data, i)
    depth = 0
    for m in _STRING_OR_BRACKET.finditer(data, i):
        tok = m.group()
        depth += 1 if tok in (b"{", b"[") else -1 if tok in (b"}", b"]") else 0
        if depth == 0:
            return m.end()
    raise AssertionError("unbalanced JSON after validation")


def _member_bytes(data: bytes, key: str) -> bytes | None:
    """Raw bytes of the last top-level member named key of a valid JSON object text."""
    found = None
    i = _end(_WS, data, data.index(b"{") + 1)
    while data[i : i + 1] != b"}":
        j = _end(_STRING, data, i)
        name = orjson.loads(data[i:j])
        i = _end(_WS, data, data.index(b":", j) + 1)
        end = _value_end(data, i)
        if name == key:
            found = data[i:end]
        i = _end(_WS, data, end)
        if data[i : i + 1] == b",":
            i = _end(_WS, data, i + 1)
    return found


def _is_content(choice: dict) -> bool:
    """Whether a first choice carries non-empty text, delta.content or reasoning_content."""
    fields = [choice.get("text")]
    delta = choice.get("delta")
    if isinstance(delta, dict):
        fields += [delta.get("content"), delta.get("reasoning_content")]
    return any(isinstance(f, str) and f != "" for f in fields)


class PyStreamParser:
    """Incremental HTTP/1.1 + chunked + SSE response parser (see varcas._timing.StreamParser)."""

    def __init__(self, excerpt_limit: int = 512) -> None:
        if excerpt_limit < 0:
            raise ValueError("excerpt_limit must be >= 0")
        self._excerpt_limit = excerpt_limit
        self.reset()

    def reset(self, max_tokens: int = 0) -> None:
        """Ready for the next response on the same keep-alive connection, capped for a request
        of max_tokens (0: no caps)."""
        max_tokens = operator.index(max_tokens)
        if not 0 <= max_tokens <= MAX_TOKENS_LIMIT:
            raise ValueError(f"max_tokens must be in [0, {MAX_TOKENS_LIMIT}]")
        self._max_tokens = max_tokens
        self._max_events = EVENTS_PER_TOKEN * max_tokens + EVENTS_BASE if max_tokens else 0
        self._max_bytes = BYTES_BASE + BYTES_PER_TOKEN * max_tokens if max_tokens else 0
        self._n_bytes = 0
        self._seen_done = False
        self.status = 0
        self.keep_alive = self.is_sse = self.trailing = False
        self.first_byte_ns = self.done_ns = self.end_ns = 0
        self.usage: bytes | None = None
        self.finish_reason: str | None = None
        self.error_event: bytes | None = None
        self.body_excerpt = b""
        self.errmsg: str | None = None
        self._tokens = array("q")
        self._state = "head"
        self._now = 0
        self._line = bytearray()
        self._section = 0
        self._remaining = 0
        self._head = _Head()
        self._sse_mode = self._sse_skip_lf = self._sse_started = False
        self._sse_line = bytearray()
        self._sse_data = bytearray()

    # ---- public surface ---------------------------------------------------------------

    @property
    def n_events(self) -> int:
        return len(self._tokens)

    @property
    def first_token_ns(self) -> int:
        return self._tokens[0] if self._tokens else 0

    @property
    def last_token_ns(self) -> int:
        return self._tokens[-1] if self._tokens else 0

    def tokens(self) -> array:
        """The content-event times, in order (a copy)."""
        return array("q", self._tokens)

    def feed(self, data, now_ns: int = -1) -> int:
        """Parse one read. 0 = need more bytes, 1 = response complete, -1 = protocol error."""
        taken = time.monotonic_ns()
        data = bytes(data)
        if self._state == "error":
            return ERROR
        if data and not self.first_byte_ns and self._state != "complete":
            self.first_byte_ns = taken if now_ns < 0 else now_ns
        self._now = taken if now_ns < 0 else now_ns
        # Parse only the bytes within the byte cap; one more for an unfinished response fails.
        part = data[: self._max_bytes - self._n_bytes] if self._max_bytes else data
        i = 0
        while i < len(part) and self._state not in ("complete", "error"):
            i = self._step(part, i)
        self._n_bytes += i
        if self._state == "error":
            return ERROR
        if self._state != "complete":
            if len(part) == len(data):
                return MORE
            self._fail_cap("response bytes", self._max_bytes)
            return ERROR
        if i < len(data):
            self.trailing = True
        return COMPLETE

    def eof(self, now_ns: int = -1) -> int:
        """The connection closed: completes a close-delimited body, else changes nothing."""
        if self._state == "error":
            return ERROR
        if self._state == "body_close":
            self._now = time.monotonic_ns() if now_ns < 0 else now_ns
            self._complete()
        return COMPLETE if self._state == "complete" else MORE

    # ---- framing ----------------------------------------------------------------------

    def _fail(self, msg: str) -> None:
        self._state = "error"
        self.errmsg = msg

    def _fail_cap(self, what: str, cap: int) -> None:
        self._fail(f"more than {cap} {what} for max_tokens {self._max_tokens}")

    def _complete(self) -> None:
        self._state = "complete"
        self.end_ns = self._now

    def _enter(self, state: str) -> None:
        """Enter a state that starts a new counted line or section."""
        self._state = state
        self._section = 0

    def _step(self, data: bytes, i: int) -> int:
        if self._state in ("chunk_data", "body_length"):
            return self._take_counted(data, i)
        if self._state == "body_close":
            self._body(data[i:])
            return len(data)
        return self._take_line(data, i)

    def _take_line(self, data: bytes, i: int) -> int:
        lf = data.find(b"\n", i)
        end = len(data) if lf < 0 else lf + 1
        so_far = len(self._line) + end - i
        if self._state == "head" and not self._head.seen_status:
            # Fail at the first byte that cannot continue "HTTP/", not at a line end that a
            # peer which is not an HTTP server may never send.
            start = bytes(self._line[:5]) + data[i : min(end, i + 5)]
            if not b"HTTP/".startswith(start[:5]):
                self._fail("response does not start with HTTP/")
                return end
        if self._section + so_far > HEAD_MAX:
            self._fail(_TOO_LONG[self._state])
            return end
        self._line += data[i:end]
        if lf < 0:
            return end
        line = bytes(self._line[:-1])
        self._line.clear()
        self._section += so_far
        self._on_line(line[:-1] if line.endswith(b"\r") else line)
        return end

    def _take_counted(self, data: bytes, i: int) -> int:
        k = min(self._remaining, len(data) - i)
        self._body(data[i : i + k])
        self._remaining -= k
        if self._remaining == 0 and self._state != "error":
            if self._state == "chunk_data":
                self._enter("chunk_end")
            else:
                self._complete()
        return i + k

    def _on_line(self, line: bytes) -> None:
        if self._state == "head":
            if not self._head.seen_status:
                self._status_line(line)
            elif not line:
                self._head_end()
            else:
                self._header_line(line)
        elif self._state == "chunk_size":
            self._chunk_size_line(line)
        elif self._state == "chunk_end":
            if line:
                self._fail("missing CRLF after chunk data")
            else:
                self._enter("chunk_size")
        elif not line:  # trailer fields are ignored; a blank line ends them
            self._complete()

    def _status_line(self, line: bytes) -> None:
        m = _STATUS_LINE.fullmatch(line)
        if not m:
            self._fail("malformed status line")
            return
        self._head.seen_status = True
        self._head.minor = int(m.group(1))
        self._head.status = int(m.group(2))
        if self._head.status >= 200:  # final, known before the headers
            self.status = self._head.status

    def _header_line(self, line: bytes) -> None:
        if line[:1] in (b" ", b"\t"):
            self._fail("obsolete header line folding")
            return
        name, colon, value = line.partition(b":")
        if not colon or not name or b" " in name or b"\t" in name:
            self._fail("malformed header line")
            return
        name, value, h = name.lower(), value.strip(b" \t"), self._head
        if name == b"content-length":
            if not _CONTENT_LENGTH.fullmatch(value) or h.length not in (None, int(value)):
                self._fail("invalid Content-Length")
            else:
                h.length = int(value)
        elif name == b"transfer-encoding":
            h.has_te = True
            h.chunked = _tokens(value)[-1] == b"chunked"  # the last coding decides
        elif name == b"connection":
            h.conn_close |= b"close" in _tokens(value)
            h.conn_keep_alive |= b"keep-alive" in _tokens(value)
        elif name == b"content-encoding":
            codings = [t.strip(b" \t") for t in value.split(b",")]
            unasked = [t for t in codings if t and t.lower() != b"identity"]
            if unasked and not h.coding:
                h.coding = _shown_coding(unasked[0])
        elif name == b"content-type":
            h.sse = value.split(b";")[0].strip(b" \t").lower() == b"text/event-stream"

    def _head_end(self) -> None:
        h, self._head = self._head, _Head()
        if h.status < 200:  # interim 1xx: the real response follows
            self._enter("head")
            return
        self.status, self.is_sse = h.status, h.sse
        if h.status // 100 == 2 and h.coding:  # varcas sends no Accept-Encoding
            self._fail(f"compressed response (Content-Encoding: {h.coding}) that was not asked for")
            return
        self._sse_mode = h.status // 100 == 2 and h.sse
        until_close = False
        if h.status in (204, 304):
            self._complete()
        elif h.has_te and h.chunked:
            self._enter("chunk_size")
        elif not h.has_te and h.length is not None:
            self._remaining = h.length
            if h.length:
                self._state = "body_length"
            else:
                self._complete()
        else:
            until_close = True
            self._state = "body_close"
        self.keep_alive = not until_close and not h.conn_close and (h.minor >= 1 or h.conn_keep_alive)

    def _chunk_size_line(self, line: bytes) -> None:
        digits = line[: _end(_HEX_PREFIX, line, 0)]
        if int(digits[:-1] or b"0", 16) >> 59:  # the last digit would pass 2^63
            self._fail("chunk size overflow")
        elif not digits or not _CHUNK_SIZE_REST.fullmatch(line, len(digits)):
            self._fail("malformed chunk size")
        elif int(digits, 16) == 0:
            self._enter("trailer")
        else:
            self._state = "chunk_data"
            self._remaining = int(digits, 16)

    # ---- body and SSE -----------------------------------------------------------------

    def _body(self, chunk: bytes) -> None:
        if self._sse_mode:
            self._sse_feed(chunk)
        elif len(self.body_excerpt) < self._excerpt_limit:
            self.body_excerpt += chunk[: self._excerpt_limit - len(self.body_excerpt)]

    def _sse_feed(self, chunk: bytes) -> None:
        i, n = 0, len(chunk)
        if self._sse_skip_lf and chunk:  # the LF of a CRLF split across reads
            self._sse_skip_lf = False
            i = 1 if chunk[:1] == b"\n" else 0
        while i < n and self._state != "error":
            m = _EOL.search(chunk, i)
            t = m.start() if m else n
            if len(self._sse_line) + t - i > EVENT_MAX:
                self._fail("SSE event exceeds 16 MiB")
                return
            self._sse_line += chunk[i:t]
            if t == n:
                return
            line = bytes(self._sse_line)
            self._sse_line.clear()
            self._sse_on_line(line)
            if chunk[t : t + 2] == b"\r\n":
                t += 1
            elif chunk[t : t + 1] == b"\r" and t + 1 == n:
                self._sse_skip_lf = True
            i = t + 1

    def _sse_on_line(self, line: bytes) -> None:
        if not self._sse_started:
            self._sse_started = True
            if line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
        if not line:
            self._dispatch()
            return
        field, _, value = line.partition(b":")
        if field != b"data":  # a comment (empty field name) or a field we ignore
            return
        if value.startswith(b" "):
            value = value[1:]
        if len(self._sse_data) + len(value) + 1 > EVENT_MAX:
            self._fail("SSE event exceeds 16 MiB")
            return
        self._sse_data += value + b"\n"

    def _dispatch(self) -> None:
        if not self._sse_data:
            return
        data = bytes(self._sse_data[:-1])
        self._sse_data.clear()
        if data == b"[DONE]":
            if not self._seen_done:
                self.done_ns = self._now
            self._seen_done = True
        elif data and self._seen_done:
            self._fail("data after [DONE]")
        elif data:
            self._event(data)

    def _event(self, data: bytes) -> None:
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            self._fail("invalid JSON in SSE data")
            return
        if not isinstance(obj, dict):
            return
        choices = obj.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            if _is_content(choices[0]):
                if self._max_events and len(self._tokens) >= self._max_events:
                    self._fail_cap("content events", self._max_events)
                    return
                self._tokens.append(self._now)
            if isinstance(choices[0].get("finish_reason"), str):
                self.finish_reason = choices[0]["finish_reason"]
        if isinstance(obj.get("usage"), dict):
            self.usage = _member_bytes(data, "usage")
        if ("error" in obj or obj.get("object") == "error") and self.error_event is None:
            self.error_event = data
