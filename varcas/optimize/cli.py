"""`varcas optimize`: sweep server settings over workloads, then compare and recommend.

    varcas optimize --param max_num_seqs=1,2,4,8,16,32 --workload chat_medium,chat_high \\
        --duration 120 --out sweeps/t4 [--server-cmd 'vllm serve M --max-num-seqs {max_num_seqs} --port {port}']

Without --server-cmd (or --url) the sweep runs varcas's simulated vLLM server with the same
parameters; --offline runs the simulator in virtual time. Rerunning the command resumes.
"""
from __future__ import annotations

from rich.console import Console

from ..analyze.summary import check_goodput, parse_goodput
from ..clikit import OneLineParser
from ..errors import EXIT_INTERRUPTED, VarcasError
from ..load.flags import SWEEP_CHANGES, add_load_flags
from ..results.comparison import comparison
from .backend import add_backend_flags, backend_spec
from .params import parse_param
from .render import print_comparison
from .sweep import SweepInterrupted, SweepSpec, run_sweep


def build_parser(prog: str) -> OneLineParser:
    p = OneLineParser(prog=prog, description="Sweep server settings (vLLM flags) over workloads; compare the "
                      "configurations and recommend one per use case.")
    add_backend_flags(p)
    s = p.add_argument_group("sweep")
    s.add_argument("--param", action="append", default=[], metavar="NAME=V1,V2,...",
                   help="a server setting and its values (repeat for a grid), e.g. max_num_seqs=1,2,4,8")
    add_load_flags(s, ("workload", "duration_s", "rps", "seed"), **SWEEP_CHANGES)
    s.add_argument("--warmup", type=int, default=8, help="warm-up requests per server start (default 8; 0: none)")
    add_load_flags(s, ("request_timeout_s", "drain_timeout_s", "clip_to_context", "workers", "out", "quiet"),
                   **SWEEP_CHANGES)
    c = p.add_argument_group("comparison")
    c.add_argument("--goodput", nargs="+", metavar="KEY:MS", help="SLOs, vLLM's format, e.g. ttft:1000 tpot:100")
    c.add_argument("--baseline", help="configuration id the changes are against (default: the first)")
    c.add_argument("--roofline-model", help="model the server runs, for the roofline explanation (a real server)")
    c.add_argument("--roofline-gpu", help="its GPU")
    c.add_argument("--roofline-quant", default="auto", help="its quantization (default auto)")
    return p


def spec_from_args(args) -> SweepSpec:
    goodput = check_goodput(parse_goodput(args.goodput)) if args.goodput else None
    if args.warmup < 0:
        raise VarcasError("--warmup must be >= 0")
    roof = None
    if args.roofline_model or args.roofline_gpu:
        if not (args.roofline_model and args.roofline_gpu):
            raise VarcasError("--roofline-model and --roofline-gpu go together")
        roof = {"model": args.roofline_model, "gpu": args.roofline_gpu, "quant": args.roofline_quant}
    workloads = tuple(w.strip() for w in args.workload.split(",") if w.strip())
    if not workloads:
        raise VarcasError("--workload: no workload given")
    return SweepSpec(backend=backend_spec(args), params=[parse_param(t) for t in args.param], workloads=workloads,
                     out=args.out, duration_s=args.duration_s, rps=args.rps, seed=args.seed, warmup=args.warmup,
                     goodput=goodput, roofline=roof, request_timeout_s=args.request_timeout_s,
                     drain_timeout_s=args.drain_timeout_s, quiet=args.quiet, clip_to_context=args.clip_to_context,
                     workers=args.workers)


def run(args) -> int:
    console = Console(highlight=False)
    spec = spec_from_args(args)
    try:
        out = run_sweep(spec, console, say=console.print)
    except SweepInterrupted:
        console.print(f"interrupted: finished configurations and runs are kept in {spec.out}; "
                      "rerun the same command to resume", style="yellow")
        return EXIT_INTERRUPTED
    result = comparison(out, baseline=args.baseline)
    print_comparison(result, console)
    console.print(f"comparison: {out / 'comparison.json'}; HTML report: varcas report {out}")
    return 0
