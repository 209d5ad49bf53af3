"""Tables and sentences from a hand-written sweep: exact cells, marks on what is not a steady
state, failures with their reason, flags as vLLM spells them, labelled roofline columns."""
from __future__ import annotations

from varcas.analyze.catalog import COMPARED
from varcas.report.findings import findings, pareto_line, trust_warnings
from varcas.report.markdown import table as markdown_table
from varcas.report.tables import (
    FLAG_NOTE,
    comparison_table,
    number,
    phase_table,
    recommendation_table,
    roofline_table,
)
from varcas.results.compare import server_flags

from .conftest import OVERLOADED_TEXT


def _row(table, label):
    return next(r for r in table.rows if r[0] == label)


def test_the_comparison_table_has_each_figure_with_its_change_and_marks_what_is_not_steady(synthetic_group):
    t = comparison_table(synthetic_group)
    assert t.title == "chat_medium: each configuration's steady window, change against max_num_seqs-1"
    assert t.headers == ["metric", "max_num_seqs-1 ⚠ overloaded", "max_num_seqs-4", "max_num_seqs-8",
                         "max_num_seqs-16 ✗ failed"]
    assert _row(t, "output throughput (tok/s)") == ["output throughput (tok/s)", "50", "150 (+200%)", "160 (+220%)",
                                                    "-"]
    assert _row(t, "TTFT p99 (ms)") == ["TTFT p99 (ms)", "90,000", "500 (-99%)", "800 (-99%)", "-"]
    assert _row(t, "TPOT p99 (ms)") == ["TPOT p99 (ms)", "20", "30 (+50%)", "40 (+100%)", "-"]
    assert _row(t, "offered load (req/s)") == ["offered load (req/s)", "0.8", "0.8", "0.8", "-"]
    assert _row(t, "window") == ["window", "10-110 s", "10-110 s", "10-110 s", "-"]
    assert _row(t, "verdict") == ["verdict", "OVERLOADED", "steady", "steady", "failed: boom"]
    assert t.flagged == [1, 4] and t.note == FLAG_NOTE


def test_the_markdown_table_is_a_pipe_table_with_numbers_right_aligned(synthetic_group):
    lines = markdown_table(comparison_table(synthetic_group)).splitlines()
    assert lines[0] == "**chat_medium: each configuration's steady window, change against max_num_seqs-1**"
    assert lines[2] == ("| metric | max_num_seqs-1 ⚠ overloaded | max_num_seqs-4 | max_num_seqs-8 "
                        "| max_num_seqs-16 ✗ failed |")
    assert lines[3] == "|:---|---:|---:|---:|---:|"
    assert lines[5] == "| request throughput (req/s) | 0.25 | 0.75 (+200%) | 0.8 (+220%) | - |"
    assert lines[7] == "| output throughput (tok/s) | 50 | 150 (+200%) | 160 (+220%) | - |"
    assert lines[-1] == f"_{FLAG_NOTE}_"


def test_a_pipe_in_a_cell_is_escaped(synthetic_group):
    synthetic_group.rows[3]["reason"] = "exit | 1"
    assert "| failed: exit \\| 1 |" in markdown_table(comparison_table(synthetic_group))


def test_flags_are_the_parameter_names_as_vllm_spells_them(synthetic_group):
    assert server_flags({"max_num_seqs": "16", "max_num_batched_tokens": "2048"}) == \
        "--max-num-seqs 16 --max-num-batched-tokens 2048"
    assert server_flags({}) == ""
    # a switch is a bare flag, in the report as in the terminal (they once differed)
    assert server_flags({"enable_chunked_prefill": "true", "max_num_seqs": "8"}) == \
        "--enable-chunked-prefill --max-num-seqs 8"
    row = synthetic_group.rows[2]
    row["params"] = {"enable_chunked_prefill": "true"}
    for rec in synthetic_group.recommendations:
        rec["config"] = row["config"]
    assert {r[2] for r in recommendation_table(synthetic_group).rows} == {"--enable-chunked-prefill"}


