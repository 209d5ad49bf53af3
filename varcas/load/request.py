"""Build the exact HTTP/1.1 bytes of each streaming request, cheaply.

The header block and the body's fixed parts are encoded once; per request only the prompt
fragment (pre-encoded JSON from varcas.load.prompts), max_tokens and Content-Length change,
so building a request costs a few byte concatenations, not a JSON encode.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

import orjson

from ..errors import VarcasError

API_PATHS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}
# A multi-turn chat prompt is one fragment: each message after the first (a JSON string) is
# spliced in after the one before it with the separator of its role.
CHAT_ASSISTANT = b'},{"role":"assistant","content":'
CHAT_USER = b'},{"role":"user","content":'
# vllm bench serve's --backend names of these APIs -> varcas's --api
BACKENDS = {"vllm": "completions", "openai": "completions", "openai-chat": "chat"}


@dataclass(frozen=True)
class Target:
    """Where requests go: scheme, host, port and base path of an OpenAI-compatible server."""

    scheme: str
    host: str
    port: int
    base_path: str

    @classmethod
    def parse(cls, url: str) -> "Target":
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise VarcasError(f"bad --url {url!r}: expected http://HOST:PORT or https://HOST[:PORT]")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise VarcasError(f"bad --url {url!r}: invalid port") from None
        base = parts.path.rstrip("/")
        if base.endswith("/v1"):
            base = base[: -len("/v1")]
        return cls(parts.scheme, parts.hostname, port, base)

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def url(self, path: str) -> str:
        return self.origin + self.base_path + path


def parse_header(text: str) -> tuple[str, str]:
    """'Name: value' (or 'Name=value' is rejected) -> (name, value); one-line error otherwise."""
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not name or any(c in name for c in " \t\r\n") or "\r" in value or "\n" in value:
        raise VarcasError(f"bad --header {text!r}: expected 'Name: value'")
    try:
        (name + value).encode("latin-1")  # HTTP/1.1 header bytes; checked before anything starts
    except UnicodeEncodeError:
        raise VarcasError(f"bad --header {name}: only Latin-1 characters can be sent in a header") from None
    return name, value


@dataclass
class RequestBuilder:
    """Encodes requests for one target, API and model; secrets stay in memory only."""

    target: Target
    model: str
    api: str = "completions"
    endpoint: str | None = None
    ignore_eos: bool = True
    headers: list[tuple[str, str]] = field(default_factory=list)
    api_key: str | None = None
    sampling: dict = field(default_factory=lambda: {"temperature": 0.0})  # body keys, in this order

    def __post_init__(self) -> None:
        if self.api not in API_PATHS:
            raise VarcasError(f"unknown --api {self.api!r} (known: {', '.join(API_PATHS)})")
        path = self.target.base_path + (self.endpoint or API_PATHS[self.api])
        lines = [
            f"POST {path} HTTP/1.1",
            f"Host: {self.target.host}:{self.target.port}",
            "User-Agent: varcas",
            "Content-Type: application/json",
            "Accept: text/event-stream",
        ]
        if self.api_key:
            lines.append(f"Authorization: Bearer {self.api_key}")
        lines += [f"{k}: {v}" for k, v in self.headers]
        self._head = ("\r\n".join(lines) + "\r\nX-Request-Id: ").encode("latin-1")
        model = orjson.dumps(self.model)
        if self.api == "chat":
            self._body_a = b'{"model":' + model + b',"messages":[{"role":"user","content":'
            self._body_b = b'}],"max_tokens":'
        else:
            self._body_a = b'{"model":' + model + b',"prompt":'
            self._body_b = b',"max_tokens":'
        tail = b"".join(b",%s:%s" % (orjson.dumps(k), orjson.dumps(v)) for k, v in self.sampling.items())
        tail += b',"stream":true,"stream_options":{"include_usage":true}'
        self._body_c = tail + (b',"ignore_eos":true}' if self.ignore_eos else b"}")

    def build(self, request_id: int, prompt_json: bytes, max_tokens: int) -> bytes:
        """The full request bytes; prompt_json is a JSON value (token-ID array or string)."""
        body = b"".join((self._body_a, prompt_json, self._body_b, b"%d" % max_tokens, self._body_c))
        return b"%s%d\r\nContent-Length: %d\r\n\r\n%s" % (self._head, request_id, len(body), body)
