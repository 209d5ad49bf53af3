"""Control-plane checks before any load is sent (httpx): is the server there, and the model?

An unreachable server, a wrong URL or an unknown model is a one-line VarcasError (exit 2)
before the schedule starts, never a run full of connect errors. The model's context length
(vLLM's `max_model_len` in /v1/models) is read here so a workload that cannot fit is refused
before it is sent. Every answer is read up to a bound: a hostile server cannot make varcas
read gigabytes.
"""
from __future__ import annotations

from dataclasses import dataclass

import httpx
import orjson

from ..bounded import read_bounded
from ..errors import VarcasError
from .request import Target

MAX_MODELS_BYTES = 4 << 20  # /v1/models and /version answers are read up to this


@dataclass(frozen=True)
class ServerInfo:
    model: str
    models: tuple[str, ...]
    server_version: str | None
    max_model_len: int | None = None  # the model's context length, where the server says


def control_client(headers: dict[str, str], insecure: bool = False, timeout_s: float = 10.0) -> httpx.Client:
    """An httpx client for control-plane calls (never the data path)."""
    return httpx.Client(headers=headers, verify=not insecure, timeout=timeout_s, trust_env=False)


def _get(client: httpx.Client, url: str) -> tuple[int, bytes]:
    try:
        return read_bounded(client, "GET", url, MAX_MODELS_BYTES)
    except httpx.ConnectError as exc:
        if "CERTIFICATE_VERIFY_FAILED" in str(exc):
            raise VarcasError(f"{url}: TLS certificate verification failed (--insecure skips the check)") from None
        raise VarcasError(f"cannot connect to {url} (is the server running?)") from None
    except httpx.TimeoutException:
        raise VarcasError(f"{url} did not answer within {client.timeout.read} s") from None
    except httpx.HTTPError as exc:
        raise VarcasError(f"{url}: {exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None


def _context_len(entry: dict) -> int | None:
    value = entry.get("max_model_len")
    return value if type(value) is int and value > 0 else None


def preflight(target: Target, model: str | None, headers: dict[str, str], insecure: bool = False,
              timeout_s: float = 10.0) -> ServerInfo:
    """GET /v1/models (and /version where the server has it); pick or check the model."""
    url = target.url("/v1/models")
    with control_client(headers, insecure, timeout_s) as client:
        status, body = _get(client, url)
        if status in (401, 403):
            raise VarcasError(f"{url}: HTTP {status}: the server refused the credentials (check --api-key-env)")
        if status != 200:
            raise VarcasError(f"{url}: HTTP {status}: not an OpenAI-compatible server at this URL?")
        try:
            entries = [m for m in orjson.loads(body)["data"] if isinstance(m, dict)]
            models = tuple(str(m["id"]) for m in entries)
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise VarcasError(f"{url}: unexpected response (no 'data' list of models)") from None
        if not models:
            raise VarcasError(f"{url}: the server lists no models")
        if model is None:
            model = models[0]
        elif model not in models:
            raise VarcasError(f"model {model!r} is not served by {target.origin}; it serves: {', '.join(models)}")
        version = None
        try:
            vstatus, vbody = read_bounded(client, "GET", target.url("/version"), MAX_MODELS_BYTES)
            if vstatus == 200:
                version = str(orjson.loads(vbody).get("version")) or None
        except (httpx.HTTPError, VarcasError, orjson.JSONDecodeError, AttributeError):
            pass
    return ServerInfo(model=model, models=models, server_version=version,
                      max_model_len=_context_len(entries[models.index(model)]))
