"""vLLM's result JSON of a hand-built run: every key against vLLM's own formulas
(vllm/benchmarks/serve.py, calculate_metrics and benchmark), worked out here with numpy over
per-request lists in seconds, as vLLM keeps them."""
import json
import math
from datetime import datetime

import numpy as np
import pytest

from varcas.analyze import load_run, summarize
from varcas.analyze.vllm_result import (
    DETAILED,
    parse_metadata,
    parse_percentile_metrics,
    result_filename,
    vllm_result,
    write_result,
)
from varcas.errors import VarcasError

from . import synth
from .synth import MS, START_NS

S = 1e9
ENDED_AT = "2026-02-01T10:20:30.123456+00:00"
# request_id: (scheduled ms, sent ms, slot wait ms, content events in ms); None: failed (timeout)
REQUESTS = {
    0: (0, 1, 0, [101, 111, 121]),
    1: (1000, 1002, 0, [1202, 1232]),
    2: (2000, 2000, 0, [2300]),  # one token: no TPOT
    3: (3000, 3009, 4, [3405, 3415, 3435, 3465, 3466]),
    4: (4000, 4000, 0, None),  # timeout, ends at 14 s
    5: (4500, 4503, 2, [4600, 5700, 5710]),
}
ORDER = [3, 0, 5, 1, 4, 2]  # rows as a recorder writes them: in the order requests finished


def hand_columns() -> dict:
    events = [REQUESTS[i][3] or [] for i in ORDER]
    offsets = np.concatenate(([0], np.cumsum([len(e) for e in events]))).astype(np.int64)
    token_ns = START_NS + np.array([t for e in events for t in e], np.int64) * MS
    scheduled = START_NS + np.array([REQUESTS[i][0] for i in ORDER], np.int64) * MS
    sent = START_NS + np.array([REQUESTS[i][1] for i in ORDER], np.int64) * MS
    first = np.array([START_NS + e[0] * MS if e else START_NS for e in events], np.int64)
    cols = synth.columns(scheduled, sent, first, offsets, token_ns, input_tokens=[10 * (i + 1) for i in ORDER])
    cols["request_id"] = np.array(ORDER, np.int64)
    cols["slot_wait_ns"] = np.array([REQUESTS[i][2] for i in ORDER], np.int64) * MS
    failed = ORDER.index(4)
    cols["error"][failed] = "timeout"
    cols["http_status"][failed] = 0
    cols["first_token_ns"][failed] = synth.NULL
    cols["output_tokens"][failed] = synth.NULL
    cols["finish_reason"][failed] = None
    cols["end_ns"][failed] = START_NS + 14_000 * MS
    return cols


def config(**changes) -> dict:
    return {"rps": 4.0, "arrival": "poisson", "burstiness": 1.0, "num_requests": 6, "max_concurrency": 2,
            "api": "completions", "backend": "vllm", "tokenizer": "/models/tiny", "seed": 0, **changes}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    cols = hand_columns()
    path = synth.write_run(tmp_path_factory.mktemp("vllm") / "run", cols, config=config(), ended_at=ENDED_AT,
                           target={"url": "http://127.0.0.1:8000", "model": "org/tiny", "kind": "server"})
    return load_run(path)


