"""The load generator's flags, declared once: `varcas load`, `varcas sim --offline`,
`varcas optimize`, `varcas sweep-rate` and `varcas pipeline` add the ones they offer from here
(add_load_flags), each under the same spelling, type and help; a command may change a default
or the help's wording where its meaning differs (a sweep's --workload takes a list). Each
flag's dest is the LoadConfig field it fills.

`vllm bench serve`'s spellings are extra option strings of the varcas flag that means the same
(--num-prompts, --request-rate, --disable-tqdm, ...), or flags of their own where varcas had
none (--base-url, --host/--port, --backend, the ramp-up, the sampling parameters).
"""
from __future__ import annotations

import argparse
import math
from typing import Any

from ..clikit import positive_float, positive_int
from ..errors import VarcasError
from ..schedule.arrivals import ARRIVALS, RAMPS, arrival_help
from ..schedule.datasets import DATASETS
from ..schedule.shapes import THINK
from .context import CLIP_HELP
from .datasets import parse_range_ratio
from .request import API_PATHS, BACKENDS
from .workers import parse_cores, parse_workers


def positive_rate(text: str) -> float:
    """argparse type: a request rate > 0, or inf (vLLM's: every request at once)."""
    return math.inf if text.strip().lower() == "inf" else positive_float(text)


def _argparse_type(parse):
    """An argparse type from a library parser: its VarcasError ("--flag: why") becomes
    argparse's one-line error (which names the flag itself)."""
    def convert(text: str):
        try:
            return parse(text)
        except VarcasError as exc:
            raise argparse.ArgumentTypeError(str(exc).partition(": ")[2] or str(exc)) from None
    convert.__name__ = parse.__name__
    return convert

