"""`python -m varcas.load` / `varcas load`: flags -> LoadConfig -> run_load -> summary table."""
from __future__ import annotations

from rich.console import Console

from ..cli import OneLineParser, positive_float, positive_int
from .context import CLIP_HELP
from .request import API_PATHS
from .runner import LoadConfig, run_load

ARRIVALS = ("poisson", "constant", "gamma", "trace")


def build_parser(prog: str) -> OneLineParser:
    p = OneLineParser(prog=prog, description="Open-loop load test of an OpenAI-compatible LLM server.")
    t = p.add_argument_group("target")
    t.add_argument("--url", help="server base URL, e.g. http://127.0.0.1:8000 (default: the built-in stub server)")
    t.add_argument("--model", help="model name (default: the server's first model)")
    t.add_argument("--api", choices=tuple(API_PATHS), default="completions",
                   help="completions: prompt as token IDs of exact length (default); chat: text prompts")
    t.add_argument("--endpoint", help="request path (default /v1/completions or /v1/chat/completions)")
    t.add_argument("--header", action="append", default=[], metavar="'K: V'", help="extra request header (repeatable)")
    t.add_argument("--api-key-env", default="OPENAI_API_KEY", metavar="VAR",
                   help="environment variable holding the API key, sent as Bearer (default OPENAI_API_KEY)")
    t.add_argument("--insecure", action="store_true", help="skip TLS certificate checks for https URLs")
    t.add_argument("--tokenizer", metavar="PATH",
                   help="the model's Hugging Face tokenizer (directory or tokenizer.json): prompts of its own token IDs, "
                        "exact lengths (default: the server's /tokenize where it has one)")
    w = p.add_argument_group("workload and arrivals")
    w.add_argument("--workload", default="chat_medium", help="shipped profile name or path of a JSON profile")
    w.add_argument("--rps", "--request-rate", dest="rps", type=positive_float, help="requests per second (default: the workload's)")
    w.add_argument("--arrival", choices=ARRIVALS, default="poisson", help="arrival process (default poisson)")
    w.add_argument("--burstiness", type=positive_float, default=1.0, help="gamma shape for --arrival gamma (1.0 = Poisson)")
    w.add_argument("--trace", help="JSONL or CSV of (offset_s, input_tokens, output_tokens) for --arrival trace")
    w.add_argument("--duration", dest="duration_s", type=positive_float, help="seconds of schedule (default 60 unless --num-requests)")
    w.add_argument("--num-requests", type=positive_int, help="number of requests; the run ends at whichever limit comes first")
    w.add_argument("--input-len", type=positive_int, help="fixed prompt length in tokens")
    w.add_argument("--output-len", type=positive_int, help="fixed max_tokens")
    w.add_argument("--no-ignore-eos", dest="ignore_eos", action="store_false", help="do not send ignore_eos: true")
    w.add_argument("--seed", type=int, default=0, help="seed of the schedule and prompts (default 0)")
    r = p.add_argument_group("run")
    r.add_argument("--max-concurrency", type=positive_int, help="cap on requests in flight (waits are recorded)")
    r.add_argument("--request-timeout", dest="request_timeout_s", type=positive_float, default=600.0, help="seconds (default 600)")
    r.add_argument("--drain-timeout", dest="drain_timeout_s", type=positive_float, default=30.0,
                   help="seconds in-flight requests may finish after an interrupt (default 30)")
    r.add_argument("--clip-to-context", action="store_true", help=CLIP_HELP)
    r.add_argument("--fail-fast", type=int, default=20, metavar="N",
                   help="stop when the first N finished requests all failed with the same error (default 20; 0: never)")
    r.add_argument("--metrics-interval", dest="metrics_interval_s", type=float, default=0.5, metavar="S",
                   help="scrape the server's Prometheus /metrics every S seconds into metrics.parquet (default 0.5)")
    r.add_argument("--no-metrics", dest="metrics_interval_s", action="store_const", const=0.0,
                   help="do not scrape /metrics")
    r.add_argument("--out", help="run directory (default runs/<UTC timestamp>-<workload>)")
    r.add_argument("--quiet", action="store_true", help="no live progress")
    s = p.add_argument_group("built-in simulator (the target when there is no --url)")
    s.add_argument("--sim-model", dest="sim_model", help="model (default llama-2-7b)")
    s.add_argument("--sim-gpu", dest="sim_gpu", help="GPU (default t4)")
    s.add_argument("--sim-quant", dest="sim_quant", help="quantization (default awq)")
    s.add_argument("--sim-max-num-seqs", dest="sim_max_num_seqs", type=positive_int,
                   help="vLLM's --max-num-seqs (default 256, vLLM's)")
    return p


def config_from_args(args) -> LoadConfig:
    fields = LoadConfig.__dataclass_fields__
    values = {k: v for k, v in vars(args).items() if k in fields}
    values["headers"] = args.header
    sim = {"model": args.sim_model, "gpu": args.sim_gpu, "quant": args.sim_quant, "max_num_seqs": args.sim_max_num_seqs}
    values["sim"] = {k: v for k, v in sim.items() if v is not None}
    return LoadConfig(**values)


def run(args) -> int:
    console = Console(highlight=False)
    cfg = config_from_args(args)
    run_dir = run_load(cfg, console)
    from .summary import print_summary

    return print_summary(run_dir, console)
