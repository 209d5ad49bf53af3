"""start_server: the banner wait, failures as one VarcasError, and stopping."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from varcas.errors import VarcasError
from varcas.serve.spawn import ServerProcess, start_server

ROOT = str(Path(__file__).resolve().parents[2])   # so the child can import tests.serve


@pytest.fixture(autouse=True)
def _importable_tests(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))


class _Tagged(ServerProcess):
    def __init__(self, proc, url, port, stderr, tag):
        super().__init__(proc, url, port, stderr)
        self.tag = tag


def test_waits_for_the_whole_port_and_stops_with_sigterm():
    with start_server("tests.serve.banner_server", ["split"], "fake", "the fake", 10.0, _Tagged, tag=7) as srv:
        assert (srv.url, srv.port, srv.tag) == ("http://127.0.0.1:8000", 8000, 7)
        assert srv.proc.poll() is None
    assert srv.proc.returncode == -signal.SIGTERM


def test_a_server_that_exits_is_one_line_with_its_last_stderr_line():
    with pytest.raises(VarcasError) as info:
        start_server("tests.serve.banner_server", ["exit"], "fake", "the fake", 10.0)
    assert str(info.value) == ("the fake did not start (it exited; python -m tests.serve.banner_server exit): "
                               "bad flag: --x")


def test_a_silent_server_is_killed_after_the_timeout():
    with pytest.raises(VarcasError) as info:
        start_server("tests.serve.banner_server", ["silent"], "fake", "the fake", 0.5)
    assert str(info.value) == ("the fake did not start (no listening line in 0.5 s; "
                               "python -m tests.serve.banner_server silent): no output")
