"""Control-plane HTTP answers read up to a bound: a hostile or broken server cannot make varcas
read gigabytes (/v1/models, /version, /tokenize, /metrics, readiness probes). The data path
(streamed tokens) has its own per-request caps in the C parser."""
from __future__ import annotations

import httpx

from .errors import VarcasError


def read_bounded(client: httpx.Client, method: str, url: str, limit: int, **request) -> tuple[int, bytes]:
    """(status, body) of one request; VarcasError once the body passes `limit` bytes (the rest
    is not read). `request` goes to httpx (content=, headers=, timeout=)."""
    with client.stream(method, url, **request) as resp:
        chunks, size = [], 0
        for chunk in resp.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise VarcasError(f"{url}: answer larger than {limit >> 20} MiB: not an OpenAI-compatible server?")
            chunks.append(chunk)
        return resp.status_code, b"".join(chunks)
