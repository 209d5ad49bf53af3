"""The argparse types every command shares (varcas.cli)."""
from __future__ import annotations

import argparse

import pytest

from varcas.clikit import OneLineParser, positive_float, positive_int


@pytest.mark.parametrize("text, value", [("1", 1.0), ("0.25", 0.25), ("1e-9", 1e-9), (" 3 ", 3.0)])
def test_positive_float_accepts(text, value):
    assert positive_float(text) == value


@pytest.mark.parametrize("text, message", [
    ("0", "must be a positive finite number, got 0"), ("-2", "must be a positive finite number, got -2"),
    ("nan", "must be a positive finite number, got nan"), ("inf", "must be a positive finite number, got inf"),
    ("ten", "not a number: 'ten'"),
])
def test_positive_float_rejects(text, message):
    with pytest.raises(argparse.ArgumentTypeError) as info:
        positive_float(text)
    assert str(info.value) == message


@pytest.mark.parametrize("text, value", [("1", 1), ("256", 256), ("+7", 7)])
def test_positive_int_accepts(text, value):
    assert positive_int(text) == value


@pytest.mark.parametrize("text, message", [
    ("0", "must be >= 1, got 0"), ("-1", "must be >= 1, got -1"), ("1.5", "not an integer: '1.5'"),
])
def test_positive_int_rejects(text, message):
    with pytest.raises(argparse.ArgumentTypeError) as info:
        positive_int(text)
    assert str(info.value) == message


def test_a_bad_value_is_a_one_line_parser_error(capsys):
    p = OneLineParser(prog="x")
    p.add_argument("--n", type=positive_int)
    with pytest.raises(SystemExit) as info:
        p.parse_args(["--n", "0"])
    assert info.value.code == 2 and capsys.readouterr().err == "x: error: argument --n: must be >= 1, got 0\n"
