"""vLLM's benchmark result JSON (`vllm bench serve --save-result`), built from a varcas run, so
dashboards and vLLM's own plots that read vLLM's files read varcas's too.

Keys, meanings and units are vLLM 0.32's (vllm/benchmarks/serve.py: benchmark() and main_async()):
  setup        date (local time the run ended, %Y%m%d-%H%M%S), endpoint_type = backend, label,
               model_id, tokenizer_id, num_prompts, then --metadata KEY=VALUE pairs (strings; a
               later key below overrides one of them, as in vLLM), request_rate (a number, or
               "inf" for all at once, a ramp-up or a trace), burstiness, max_concurrency, and
               under a ramp-up ramp_up_strategy, ramp_up_start_rps, ramp_up_end_rps, rps_change_events
  totals       duration (s, schedule time 0 to the last request's end: vLLM's wall time of the
               benchmark), completed, failed, total_input_tokens, total_output_tokens,
               request_throughput, request_goodput (None without SLOs), output_throughput,
               total_token_throughput (per second of duration), rtfx (0: no audio), and vLLM's
               max_output_tokens_per_s and max_concurrent_requests: per 1-second bucket from the
               first successful send (varcas's own summary counts concurrency exactly instead)
  statistics   mean_, median_, std_ (population, as np.std) and pN_ (the summary's percentiles)
               <metric>_ms of each chosen metric over successful requests, 0.0 where there are
               none (vLLM's `or 0`); client_queue_time and e2el_including_client_queue exist only
               under a concurrency cap (the latter not at an infinite rate), as in vLLM
  per request  in request order, seconds: latencies and queue_times always; with detailed
               (--save-detailed) also input_lens, output_lens, ttfts, itls, start_times
               (CLOCK_MONOTONIC, the clock of vLLM's perf_counter), generated_texts, errors ("" if ok)
A failed request has ttft 0, latency 0, no itls and output_len 0, as vLLM records one. What
varcas cannot reproduce: generated_texts, since it never keeps the response text (each is null).
"""
from __future__ import annotations

import contextlib
import json
import math
from datetime import datetime
from pathlib import Path

import numpy as np

from ..errors import VarcasError
from ..schedule.arrivals import ramp_rates
from . import kernels
from .catalog import percent_word
from .metrics import NS_PER_S, RequestMetrics, distribution
from .run import NO_ERROR, Run
from .summary import Summary

PERCENTILE_METRICS = ("ttft", "tpot", "itl", "e2el", "client_queue_time", "e2el_including_client_queue")
DEFAULT_PERCENTILE_METRICS = ("ttft", "tpot", "itl", "e2el")  # vLLM's default "ttft,tpot,itl", and e2el
DETAILED = ("input_lens", "output_lens", "ttfts", "itls", "start_times", "generated_texts", "errors")
RAMP_KEYS = ("ramp_up_strategy", "ramp_up_start_rps", "ramp_up_end_rps")


def vllm_result(run: Run, summary: Summary, *, percentile_metrics=DEFAULT_PERCENTILE_METRICS, detailed=False,
                metadata: dict | None = None, label: str | None = None) -> dict:
    """vLLM's result dict of a run and its summary (summarize(run, percentiles=..., goodput=...))."""
    head = _setup(run, label)
    cut = list(head).index("num_prompts") + 1
    out = {**dict(list(head.items())[:cut]), **(metadata or {}), **dict(list(head.items())[cut:])}
    rm, whole = summary.requests, summary.whole
    out.update(duration=whole.duration_s, completed=whole.completed, failed=whole.failed,
               total_input_tokens=whole.total_input_tokens, total_output_tokens=whole.total_output_tokens,
               request_throughput=whole.request_throughput,
               request_goodput=whole.request_goodput if summary.goodput else None,
               output_throughput=whole.output_throughput, total_token_throughput=whole.total_token_throughput)
    per_request = _per_request(run, rm)
    out.update(per_request if detailed else {k: v for k, v in per_request.items() if k not in DETAILED})
    out["max_output_tokens_per_s"], out["max_concurrent_requests"] = _per_second_peaks(run, rm)
    out["rtfx"] = 0.0
    if "ramp_up_strategy" in head:
        out["rps_change_events"] = _rps_change_events(run, head)
    out.update(_statistics(run, summary, percentile_metrics, head))
    return out


