"""FailureLog: errors.log lines, the first error, secret masking, and the fail-fast rule."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from varcas.load.failures import FailureLog, error_message

OOV = b'{"error": {"message": "Token id %d is out of vocabulary", "type": "BadRequestError", "code": 400}}'


def test_error_message_quotes_the_servers_message_on_one_line():
    assert error_message("server", 200, OOV % 28996) == "server (HTTP 200): Token id 28996 is out of vocabulary"
    assert error_message("http", 404, b'{"detail": "Not\\nFound"}') == "http (HTTP 404): Not Found"
    assert error_message("http", 502, b"<html>\n bad gateway </html>") == "http (HTTP 502): <html> bad gateway </html>"
    assert error_message("connect", 0, b"") == "connect"


def test_first_window_of_one_error_trips_whatever_the_digits(tmp_path):
    log = FailureLog(tmp_path / "errors.log", window=20)
    for i in range(19):
        log.record(i, "server", 200, OOV % (30000 + i))
        assert log.tripped is None
    log.record(19, "server", 200, OOV % 123)
    assert log.tripped == "server (HTTP 200): Token id 123 is out of vocabulary"
    assert log.first == "server (HTTP 200): Token id 30000 is out of vocabulary"
    log.close()
    lines = (tmp_path / "errors.log").read_text().splitlines()
    assert len(lines) == 20 and lines[0].startswith("request 0\tserver\tHTTP 200\t{")


@settings(max_examples=50, deadline=None)
@given(window=st.integers(2, 30), at=st.integers(0, 29), other=st.sampled_from([None, ("http", 500, b"boom")]))
def test_one_success_or_another_error_in_the_window_never_trips(tmp_path_factory, window, at, other):
    at %= window
    log = FailureLog(tmp_path_factory.mktemp("f") / "errors.log", window=window)
    for i in range(window + 10):
        if i != at:
            log.record(i, "server", 200, OOV % i)
        elif other is None:
            log.record(i, None, 200)
        else:
            log.record(i, *other)
    assert log.tripped is None
    log.close()


def test_cancelled_requests_neither_count_nor_log(tmp_path):
    log = FailureLog(tmp_path / "errors.log", window=3)
    for i in range(10):
        log.record(i, "cancelled", 0)
    assert log.tripped is None and log.first is None and log.finished == 0
    for i in range(3):
        log.record(i, "connect", 0)
    assert log.tripped == "connect"
    log.close()
    assert (tmp_path / "errors.log").read_text().count("\tconnect\t") == 3


def test_window_zero_never_trips(tmp_path):
    log = FailureLog(tmp_path / "errors.log", window=0)
    for i in range(50):
        log.record(i, "http", 400, b"bad")
    assert log.tripped is None and log.first == "http (HTTP 400): bad"


def test_a_secret_across_the_excerpt_cut_is_masked_before_cutting(tmp_path):
    secret = "sk-secret-0123456789"
    body = b"x" * 290 + b"key " + secret.encode() + b" rejected"
    log = FailureLog(tmp_path / "errors.log", secrets=(secret, ""), window=5)
    log.record(0, "http", 401, body)
    log.close()
    text = (tmp_path / "errors.log").read_text()
    assert "sk-se" not in text and "***" in log.first and "sk-" not in log.first
