"""What every command shares: its argparse class, the argparse types, and run_command, which
runs a command module (build_parser(prog) -> parser, run(args) -> int) with varcas's exit rules:
setup and input errors (VarcasError, bad flags) become one line on stderr and exit status 2."""
from __future__ import annotations

import argparse
import importlib
import math
import os
import sys

from .errors import EXIT_BROKEN_PIPE, EXIT_ERROR, EXIT_INTERRUPTED, VarcasError


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line (no usage dump) and exits 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message}\n")


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def run_command(module_name: str, prog: str, argv: list[str]) -> int:
    """Parse argv with the command's parser and run it; VarcasError -> one line, exit 2."""
    try:
        module = importlib.import_module(module_name)
        args = module.build_parser(prog).parse_args(argv)
        code = int(module.run(args) or 0)
        sys.stdout.flush()
        return code
    except VarcasError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:  # a signal before anything was recorded (commands keep what they recorded)
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader of stdout went away (`| head`): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return EXIT_BROKEN_PIPE
