"""Where the load goes: the user's server (--url), or a built-in server started for the run.

With no --url, varcas starts its own streaming stub server (varcas.testing.server: fixed
time to first token and inter-token gap, vLLM's wire format) on a free loopback port, says so
in one line, and records in the manifest that the target was that stub. The vLLM simulator
(varcas.sim, issue 5) replaces the stub as the default target once it exists.
"""
from __future__ import annotations

import contextlib

STUB_PARAMS = {"tokens": 128, "itl_ms": 10.0, "ttft_ms": 20.0}


@contextlib.contextmanager
def open_target(url: str | None, console):
    """Yield (url, kind, params); kind is 'server' for --url, 'testserver' for the stub."""
    if url is not None:
        yield url, "server", None
        return
    from ..testing.spawn import spawn

    with spawn(**STUB_PARAMS) as server:  # VarcasError if it does not come up
        if console is not None:
            console.print(
                f"no --url: load-testing varcas's built-in stub server at {server.url} "
                f"({STUB_PARAMS['ttft_ms']:g} ms to first token, {STUB_PARAMS['itl_ms']:g} ms between tokens)"
            )
        yield server.url, "testserver", dict(STUB_PARAMS)
