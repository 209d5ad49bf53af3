"""Control-plane checks before any load is sent (httpx): is the server there, and the model?

An unreachable server, a wrong URL or an unknown model is a one-line VarcasError (exit 2)
before the schedule starts, never a run full of connect errors.
"""
from __future__ import annotations

from dataclasses import dataclass

import httpx

from ..errors import VarcasError
from .request import Target


@dataclass(frozen=True)
class ServerInfo:
    model: str
    models: tuple[str, ...]
    server_version: str | None


def _get(client: httpx.Client, url: str) -> httpx.Response:
    try:
        return client.get(url)
    except httpx.ConnectError as exc:
        if "CERTIFICATE_VERIFY_FAILED" in str(exc):
            raise VarcasError(f"{url}: TLS certificate verification failed (--insecure skips the check)") from None
        raise VarcasError(f"cannot connect to {url} (is the server running?)") from None
    except httpx.TimeoutException:
        raise VarcasError(f"{url} did not answer within {client.timeout.read} s") from None
    except httpx.HTTPError as exc:
        raise VarcasError(f"{url}: {exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None


def preflight(target: Target, model: str | None, headers: dict[str, str], insecure: bool = False,
              timeout_s: float = 10.0) -> ServerInfo:
    """GET /v1/models (and /version where the server has it); pick or check the model."""
    url = target.url("/v1/models")
    with httpx.Client(headers=headers, verify=not insecure, timeout=timeout_s, trust_env=False) as client:
        resp = _get(client, url)
        if resp.status_code in (401, 403):
            raise VarcasError(f"{url}: HTTP {resp.status_code}: the server refused the credentials (check --api-key-env)")
        if resp.status_code != 200:
            raise VarcasError(f"{url}: HTTP {resp.status_code}: not an OpenAI-compatible server at this URL?")
        try:
            models = tuple(str(m["id"]) for m in resp.json()["data"])
        except (ValueError, KeyError, TypeError):
            raise VarcasError(f"{url}: unexpected response (no 'data' list of models)") from None
        if not models:
            raise VarcasError(f"{url}: the server lists no models")
        if model is None:
            model = models[0]
        elif model not in models:
            raise VarcasError(f"model {model!r} is not served by {target.origin}; it serves: {', '.join(models)}")
        version = None
        try:
            vresp = client.get(target.url("/version"))
            if vresp.status_code == 200:
                version = str(vresp.json().get("version")) or None
        except (httpx.HTTPError, ValueError, AttributeError):
            pass
    return ServerInfo(model=model, models=models, server_version=version)
