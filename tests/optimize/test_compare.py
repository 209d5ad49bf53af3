"""The comparison table, Pareto front and recommendations, on hand-made digests with known answers."""
import pytest
from rich.console import Console

from varcas.analyze.catalog import COMPARED
from varcas.optimize.render import print_comparison
from varcas.results import compare
from varcas.results.digest import Digest, Timeline


def fake_digest(tput, ttft99, tpot99, *, overloaded=False, steady=True, rps=1.0, needed=None,
                offered=None):
    block = {"output_throughput": tput, "request_throughput": rps, "request_goodput": None,
             "median_ttft_ms": ttft99 / 2, "p99_ttft_ms": ttft99, "median_tpot_ms": tpot99 / 2, "p99_tpot_ms": tpot99,
             "median_e2el_ms": 1000.0, "p99_e2el_ms": 2000.0}
    return Digest(key={}, run="w", path="/x", workload="w", scope="steady",
                  summary={"steady": block, "warnings": [],
                           "verdict": {"overloaded": overloaded, "steady_state": steady, "text": "t",
                                               "needed_duration_s": needed}},
                  offered_rps=offered or rps, mean_in_flight=4.0, mean_input_tokens=200.0, mean_output_tokens=100.0,
                  cdf_percents=(), cdf_ms={}, timeline=Timeline((), (), (), (), (), ()))


def rows_for(figures, params=None):
    entries = [{"id": cid, "params": (params or {}).get(cid, {"max_num_seqs": cid}), "status": "complete"}
               for cid in figures]
    digests = {(cid, "w"): fake_digest(*f[:3], **(f[3] if len(f) > 3 else {})) for cid, f in figures.items()}
    return compare.workload_rows(entries, digests, "w", next(iter(figures)))


def test_changes_are_relative_to_the_baseline():
    rows = rows_for({"1": (100.0, 400.0, 20.0), "8": (450.0, 200.0, 30.0)})
    assert rows[1]["change"]["output_throughput"] == pytest.approx(3.5)
    assert rows[1]["change"]["ttft_p99"] == pytest.approx(-0.5)
    assert rows[1]["change"]["tpot_p99"] == pytest.approx(0.5)
    assert rows[0]["change"]["output_throughput"] == 0.0


def test_pareto_front_excludes_dominated_and_overloaded_configurations():
    rows = rows_for({
        "a": (100.0, 100.0, 10.0),       # lowest latency: on the front
        "b": (200.0, 300.0, 20.0),       # more throughput: on the front
        "c": (150.0, 400.0, 25.0),       # worse than b on all three: dominated
        "d": (900.0, 50.0, 5.0, {"overloaded": True}),  # would dominate all, but overloaded
        "e": (800.0, 60.0, 6.0, {"steady": False}),     # and this one reached no steady state
    })
    assert compare.pareto(rows) == ["a", "b"]


def test_recommendations_per_use_case():
    rows = rows_for({
        "1": (100.0, 200.0, 15.0),
        "4": (300.0, 600.0, 25.0),
        "16": (500.0, 1500.0, 40.0),     # best throughput, TTFT p99 over the 1000 ms SLO
        "32": (800.0, 100.0, 5.0, {"overloaded": True}),
    })
    recs = {r["use_case"]: r for r in compare.recommend(rows, {"ttft": 1000.0, "tpot": 100.0})}
    assert recs["interactive"]["config"] == "4"       # best throughput within the SLO
    assert recs["balanced"]["config"] == "1"          # only 1 is within 2x the lowest TTFT p99 (200 ms)... and TPOT
    assert recs["throughput"]["config"] == "16"
    assert recs["cost"]["config"] == "16"
    assert "no steady state where it ran): 32" in recs["throughput"]["reason"]
    assert "TTFT <= 1000 ms" in recs["interactive"]["reason"]


def test_throughput_ties_go_to_lower_latency_and_say_so():
    rows = rows_for({"1": (100.0, 900.0, 15.0), "8": (101.0, 300.0, 20.0), "16": (100.5, 250.0, 30.0)})
    recs = {r["use_case"]: r for r in compare.recommend(rows, {"ttft": 1000.0})}
    assert recs["throughput"]["config"] == "16"
    assert "the same offered load" in recs["throughput"]["reason"]


