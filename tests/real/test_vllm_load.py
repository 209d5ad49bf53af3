"""varcas load against a real vLLM (CPU build, tiny random-weight Llama, vocabulary 4,096).

What first contact showed, each pinned here: token-ID prompts must exist in the model's
vocabulary (varcas learns them from /tokenize or --tokenizer), a workload longer than the
context is refused before it is sent, a run whose requests all fail exits non-zero and says
why, and varcas's token counts equal vLLM's own /metrics counters exactly.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import pyarrow.parquet as pq
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tokenizers import Tokenizer

from tests.load.helpers import REPO, varcas_cli
from varcas import metricsfile
from varcas.analyze import load_run, summarize
from varcas.rundir import read_manifest

COUNTERS = ("vllm:prompt_tokens_total", "vllm:generation_tokens_total", "vllm:request_success_total")


def counters(url: str) -> dict[str, float]:
    """vLLM's token and request counters, summed over their labels."""
    text = httpx.get(url + "/metrics", timeout=10).text
    totals = dict.fromkeys(COUNTERS, 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in totals:
                totals[sample.name] += sample.value
    return totals


def load(tmp_path, server, *flags, name="run", timeout=180):
    out = tmp_path / name
    res = varcas_cli("-m", "varcas.load", "--url", server.url, "--quiet", "--out", str(out), *flags, timeout=timeout)
    assert "Traceback" not in res.stderr, res.stderr
    return res, out


def rows(run_dir):
    return sorted(pq.read_table(run_dir / "requests.parquet").to_pylist(), key=lambda r: r["request_id"])


@pytest.mark.parametrize("api, extra", [("completions", []), ("chat", ["--tokenizer"])])
def test_token_counts_equal_vllms_own_counters(tmp_path, vllm_4k, vllm_models, api, extra):
    flags = ["--api", api, "--num-requests", "24", "--rps", "8", "--input-len", "48", "--output-len", "12", "--seed", "3"]
    if extra:
        flags += ["--tokenizer", str(vllm_models / "tiny-4k")]
    before = counters(vllm_4k.url)
    res, out = load(tmp_path, vllm_4k, *flags)
    after = counters(vllm_4k.url)
    assert res.returncode == 0, res.stderr
    got = rows(out)
    assert len(got) == 24 and all(r["error"] is None for r in got), [r["error"] for r in got]
    # exact lengths: the prompt the server counted is the prompt planned (chat: template included)
    assert [r["input_tokens"] for r in got] == [48] * 24
    assert [r["output_tokens"] for r in got] == [12] * 24
    # vLLM may put several tokens in one stream chunk when its HTTP stream falls behind the
    # engine (seen here even for one request); the counts above come from its usage field.
    assert all(1 <= len(r["token_ns"]) <= 12 for r in got)
    delta = {k: after[k] - before[k] for k in COUNTERS}
    assert delta["vllm:prompt_tokens_total"] == sum(r["input_tokens"] for r in got)
    assert delta["vllm:generation_tokens_total"] == sum(r["output_tokens"] for r in got)
    assert delta["vllm:request_success_total"] == 24
    # varcas's own scraper (metrics.parquet) saw the same growth as this test's scrapes
    mine = metricsfile.counter_deltas(metricsfile.read(out), COUNTERS)
    assert mine == delta, (mine, delta)
    manifest = read_manifest(out)
    assert manifest["telemetry"]["scrapes"] >= 4 and manifest["telemetry"]["error"] is None
    server = summarize(load_run(out)).server  # vLLM v1's names: kv_cache_usage_perc, not gpu_...
    assert {"running", "waiting", "kv_cache_usage", "generation_tokens"} <= set(server)
    # 12-token requests last ~40 ms: a 0.5 s scrape may never catch one running, so only bounds
    assert server["running"]["max"] <= 16 and server["generation_tokens"]["delta"] > 0
    source = f"tokenizer {vllm_models / 'tiny-4k'}" if extra else "server /tokenize"
    assert manifest["prompts"]["source"] == source and manifest["target"]["max_model_len"] == 512


def test_chat_without_a_tokenizer_lands_near_the_planned_length(tmp_path, vllm_4k):
    res, out = load(tmp_path, vllm_4k, "--api", "chat", "--num-requests", "12", "--rps", "8",
                    "--input-len", "200", "--output-len", "8")
    assert res.returncode == 0, res.stderr
    got = rows(out)
    assert all(r["error"] is None for r in got)
    manifest = read_manifest(out)
    assert manifest["prompts"]["source"] == "server /tokenize" and manifest["prompts"]["chat_template_tokens"] > 0
    for r in got:  # words per token measured on this corpus by this server: within 10%
        assert 180 <= r["input_tokens"] <= 220, r["input_tokens"]


def test_token_ids_outside_the_vocabulary_fail_fast_with_the_servers_words(tmp_path, vllm_4k, vllm_models):
    """The first-contact trap: IDs the model does not have. A tokenizer that maps the corpus to
    IDs >= 5,000 stands in for a wrong --tokenizer (or the old random IDs): vLLM rejects each."""
    tok = Tokenizer.from_file(str(vllm_models / "tiny-4k" / "tokenizer.json"))
    spec = json.loads(tok.to_str())
    spec["model"]["vocab"] = {w: 5000 + i for w, i in spec["model"]["vocab"].items()}
    (tmp_path / "wrong.json").write_text(json.dumps(spec))
    res, out = load(tmp_path, vllm_4k, "--tokenizer", str(tmp_path / "wrong.json"), "--num-requests", "200",
                    "--rps", "20", "--input-len", "16", "--output-len", "4", "--fail-fast", "10")
    assert res.returncode == 1, res.stdout + res.stderr
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith("varcas: run failed: the first 10 requests all failed: ") and "vocab" in line.lower()
    assert str(out / "errors.log") in line
    manifest = read_manifest(out)
    assert manifest["status"] == "failed" and manifest["counts"]["sent"] < 60  # stopped, not 200 sent
    assert len(rows(out)) == manifest["counts"]["sent"]


def test_every_request_failing_exits_non_zero_with_the_first_error(tmp_path, vllm_4k):
    res, out = load(tmp_path, vllm_4k, "--endpoint", "/v1/no-such-endpoint", "--num-requests", "6", "--rps", "20",
                    "--input-len", "8", "--output-len", "4")
    assert res.returncode == 1
    assert "varcas: run failed: every request failed; the first: http (HTTP 404)" in res.stderr
    assert (out / "errors.log").read_text().count("\thttp\tHTTP 404\t") == 6


def test_a_workload_longer_than_the_context_is_refused_or_clipped(tmp_path, vllm_4k):
    flags = ["--num-requests", "4", "--rps", "8", "--input-len", "600", "--output-len", "16"]
    res, out = load(tmp_path, vllm_4k, *flags)
    assert res.returncode == 2 and not out.exists()
    assert res.stderr.strip() == (
        "python -m varcas.load: error: 4 of 4 requests need more than the server's max_model_len of 512 tokens "
        "(the largest: 600 prompt + 16 output): shorten them (--input-len/--output-len, a workload file) "
        "or pass --clip-to-context")
    res, out = load(tmp_path, vllm_4k, *flags, "--clip-to-context", name="clipped")
    assert res.returncode == 0, res.stderr
    assert [(r["input_tokens"], r["output_tokens"], r["error"]) for r in rows(out)] == [(496, 16, None)] * 4
    assert read_manifest(out)["warnings"][0].startswith("--clip-to-context: 4 of 4 requests shortened")


def test_wrong_model_and_stopped_server_are_one_line_errors(tmp_path, vllm_4k):
    res, out = load(tmp_path, vllm_4k, "--model", "gpt-9", "--num-requests", "2")
    assert res.returncode == 2 and not out.exists()
    assert res.stderr.strip() == f"python -m varcas.load: error: model 'gpt-9' is not served by {vllm_4k.url}; it serves: tiny"
    res = varcas_cli("-m", "varcas.load", "--url", "http://127.0.0.1:9", "--num-requests", "2", "--quiet",
                     "--out", str(tmp_path / "dead"))
    assert res.returncode == 2 and res.stderr.strip() == (
        "python -m varcas.load: error: cannot connect to http://127.0.0.1:9/v1/models (is the server running?)")


def test_a_server_killed_mid_run_keeps_every_row(tmp_path, vllm_venv, vllm_models):
    """kill -9 of the whole vLLM mid-run: what was served stays ok, streams it cut are
    truncated, every later request is a connect error, and the run still ends complete."""
    from tests.real.vllm_server import VllmServer

    out = tmp_path / "run"
    with VllmServer(vllm_venv, vllm_models / "tiny-4k", log_path=tmp_path / "vllm.log") as server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "varcas.load", "--url", server.url, "--quiet", "--out", str(out), "--rps", "5",
             "--duration", "10", "--input-len", "32", "--output-len", "64", "--arrival", "constant"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(5.0)
            server.kill()
            stdout, stderr = proc.communicate(timeout=120)
        finally:
            proc.kill()
    assert "Traceback" not in stderr and proc.returncode == 0, stderr  # some requests were served
    manifest = read_manifest(out)
    assert manifest["status"] == "complete" and manifest["counts"]["scheduled"] == 50
    errors = [r["error"] for r in rows(out)]
    assert len(errors) == 50
    served = errors.index(next(e for e in errors if e is not None))
    assert served >= 10 and errors[:served] == [None] * served
    assert set(errors[served:]) <= {"truncated", "connect"} and errors[-10:] == ["connect"] * 10
    assert "failed" in " ".join(stdout.split())  # the summary's warning says so