def test_recommendations_name_the_configuration_its_flags_and_why(synthetic_group):
    t = recommendation_table(synthetic_group)
    assert [r[:3] for r in t.rows] == [["interactive", "max_num_seqs-8", "--max-num-seqs 8"],
                                       ["balanced", "max_num_seqs-8", "--max-num-seqs 8"],
                                       ["throughput", "max_num_seqs-8", "--max-num-seqs 8"],
                                       ["cost", "max_num_seqs-8", "--max-num-seqs 8"]]
    assert t.rows[0][3] == synthetic_group.recommendations[0]["reason"] and t.left == 4


def test_the_roofline_table_labels_predictions_and_measurements(synthetic_group):
    t = roofline_table(synthetic_group)
    assert [h for h in t.headers if "(model)" in h] == ["decode AI, FLOP/byte (model)", "bound (model)",
                                                         "tok/s at max_num_seqs (model)", "tok/s at that batch (model)"]
    assert [h for h in t.headers if "(measured)" in h] == ["batch reached (measured)", "output tok/s (measured)"]
    points = synthetic_group.roofline["points"]
    assert [r[0] for r in t.rows] == ["max_num_seqs-1 ⚠ overloaded", "max_num_seqs-4", "max_num_seqs-8"]
    assert [r[1] for r in t.rows] == ["1", "4", "8"]
    assert [r[-1] for r in t.rows] == [f"{p['measured_fraction']:.0%}" for p in points]
    assert t.note.startswith("Model prediction: varcas's roofline model of llama-2-7b")


def test_no_roofline_table_without_an_explanation(synthetic_group):
    synthetic_group.roofline = None
    assert roofline_table(synthetic_group) is None


def test_trust_warnings_name_each_run_with_its_verdict_and_warnings(synthetic_report):
    assert trust_warnings(synthetic_report) == [("max_num_seqs-1/chat_medium", [OVERLOADED_TEXT]),
                                                ("max_num_seqs-8/chat_medium", ["too few samples"])]


def test_findings_come_from_steady_runs_and_say_what_did_not_keep_up(synthetic_report):
    found = findings(synthetic_report)
    points = sorted(synthetic_report.groups[0].roofline["points"], key=lambda p: p["measured_fraction"])
    low, high = points[0], points[-1]
    assert len(found) == 5
    assert found[0] == ("chat_medium: the highest output throughput of a configuration that kept up with the load "
                        "(steady state) was max_num_seqs-8, 160 tok/s (+220% against max_num_seqs-1, which did not "
                        "keep up: the change compares against a saturated or unsteady server).")
    assert found[1] == ("chat_medium: not a steady state at the offered rate: max_num_seqs-1 (overloaded); their "
                        "latency percentiles are not steady-state figures.")
    assert found[2].startswith(
        f"chat_medium: measured output tok/s was {low['measured_fraction']:.0%} ({low['config']}) to "
        f"{high['measured_fraction']:.0%} ({high['config']}) of the roofline model's decode-only prediction")
    steps = {p["config"]: p["measured"] for p in points}
    ratio = sorted((x["step_ratio"], c) for c, x in steps.items())
    assert found[3].startswith(f"chat_medium: measured decode steps (ITL median) took {ratio[0][0]:.2f}x ({ratio[0][1]}) "
                               f"to {ratio[-1][0]:.2f}x ({ratio[-1][1]}) the roofline model's predicted step at the "
                               "batch each run reached, and moved ")
    assert found[3].endswith("of its peak compute (FLOPs and bytes counted by the roofline model).")
    assert found[4] == "1 step(s) or configuration(s) failed or were skipped; see the list under the trust warnings."


