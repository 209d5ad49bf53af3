"""The digest: a typed object that round-trips exactly through digest.json, reuses summarize's
per-request figures, and is recomputed when the cache is stale or of another shape."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tests.analyze import synth
from varcas.analyze import kernels, load_run, summarize
from varcas.analyze.metrics import NS_PER_MS
from varcas.results import digest as D
from varcas.results.digest import Digest, ServerTimeline, Timeline


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A steady run of 300 requests: 80 ms to first token, 20 tokens 25 ms apart."""
    cols = synth.simulate(np.arange(300) / 10, prefill_ms=80, itl_ms=25, tokens=20)
    return synth.write_run(tmp_path_factory.mktemp("digest") / "run", cols)


def test_a_digest_round_trips_exactly_through_digest_json(run_dir):
    made = D.digest(run_dir)
    stored = json.loads((run_dir / D.DIGEST_FILE).read_text())
    assert stored == made.to_json()
    assert Digest.from_json(stored) == made == D.cached(run_dir)
    assert isinstance(made.timeline, Timeline) and made.key["version"] == D.DIGEST_VERSION
    assert list(made.cdf_ms) == list(D.CDF_METRICS) == ["ttft", "tpot", "itl", "e2el"]


def test_the_digest_holds_the_summary_and_the_window_cdfs(run_dir):
    d = D.digest(run_dir, cache=False)
    run = load_run(run_dir)
    s = summarize(run)
    assert d.scope == "steady" and d.summary == json.loads(json.dumps(s.to_dict()))
    assert d.cdf_ms["ttft"] == pytest.approx([80.0] * len(D.CDF_PERCENTS))
    t0, t1 = s.window.bounds_ns(run)
    chosen = s.requests.measured & (run.scheduled_ns >= t0) & (run.scheduled_ns < t1)
    want = kernels.percentiles(s.requests.e2el_ns[chosen], D.CDF_PERCENTS) / NS_PER_MS
    assert d.cdf_ms["e2el"] == tuple(want.tolist())
    assert d.timeline.in_flight == tuple(s.timeline.in_flight.tolist())
    assert (d.mean_input_tokens, d.mean_output_tokens) == (100.0, 20.0)


def test_a_moved_run_keeps_its_cache_and_says_where_it_is(run_dir, tmp_path):
    D.digest(run_dir)
    moved = tmp_path / "moved"
    shutil.copytree(run_dir, moved)
    hit = D.digest(moved)
    assert hit.path == str(moved) and hit.summary == D.cached(run_dir).summary


@pytest.mark.parametrize("spoil", [
    lambda data: {**data, "key": {**data["key"], "version": D.DIGEST_VERSION - 1}},  # an older varcas
    lambda data: {k: v for k, v in data.items() if k != "timeline"},  # another shape
    lambda data: {**data, "timeline": {"t_s": []}},
    lambda data: [data],
])
def test_a_stale_or_malformed_cache_is_recomputed(run_dir, tmp_path, spoil):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns(D.DIGEST_FILE))
    good = D.digest(copy)
    (copy / D.DIGEST_FILE).write_text(json.dumps(spoil(good.to_json())))
    assert D.cached(copy) is None
    assert D.digest(copy) == good and D.cached(copy) == good


def test_the_server_timeline_travels_with_the_digest_unknown_seconds_as_none(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns(D.DIGEST_FILE))
    assert D.digest(copy).server_timeline is None  # no metrics.parquet
    m = synth.labels(model_name="m")
    synth.write_metrics(copy, [(synth.START_NS + (k * 1000 + 500) * synth.MS,
                                [("vllm:num_requests_running", m, float(k)),
                                 ("vllm:generation_tokens_total", m, 50.0 * k)]) for k in range(-1, 10)])
    made = D.digest(copy)
    stored = json.loads((copy / D.DIGEST_FILE).read_text())
    assert Digest.from_json(stored) == made == D.cached(copy)
    tl = made.server_timeline
    assert isinstance(tl, ServerTimeline) and tl.t_s == made.timeline.t_s
    unknown = (None,) * (len(tl.t_s) - 10)  # the last scrape is at 9.5 s
    assert tl.series["running"] == (*map(float, range(10)), *unknown)
    assert tl.series["generation_tokens"] == ((50.0,) * 10 + unknown)
