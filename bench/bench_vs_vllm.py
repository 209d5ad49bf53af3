"""varcas side by side with vLLM's own benchmark (`vllm bench serve`) on one real vLLM server.

Not a test. Needs the real vLLM of .ci/real-vllm.sh (`eval "$(bash .ci/real-vllm.sh)"`). One
`vllm serve` of the tiny random-weight Llama (vocabulary 4,096, CPU build) per mode; against
it, alternately (the order flips every repetition), the same workload from both tools:
--num-prompts requests, Poisson at --rate, prompts of --input-len random tokens, --output-len
tokens with ignore_eos. Reported per tool, median [min-max] over --reps repetitions: request
throughput, TTFT / TPOT / ITL medians and TTFT p99 (each tool's own figures: varcas's
`analyze` keys are vLLM's names and definitions), and each client's own CPU per output token
(rusage of the client process tree; varcas runs with --no-metrics, since vLLM's benchmark does
not scrape /metrics: like for like).

Modes: `unpinned` (as users run it: server and client share both cores) and `pinned` (server
on CPU 0, client on CPU 1).

    python bench/bench_vs_vllm.py [--reps 3] [--num-prompts 100] [--rate 4] [--modes unpinned,pinned]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.real.vllm_server import VllmServer, serve_env, vllm_paths  # noqa: E402
from varcas.analyze import load_run, summarize  # noqa: E402

METRICS = ("request_throughput", "median_ttft_ms", "p99_ttft_ms", "median_tpot_ms", "median_itl_ms",
           "cpu_us_per_token")
ALL_CPUS = set(range(os.cpu_count() or 1))


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _run(cmd: list[str], cpus: set[int], env: dict | None = None) -> float:
    """Run a client to completion on `cpus`; its CPU seconds (whole process tree)."""
    before = _children_cpu()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                   preexec_fn=lambda: os.sched_setaffinity(0, cpus))
    return _children_cpu() - before


def run_varcas(url: str, args, seed: int, out: Path, cpus: set[int]) -> dict:
    cmd = [sys.executable, "-m", "varcas.load", "--url", url, "--model", "tiny", "--input-len", str(args.input_len),
           "--output-len", str(args.output_len), "--num-requests", str(args.num_prompts), "--rps", str(args.rate),
           "--seed", str(seed), "--drain-timeout", "600", "--no-metrics", "--quiet", "--out", str(out)]
    cpu = _run(cmd, cpus)
    s = summarize(load_run(out)).to_dict()
    return {**{k: s[k] for k in METRICS[:-1]}, "cpu_us_per_token": cpu / s["total_output_tokens"] * 1e6,
            "completed": s["completed"]}


def run_vllm_bench(url: str, venv: Path, model_dir: Path, args, seed: int, out: Path, cpus: set[int]) -> dict:
    cmd = [str(venv / "bin" / "vllm"), "bench", "serve", "--backend", "vllm", "--base-url", url, "--model", "tiny",
           "--tokenizer", str(model_dir), "--dataset-name", "random", "--random-input-len", str(args.input_len),
           "--random-output-len", str(args.output_len), "--num-prompts", str(args.num_prompts),
           "--request-rate", str(args.rate), "--ignore-eos", "--seed", str(seed), "--disable-tqdm",
           "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,99",
           "--save-result", "--result-dir", str(out.parent), "--result-filename", out.name]
    cpu = _run(cmd, cpus, env={**os.environ, **serve_env()})
    r = json.loads(out.read_text())
    return {**{k: r[k] for k in METRICS[:-1]}, "cpu_us_per_token": cpu / r["total_output_tokens"] * 1e6,
            "completed": r["completed"]}


def bench_mode(mode: str, venv: Path, model_dir: Path, args, work: Path) -> dict:
    server_cpus, client_cpus = ({0}, {1}) if mode == "pinned" else (ALL_CPUS, ALL_CPUS)
    os.sched_setaffinity(0, server_cpus)  # the server's process tree inherits this
    try:
        server = VllmServer(venv, model_dir, extra=["--max-num-seqs", "16"], log_path=work / f"{mode}-server.log")
        server.__enter__()
    finally:
        os.sched_setaffinity(0, ALL_CPUS)
    results = {"varcas": [], "vllm bench serve": []}
    try:
        run_varcas(server.url, argparse.Namespace(**{**vars(args), "num_prompts": 10}), 99, work / f"{mode}-warm",
                   client_cpus)
        for rep in range(args.reps):
            order = ["varcas", "vllm bench serve"][:: 1 if rep % 2 == 0 else -1]
            for tool in order:
                if tool == "varcas":
                    r = run_varcas(server.url, args, rep, work / f"{mode}-varcas-{rep}", client_cpus)
                else:
                    r = run_vllm_bench(server.url, venv, model_dir, args, rep, work / f"{mode}-vllm-{rep}.json",
                                       client_cpus)
                results[tool].append(r)
                print(f"  {mode} rep {rep} {tool}: " + ", ".join(f"{k}={r[k]:.4g}" for k in METRICS), flush=True)
    finally:
        server.__exit__(None, None, None)
    return results


def fmt(values: list[float]) -> str:
    v = np.asarray(values, dtype=float)
    return f"{np.median(v):.4g} [{v.min():.4g}-{v.max():.4g}]"


def report(mode: str, results: dict) -> None:
    a, b = results["varcas"], results["vllm bench serve"]
    print(f"\n{mode}: median [min-max] over {len(a)} repetitions")
    print("| metric | varcas | vllm bench serve | varcas / vllm |\n|---|---|---|---|")
    for m in METRICS:
        va, vb = [r[m] for r in a], [r[m] for r in b]
        ratio = np.median(va) / np.median(vb) if np.median(vb) else float("nan")
        print(f"| {m} | {fmt(va)} | {fmt(vb)} | {ratio:.3f} |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--num-prompts", type=int, default=100)
    p.add_argument("--rate", type=float, default=4.0)
    p.add_argument("--input-len", type=int, default=64)
    p.add_argument("--output-len", type=int, default=32)
    p.add_argument("--modes", default="unpinned,pinned")
    args = p.parse_args()
    paths = vllm_paths()
    if paths is None:
        print("no real vLLM: run `eval \"$(bash .ci/real-vllm.sh)\"` first", file=sys.stderr)
        return 2
    venv, models = paths
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}")
    print(f"server: vLLM 0.32.0 CPU build, tiny-4k, max-num-seqs 16; workload: {args.num_prompts} requests, "
          f"Poisson {args.rate}/s, {args.input_len} in / {args.output_len} out")
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes.split(","):
            report(mode, bench_mode(mode, venv, models / "tiny-4k", args, Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
