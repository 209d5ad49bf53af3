"""`varcas sim`: serve the simulated vLLM server, or with --offline predict a load test's run
directory in virtual time. Flags are vLLM's (engine) and the load generator's (offline)."""
from __future__ import annotations

import uvloop
from rich.console import Console

from ..cli import OneLineParser, positive_float, positive_int
from ..errors import VarcasError
from ..load.cli import ARRIVALS
from ..load.runner import LoadConfig
from .config import SimConfig, resolve

ENGINE_FLAGS = ("model", "gpu", "quant", "max_num_seqs", "max_num_batched_tokens",
                "enable_chunked_prefill", "gpu_memory_utilization", "max_model_len",
                "served_model_name", "gpu_file", "bw_efficiency", "compute_efficiency",
                "step_overhead_ms")
OFFLINE_FLAGS = ("workload", "rps", "arrival", "burstiness", "trace", "duration_s", "num_requests",
                 "input_len", "output_len", "seed", "request_timeout_s", "out")


def build_parser(prog: str, parser_class=OneLineParser) -> OneLineParser:
    p = parser_class(prog=prog, description="A vLLM server simulated on the roofline model: "
                      "served over HTTP (default), or run offline in virtual time.")
    e = p.add_argument_group("engine (vLLM's flags)")
    e.add_argument("--model", default="llama-2-7b", help="shipped model name or config.json path (default llama-2-7b)")
    e.add_argument("--gpu", default="t4", help="GPU name, or NAME:bw_gbps=...,fp16_tflops=...,mem_gb=... (default t4)")
    e.add_argument("--gpu-file", help="CSV/JSON of extra or overriding GPUs")
    e.add_argument("--quant", default="awq", help="auto, fp16, bf16, fp8, int8, awq, gptq (default awq)")
    e.add_argument("--max-num-seqs", type=positive_int, default=256, help="running sequences cap (default 256)")
    e.add_argument("--max-num-batched-tokens", type=positive_int,
                   help="tokens per step (default max(max-model-len, 2048); 2048 with chunked prefill)")
    e.add_argument("--enable-chunked-prefill", action="store_true", help="mix prefill chunks and decodes in a step")
    e.add_argument("--gpu-memory-utilization", type=positive_float, default=0.9,
                   help="share of GPU memory for weights + KV (default 0.9)")
    e.add_argument("--max-model-len", type=positive_int,
                   help="context limit (default: the model's max_position_embeddings)")
    e.add_argument("--served-model-name", help="model id the API serves (default MODEL-QUANT)")
    e.add_argument("--bw-efficiency", type=positive_float,
                   help="achieved share of memory bandwidth (default: roofline's)")
    e.add_argument("--compute-efficiency", type=positive_float,
                   help="achieved share of peak FLOP/s (default: roofline's)")
    e.add_argument("--step-overhead-ms", type=float, help="fixed time added to every step (default: roofline's)")
    s = p.add_argument_group("server")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8000, help="port; 0 picks a free one (default 8000)")
    o = p.add_argument_group("offline (virtual time; the load generator's flags)")
    o.add_argument("--offline", action="store_true", help="simulate a load test instead of serving")
    o.add_argument("--workload", default="chat_medium", help="shipped profile name or JSON path (default chat_medium)")
    o.add_argument("--rps", "--request-rate", dest="rps", type=positive_float,
                   help="requests per second (default: the workload's)")
    o.add_argument("--arrival", choices=ARRIVALS, default="poisson", help="arrival process (default poisson)")
    o.add_argument("--burstiness", type=positive_float, default=1.0, help="gamma shape for --arrival gamma")
    o.add_argument("--trace", help="JSONL or CSV of (offset_s, input_tokens, output_tokens) for --arrival trace")
    o.add_argument("--duration", dest="duration_s", type=positive_float,
                   help="seconds of schedule (default 60 unless --num-requests)")
    o.add_argument("--num-requests", type=positive_int, help="number of requests")
    o.add_argument("--input-len", type=positive_int, help="fixed prompt length in tokens")
    o.add_argument("--output-len", type=positive_int, help="fixed max_tokens")
    o.add_argument("--seed", type=int, default=0, help="seed of the schedule (default 0)")
    o.add_argument("--request-timeout", dest="request_timeout_s", type=positive_float, default=600.0,
                   help="seconds a simulated client waits before giving up (default 600)")
    o.add_argument("--out", help="run directory (default runs/<UTC timestamp>-<workload>)")
    return p


def sim_config(args) -> SimConfig:
    return SimConfig(**{k: getattr(args, k) for k in ENGINE_FLAGS})


def run(args) -> int:
    setup = resolve(sim_config(args))
    if args.offline:
        return _offline(setup, args)
    if not 0 <= args.port <= 65535:
        raise VarcasError(f"--port must be in [0, 65535], got {args.port}")
    from .server import serve

    uvloop.run(serve(setup, args.host, args.port, ready=lambda line: print(line, flush=True)))
    return 0


def _offline(setup, args) -> int:
    from ..load.summary import print_summary
    from .offline import simulate

    cfg = LoadConfig(quiet=True, **{k: getattr(args, k) for k in OFFLINE_FLAGS})
    console = Console(highlight=False)
    result = simulate(setup, cfg)
    sim = result.manifest["sim"]
    console.print(f"simulated {setup.describe()}: {sim['virtual_s']:.1f} s of serving in "
                  f"{sim['wall_s']:.1f} s ({sim['steps']} steps, {sim['preemptions']} preemptions)")
    return print_summary(result.run_dir, console)
