"""Failed requests as data: errors.log, the first error, and the fail-fast rule.

Every finished request passes through FailureLog.record. A failure is one line of errors.log
(secrets masked in the whole excerpt before it is cut, so a key across the cut cannot leak).
The first failure is kept for the summary. Fail fast: when the first `window` finished
requests all failed the same way (kind, HTTP status and message, digits ignored so "Token id
28996" and "Token id 301" match), the run is misconfigured, not measuring: the engine stops
sending and the run ends `failed` with that error quoted.
"""
from __future__ import annotations

import re
from typing import TextIO

import orjson

EXCERPT_CHARS = 300
_DIGITS = re.compile(r"\d+")


def error_message(kind: str, status: int, excerpt: bytes) -> str:
    """One line for a failure: the kind, the HTTP status, and the server's message if it sent one."""
    text = excerpt.decode("utf-8", "replace")
    try:
        data = orjson.loads(excerpt)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        inner = data.get("error", data)
        msg = inner.get("message") or inner.get("detail") if isinstance(inner, dict) else inner
        if isinstance(msg, str) and msg:
            text = msg
    text = " ".join(text.split())[:EXCERPT_CHARS]
    where = f" (HTTP {status})" if status else ""
    return f"{kind}{where}: {text}" if text else f"{kind}{where}"


def signature(message: str) -> str:
    """What makes two failures "the same" for fail-fast: the message with its digits ignored."""
    return _DIGITS.sub("#", message)


class FailureLog:
    """errors.log writer, first-failure keeper and fail-fast detector for one run."""

    def __init__(self, path, secrets: tuple[str, ...] = (), window: int = 20) -> None:
        # line-buffered: each line is one append, so load workers can share the file
        self._file: TextIO | None = open(path, "a", encoding="utf-8", buffering=1)  # None once logging stopped
        self._secrets = tuple(s for s in secrets if s)
        self.window = window  # 0: never fail fast
        self.finished = 0
        self.first: str | None = None  # one-line message of the first failure
        self.tripped: str | None = None  # set when fail-fast fires: the repeated error
        self._signature: str | None = None

    def _mask(self, excerpt: bytes) -> bytes:
        for secret in self._secrets:
            excerpt = excerpt.replace(secret.encode("utf-8", "replace"), b"***")
        return excerpt

    def record(self, rid: int, kind: str | None, status: int, excerpt: bytes = b"") -> None:
        """One finished request (kind None: it succeeded). Cancelled requests were ended by varcas
        itself (an interrupt, the drain timeout), so they neither count nor log."""
        if kind == "cancelled":
            return
        self.finished += 1
        if kind is None:
            self._signature = ""  # a success: the first `window` did not all fail
            return
        excerpt = self._mask(excerpt)
        message = error_message(kind, status, excerpt[: 4 * EXCERPT_CHARS])
        if kind not in ("truncated", "timeout") and self._file is not None:
            text = excerpt[:EXCERPT_CHARS].decode("utf-8", "replace").replace("\n", " ")
            try:
                self._file.write(f"request {rid}\t{kind}\tHTTP {status}\t{text}\n")
            except OSError:  # a full disk: the rows matter more than the excerpts; stop logging
                self._file = None
        if self.first is None:
            self.first = message
        if self.window and self.finished <= self.window and self._signature != "":
            sig = signature(message)
            if self._signature is None:
                self._signature = sig
            elif sig != self._signature:
                self._signature = ""
            if self.finished == self.window and self._signature:
                self.tripped = message

    def note(self, rid: int, kind: str, text: str) -> None:
        """A line of errors.log about a request varcas ended itself (a conversation's later turn
        cancelled when an earlier one failed): said once, never counted as a failure."""
        if self._file is not None:
            try:
                self._file.write(f"request {rid}\t{kind}\tHTTP 0\t{text}\n")
            except OSError:
                self._file = None

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
