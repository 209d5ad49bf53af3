"""The report's sentences: trust warnings, key findings and the Pareto front, computed from the data.

Every claim here is a figure from a run's digest or the comparison, or is labelled as the
roofline model's prediction. An overloaded run's latency percentiles are never stated as a
result: a finding about such a run says it was overloaded and gives the rate it completed.
"""
from __future__ import annotations

from .load import Group, Report
from .tables import number, trusted


def run_name(group: Group, row: dict) -> str:
    """How the trust section names a row's run: its path relative to the report's directory."""
    return group.names.get(row["config"], row["config"])


def trust_warnings(report: Report) -> list[tuple[str, list[str]]]:
    """(run, lines) for every run whose verdict is not steady or that has warnings."""
    out = []
    for group in report.groups:
        for row in group.rows:
            if "metrics" not in row:
                continue
            lines = [] if trusted(row) else [row["verdict"]]
            if row["scope"] != "steady":
                lines.append("No steady window was found: the figures are of the whole run.")
            lines += row["warnings"]
            if lines:
                out.append((run_name(group, row), lines))
    return out


def pareto_line(group: Group) -> str:
    """The Pareto front in words, with the configurations left out and why."""
    out = [f"{r['config']} ({'overloaded' if r['overloaded'] else 'no steady state'})"
           for r in group.rows if "metrics" in r and not trusted(r)]
    text = ("Pareto front (output throughput vs TTFT p99 and TPOT p99, configurations that kept up): "
            + (", ".join(group.pareto) or "none"))
    return text + (f"; left out: {', '.join(out)}" if out else "")


def findings(report: Report) -> list[str]:
    """The executive summary: a few sentences, each from the data or labelled as a model prediction."""
    out = _static_findings(report.static) if report.static else []
    for group in report.groups:
        out += _sweep_findings(group) if group.sweep else [_load_finding(group, r) for r in group.rows]
        if group.roofline and group.roofline["points"]:
            out.append(_roofline_finding(group, group.roofline))
            out += _measured_finding(group, group.roofline)
    if report.failures:
        out.append(f"{len(report.failures)} step(s) or configuration(s) failed or were skipped; see the list "
                   "under the trust warnings.")
    return out


def _load_finding(group: Group, row: dict) -> str:
    name = run_name(group, row)
    if "metrics" not in row:
        return f"{name}: no complete run ({row['status']})."
    m = row["metrics"]
    rate = f"{number(m['request_throughput'])} req/s completed of {number(row['offered_rps'])} offered"
    if not trusted(row):
        what = "OVERLOADED" if row["overloaded"] else "no steady state"
        return (f"{name}: {what} ({rate}, {number(m['output_throughput'])} output tok/s); its latency "
                "percentiles are not a steady-state result.")
    return (f"{name}: {rate}, {number(m['output_throughput'])} output tok/s, TTFT p50/p99 "
            f"{number(m['ttft_p50'])}/{number(m['ttft_p99'])} ms, TPOT p50/p99 "
            f"{number(m['tpot_p50'])}/{number(m['tpot_p99'])} ms (steady window).")


def _sweep_findings(group: Group) -> list[str]:
    measured = [r for r in group.rows if "metrics" in r and r["metrics"]["output_throughput"] is not None]
    if not measured:
        return [f"{group.title}: no configuration produced a complete run."]
    out = []
    steady = [r for r in measured if trusted(r)]
    others = [f"{r['config']} ({'overloaded' if r['overloaded'] else 'no steady state'})"
              for r in measured if not trusted(r)]
    if steady:
        best = max(steady, key=lambda r: r["metrics"]["output_throughput"])
        text = (f"{group.title}: the highest output throughput of a configuration that kept up with the load "
                f"(steady state) was {best['config']}, {number(best['metrics']['output_throughput'])} tok/s")
        change = best["change"]["output_throughput"]
        if change is not None and best["config"] != group.baseline:
            base = next((r for r in measured if r["config"] == group.baseline), None)
            text += (f" ({change:+.0%} against {group.baseline}"
                     + (", which did not keep up: the change compares against a saturated or unsteady server)"
                        if base is not None and not trusted(base) else ")"))
        out.append(text + ".")
    else:
        out.append(f"{group.title}: no configuration reached a steady state at this rate; lower the rate, or find "
                   "each configuration's capacity with varcas sweep-rate.")
        out.append(_saturated_finding(group, measured))
    if others:
        out.append(f"{group.title}: not a steady state at the offered rate: {', '.join(others)}; their latency "
                   "percentiles are not steady-state figures.")
    return out