def vllm_oracle(percentiles, goodput=None) -> dict:
    """What vLLM's calculate_metrics and benchmark() compute from these requests."""
    ids = sorted(REQUESTS)
    ok = [REQUESTS[i][3] is not None for i in ids]
    start = [(REQUESTS[i][1]) / 1e3 for i in ids]  # seconds; only differences and sums matter
    ttft = [(REQUESTS[i][3][0] - REQUESTS[i][1]) / 1e3 if ok[k] else 0.0 for k, i in enumerate(ids)]
    latency = [(REQUESTS[i][3][-1] - REQUESTS[i][1]) / 1e3 if ok[k] else 0.0 for k, i in enumerate(ids)]
    itl = [list(np.diff(REQUESTS[i][3]) / 1e3) if ok[k] else [] for k, i in enumerate(ids)]
    out_len = [len(REQUESTS[i][3]) if ok[k] else 0 for k, i in enumerate(ids)]
    in_len = [10 * (i + 1) for i in ids]
    queue = [REQUESTS[i][2] / 1e3 for i in ids]
    dur = 14.0
    ttfts = [t for t, g in zip(ttft, ok) if g]
    e2els = [t for t, g in zip(latency, ok) if g]
    tpots = [(e - t) / (n - 1) for t, e, n, g in zip(ttft, latency, out_len, ok) if g and n > 1]
    itls = [x for row, g in zip(itl, ok) if g for x in row]
    queues = [q for q, g in zip(queue, ok) if g]
    stats = {}
    for name, values in (("ttft", ttfts), ("tpot", tpots), ("itl", itls), ("e2el", e2els),
                         ("client_queue_time", queues),
                         ("e2el_including_client_queue", [e + q for e, q in zip(e2els, queues)])):
        stats[f"mean_{name}_ms"] = np.mean(values or 0) * 1000
        stats[f"median_{name}_ms"] = np.median(values or 0) * 1000
        stats[f"std_{name}_ms"] = np.std(values or 0) * 1000
        for p in percentiles:
            word = str(int(p)) if int(p) == p else str(p)
            stats[f"p{word}_{name}_ms"] = np.percentile(values or 0, p) * 1000
    good = None
    if goodput:
        all_tpot = [(e - t) / (n - 1) if n > 1 else 0.0 for t, e, n, g in zip(ttft, latency, out_len, ok) if g]
        good = sum(t <= goodput["ttft"] / 1000 and p <= goodput["tpot"] / 1000
                   for t, p in zip(ttfts, all_tpot)) / dur
    # vLLM's per-second peaks: token times and [start, end] seconds from the first successful start
    t0 = min(s for s, g in zip(start, ok) if g)
    n_bins = int(np.ceil(max(s + e for s, e, g in zip(start, latency, ok) if g) - t0)) + 1
    tokens, active = np.zeros(n_bins), np.zeros(n_bins)
    for i, k in enumerate(ids):
        if ok[i]:
            for t in REQUESTS[k][3]:
                tokens[int(t / 1e3 - t0)] += 1
            active[int(start[i] - t0):int(start[i] + latency[i] - t0) + 1] += 1
    return {
        "completed": sum(ok), "failed": len(ok) - sum(ok), "duration": dur,
        "total_input_tokens": sum(n for n, g in zip(in_len, ok) if g), "total_output_tokens": sum(out_len),
        "request_throughput": sum(ok) / dur, "output_throughput": sum(out_len) / dur,
        "total_token_throughput": (sum(n for n, g in zip(in_len, ok) if g) + sum(out_len)) / dur,
        "request_goodput": good, "input_lens": in_len, "output_lens": out_len, "ttfts": ttft, "itls": itl,
        "latencies": latency, "queue_times": queue, "errors": ["" if g else "timeout" for g in ok],
        "max_output_tokens_per_s": float(tokens.max()), "max_concurrent_requests": int(active.max()),
        "rtfx": 0.0, **stats,
    }


def test_every_key_is_vllms_formula(run):
    percentiles = (25, 50, 99, 99.9)
    summary = summarize(run, percentiles=percentiles, goodput={"ttft": 300, "tpot": 15})
    got = vllm_result(run, summary, detailed=True, percentile_metrics=parse_percentile_metrics(
        "ttft,tpot,itl,e2el,client_queue_time,e2el_including_client_queue"))
    want = vllm_oracle(percentiles, goodput={"ttft": 300, "tpot": 15})
    assert got["request_goodput"] == pytest.approx(2 / 14)  # requests 0 (tpot 10) and 2 (one token: tpot 0)
    assert set(want) <= set(got)
    for key, value in want.items():
        if key == "itls":
            assert [np.allclose(a, b, rtol=1e-12, atol=0) and len(a) == len(b) for a, b in zip(got[key], value)] \
                == [True] * 6
        elif key == "errors":
            assert got[key] == value
        else:
            assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key
        assert type(got[key]) is type(value) or isinstance(value, np.floating), key
    start_s = [(START_NS + REQUESTS[i][1] * MS) / S for i in sorted(REQUESTS)]
    assert got["start_times"] == start_s  # the monotonic clock in seconds: vLLM's perf_counter
    assert got["generated_texts"] == [None] * 6  # varcas keeps no text
    # by hand: request 3's five tokens in second 3; requests 1 and 2 both active in second 1
    assert (got["max_output_tokens_per_s"], got["max_concurrent_requests"]) == (5.0, 2)