def test_when_nothing_kept_up_only_capacities_are_compared(synthetic_report):
    rows = synthetic_report.groups[0].rows
    for row in rows[1:3]:
        row["overloaded"] = True
    best = max((r for r in rows if "metrics" in r), key=lambda r: r["metrics"]["output_throughput"])
    base = rows[0]
    ratio = best["metrics"]["output_throughput"] / base["metrics"]["output_throughput"]
    assert findings(synthetic_report)[:3] == [
        "chat_medium: no configuration reached a steady state at this rate; lower the rate, or find each "
        "configuration's capacity with varcas sweep-rate.",
        f"chat_medium: every configuration was saturated, so each one's output throughput is its capacity: "
        f"{best['config']} sustained the most, {number(best['metrics']['output_throughput'])} tok/s, "
        f"{ratio:.1f}x {base['config']}'s {number(base['metrics']['output_throughput'])} tok/s.",
        "chat_medium: not a steady state at the offered rate: max_num_seqs-1 (overloaded), max_num_seqs-4 "
        "(overloaded), max_num_seqs-8 (overloaded); their latency percentiles are not steady-state figures."]


def test_the_pareto_line_names_the_front_and_what_was_left_out(synthetic_group):
    assert pareto_line(synthetic_group) == (
        "Pareto front (output throughput vs TTFT p99 and TPOT p99, configurations that kept up): "
        "max_num_seqs-4, max_num_seqs-8; left out: max_num_seqs-1 (overloaded)")


def test_the_static_phase_table_is_labelled_a_prediction():
    static = {"phases": [{"phase": "decode", "batch": 1, "length": 512, "ai": 3.5, "attainable": 1.1e12,
                          "pct_of_peak": 1.7, "bound": "memory", "realistic_time_s": 0.01844,
                          "realistic_tokens_per_s": 54.2}]}
    t = phase_table(static)
    assert t.title == "Static roofline: phases (model prediction, not measured)"
    assert t.rows == [["decode", "1", "512", "3.5", "1.10", "1.7%", "memory", "18.44", "54.2"]]


def test_load_test_findings_give_latency_only_for_a_steady_run(synthetic_report):
    group = synthetic_report.groups[0]
    group.sweep, group.rows, group.roofline = False, group.rows[:2], None
    synthetic_report.failures = []
    assert findings(synthetic_report) == [
        "max_num_seqs-1/chat_medium: OVERLOADED (0.25 req/s completed of 0.8 offered, 50 output tok/s); its latency "
        "percentiles are not a steady-state result.",
        "max_num_seqs-4/chat_medium: 0.75 req/s completed of 0.8 offered, 150 output tok/s, TTFT p50/p99 250/500 ms, "
        "TPOT p50/p99 15/30 ms (steady window)."]


def test_static_findings_are_labelled_model_predictions(synthetic_report):
    phase = {"batch": 1, "ridge": 203.125, "bound": "memory", "pct_of_peak": 1.7, "ai": 3.5, "length": 512}
    synthetic_report.groups, synthetic_report.failures = [], []
    synthetic_report.static = {
        "phases": [{**phase, "phase": "prefill", "ai": 333.9, "length": 128, "bound": "compute", "pct_of_peak": 100.0},
                   {**phase, "phase": "decode"}],
        "decode_sweeps": [{"context": 512, "compute_bound_batch": None, "max_sequences": 43, "batch": [1, 2, 3]},
                          {"context": 64, "compute_bound_batch": 300, "max_sequences": 900, "batch": [1, 2, 3]}]}
    assert findings(synthetic_report) == [
        "Model prediction (static roofline): decode at batch 1, context 512 has arithmetic intensity 3.5 FLOP/byte "
        "against a ridge of 203: memory-bound, 1.7% of peak.",
        "Model prediction (static roofline): prefill at batch 1, prompt 128 has arithmetic intensity 333.9 FLOP/byte "
        "against a ridge of 203: compute-bound, 100.0% of peak.",
        "Model prediction: decode at context 512 stays memory-bound up to batch 3; the KV cache holds 43 such "
        "sequences.",
        "Model prediction: decode at context 64 turns compute-bound at batch 300; the KV cache holds 900 such "
        "sequences."]


def test_the_comparison_table_has_a_row_per_compared_figure_of_the_metric_table(synthetic_group):
    t = comparison_table(synthetic_group)
    assert [r[0] for r in t.rows[1:1 + len(COMPARED)]] == [f.heading for f in COMPARED]