def result_filename(run: Run, label: str | None = None) -> str:
    """vLLM's default file name: {label or backend}-{rate}qps[-concurrency{N}]-{model}-{date}.json,
    the rate part being ramp-up-{strategy}-{start}qps-{end}qps under a ramp-up."""
    head = _setup(run, label)
    cap = "" if head["max_concurrency"] is None else f"-concurrency{head['max_concurrency']}"
    rate = (f"ramp-up-{head['ramp_up_strategy']}-{head['ramp_up_start_rps']}qps-{head['ramp_up_end_rps']}qps"
            if "ramp_up_strategy" in head else f"{head['request_rate']}qps")
    model = str(head["model_id"]).split("/")[-1]
    return f"{head['label'] or head['backend']}-{rate}{cap}-{model}-{head['date']}.json"


def write_result(result: dict, path) -> Path:
    """Write the result as vLLM does (one JSON line, no indent), creating its directory."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result))
    except OSError as exc:
        raise VarcasError(f"{path}: cannot write the result ({exc.strerror})") from None
    return path


def parse_metadata(items) -> dict:
    """--metadata KEY=VALUE items as vLLM reads them: split at the first '=', both sides stripped."""
    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep:
            raise VarcasError(f"--metadata: expected KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def parse_percentile_metrics(text: str) -> tuple:
    """--percentile-metrics, comma-separated; an unknown name is an error (vLLM ignores it)."""
    names = tuple(n.strip() for n in text.split(","))
    unknown = [n for n in names if n not in PERCENTILE_METRICS]
    if unknown:
        raise VarcasError(f"--percentile-metrics: unknown {', '.join(map(repr, unknown))} "
                          f"(known: {','.join(PERCENTILE_METRICS)})")
    return names


def _setup(run: Run, label: str | None) -> dict:
    """The keys that describe the run, in vLLM's order (metadata goes after num_prompts)."""
    manifest = run.manifest
    config, target = manifest.get("config") or {}, manifest.get("target") or {}
    backend = config.get("backend") or ("openai-chat" if config.get("api") == "chat" else "openai")
    rps = config.get("rps")
    head = {
        "date": _local_time(manifest).strftime("%Y%m%d-%H%M%S"),
        "endpoint_type": backend,
        "backend": backend,
        "label": label,
        "model_id": target.get("model"),
        "tokenizer_id": config.get("tokenizer") or target.get("model"),
        "num_prompts": (manifest.get("counts") or {}).get("scheduled", run.n),
        "request_rate": float(rps) if isinstance(rps, (int, float)) and rps < math.inf else "inf",
        "burstiness": config.get("burstiness", 1.0),
        "max_concurrency": config.get("max_concurrency"),
    }
    if config.get("ramp_up_strategy"):
        head.update({key: _whole(config[key]) for key in RAMP_KEYS})
    return head


def _whole(value):
    """A number as vLLM's int flags hold it when it is whole (2.0 -> 2)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _local_time(manifest: dict) -> datetime:
    """When the run ended (else started), in local time, as vLLM's datetime.now() at its end."""
    stamp = manifest.get("ended_at") or manifest.get("started_at")
    if isinstance(stamp, str):
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(stamp).astimezone()
    return datetime.now()


def _per_request(run: Run, rm: RequestMetrics) -> dict:
    """vLLM's per-request lists, in request order."""
    order = np.argsort(run.request_id, kind="stable")
    gap_offsets, gaps = kernels.itl_gaps(run.token_offsets, run.token_ns, rm.measured)
    gaps_s = gaps / NS_PER_S
    itls = [gaps_s[gap_offsets[i]:gap_offsets[i + 1]].tolist() for i in order]
    start = np.where(rm.sent, run.sent_ns, run.scheduled_ns)
    return {
        "input_lens": rm.input_tokens[order].tolist(),
        "output_lens": np.where(rm.ok, rm.output_tokens, 0)[order].tolist(),
        "ttfts": (rm.ttft_ns[order] / NS_PER_S).tolist(),
        "itls": itls,
        "latencies": (rm.e2el_ns[order] / NS_PER_S).tolist(),
        "start_times": (start[order] / NS_PER_S).tolist(),
        "queue_times": (run.slot_wait_ns[order] / NS_PER_S).tolist(),
        "generated_texts": [None] * run.n,
        "errors": [_error_text(run, i) for i in order],
    }