def _saturated_finding(group: Group, measured: list[dict]) -> str:
    """Every configuration saturated: their throughputs are capacities, so those compare (latencies do not)."""
    best = max(measured, key=lambda r: r["metrics"]["output_throughput"])
    text = (f"{group.title}: every configuration was saturated, so each one's output throughput is its capacity: "
            f"{best['config']} sustained the most, {number(best['metrics']['output_throughput'])} tok/s")
    base = next((r for r in measured if r["config"] == group.baseline), None)
    if base is not None and base is not best and base["metrics"]["output_throughput"]:
        ratio = best["metrics"]["output_throughput"] / base["metrics"]["output_throughput"]
        text += f", {ratio:.1f}x {group.baseline}'s {number(base['metrics']['output_throughput'])} tok/s"
    return text + "."


def _roofline_finding(group: Group, roof: dict) -> str:
    points = [p for p in roof["points"] if p["measured_fraction"] is not None]
    if not points:
        return f"{group.title}: no measured throughput to set against the roofline model."
    share = _span([(p["config"], p["measured_fraction"]) for p in points], "{:.0%}")
    return (f"{group.title}: measured output tok/s was {share} of the roofline model's decode-only prediction at "
            "the batch the run actually had in flight (measurement vs model prediction; below 100% counts prefill "
            "and idle time).")


def _measured_finding(group: Group, roof: dict) -> list[str]:
    """The measured decode steps against the model's prediction for the same steps (roof: the group's
    roofline explanation), and how much of the GPU's bandwidth and compute they used (results.measured)."""
    steps = [(p["config"], p["measured"]) for p in roof["points"] if p["measured"]]
    if not steps:
        return []
    sources = {x["work_source"] for _, x in steps}
    work = ("vLLM's estimated counters" if sources == {"vllm"} else "the roofline model" if sources == {"model"}
            else "vLLM's estimated counters where a run had them, else the roofline model")
    return [f"{group.title}: measured decode steps (ITL median) took "
            f"{_span([(c, x['step_ratio']) for c, x in steps], '{:.2f}x')} the roofline model's predicted step at "
            f"the batch each run reached, and moved "
            f"{_span([(c, x['bandwidth_fraction']) for c, x in steps], '{:.0%}')} of the GPU's peak bandwidth "
            f"and {_span([(c, x['compute_fraction']) for c, x in steps], '{:.1%}')} of its peak compute "
            f"(FLOPs and bytes counted by {work})."]


def _span(values: list[tuple[str, float]], fmt: str) -> str:
    """'12% (a)' or '12% (a) to 40% (b)': the lowest and highest of (configuration, value) pairs."""
    lo, hi = min(values, key=lambda v: v[1]), max(values, key=lambda v: v[1])
    text = f"{fmt.format(lo[1])} ({lo[0]})"
    return text if lo is hi else f"{text} to {fmt.format(hi[1])} ({hi[0]})"


def _static_findings(static: dict) -> list[str]:
    out = []
    decode = [p for p in static["phases"] if p["phase"] == "decode"]
    prefill = [p for p in static["phases"] if p["phase"] == "prefill"]
    for kind, phases in (("decode", decode), ("prefill", prefill)):
        if phases:
            p = phases[0]
            where = "context" if kind == "decode" else "prompt"
            out.append(f"Model prediction (static roofline): {kind} at batch {p['batch']}, {where} {p['length']} has "
                       f"arithmetic intensity {p['ai']:.1f} FLOP/byte against a ridge of {p['ridge']:.0f}: "
                       f"{p['bound']}-bound, {p['pct_of_peak']:.1f}% of peak.")
    for s in static.get("decode_sweeps") or []:
        turn = (f"turns compute-bound at batch {s['compute_bound_batch']}" if s["compute_bound_batch"]
                else f"stays memory-bound up to batch {s['batch'][-1]}")
        out.append(f"Model prediction: decode at context {s['context']} {turn}; the KV cache holds "
                   f"{s['max_sequences']} such sequences.")
    return out
