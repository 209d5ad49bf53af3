"""Control-plane HTTP answers read up to a bound: a hostile or broken server cannot make varcas
read gigabytes (/v1/models, /version, /tokenize, /metrics, readiness probes). The data path
(streamed tokens) has its own per-request caps in the C parser."""
from __future__ import annotations

import json
from pathlib import Path

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


def read_json_object(path, what: str, limit: int) -> dict:
    """A JSON object from a file of at most `limit` bytes; a one-line VarcasError naming `what`
    otherwise (missing: "no such file", larger, not JSON, not an object)."""
    path = Path(path)
    try:
        if path.stat().st_size > limit:
            raise VarcasError(f"{path}: not a {what} (larger than {limit >> 20} MiB)")
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise VarcasError(f"{path}: no such file ({what})") from None
    except (OSError, ValueError) as exc:
        raise VarcasError(f"{path}: unreadable {what} ({exc.__class__.__name__}: not JSON?)") from None
    if not isinstance(data, dict):
        raise VarcasError(f"{path}: not a {what} (not a JSON object)")
    return data
