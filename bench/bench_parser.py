"""Micro-benchmark: C StreamParser.feed() against the pure-Python twin.

The input is a realistic vLLM /v1/completions stream of 64 tokens as uvicorn sends it
(chunked, one SSE event per chunk) cut into one read per event, which is what the load
generator sees from a server that flushes every engine step. Reported: ns per feed()
call for each parser (median and min over runs, and the spread), and their ratio. The
clock is read inside feed() as in production (now_ns not given); the figure includes the
Python method call, as the client pays it.

    PYTHONPATH=. python bench/bench_parser.py [--runs 11] [--streams 30]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

from varcas._timing import StreamParser
from varcas.load.parser_py import PyStreamParser

HEAD = (
    b"HTTP/1.1 200 OK\r\ndate: Thu, 27 Nov 2025 20:00:00 GMT\r\nserver: uvicorn\r\n"
    b"content-type: text/event-stream; charset=utf-8\r\ntransfer-encoding: chunked\r\n\r\n"
)
WORDS = " the quick brown fox jumps over a lazy dog while \"quoted\" café naïve 😀 tokens stream".split(" ")


def chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def vllm_reads(n_tokens: int = 64) -> list[bytes]:
    """One read per SSE event: the head, n_tokens completion chunks, usage, [DONE] + end."""
    base = {"id": "cmpl-8f3a9c2e71d54b0c9a6e", "object": "text_completion", "created": 1732737600,
            "model": "meta-llama/Llama-3.1-8B-Instruct"}
    reads = [HEAD]
    for i in range(n_tokens):
        choice = {"index": 0, "text": " " + WORDS[i % len(WORDS)], "logprobs": None,
                  "finish_reason": "length" if i == n_tokens - 1 else None, "stop_reason": None}
        event = json.dumps({**base, "choices": [choice], "usage": None}, separators=(",", ":"))
        reads.append(chunk(b"data: " + event.encode() + b"\n\n"))
    usage = {"prompt_tokens": 512, "total_tokens": 512 + n_tokens, "completion_tokens": n_tokens}
    reads.append(chunk(b"data: " + json.dumps({**base, "choices": [], "usage": usage}).encode() + b"\n\n"))
    reads.append(chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
    return reads


def ns_per_feed(make, reads: list[bytes], streams: int) -> float:
    p = make()
    t0 = time.perf_counter_ns()
    for _ in range(streams):
        p.reset()
        for r in reads:
            p.feed(r)
    elapsed = time.perf_counter_ns() - t0
    assert p.n_events == len(reads) - 3 and p.end_ns, "the stream did not parse"
    return elapsed / (streams * len(reads))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--streams", type=int, default=30, help="Python-twin streams per run (C runs 10x as many)")
    args = ap.parse_args()
    reads = vllm_reads()
    token_bytes = statistics.median(len(r) for r in reads[1:-2])
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, "
          f"{len(reads)} reads/stream, median token read {token_bytes:.0f} bytes")
    ns_per_feed(StreamParser, reads, args.streams)  # warm-up
    ns_per_feed(PyStreamParser, reads, 2)
    # C and Python alternate within each run so that both see the same machine load.
    pairs = [(ns_per_feed(StreamParser, reads, args.streams * 10), ns_per_feed(PyStreamParser, reads, args.streams))
             for _ in range(args.runs)]
    for name, samples in [("C StreamParser", [c for c, _ in pairs]), ("PyStreamParser", [p for _, p in pairs])]:
        med = statistics.median(samples)
        spread = (max(samples) - min(samples)) / med
        warn = "  (unstable: spread >= 10% of the median)" if spread >= 0.10 else ""
        print(f"{name:15s} median {med:8.0f} ns/feed  min {min(samples):8.0f}  spread {spread:6.1%}{warn}")
    print(f"ratio (Python / C, median of per-run ratios) {statistics.median(p / c for c, p in pairs):.1f}x")


if __name__ == "__main__":
    main()
