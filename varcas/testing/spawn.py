"""Start the test server in a subprocess for tests and benchmarks: spawn() -> ServerProcess.

A thin layer over varcas.serve.spawn (which does the starting, the bounded wait for the
`varcas-testserver listening on URL` line and the stopping): it knows the stub's flags and
adds the stub's own routes, /_records and /_stats. Leaving the `with` block sends SIGTERM
(the server writes --records and exits) and kills the process if it is still alive 5 s later.
"""
from __future__ import annotations

from collections.abc import Sequence

from ..serve import spawn as _serve_spawn

SERVER_NAME = "varcas-testserver"   # its Server header and start-up line
START_TIMEOUT_S = 10.0


class ServerProcess(_serve_spawn.ServerProcess):
    """A running test server: .url, .port, .proc, .records(), .stats(); a context manager."""

    def records(self) -> dict:
        """GET /_records: {"requests": [{"id", "recv_ns", "fault", "token_ns": [...]}, ...]}."""
        return self.get("/_records").json()

    def stats(self) -> dict:
        """GET /_stats: request, stream, token, connection and fault counts, max lag."""
        return self.get("/_stats").json()


def spawn(tokens: int = 16, itl_ms: float = 10.0, ttft_ms: float = 0.0,
          extra_args: Sequence[str] = ()) -> ServerProcess:
    """Start `python -m varcas.testing.server --port 0 ...`; VarcasError if it is not up in 10 s."""
    args = ["--port", "0", "--tokens", str(tokens), "--itl-ms", str(itl_ms), "--ttft-ms", str(ttft_ms),
            *extra_args]
    return _serve_spawn.start_server("varcas.testing.server", args, SERVER_NAME, "the test server",
                                     START_TIMEOUT_S, ServerProcess)
