"""`varcas sweep-rate`: the highest request rate at which SLOs hold (capacity.sweep), one line
per step as it goes, then a table of the tested rates and the capacity with its knee."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from rich import box
from rich.console import Console

from ..analyze.summary import parse_goodput
from ..analyze.trust import MIN_STEADY_S
from ..clikit import OneLineParser, positive_float, positive_int
from ..errors import EXIT_INTERRUPTED, VarcasError
from ..load.flags import add_load_flags
from ..load.runner import LoadConfig
from ..schedule.workloads import load_workload
from ..signals import interrupts_raise
from ..termtable import Table
from .backend import add_backend_flags, backend_spec, open_backend
from .capacity import (
    CAPACITY_FILE,
    CapacityResult,
    SearchSpec,
    Step,
    check_search,
    open_out,
    rate_text,
    share_text,
    sweep,
)

SERVER_LOG = "server.log"


def build_parser(prog: str) -> OneLineParser:
    p = OneLineParser(prog=prog, description="Find the highest request rate at which the SLOs hold for a share "
                      "of requests: a bracketing search over rates, each step a normal load run.")
    add_backend_flags(p)
    s = p.add_argument_group("search")
    s.add_argument("--goodput", nargs="+", required=True, metavar="KEY:MS",
                   help="SLOs, as vLLM's flag: ttft:1000 tpot:100 e2el:10000 (milliseconds)")
    s.add_argument("--attainment", type=float, default=0.99,
                   help="share of requests that must meet every SLO, in (0, 1] (default 0.99)")
    s.add_argument("--start", type=positive_float,
                   help="first rate tried, req/s, within the bounds (default: the workload's rate)")
    s.add_argument("--min-rps", type=positive_float, default=0.1, help="lowest rate tried (default 0.1)")
    s.add_argument("--max-rps", type=positive_float, default=1000.0, help="highest rate tried (default 1000)")
    s.add_argument("--tolerance", type=positive_float, default=0.05,
                   help="stop when the failing rate is within this fraction of the passing one (default 0.05)")
    s.add_argument("--max-steps", type=positive_int, default=12, help="load runs in all, at most (default 12)")
    r = p.add_argument_group("each run")
    add_load_flags(r, ("workload", "duration_s", "seed", "clip_to_context", "workers"), duration_s={
        "default": 60.0, "help": "seconds of schedule per run (default 60)"})
    p.add_argument("--out", required=True, help="directory of the search: capacity.json and one run per rate")
    p.add_argument("--json", action="store_true", help="print capacity.json on stdout (the tables go to stderr)")
    return p


def run(args) -> int:
    slos = parse_goodput(args.goodput)
    workload = load_workload(args.workload)
    if args.duration_s <= MIN_STEADY_S:
        raise VarcasError(f"--duration must exceed {MIN_STEADY_S:g} s: a run needs that long to show a steady window")
    start = args.start or workload.rps
    slos = check_search(slos, args.attainment, start, args.min_rps, args.max_rps, args.tolerance, args.max_steps)
    target = backend_spec(args)
    target.check([])
    out = Path(args.out)
    spec = SearchSpec(slos=slos, attainment=args.attainment, start_rps=start, min_rps=args.min_rps,
                     max_rps=args.max_rps, tolerance=args.tolerance, max_steps=args.max_steps,
                     load={"workload": args.workload, "duration_s": args.duration_s, "seed": args.seed,
                           "target": target.public(), **({"clip_to_context": True} if args.clip_to_context else {})})
    open_out(out, spec)  # before any server starts: a bad --out is a one-line error at once
    console = Console(highlight=False, stderr=args.json)
    try:
        with interrupts_raise() as rearm, open_backend(target, {}, out / SERVER_LOG, console) as backend:
            console.print(f"target: {backend.describe()}")

            def run_rate(rate: float, run_dir: Path) -> Path:
                console.print(f"[dim]running {rate:g} req/s for {args.duration_s:g} s -> {run_dir}[/]")
                cfg = LoadConfig(workload=args.workload, rps=rate, duration_s=args.duration_s, seed=args.seed,
                                 clip_to_context=args.clip_to_context, workers=args.workers,
                                 out=str(run_dir))
                try:
                    path = backend.run(cfg)
                finally:
                    rearm()  # the run's event loop reset the SIGTERM handler
                problem = backend.problem()
                if problem:
                    raise VarcasError(f"the target stopped during the {rate:g} req/s run: {problem}")
                return path

            spec = replace(spec, backend=backend.describe())
            result = sweep(out, spec, run_rate, on_step=lambda step: console.print(step_line(step)))
    except KeyboardInterrupt:
        console.print(f"interrupted; what was done is in {out / CAPACITY_FILE}")
        return EXIT_INTERRUPTED
    console.print(table(result))
    console.print(result.text)
    console.print(f"results: {out / CAPACITY_FILE}")
    if args.json:
        print((out / CAPACITY_FILE).read_text(), end="")
    return EXIT_INTERRUPTED if result.outcome == "interrupted" else 0


def _ms(value) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _verdict(step: Step) -> str:
    if step.status == "interrupted":
        return "interrupted"
    if step.overloaded:
        return "overloaded"
    return "steady" if step.verdict.startswith("Steady") else "unsteady"


def step_line(step: Step) -> str:
    """One rich line for a finished step."""
    mark = "[green]pass[/]" if step.passed else "[red]fail[/]"
    reused = " [dim](reused)[/]" if step.reused else ""
    why = "" if step.passed else f": {step.reason}"
    return (f"{step.rate_rps:g} req/s {mark}{reused}  attainment {share_text(step.attainment)}  goodput "
            f"{rate_text(step.goodput_rps)} req/s  TTFT p99 {_ms(step.ttft_p99_ms)} ms  TPOT p99 "
            f"{_ms(step.tpot_p99_ms)} ms{why}")


def table(result: CapacityResult) -> Table:
    """The tested rates, lowest first, with the figures of their windows (steady, or a stand-in
    for one: the verdict column says which)."""
    t = Table("Capacity search, over each run's window (steady only where the verdict says so; req/s, ms): "
              "offered and attained count the requests scheduled in it, goodput the good ones finishing in it",
              title_justify="left",
              box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False)
    for name in ("rate", "offered", "attained", "pass", "goodput", "TTFT p99", "TPOT p99", "verdict"):
        t.add_column(name, justify="left" if name in ("pass", "verdict") else "right")
    for s in sorted(result.steps, key=lambda s: s.rate_rps):
        t.add_row(f"{s.rate_rps:g}", rate_text(s.offered_rps), share_text(s.attainment), "yes" if s.passed else "no",
                  rate_text(s.goodput_rps), _ms(s.ttft_p99_ms), _ms(s.tpot_p99_ms), _verdict(s))
    return t
