"""`varcas analyze RUN_DIR [RUN_DIR ...]`: tables, JSON and CSV over load_run + summarize."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from ..clikit import OneLineParser
from ..errors import VarcasError
from .render import render
from .run import load_run
from .summary import DEFAULT_PERCENTILES, parse_goodput, summarize


def build_parser(prog: str) -> OneLineParser:
    parser = OneLineParser(prog=prog, description="Latency/throughput statistics and a trust verdict for runs.")
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directory or requests.parquet file")
    parser.add_argument(
        "--percentiles", default=",".join(f"{p:g}" for p in DEFAULT_PERCENTILES),
        help="comma-separated percentiles to report (default: %(default)s)",
    )
    parser.add_argument(
        "--goodput", nargs="+", metavar="KEY:MS",
        help="SLOs for goodput, as vLLM's flag: ttft:500 tpot:50 e2el:10000 (milliseconds)",
    )
    parser.add_argument(
        "--window", metavar="START:END", help="steady window by hand, in seconds after the run's start (schedule time 0)",
    )
    parser.add_argument("--json", metavar="FILE", type=Path, help="write the summary as JSON (a list for several runs)")
    parser.add_argument("--csv", metavar="FILE", type=Path, help="write one CSV row per run")
    return parser


def run(args) -> int:
    percentiles = _parse_numbers(args.percentiles, ",", "--percentiles")
    goodput = parse_goodput(args.goodput) if args.goodput else None
    window = _parse_numbers(args.window, ":", "--window", count=2) if args.window else None
    summaries = [
        summarize(load_run(path), percentiles=percentiles, goodput=goodput, window=window)
        for path in args.runs
    ]
    render(summaries)
    dicts = [s.to_dict() for s in summaries]
    if args.json:
        _write(args.json, lambda f: json.dump(dicts[0] if len(dicts) == 1 else dicts, f, indent=2, allow_nan=False))
    if args.csv:
        rows = [flatten(d) for d in dicts]
        fields = list(dict.fromkeys(key for row in rows for key in row))

        def write_csv(f):
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)

        _write(args.csv, write_csv)
    return 0


def flatten(d: dict, prefix: str = "") -> dict:
    """One level of keys for CSV: nested dicts as 'outer.inner', lists joined with ' | '."""
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        elif isinstance(value, list):
            out[prefix + key] = " | ".join(str(v) for v in value)
        else:
            out[prefix + key] = "" if value is None else value
    return out


def _parse_numbers(text: str, sep: str, flag: str, count: int | None = None) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split(sep))
    except ValueError:
        raise VarcasError(f"{flag}: expected numbers separated by {sep!r}, got {text!r}") from None
    if (count is not None and len(values) != count) or not all(math.isfinite(v) for v in values):
        raise VarcasError(f"{flag}: malformed value {text!r}")
    return values


def _write(path: Path, dump) -> None:
    try:
        with open(path, "w", newline="") as f:
            dump(f)
    except OSError as exc:
        raise VarcasError(f"{path}: cannot write ({exc.strerror})") from None
