"""compare(entries, digests): the sweep's table per workload, its Pareto front and the
recommendation per use case.

Every figure (catalog.COMPARED: the metric table's compared ones) comes from a run's steady
window (the whole run where none was found, and the row says so) and carries the run's
saturation verdict: an overloaded configuration's latencies describe a growing queue, so it is
shown but never recommended, and never sits on the Pareto front. Changes are relative to the
baseline configuration (the first of the grid unless told otherwise). Use cases, among the
configurations that reached a steady state and were not overloaded (a recommendation never
comes from a run without a steady state):
  interactive   best output throughput with TTFT p99 and TPOT p99 within the SLO
  balanced      best throughput whose TTFT p99 and TPOT p99 are each within BALANCED_SLACK x
                the lowest of any configuration
  throughput    best output throughput, whatever the latency
  cost          most output tokens per GPU-second (GPUs per server: tensor_parallel_size x
                pipeline_parallel_size among the params, else 1)
When no configuration kept up, no use case has an answer; the reason says, with the numbers, who
was overloaded (and what each finished: a saturated server's throughput is its capacity without
SLOs) and whose runs were too short (and the --duration they need), and to compare at sustained
rates (varcas pipeline's capacity step, or varcas sweep-rate).
Throughputs within TIE of each other are a tie (an open-loop run at a rate every configuration
can serve measures the offered load, not the server): ties go to the lower TTFT p99, and the
reason says that the load did not separate them.
"""
from __future__ import annotations

import math

from ..analyze.catalog import COMPARED
from .digest import Digest

DEFAULT_SLO_MS = {"ttft": 1000.0, "tpot": 100.0}
BALANCED_SLACK = 2.0
TIE = 0.02
USE_CASES = ("interactive", "balanced", "throughput", "cost")


def metrics_of(digest: Digest) -> dict:
    """The compared figures (catalog.COMPARED) of one run, from its steady window (else the whole run)."""
    block = digest.summary["steady"] if digest.scope == "steady" else digest.summary
    return {f.key: block.get(f.summary_key) for f in COMPARED}


def gpus_of(params: dict) -> int:
    """GPUs one server uses, from its tensor/pipeline parallel params (1 when absent)."""
    n = 1
    for key in ("tensor_parallel_size", "pipeline_parallel_size"):
        try:
            n *= max(1, int(params.get(key, 1)))
        except ValueError:
            pass
    return n


def server_flags(params: dict) -> str:
    """A configuration as the vLLM flags that set it: max_num_seqs=8 -> '--max-num-seqs 8'
    (true/false params as --flag / --no-flag, vLLM's BooleanOptionalAction: off must be said
    where the default is on, as chunked prefill is)."""
    words = []
    for name, value in params.items():
        flag = "--" + name.replace("_", "-")
        words += [flag] if value == "true" else ["--no-" + flag[2:]] if value == "false" else [flag, value]
    return " ".join(words)


def _change(value, base):
    if value is None or base is None or base == 0:
        return None
    return value / base - 1.0


def workload_rows(entries: list[dict], digests: dict, workload: str, baseline: str | None) -> list[dict]:
    """One row per configuration: status, verdict, figures and changes against the baseline (None: no
    baseline, every change None)."""
    rows = []
    for e in entries:
        d = digests.get((e["id"], workload))
        run = e.get("runs", {}).get(workload) or (d and d.path)  # where the run is now
        row = {"config": e["id"], "params": e["params"], "status": e["status"],
               "reason": (e.get("reasons") or {}).get(workload) or e.get("reason"),
               "run": str(run) if d else None}
        if d is not None:
            s = d.summary
            m = metrics_of(d)
            gpus = gpus_of(e["params"])
            row.update(scope=d.scope, overloaded=s["verdict"]["overloaded"], steady=s["verdict"]["steady_state"],
                       needed_duration_s=s["verdict"].get("needed_duration_s"),
                       verdict=s["verdict"]["text"], warnings=s["warnings"], metrics=m, gpus=gpus,
                       tokens_per_gpu_s=None if m["output_throughput"] is None else m["output_throughput"] / gpus,
                       offered_rps=d.offered_rps, mean_in_flight=d.mean_in_flight,
                       server_running=((s.get("server") or {}).get("running") or {}).get("mean"),
                       mean_input_tokens=d.mean_input_tokens, mean_output_tokens=d.mean_output_tokens)
        rows.append(row)
    base = next((r for r in rows if r["config"] == baseline and "metrics" in r), None)
    for r in rows:
        if "metrics" in r:
            r["change"] = {f.key: _change(r["metrics"][f.key], base["metrics"][f.key]) if base else None
                           for f in COMPARED}
    return rows