def _error_text(run: Run, i: int) -> str:
    code = run.error[i]
    if code == NO_ERROR:
        return ""
    kind = run.error_names[code]
    return f"{kind} {run.http_status[i]}" if kind == "http" else kind


def _per_second_peaks(run: Run, rm: RequestMetrics) -> tuple[float, int]:
    """vLLM's max_output_tokens_per_s and max_concurrent_requests: successful requests' token
    times, and the seconds from their send to their last token, in 1-second buckets counted
    from the first successful send."""
    ok = rm.measured
    if not ok.any():
        return 0.0, 0
    t0 = int(run.sent_ns[ok].min())
    last = (run.sent_ns + rm.e2el_ns)[ok]
    nbins = math.ceil((int(last.max()) - t0) / NS_PER_S) + 1
    tokens = kernels.bin_counts(run.token_offsets, run.token_ns, ok, t0, NS_PER_S, nbins)
    first_bin, last_bin = (run.sent_ns[ok] - t0) // NS_PER_S, (last - t0) // NS_PER_S
    active = np.cumsum(np.bincount(first_bin, minlength=nbins + 1) - np.bincount(last_bin + 1, minlength=nbins + 1))
    return float(tokens.max()), int(active.max())


def _rps_change_events(run: Run, head: dict) -> list:
    """vLLM's record of a ramp-up: each whole rate reached, with the local time of the first
    request sent at it (planned send time; the first entry at schedule time 0)."""
    n = run.manifest["config"]["num_requests"]  # what the ramp spans
    levels = np.floor(ramp_rates(head["ramp_up_strategy"], head["ramp_up_start_rps"], head["ramp_up_end_rps"], n))
    before = np.maximum.accumulate(np.concatenate(([int(head["ramp_up_start_rps"])], levels))).astype(np.int64)
    anchor = run.manifest.get("clock_anchor") or {}
    unix_minus_mono = anchor.get("unix_ns", 0) - anchor.get("monotonic_ns", 0)

    def stamp(ns: int) -> str:
        return datetime.fromtimestamp((int(ns) + unix_minus_mono) / NS_PER_S).isoformat()

    planned = np.full(n, -1, np.int64)
    inside = run.request_id < n
    planned[run.request_id[inside]] = run.scheduled_ns[inside]
    events = [{"rps": int(before[0]), "timestamp": stamp(run.start_ns)}]
    for i in np.flatnonzero(levels > before[:-1]):
        if planned[i] < 0:
            break  # the run ended before this request
        events += [{"rps": v, "timestamp": stamp(planned[i])} for v in range(before[i] + 1, int(levels[i]) + 1)]
    return events


def _statistics(run: Run, summary: Summary, chosen, head: dict) -> dict:
    """mean/median/std/pN keys of the chosen metrics, in vLLM's order."""
    rm, percents = summary.requests, summary.percentiles
    dists = {name: summary.whole.latency.get(name) for name in ("ttft", "tpot", "itl", "e2el")}
    if head["max_concurrency"] is not None:
        computed = sorted({50.0, *percents})
        queue_ns = run.slot_wait_ns[rm.measured]
        dists["client_queue_time"] = distribution(queue_ns, computed)
        if head["request_rate"] != "inf":
            dists["e2el_including_client_queue"] = distribution(rm.e2el_ns[rm.measured] + queue_ns, computed)
    out = {}
    for name in PERCENTILE_METRICS:
        if name in chosen and name in dists:
            d = dists[name]
            out[f"mean_{name}_ms"] = d.mean if d else 0.0
            out[f"median_{name}_ms"] = d.percentiles[50] if d else 0.0
            out[f"std_{name}_ms"] = d.std if d else 0.0
            for p in percents:
                out[f"p{percent_word(p)}_{name}_ms"] = d.percentiles[p] if d else 0.0
    return out