def test_the_setup_keys(run):
    got = vllm_result(run, summarize(run), metadata={"version": "0.3.3", "backend": "mine", "request_rate": "x"},
                      label="exp")
    date = datetime.fromisoformat(ENDED_AT).astimezone().strftime("%Y%m%d-%H%M%S")
    head = ["date", "endpoint_type", "backend", "label", "model_id", "tokenizer_id", "num_prompts", "version",
            "request_rate", "burstiness", "max_concurrency", "duration"]
    assert list(got)[:len(head)] == head  # vLLM's order: metadata after num_prompts, then the traffic
    assert {k: got[k] for k in head[:-1]} == {
        "date": date, "endpoint_type": "vllm", "backend": "mine", "label": "exp", "model_id": "org/tiny",
        "tokenizer_id": "/models/tiny", "num_prompts": 6, "version": "0.3.3", "request_rate": 4.0,
        "burstiness": 1.0, "max_concurrency": 2}  # a metadata key before num_prompts wins, after it loses
    assert got["request_goodput"] is None


def test_only_save_detailed_adds_the_per_request_lists(run):
    summary = summarize(run)
    plain, detailed = vllm_result(run, summary), vllm_result(run, summary, detailed=True)
    assert set(detailed) - set(plain) == set(DETAILED)
    assert {"latencies", "queue_times"} <= set(plain)  # vLLM keeps these two without --save-detailed


def test_the_default_metrics_and_percentiles(run):
    got = vllm_result(run, summarize(run, percentiles=(99,)))
    stat_keys = {k for k in got if k.endswith("_ms")}
    metrics = ("ttft", "tpot", "itl", "e2el")  # vLLM's ttft,tpot,itl and e2el
    assert stat_keys == {f"{s}_{m}_ms" for s in ("mean", "median", "std", "p99") for m in metrics}
    json.dumps(got, allow_nan=False)  # plain JSON


def test_empty_metrics_are_zero_as_in_vllm(tmp_path):
    cols = synth.fail(hand_columns(), np.arange(6), "connect")
    run = load_run(synth.write_run(tmp_path / "run", cols, config=config(max_concurrency=None)))
    got = vllm_result(run, summarize(run))
    assert got["mean_ttft_ms"] == got["p99_itl_ms"] == got["std_e2el_ms"] == 0.0
    assert (got["completed"], got["max_output_tokens_per_s"], got["max_concurrent_requests"]) == (0, 0.0, 0)
    no_cap = vllm_result(run, summarize(run), percentile_metrics=("client_queue_time",))
    assert "mean_client_queue_time_ms" not in no_cap  # vLLM has it only under --max-concurrency


def test_an_infinite_rate_and_a_ramp(tmp_path):
    cols = hand_columns()
    run = load_run(synth.write_run(tmp_path / "inf", cols, config=config(rps=math.inf)))
    got = vllm_result(run, summarize(run), percentile_metrics=("e2el_including_client_queue", "client_queue_time"))
    assert got["request_rate"] == "inf" and "mean_e2el_including_client_queue_ms" not in got
    assert "mean_client_queue_time_ms" in got
    assert result_filename(run).startswith("vllm-infqps-concurrency2-synthetic-")
    ramp = config(rps=None, ramp_up_strategy="linear", ramp_up_start_rps=1.0, ramp_up_end_rps=3.5)
    run = load_run(synth.write_run(tmp_path / "ramp", cols, config=ramp))
    got = vllm_result(run, summarize(run))
    assert (got["request_rate"], got["ramp_up_strategy"], got["ramp_up_start_rps"], got["ramp_up_end_rps"]) == \
        ("inf", "linear", 1, 3.5)
    # rates 1, 1.5, 2, 2.5, 3, 3.5: rps 2 first reached at request 2, 3 at request 4
    anchor = synth.manifest(cols)["clock_anchor"]

    def stamp(ms):
        return datetime.fromtimestamp((anchor["unix_ns"] + ms * MS) / S).isoformat()

    assert got["rps_change_events"] == [{"rps": 1, "timestamp": stamp(0)}, {"rps": 2, "timestamp": stamp(2000)},
                                        {"rps": 3, "timestamp": stamp(4000)}]
    name = result_filename(run, label="lab")
    assert name.startswith("lab-ramp-up-linear-1qps-3.5qps-concurrency2-synthetic-") and name.endswith(".json")


def test_write_and_parse(tmp_path, run):
    path = write_result({"a": 1}, tmp_path / "deep" / "r.json")
    assert json.loads(path.read_text()) == {"a": 1} and "\n" not in path.read_text()
    assert parse_metadata(["a=1", " b = x=y "]) == {"a": "1", "b": "x=y"}
    with pytest.raises(VarcasError, match="KEY=VALUE"):
        parse_metadata(["novalue"])
    with pytest.raises(VarcasError, match="unknown 'ttfx'"):
        parse_percentile_metrics("ttft,ttfx")
