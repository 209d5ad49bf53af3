"""launch() and ManagedServer against fake_server.py and the simulator: readiness, failures, stopping."""
from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.cli_helpers import T4_FLAGS
from varcas.optimize.server import ServerStartError, free_port, launch, port_in_use
from varcas.serve.spawn import (
    child_env,  # children that import varcas need it on PYTHONPATH
)

FAKE = Path(__file__).resolve().with_name("fake_server.py")


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def log(tmp_path) -> Path:
    return tmp_path / "server.log"


def fake(port: int, mode: str, *extra: str) -> list[str]:
    return [sys.executable, str(FAKE), "--port", str(port), "--mode", mode, *extra]


def gone(pid: int) -> bool:
    """No such process, or only a zombie left for init to reap."""
    try:
        os.kill(pid, 0)
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (ProcessLookupError, FileNotFoundError):
        return True


def wait_gone(pid: int, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def start_error(argv: list[str], log: Path, port: int, **kw) -> ServerStartError:
    with pytest.raises(ServerStartError) as info:
        launch(argv, log, port=port, **kw)
    return info.value


def test_free_port_is_free_and_port_in_use_sees_a_listener():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        busy = sock.getsockname()[1]
        assert not port_in_use("127.0.0.1", busy)   # bound, not listening: nothing accepts
        sock.listen()
        assert port_in_use("127.0.0.1", busy)
    port = free_port()
    assert port != busy and not port_in_use("127.0.0.1", port)


def test_a_ready_server_has_url_model_and_log_and_stops_with_sigterm(port, log):
    log.write_text("previous run\n")
    argv = fake(port, "ok")
    with launch(argv, log, port=port, ready_timeout_s=10) as srv:
        assert (srv.url, srv.host, srv.port, srv.argv) == (f"http://127.0.0.1:{port}", "127.0.0.1", port, argv)
        assert srv.model == "fake-model"
        assert 0 < srv.ready_s < 10
        assert (srv.exit_status(), srv.exit_reason()) == (None, None)
        assert not gone(srv.pid)
    assert srv.exit_status() == -signal.SIGTERM
    assert srv.stop() == -signal.SIGTERM   # idempotent
    assert gone(srv.pid) and not port_in_use("127.0.0.1", port)
    lines = log.read_text().splitlines()
    assert lines[0] == "previous run"   # appended, not overwritten
    assert re.fullmatch(r"# varcas: started " + re.escape(shlex.join(argv)) +
                        r" at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", lines[1])
    assert lines[2] == f"fake server listening on {port}"
    assert srv.log_tail(1) == lines[-1:]


def test_slow_start_is_polled_until_it_listens(port, log):
    with launch(fake(port, "slow-start", "--delay", "0.5"), log, port=port, ready_timeout_s=10) as srv:
        assert srv.model == "fake-model"
        assert 0.5 <= srv.ready_s < 10


def test_exit_before_ready_says_the_status_and_carries_the_log(port, log):
    err = start_error(fake(port, "exit"), log, port, ready_timeout_s=10)
    assert err.reason == "the server exited with status 1 before it was ready"
    assert err.log_tail[0].startswith("# varcas: started ")
    assert err.log_tail[1:] == ["Traceback (most recent call last):", "ValueError: bad flag"]
    assert str(err) == f"{err.reason}; last lines of {log}:\n" + "\n".join(err.log_tail)


def test_never_ready_times_out_naming_health_and_is_stopped(port, log, tmp_path):
    pidfile = tmp_path / "server.pid"
    t0 = time.monotonic()
    err = start_error(fake(port, "never-ready", "--pidfile", str(pidfile)), log, port, ready_timeout_s=1)
    waited = time.monotonic() - t0
    assert waited >= 1.0 and waited < 5.0  # the whole timeout, and not much more
    assert err.reason == "not ready after 1 s (GET /health: 503)"
    assert gone(int(pidfile.read_text()))   # stopped and reaped before the raise
    assert not port_in_use("127.0.0.1", port)


def test_a_port_already_in_use_is_refused_before_starting(log, tmp_path):
    pidfile = tmp_path / "server.pid"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        err = start_error(fake(port, "ok", "--pidfile", str(pidfile)), log, port)
    assert err.reason == f"port {port} on 127.0.0.1 is already in use by another process"
    assert (str(err), err.log_tail) == (err.reason, [])
    assert not pidfile.exists()   # the fake writes it first thing: it never ran


def test_a_crash_after_ready_is_reported_by_exit_status_and_reason(port, log):
    with launch(fake(port, "crash-after", "--delay", "1.5"), log, port=port, ready_timeout_s=10) as srv:
        assert srv.exit_status() is None
        deadline = time.monotonic() + 10
        while srv.exit_status() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert srv.exit_status() == 3
        assert srv.exit_reason() == "the server exited with status 3: RuntimeError: engine died"
    assert srv.stop() == 3


def test_a_server_ignoring_sigterm_is_killed_after_the_grace(port, log):
    srv = launch(fake(port, "ignore-term"), log, port=port, ready_timeout_s=10)
    t0 = time.monotonic()
    assert srv.stop(grace_s=0.5) == -signal.SIGKILL
    assert 0.5 <= time.monotonic() - t0 < 2.0
    assert srv.exit_reason().startswith("the server was killed by SIGKILL: ")
    assert gone(srv.pid)


def test_stop_kills_a_grandchild_that_outlives_the_leader(port, log, tmp_path):
    child_pidfile = tmp_path / "child.pid"
    srv = launch(fake(port, "grandchild", "--child-pidfile", str(child_pidfile)), log, port=port,
                 ready_timeout_s=10)
    child = int(child_pidfile.read_text())
    assert not gone(child)
    t0 = time.monotonic()
    assert srv.stop(grace_s=5.0) == -signal.SIGTERM   # the leader obeys SIGTERM; its child does not
    assert time.monotonic() - t0 < 2.0                 # no waiting out the grace for the child
    assert wait_gone(child)


def test_an_answer_after_the_leader_exited_is_a_failure(port, log, tmp_path):
    child_pidfile = tmp_path / "child.pid"
    err = start_error(fake(port, "handoff", "--child-pidfile", str(child_pidfile)), log, port,
                      ready_timeout_s=10)
    assert err.reason == "the server exited with status 0 before it was ready"
    assert wait_gone(int(child_pidfile.read_text()))   # the whole group is stopped
    assert not port_in_use("127.0.0.1", port)


def test_a_missing_program_is_one_line(port, log):
    err = start_error(["/nonexistent/varcas-no-such-server", "--port", str(port)], log, port)
    assert str(err) == err.reason == "cannot run '/nonexistent/varcas-no-such-server': no such program"


def test_a_program_without_execute_permission_is_one_line(port, log, tmp_path):
    script = tmp_path / "server.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o644)
    err = start_error([str(script)], log, port)
    assert str(err) == err.reason == f"cannot run {str(script)!r}: permission denied"


def test_bad_models_fails_saying_what_was_expected(port, log, tmp_path):
    pidfile = tmp_path / "server.pid"
    err = start_error(fake(port, "bad-models", "--pidfile", str(pidfile)), log, port, ready_timeout_s=10)
    assert err.reason == """GET /v1/models has no model: expected {"data": [{"id": ...}]}, got '{}'"""
    assert gone(int(pidfile.read_text()))


def test_a_server_without_v1_models_fails_at_once(port, log):
    t0 = time.monotonic()
    err = start_error(fake(port, "no-models"), log, port, ready_timeout_s=10)
    assert err.reason == "GET /v1/models answered 404: not an OpenAI-compatible server?"
    assert time.monotonic() - t0 < 5.0   # not the whole ready timeout


def test_a_huge_model_list_is_not_read_whole(port, log):
    err = start_error(fake(port, "huge-models"), log, port, ready_timeout_s=20)
    assert err.reason == (f"http://127.0.0.1:{port}/v1/models: answer larger than 4 MiB: "
                          "not an OpenAI-compatible server?")


def test_a_timeout_before_listening_says_the_connection_was_refused(port, log):
    err = start_error(fake(port, "slow-start", "--delay", "10"), log, port, ready_timeout_s=0.5)
    assert err.reason == "not ready after 0.5 s (GET /health: connection refused)"


def test_keyboard_interrupt_while_waiting_stops_the_server(port, log, tmp_path):
    pidfile = tmp_path / "server.pid"
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            launch(fake(port, "never-ready", "--pidfile", str(pidfile)), log, port=port, ready_timeout_s=10)
    finally:
        timer.cancel()
    assert gone(int(pidfile.read_text()))


def test_the_simulator_as_a_real_server(port, log):
    argv = [sys.executable, "-m", "varcas.sim", *T4_FLAGS, "--port", str(port)]
    with launch(argv, log, port=port, env=child_env(), ready_timeout_s=30) as srv:
        assert srv.model == "llama-2-7b-awq"
        assert srv.log_tail(1)[0].startswith(f"varcas-sim listening on http://127.0.0.1:{port} ")
    assert srv.stop() == 0   # it handles SIGTERM and exits cleanly


def test_the_server_dies_when_varcas_is_sigkilled(port, log):
    code = ("import sys; from pathlib import Path; from varcas.optimize.server import launch; "
            f"srv = launch({fake(port, 'ok')!r}, Path({str(log)!r}), port={port}, ready_timeout_s=10); "
            "print(srv.pid, flush=True); import time; time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              env=child_env())
    try:
        line = parent.stdout.readline()   # bounded: launch gives up after 10 s and the parent exits
        server = int(line)
        assert not gone(server)
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()
    assert wait_gone(server)
    assert not port_in_use("127.0.0.1", port)


def test_a_sigkilled_varcas_leaves_no_member_of_the_group(port, log, tmp_path):
    """PR_SET_PDEATHSIG reaches the leader only; a member ignoring SIGTERM (as a starting vLLM's
    engine process does) is SIGKILLed by the watchdog once the grace is over."""
    child_pidfile = tmp_path / "child.pid"
    argv = fake(port, "grandchild", "--child-pidfile", str(child_pidfile))
    code = ("import sys; from pathlib import Path; from varcas.optimize.server import launch; "
            f"srv = launch({argv!r}, Path({str(log)!r}), port={port}, ready_timeout_s=10, grace_s=1.0); "
            "print(srv.pid, flush=True); import time; time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=child_env())
    try:
        leader = int(parent.stdout.readline())
        child = int(child_pidfile.read_text())
        assert not gone(child)
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()
    t0 = time.monotonic()
    assert wait_gone(leader) and wait_gone(child, 5.0)
    assert 0.9 <= time.monotonic() - t0 < 4.0  # SIGTERM first, SIGKILL after the 1 s grace


def test_stopping_normally_ends_the_watchdog(port, log):
    srv = launch(fake(port, "ok"), log, port=port, ready_timeout_s=10)
    watchdog = srv._watchdog[0].pid
    assert not gone(watchdog)
    srv.stop(grace_s=2.0)
    assert wait_gone(watchdog, 1.0) and srv._watchdog is None