def trusted(row: dict) -> bool:
    """Measured, in a steady state and not overloaded: its latencies describe the server, not a queue."""
    return "metrics" in row and row["steady"] and not row["overloaded"]


def _usable(rows: list[dict]) -> list[dict]:
    return [r for r in rows if trusted(r) and r["metrics"]["output_throughput"] and r["metrics"]["ttft_p99"] is not None]


def pareto(rows: list[dict]) -> list[str]:
    """Configurations (not overloaded) that no other beats on throughput, TTFT p99 and TPOT p99 at once."""
    pts = [(r["config"], r["metrics"]["output_throughput"], r["metrics"]["ttft_p99"],
            r["metrics"]["tpot_p99"] if r["metrics"]["tpot_p99"] is not None else math.inf) for r in _usable(rows)]

    def dominates(a, b) -> bool:
        no_worse = a[1] >= b[1] and a[2] <= b[2] and a[3] <= b[3]
        return no_worse and (a[1] > b[1] or a[2] < b[2] or a[3] < b[3])

    return [p[0] for p in pts if not any(dominates(q, p) for q in pts if q is not p)]


def _throughput(row: dict) -> float:
    return row["metrics"]["output_throughput"]


def _per_gpu(row: dict) -> float:
    return row["tokens_per_gpu_s"]


def _best(rows: list[dict], value, by_latency: bool = True) -> tuple[dict, bool]:
    """The row with the most value(row), ties (within TIE) to the lower TTFT p99, and whether it
    was a tie; without by_latency (latencies that describe a queue) simply the most."""
    if not by_latency:
        return max(rows, key=value), False
    top = max(map(value, rows))
    tied = [r for r in rows if value(r) >= top * (1 - TIE)]
    ttft = [r["metrics"]["ttft_p99"] for r in tied]
    return min(zip(tied, ttft), key=lambda p: (p[1] is None, p[1] or 0.0))[0], len(tied) > 1


def _fmt(x: float, unit: str) -> str:
    return f"{x:,.0f} {unit}" if abs(x) >= 100 else f"{x:.3g} {unit}"


def _output_at(row: dict) -> str:
    """'363 tok/s at 1.83 req/s offered': a throughput with the load it was measured under."""
    rate = f" at {_fmt(row['offered_rps'], 'req/s')} offered" if row.get("offered_rps") else ""
    return _fmt(_throughput(row), "tok/s") + rate


TIE_NOTE = " (configurations within 2% served the same offered load; the tie went to the lower TTFT p99)"


def _latency_picks(usable: list[dict], slo_ms: dict, why_none: str) -> list[dict]:
    """interactive and balanced: only configurations whose latencies describe the server."""
    if not usable:
        return [{"use_case": u, "config": None, "reason": why_none} for u in ("interactive", "balanced")]
    ttft_slo, tpot_slo = slo_ms.get("ttft", math.inf), slo_ms.get("tpot", math.inf)
    within = [r for r in usable if r["metrics"]["ttft_p99"] <= ttft_slo and (r["metrics"]["tpot_p99"] or 0.0) <= tpot_slo]
    if within:
        r, tie = _best(within, _throughput)
        interactive = {"use_case": "interactive", "config": r["config"], "reason":
                       f"highest output throughput ({_output_at(r)}) with TTFT p99 "
                       f"{_fmt(r['metrics']['ttft_p99'], 'ms')} and TPOT p99 {_fmt(r['metrics']['tpot_p99'] or 0, 'ms')} "
                       f"within the SLO (TTFT <= {ttft_slo:g} ms, TPOT <= {tpot_slo:g} ms)" + (TIE_NOTE if tie else "")}
    else:
        fast = min(usable, key=lambda r: r["metrics"]["ttft_p99"])
        interactive = {"use_case": "interactive", "config": None, "reason":
                       f"no configuration kept TTFT p99 <= {ttft_slo:g} ms and TPOT p99 <= {tpot_slo:g} ms at this "
                       f"load; the lowest TTFT p99 was {_fmt(fast['metrics']['ttft_p99'], 'ms')} ({fast['config']}, "
                       f"TPOT p99 {_fmt(fast['metrics']['tpot_p99'] or 0.0, 'ms')})"}
    low_ttft = min(r["metrics"]["ttft_p99"] for r in usable)
    low_tpot = min(r["metrics"]["tpot_p99"] or 0.0 for r in usable)
    near = [r for r in usable if r["metrics"]["ttft_p99"] <= BALANCED_SLACK * low_ttft
            and (r["metrics"]["tpot_p99"] or 0.0) <= BALANCED_SLACK * max(low_tpot, 1e-9)]
    r, tie = _best(near, _throughput)
    balanced = {"use_case": "balanced", "config": r["config"], "reason":
                f"highest output throughput ({_output_at(r)}) among configurations whose TTFT p99 "
                f"and TPOT p99 stay within {BALANCED_SLACK:g}x the lowest seen ({_fmt(low_ttft, 'ms')}, "
                f"{_fmt(low_tpot, 'ms')})" + (TIE_NOTE if tie else "")}
    return [interactive, balanced]


