"""One shared test server for the server tests: 3 tokens, 5 ms apart, short fault delays."""
from __future__ import annotations

import pytest

from varcas.testing import spawn

ITL_MS = 5.0
STALL_S = 0.5
SLOW_HEADERS_S = 0.3


@pytest.fixture(scope="session")
def server():
    with spawn(tokens=3, itl_ms=ITL_MS, extra_args=(
            "--stall-s", str(STALL_S), "--slow-headers-s", str(SLOW_HEADERS_S))) as srv:
        yield srv
