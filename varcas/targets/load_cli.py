"""`python -m varcas.load` / `varcas load`: flags -> LoadConfig -> run_load -> summary table, and
with --save-result vLLM's result JSON (varcas.analyze.vllm_result) beside the run directory.

The result flags are `vllm bench serve`'s (--save-result, --save-detailed, --result-dir,
--result-filename, --metadata, --label, --percentile-metrics, --metric-percentiles, --goodput).
They shape what is computed and written once the run is over, not the run itself, so they are
this command's own and not load flags; each is checked before anything is sent.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from ..analyze import load_run, summarize
from ..analyze.summary import DEFAULT_PERCENTILES, check_goodput, parse_goodput
from ..analyze.vllm_result import (
    DEFAULT_PERCENTILE_METRICS,
    parse_metadata,
    parse_percentile_metrics,
    result_filename,
    vllm_result,
    write_result,
)
from ..clikit import OneLineParser
from ..errors import VarcasError
from ..load.flags import (
    DATASET,
    TARGET,
    VLLM_TARGET,
    VLLM_WORKLOAD,
    WORKLOAD,
    add_load_flags,
)
from ..load.runner import LoadConfig
from ..load.summary import print_summary
from ..sim.flags import add_sim_choice_flags, sim_choices
from . import run_load

RUN = ("max_concurrency", "workers", "worker_cores", "ray", "request_timeout_s", "drain_timeout_s", "clip_to_context", "fail_fast",
       "metrics_interval_s", "no_metrics", "gpu_metrics_url", "gpu_metrics", "out", "quiet")
NEED_SAVE_RESULT = ("save_detailed", "result_dir", "result_filename", "metadata", "label")


@dataclass(frozen=True)
class ResultChoices:
    """What the summary and the result JSON carry, from the result flags, checked."""

    percentiles: tuple
    goodput: dict | None
    percentile_metrics: tuple
    metadata: dict


def build_parser(prog: str) -> OneLineParser:
    p = OneLineParser(prog=prog, description="Open-loop load test of an OpenAI-compatible LLM server.")
    add_load_flags(p.add_argument_group("target"), (*TARGET, *VLLM_TARGET))
    workload = p.add_argument_group("workload and arrivals")
    add_load_flags(workload, (*WORKLOAD, "ignore_eos", *VLLM_WORKLOAD))
    add_load_flags(p.add_argument_group("datasets and workload shapes"), DATASET)
    add_load_flags(p.add_argument_group("run"), RUN)
    add_result_flags(p.add_argument_group("summary and vllm bench serve's result JSON"))
    add_sim_choice_flags(p.add_argument_group("built-in simulator (the target when there is no --url)"))
    return p


def add_result_flags(group) -> None:
    """vllm bench serve's output flags, with its meanings; defaults that differ say so."""
    group.add_argument("--goodput", nargs="+", metavar="KEY:MS",
                       help="SLOs for goodput, as vLLM's flag: ttft:500 tpot:50 e2el:10000 (milliseconds)")
    group.add_argument("--metric-percentiles", metavar="P,P",
                       help="percentiles of the summary and the result JSON (default 50,90,95,99,99.9; vLLM's: 99)")
    group.add_argument("--percentile-metrics", metavar="M,M",
                       help="metrics whose mean, median, std and percentiles the result JSON carries: ttft, tpot, "
                            "itl, e2el, client_queue_time, e2el_including_client_queue (default "
                            "ttft,tpot,itl,e2el; vLLM's: ttft,tpot,itl)")
    group.add_argument("--save-result", action="store_true",
                       help="also write vllm bench serve's result JSON (the run directory is written anyway)")
    group.add_argument("--save-detailed", action="store_true",
                       help="with it, the per-request lists (ttfts, itls, start_times, ...)")
    group.add_argument("--result-dir", metavar="DIR", help="its directory (default: the current one)")
    group.add_argument("--result-filename", metavar="NAME", help="its name (default vLLM's: "
                       "{label}-{rate}qps[-concurrency{N}]-{model}-{date}.json)")
    group.add_argument("--metadata", nargs="*", metavar="KEY=VALUE", help="extra keys of the result JSON")
    group.add_argument("--label", help="its label and file-name prefix (default: the --backend name)")


def result_choices(args) -> ResultChoices:
    """The result flags checked, before the run: one-line errors for bad ones."""
    given = [name for name in NEED_SAVE_RESULT if getattr(args, name) not in (None, False)]
    if given and not args.save_result:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise VarcasError(f"{flags}: only with --save-result")
    percentiles = DEFAULT_PERCENTILES
    if args.metric_percentiles is not None:
        percentiles = _percents(args.metric_percentiles)
    metrics = DEFAULT_PERCENTILE_METRICS
    if args.percentile_metrics is not None:
        metrics = parse_percentile_metrics(args.percentile_metrics)
    goodput = check_goodput(parse_goodput(args.goodput)) if args.goodput else None
    return ResultChoices(percentiles, goodput, metrics, parse_metadata(args.metadata))


def _percents(text: str) -> tuple:
    """--metric-percentiles: comma-separated numbers in [0, 100]."""
    try:
        values = tuple(float(p) for p in text.split(","))
    except ValueError:
        raise VarcasError(f"--metric-percentiles: expected numbers such as 50,99, got {text!r}") from None
    if not all(0 <= p <= 100 for p in values):
        raise VarcasError(f"--metric-percentiles: each must be between 0 and 100, got {text!r}")
    return values


def config_from_args(args) -> LoadConfig:
    fields = LoadConfig.__dataclass_fields__
    values = {k: v for k, v in vars(args).items() if k in fields}
    return LoadConfig(**{**values, "sim": sim_choices(args)})


def run(args) -> int:
    choices = result_choices(args)
    console = Console(highlight=False)
    run_dir = run_load(config_from_args(args), console)
    loaded = load_run(run_dir)
    summary = summarize(loaded, percentiles=choices.percentiles, goodput=choices.goodput)
    code = print_summary(run_dir, console, summary)
    if args.save_result:
        result = vllm_result(loaded, summary, percentile_metrics=choices.percentile_metrics,
                             detailed=args.save_detailed, metadata=choices.metadata, label=args.label)
        name = args.result_filename or result_filename(loaded, args.label)
        console.print(f"vLLM result: {write_result(result, Path(args.result_dir or '.') / name)}", soft_wrap=True)
    return code