# dest -> (option strings, argparse keyword arguments)
LOAD_FLAGS: dict[str, tuple[tuple[str, ...], dict]] = {
    # target
    "url": (("--url",), dict(help="server base URL, e.g. http://127.0.0.1:8000 (default: the built-in simulated server)")),
    "base_url": (("--base-url",), dict(help="vLLM's spelling of --url")),
    "host": (("--host",), dict(help="vLLM's: the server is http://HOST:PORT (default 127.0.0.1 once --port is given)")),
    "port": (("--port",), dict(type=positive_int, help="vLLM's: the server's port (default 8000 once --host is "
                                                     "given)")),
    "backend": (("--backend",), dict(choices=tuple(BACKENDS), help="vLLM's: vllm and openai are --api completions, "
                                     "openai-chat is --api chat")),
    "model": (("--model",), dict(help="model name (default: the server's first model)")),
    "api": (("--api",), dict(choices=tuple(API_PATHS), default="completions",
                             help="completions: prompt as token IDs of exact length (default); chat: text prompts")),
    "endpoint": (("--endpoint",), dict(help="request path (default /v1/completions or /v1/chat/completions)")),
    "headers": (("--header",), dict(action="append", default=[], metavar="'K: V'",
                                    help="extra request header (repeatable)")),
    "api_key_env": (("--api-key-env",), dict(default="OPENAI_API_KEY", metavar="VAR",
                                             help="environment variable holding the API key, sent as Bearer "
                                                  "(default OPENAI_API_KEY)")),
    "insecure": (("--insecure",), dict(action="store_true", help="skip TLS certificate checks for https URLs")),
    "tokenizer": (("--tokenizer",), dict(metavar="PATH", help="the model's Hugging Face tokenizer (directory or "
                                         "tokenizer.json): prompts of its own token IDs, exact lengths (default: "
                                         "the server's /tokenize where it has one)")),
    # workload and arrivals
    "workload": (("--workload",), dict(default="chat_medium", help="shipped profile name or path of a JSON profile "
                                       "(default chat_medium)")),
    "rps": (("--rps", "--request-rate"), dict(type=positive_rate, help="requests per second, or inf: every "
                                              "request at once (default: the workload's)")),
    "arrival": (("--arrival",), dict(choices=tuple(ARRIVALS), help=arrival_help())),
    "burstiness": (("--burstiness",), dict(type=positive_float, default=1.0,
                                           help="gamma shape (1.0 = Poisson); other than 1 without --arrival, "
                                                "the arrival process is gamma, as in vLLM")),
    "ramp_up_strategy": (("--ramp-up-strategy",), dict(choices=tuple(RAMPS), help="vLLM's ramp-up: the rate "
                                                       "climbs from --ramp-up-start-rps to --ramp-up-end-rps over "
                                                       "--num-requests requests (no --rps)")),
    "ramp_up_start_rps": (("--ramp-up-start-rps",), dict(type=positive_float, help="rate of the first request "
                                                         "of a ramp-up")),
    "ramp_up_end_rps": (("--ramp-up-end-rps",), dict(type=positive_float, help="rate of the last request of a "
                                                     "ramp-up")),
    "trace": (("--trace",), dict(help="JSONL or CSV of (offset_s, input_tokens, output_tokens) for --arrival trace")),
    "duration_s": (("--duration",), dict(type=positive_float, help="seconds of schedule (default 60 unless --num-requests)")),
    "num_requests": (("--num-requests", "--num-prompts"), dict(type=positive_int, help="number of requests; the "
                                                               "run ends at whichever limit comes first")),
    "input_len": (("--input-len", "--random-input-len"), dict(type=positive_int, help="fixed prompt length in "
                                                              "tokens")),
    "output_len": (("--output-len", "--random-output-len"), dict(type=positive_int, help="fixed max_tokens")),
    "ignore_eos": (("--no-ignore-eos",), dict(action="store_false", help="do not send ignore_eos: true")),
    "send_ignore_eos": (("--ignore-eos",), dict(dest="ignore_eos", action="store_true", default=True,
                                                help="send ignore_eos: true (the default; vLLM's flag)")),
    "temperature": (("--temperature",), dict(type=float, default=0.0, help="sampling temperature sent "
                                             "(default 0: greedy)")),
    "top_p": (("--top-p",), dict(type=float, help="top_p sent with each request (default: none)")),
    "top_k": (("--top-k",), dict(type=int, help="top_k sent with each request (default: none)")),
    "seed": (("--seed",), dict(type=int, default=0, help="seed of the schedule and prompts (default 0)")),
    # run
    "max_concurrency": (("--max-concurrency",), dict(type=positive_int, help="cap on requests in flight "
                                                     "(waits are recorded); one cap for all --workers")),
    "workers": (("--workers",), dict(type=_argparse_type(parse_workers), metavar="N|auto",
                                     help="load worker processes sharing the schedule, each with its own event loop "
                                          "(default 1, with --ray the cluster's CPUs - 1; auto: from the planned "
                                          "token events/s and a per-core ceiling measured at start-up, at most the "
                                          "CPUs - 1)")),
    "ray": (("--ray",), dict(nargs="?", const="local", metavar="ADDRESS",
                             help="run the workers as Ray actors spread over a cluster's nodes: ADDRESS is ray.init's "
                                  "(auto, ray://head:10001; default: a local Ray instance for the run); needs "
                                  "pip install 'varcas[ray]' (docs/scale.md)")),
    "worker_cores": (("--worker-cores",), dict(type=_argparse_type(parse_cores), metavar="LIST",
                                               help="pin worker k to the k-th of these CPUs (e.g. 2,3 or 2-5; "
                                                    "round robin; default: unpinned)")),
    "request_timeout_s": (("--request-timeout",), dict(type=positive_float, default=600.0,
                                                       help="seconds a request may take (default 600)")),
    "drain_timeout_s": (("--drain-timeout",), dict(type=positive_float, default=30.0,
                                                   help="seconds in-flight requests may finish after the schedule "
                                                        "or an interrupt (default 30)")),
    "clip_to_context": (("--clip-to-context",), dict(action="store_true", help=CLIP_HELP)),
    "fail_fast": (("--fail-fast",), dict(type=int, default=20, metavar="N",
                                         help="stop when the first N finished requests all failed with the same "
                                              "error (default 20; 0: never)")),
    "metrics_interval_s": (("--metrics-interval",), dict(type=float, default=0.5, metavar="S",
                                                         help="scrape the server's Prometheus /metrics every S seconds "
                                                              "into metrics.parquet (default 0.5)")),
    "no_metrics": (("--no-metrics",), dict(dest="metrics_interval_s", action="store_const", const=0.0,
                                           help="do not scrape /metrics (nor GPU telemetry)")),
    "gpu_metrics_url": (("--gpu-metrics-url",), dict(metavar="URL", help="a dcgm-exporter's /metrics (e.g. "
                                                     "http://gpu-host:9400/metrics), scraped beside the server's "
                                                     "into metrics.parquet: the GPUs of a remote server")),
    "gpu_metrics": (("--no-gpu-metrics",), dict(action="store_false", help="do not sample this host's GPUs through "
                                                "NVML (done when the server runs here and nvidia-ml-py is "
                                                "installed: pip install 'varcas[gpu]')")),
    "out": (("--out",), dict(help="run directory (default runs/<UTC timestamp>-<workload>)")),
    "quiet": (("--quiet", "--disable-tqdm"), dict(action="store_true", help="no live progress")),
    # datasets (vLLM's) and workload shapes: varcas.load.datasets says which go together
    "dataset_name": (("--dataset-name",), dict(choices=tuple(DATASETS), default="random", help="; ".join(
        f"{name}: {d.help}" for name, d in DATASETS.items()) + " (default random)")),
    "dataset_path": (("--dataset-path",), dict(metavar="FILE", help="the dataset's file (sonnet: default the "
                                              "shipped sonnets)")),
    "disable_shuffle": (("--disable-shuffle",), dict(action="store_true", help="sharegpt and custom: take the "
                                                     "rows in file order, not shuffled by --seed as vLLM")),
    "random_range_ratio": (("--random-range-ratio",), dict(type=parse_range_ratio, default=0.0, metavar="R",
                           help="spread --random-input-len/--random-output-len L uniformly over [L(1-R), L(1+R)], "
                                "as vLLM; R in [0, 1), or '{\"input\": R, \"output\": R}'")),
    "shared_prefix_len": (("--shared-prefix-len", "--random-prefix-len"), dict(type=int, default=0,
                          metavar="P", help="every prompt starts with a shared prefix of P tokens (included in "
                                            "the prompt length)")),
    "shared_prefix_groups": (("--shared-prefix-groups",), dict(type=positive_int, default=1, metavar="N",
                             help="N distinct prefixes: request (conversation) i uses prefix i mod N "
                                  "(default 1)")),
    "turns": (("--turns",), dict(type=positive_int, default=1, metavar="T", help="conversations of T turns: the "
                                 "rate starts conversations, each turn's prompt carries the earlier turns and "
                                 "answers, and follows the previous answer after --think-time")),
    "think_time_s": (("--think-time",), dict(type=float, default=0.0, metavar="S", help="seconds between a "
                                             "turn's answer and the next turn (mean; default 0)")),
    "think_time_dist": (("--think-time-dist",), dict(choices=THINK, help="exponential (default) or fixed think "
                                                     "times")),
    "sharegpt_output_len": (("--sharegpt-output-len",), dict(type=positive_int, help="sharegpt: this max_tokens "
                                                             "instead of the second turn's length")),
    "custom_output_len": (("--custom-output-len",), dict(type=int, help="custom: max_tokens of every request "
                                                         "(default 256, as vLLM); -1: the file's output_tokens")),
    "sonnet_input_len": (("--sonnet-input-len",), dict(type=positive_int, help="sonnet: prompt tokens at most "
                                                       "(default 550)")),
    "sonnet_output_len": (("--sonnet-output-len",), dict(type=positive_int, help="sonnet: max_tokens (default "
                                                         "150)")),
    "sonnet_prefix_len": (("--sonnet-prefix-len",), dict(type=int, help="sonnet: tokens of the shared prefix "
                                                         "lines, about (default 200)")),
}
TARGET = ("url", "model", "api", "endpoint", "headers", "api_key_env", "insecure", "tokenizer")
WORKLOAD = ("workload", "rps", "arrival", "burstiness", "trace", "duration_s", "num_requests", "input_len",
            "output_len", "seed")
