"""`python -m varcas.load` / `varcas load`: flags -> LoadConfig -> run_load -> summary table."""
from __future__ import annotations

from rich.console import Console

from ..clikit import OneLineParser
from ..load.flags import TARGET, WORKLOAD, add_load_flags
from ..load.runner import LoadConfig
from ..load.summary import print_summary
from ..sim.flags import add_sim_choice_flags, sim_choices
from . import run_load

RUN = ("max_concurrency", "request_timeout_s", "drain_timeout_s", "clip_to_context", "fail_fast",
       "metrics_interval_s", "no_metrics", "gpu_metrics_url", "gpu_metrics", "out", "quiet")


def build_parser(prog: str) -> OneLineParser:
    p = OneLineParser(prog=prog, description="Open-loop load test of an OpenAI-compatible LLM server.")
    add_load_flags(p.add_argument_group("target"), TARGET)
    add_load_flags(p.add_argument_group("workload and arrivals"), (*WORKLOAD, "ignore_eos"))
    add_load_flags(p.add_argument_group("run"), RUN)
    add_sim_choice_flags(p.add_argument_group("built-in simulator (the target when there is no --url)"))
    return p


def config_from_args(args) -> LoadConfig:
    fields = LoadConfig.__dataclass_fields__
    values = {k: v for k, v in vars(args).items() if k in fields}
    return LoadConfig(**{**values, "sim": sim_choices(args)})


def run(args) -> int:
    console = Console(highlight=False)
    return print_summary(run_load(config_from_args(args), console), console)
