"""Types of varcas._timing, the C timing core (csrc/). See csrc/httpsse.h for the parsing rules."""

import sys
from typing import final

from typing_extensions import Self

if sys.version_info >= (3, 12):
    from collections.abc import Buffer
else:
    from typing_extensions import Buffer

def monotonic_ns() -> int:
    """CLOCK_MONOTONIC in ns, the same clock as time.monotonic_ns()."""

@final
class Timer:
    """An absolute-time CLOCK_MONOTONIC timerfd (TFD_NONBLOCK | TFD_CLOEXEC)."""

    def __new__(cls) -> Self: ...
    def fileno(self) -> int: ...
    def arm(self, deadline_ns: int) -> None:
        """Fire at deadline_ns (absolute; a past deadline fires at once; 0 disarms)."""
    def consume(self) -> int:
        """Expirations since the last call, without blocking; 0 if none."""
    def close(self) -> None: ...

@final
class StreamParser:
    """Incremental HTTP/1.1 + chunked + SSE response parser.

    The buffer protocol exposes the n_events content-event timestamps (format "q",
    read-only, no copy): numpy.frombuffer(parser, dtype=numpy.int64).
    """

    def __new__(cls, excerpt_limit: int = 512) -> Self: ...
    def feed(self, data: Buffer, now_ns: int = -1) -> int:
        """0 = need more bytes, 1 = response complete, -1 = protocol error (see errmsg)."""
    def eof(self, now_ns: int = -1) -> int:
        """The connection closed: 1 if that completes a close-delimited body, else 0 (-1 after an error)."""
    def reset(self, max_tokens: int = 0) -> None:
        """Ready for the next response on the same connection; BufferError while exported.

        max_tokens (the request's; 0, the default, means no caps; at most 2**32 - 1, else
        ValueError) caps the response at 2 * max_tokens + 64 content events and
        128 KiB + 4 KiB * max_tokens bytes: past either it fails (-1, errmsg says which).
        """
    if sys.version_info >= (3, 12):
        def __buffer__(self, flags: int, /) -> memoryview: ...
    @property
    def status(self) -> int: ...
    @property
    def keep_alive(self) -> bool: ...
    @property
    def is_sse(self) -> bool: ...
    @property
    def first_byte_ns(self) -> int: ...
    @property
    def first_token_ns(self) -> int: ...
    @property
    def last_token_ns(self) -> int: ...
    @property
    def done_ns(self) -> int: ...
    @property
    def end_ns(self) -> int: ...
    @property
    def n_events(self) -> int: ...
    @property
    def usage(self) -> bytes | None: ...
    @property
    def finish_reason(self) -> str | None: ...
    @property
    def error_event(self) -> bytes | None: ...
    @property
    def body_excerpt(self) -> bytes: ...
    @property
    def errmsg(self) -> str | None: ...
    @property
    def trailing(self) -> bool: ...
