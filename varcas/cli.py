"""`varcas <command>`: each command is a thin layer over a library function.

A command module exposes build_parser(prog) -> argparse.ArgumentParser and run(args) -> int.
Setup and input errors (VarcasError, bad flags) become one line on stderr and exit status 2.
positive_float and positive_int are the argparse types the commands share.
"""
from __future__ import annotations

import argparse
import importlib
import math
import os
import sys

from .errors import EXIT_BROKEN_PIPE, EXIT_ERROR, EXIT_INTERRUPTED, VarcasError

COMMANDS = {
    "load": ("varcas.load.cli", "run an open-loop load test against a server"),
    "recover": ("varcas.load.recover_cli", "rebuild requests.parquet of a run whose process died"),
    "analyze": ("varcas.analyze.cli", "latency/throughput statistics and a trust verdict for runs"),
    "roofline": ("varcas.roofline.cli", "static roofline model of prefill and decode on a GPU"),
    "sim": ("varcas.sim.cli", "simulated vLLM server on the roofline model (served, or offline in virtual time)"),
    "optimize": ("varcas.optimize.cli", "sweep server settings (e.g. --max-num-seqs) over workloads; compare, recommend"),
    "sweep-rate": ("varcas.optimize.capacity_cli", "find the highest request rate that meets the SLOs (capacity)"),
    "report": ("varcas.report.cli", "self-contained HTML report and Markdown summary of a run, sweep or pipeline"),
    "pipeline": ("varcas.pipeline", "roofline, load tests, batch sweep and report in one directory"),
}


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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: varcas <command> [options]\n\ncommands:")
        for name, (_, helptext) in COMMANDS.items():
            print(f"  {name:<10} {helptext}")
        return 0 if argv else 2
    name = argv[0]
    if name not in COMMANDS:
        print(f"varcas: error: unknown command {name!r} (known: {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    return run_command(COMMANDS[name][0], f"varcas {name}", argv[1:])


if __name__ == "__main__":
    sys.exit(main())