def _throughput_picks(usable: list[dict], why_none: str, saturated: list[dict]) -> list[dict]:
    """throughput and cost: from the configurations that kept up. If none did there is no pick (a
    recommendation needs a steady state); the reason gives the most any saturated one finished,
    which is that configuration's capacity without SLOs."""
    if not usable:
        best = max(saturated, key=_throughput, default=None)
        most = (f"; the most finished while saturated was {best['config']}'s {_output_at(best)}, its capacity "
                "without SLOs" if best else "")
        return [{"use_case": u, "config": None, "reason": why_none + most} for u in ("throughput", "cost")]
    r, tie = _best(usable, _throughput)
    throughput = {"use_case": "throughput", "config": r["config"], "reason":
                  f"highest output throughput of the configurations that kept up with the load ({_output_at(r)}), "
                  f"at TTFT p99 {_fmt(r['metrics']['ttft_p99'], 'ms')}" + (TIE_NOTE if tie else "")}
    r, tie = _best(usable, _per_gpu)
    gpus = "one GPU" if r["gpus"] == 1 else f"{r['gpus']} GPUs"
    cost = {"use_case": "cost", "config": r["config"], "reason":
            f"most output tokens per GPU-second ({_fmt(_per_gpu(r), 'tok/s')} on {gpus})" + (TIE_NOTE if tie else "")}
    return [throughput, cost]


def _why_none(measured: list[dict]) -> str:
    """Why no configuration's latencies can be trusted, with the numbers: who was overloaded (and
    what it finished of the rate offered), whose runs were too short (and how long they must be)."""
    if not measured:
        return "no configuration produced a complete run"
    parts = []
    overloaded = [r for r in measured if r["overloaded"]]
    if overloaded:
        done = ", ".join(f"{r['config']} {_fmt(r['metrics']['request_throughput'] or 0.0, 'req/s')}" for r in overloaded)
        offered = max(r["offered_rps"] or 0.0 for r in overloaded)
        parts.append(f"overloaded at {_fmt(offered, 'req/s')} offered, finishing {done}: lower --rps, or find each "
                     "one's capacity with varcas sweep-rate (varcas pipeline does, with --capacity)")
    short = [r for r in measured if not r["overloaded"] and not r["steady"]]
    if short:
        needed = max((r.get("needed_duration_s") or 0.0 for r in short), default=0.0)
        parts.append(f"no steady state in runs this short ({', '.join(r['config'] for r in short)})"
                     + (f": rerun with --duration {needed:.0f} s or more (from their measured E2E latencies)"
                        if needed else ""))
    return "no configuration kept up with this load: " + "; ".join(parts)


def recommend(rows: list[dict], slo_ms: dict) -> list[dict]:
    """Per use case: a configuration (None where nothing qualifies), the server flags that set it,
    and the reason in one sentence."""
    usable = _usable(rows)
    measured = [r for r in rows if "metrics" in r and r["metrics"]["output_throughput"]]
    unfit = [r["config"] for r in measured if not trusted(r)]
    saturated = [r for r in measured if r["overloaded"]]
    why_none = _why_none(measured)
    out = _latency_picks(usable, slo_ms, why_none) + _throughput_picks(usable, why_none, saturated)
    flags = {r["config"]: server_flags(r["params"]) for r in rows}
    for rec in out:
        rec["flags"] = flags.get(rec["config"])
        if unfit and rec["config"] is not None and usable:
            rec["reason"] += f"; not considered (overloaded or no steady state where it ran): {', '.join(unfit)}"
    return out
