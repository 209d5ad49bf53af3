"""`varcas recover RUN_DIR`: rebuild requests.parquet from requests.arrows after a crash."""
from __future__ import annotations

from ..clikit import OneLineParser
from ..rundir import recover


def build_parser(prog: str) -> OneLineParser:
    parser = OneLineParser(prog=prog, description=__doc__)
    parser.add_argument("run_dir", nargs="+", help="run directories whose process died")
    return parser


def run(args) -> int:
    for run_dir in args.run_dir:
        rows = recover(run_dir)
        print(f"{run_dir}: recovered {rows} requests into requests.parquet")
    return 0