DATASET = ("dataset_name", "dataset_path", "disable_shuffle", "random_range_ratio", "shared_prefix_len",
           "shared_prefix_groups", "turns", "think_time_s", "think_time_dist", "sharegpt_output_len",
           "custom_output_len", "sonnet_input_len", "sonnet_output_len", "sonnet_prefix_len")
# vllm bench serve's flags that varcas had no spelling of (only `varcas load` offers them)
VLLM_TARGET = ("base_url", "host", "port", "backend")
VLLM_WORKLOAD = ("ramp_up_strategy", "ramp_up_start_rps", "ramp_up_end_rps", "send_ignore_eos", "temperature",
                 "top_p", "top_k")

# How a sweep's load flags differ from `varcas load`'s: a list of workloads, longer runs, a required --out.
SWEEP_CHANGES: dict[str, dict[str, Any]] = {
    "workload": {"help": "comma-separated workloads (default chat_medium)"},
    "duration_s": {"default": 120.0, "help": "seconds of schedule per run (default 120)"},
    "rps": {"help": "request rate of every run (default: each workload's)"},
    "seed": {"help": "schedule seed (default 0)"},
    "out": {"required": True, "help": "sweep directory (rerun the same command to resume)"},
    "quiet": {"help": "no live progress per run"},
}


def add_load_flags(group, names, **changes: dict) -> None:
    """Add the named flags (LOAD_FLAGS keys) to an argparse parser or group; changes[name]
    replaces some of a flag's keyword arguments (a default, the help) for this command."""
    for name in names:
        options, kwargs = LOAD_FLAGS[name]
        kwargs = {"dest": name, **kwargs, **changes.get(name, {})}
        group.add_argument(*options, **kwargs)
