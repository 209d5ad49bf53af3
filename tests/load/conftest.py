"""Fixtures for load-generator tests: a stub server process shared by a module."""
from __future__ import annotations

import pytest

from varcas.testing.spawn import spawn


@pytest.fixture(scope="module")
def server():
    """A stub server shared by a test module: 8 tokens, 2 ms apart, 5 ms to the first."""
    with spawn(tokens=8, itl_ms=2, ttft_ms=5) as srv:
        yield srv
