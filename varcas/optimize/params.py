"""Sweep parameters: `--param NAME=V1,V2,...` specs, their grid, configuration ids, and the
server command filled in for one configuration.

A configuration is a dict NAME -> value (strings, as the user wrote them). Several --param
flags make a grid, their cartesian product in the order given. The server command is a
template split with shlex (no shell), then each word filled with str.format from the
configuration plus {port}; every parameter must appear in it (a parameter that changes nothing
would make identical configurations look different) and {port} must appear (varcas picks a
free port per server).
"""
from __future__ import annotations

import itertools
import re
import shlex

from ..errors import VarcasError

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_VALUE = re.compile(r"^[A-Za-z0-9._+-]+$")  # also a path component of the config's directory


def parse_param(text: str) -> tuple[str, tuple[str, ...]]:
    """'max_num_seqs=1,2,4' -> ('max_num_seqs', ('1', '2', '4'))."""
    name, sep, values = text.partition("=")
    name = name.strip()
    if not sep or not _NAME.match(name):
        raise VarcasError(f"--param {text!r}: expected NAME=V1,V2,... with NAME like max_num_seqs")
    items = tuple(v.strip() for v in values.split(","))
    if not all(items) or not all(_VALUE.match(v) for v in items):
        raise VarcasError(f"--param {text!r}: values must be non-empty words of letters, digits, '.', '_', '+', '-'")
    if len(set(items)) != len(items):
        raise VarcasError(f"--param {text!r}: a value is repeated")
    return name, items


def grid(specs: list[tuple[str, tuple[str, ...]]]) -> list[dict[str, str]]:
    """Every configuration of the parsed specs (one empty configuration when there are none)."""
    names = [name for name, _ in specs]
    if len(set(names)) != len(names):
        raise VarcasError(f"--param: {next(n for n in names if names.count(n) > 1)} is given twice")
    return [dict(zip(names, combo)) for combo in itertools.product(*(values for _, values in specs))]


def config_id(params: dict[str, str]) -> str:
    """A configuration's directory name: 'max_num_seqs-8_max_num_batched_tokens-2048' ('default' if empty)."""
    return "_".join(f"{k}-{v}" for k, v in params.items()) or "default"


def fill(template: list[str], params: dict[str, str], port: int) -> list[str]:
    """The template's words with {NAME} and {port} replaced: the argv of one server."""
    values = {**params, "port": str(port)}
    try:
        return [word.format(**values) for word in template]
    except KeyError as exc:
        raise VarcasError(f"--server-cmd: {{{exc.args[0]}}} is not a --param (known: {', '.join(values)})") from None
    except (ValueError, IndexError) as exc:
        raise VarcasError(f"--server-cmd: bad placeholder ({exc}); write literal braces as {{{{ and }}}}") from None


def command_template(text: str, names: list[str]) -> list[str]:
    """Split --server-cmd (shlex) and check that {port} and every parameter appear in it."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise VarcasError(f"--server-cmd: {exc}") from None
    if not words:
        raise VarcasError("--server-cmd is empty")
    joined = " ".join(words)
    for name in ("port", *names):
        if "{" + name + "}" not in joined:
            what = "varcas picks a free port per server" if name == "port" else "or every configuration runs the same server"
            raise VarcasError(f"--server-cmd must contain {{{name}}} ({what})")
    fill(words, dict.fromkeys(names, "0"), 0)  # every placeholder is known
    return words