def test_cost_divides_by_the_gpus_a_server_uses():
    rows = rows_for({"tp1": (300.0, 100.0, 10.0), "tp2": (500.0, 100.0, 10.0)},
                    params={"tp1": {"tensor_parallel_size": "1"}, "tp2": {"tensor_parallel_size": "2"}})
    recs = {r["use_case"]: r for r in compare.recommend(rows, {})}
    assert recs["throughput"]["config"] == "tp2"
    assert recs["cost"]["config"] == "tp1"            # 300 tok/s per GPU against 250
    assert "250" not in recs["cost"]["reason"] and "300 tok/s" in recs["cost"]["reason"]


def test_when_nothing_kept_up_latency_use_cases_have_no_answer_and_throughput_is_capacity():
    rows = rows_for({"1": (50.0, 9e4, 15.0, {"overloaded": True, "rps": 0.4, "offered": 20.0}),
                     "8": (90.0, 5e4, 20.0, {"steady": False, "needed": 130.0}),
                     "16": (89.0, 4e4, 25.0, {"overloaded": True, "rps": 0.8, "offered": 20.0})})
    recs = {r["use_case"]: r for r in compare.recommend(rows, {})}
    assert recs["interactive"]["config"] is None and recs["balanced"]["config"] is None
    why = recs["interactive"]["reason"]
    assert "overloaded at 20 req/s offered, finishing 1 0.4 req/s, 16 0.8 req/s" in why and "sweep-rate" in why
    assert "no steady state in runs this short (8): rerun with --duration 130 s or more" in why
    # never from a run without a steady state: no pick, but the most a saturated one finished (8's run
    # had more throughput, but it was too short to be anything's capacity)
    assert recs["throughput"]["config"] is None and recs["cost"]["config"] is None
    assert recs["throughput"]["reason"].startswith(why)
    assert "the most finished while saturated was 16's 89 tok/s at 20 req/s offered" in recs["cost"]["reason"]


def test_failed_configuration_has_a_row_without_figures():
    entries = [{"id": "1", "params": {}, "status": "complete"},
               {"id": "8", "params": {}, "status": "failed", "reason": "the server exited with status 1"}]
    rows = compare.workload_rows(entries, {("1", "w"): fake_digest(100.0, 100.0, 10.0)}, "w", "1")
    assert "metrics" not in rows[1] and rows[1]["reason"] == "the server exited with status 1"
    assert [r["config"] for r in compare.recommend(rows, {})] == ["1"] * 4


def test_recommendations_carry_the_server_flags_that_set_them():
    assert compare.server_flags({"max_num_seqs": "8", "enable_chunked_prefill": "true"}) == \
        "--max-num-seqs 8 --enable-chunked-prefill"
    assert compare.server_flags({"enable_chunked_prefill": "false"}) == "--no-enable-chunked-prefill"
    rows = rows_for({"1": (100.0, 200.0, 15.0), "8": (300.0, 400.0, 25.0)})
    recs = {r["use_case"]: r for r in compare.recommend(rows, {"ttft": 1000.0})}
    assert recs["throughput"]["flags"] == "--max-num-seqs 8"


def test_rows_and_the_terminal_comparison_carry_every_compared_figure_of_the_metric_table():
    rows = rows_for({"1": (100.0, 400.0, 20.0), "8": (450.0, 200.0, 30.0)})
    assert list(rows[1]["metrics"]) == list(rows[1]["change"]) == [f.key for f in COMPARED]
    assert rows[1]["metrics"]["e2el_p50"] == 1000.0 and rows[1]["metrics"]["tpot_p99"] == 30.0
    console = Console(record=True, width=200)
    print_comparison({"baseline": "1", "workloads": {"w": {"rows": rows, "pareto": compare.pareto(rows),
                                                           "recommendations": compare.recommend(rows, {})}}}, console)
    lines = console.export_text().splitlines()
    for f in COMPARED:
        assert any(line.lstrip("│ ").startswith(f.heading + " ") for line in lines), f.heading
