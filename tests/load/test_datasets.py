"""Datasets and workload shapes end to end, against the stub server's records of what was sent:
dataset texts and their token-exact lengths, shared prefixes, conversations (turns released by
the previous answer, a failed turn ending its conversation), and bad input as one line, exit 2."""
from __future__ import annotations

import json
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, processors

from varcas.schedule.dataset_files import read_sharegpt
from varcas.testing.spawn import spawn

from .helpers import load, varcas_cli

DATA = Path(__file__).resolve().parents[1] / "schedule" / "data"
SHAREGPT = DATA / "sharegpt.json"
LOAD = ("-m", "varcas.load")


@pytest.fixture(scope="module")
def recording():
    """A stub server that keeps each request's body."""
    with spawn(tokens=4, itl_ms=1, ttft_ms=2, extra_args=("--record-bodies",)) as srv:
        yield srv


def bodies(srv, run_dir: Path) -> dict[int, dict]:
    """This run's request bodies from the server's records, by request id (its X-Request-Id)."""
    rows = pq.read_table(run_dir / "requests.parquet").column("request_id").to_pylist()
    sent = {int(r["id"]): orjson.loads(r["body"]) for r in srv.records()["requests"] if r["id"].isdigit()}
    return {i: sent[i] for i in rows if i in sent}


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    """A word-level tokenizer over the ShareGPT fixture's words that adds a BOS, as Llama's does."""
    split = pre_tokenizers.Whitespace()
    vocab = {w for pair in read_sharegpt(SHAREGPT) for text in pair for w, _ in split.pre_tokenize_str(text)}
    entries = ["[UNK]", "<s>", *sorted(vocab)]
    tok = Tokenizer(models.WordLevel({w: k for k, w in enumerate(entries)}, unk_token="[UNK]"))
    tok.pre_tokenizer = split
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    d = tmp_path_factory.mktemp("tok")
    tok.save(str(d / "tokenizer.json"))
    return d


def test_sharegpt_sends_the_dataset_texts_with_token_exact_lengths(tmp_path, recording, tokenizer_dir):
    run_dir, manifest, rows = load(tmp_path, recording.url, input_len=None, output_len=None, num_requests=6,
                                   dataset_name="sharegpt", dataset_path=str(SHAREGPT), tokenizer=str(tokenizer_dir))
    tok = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    sent = bodies(recording, run_dir)
    prompts = {p for p, _ in read_sharegpt(SHAREGPT)}
    answers = dict(read_sharegpt(SHAREGPT))
    for r in rows:
        prompt = sent[r["request_id"]]["prompt"]
        assert prompt in prompts and r["error"] is None
        assert r["requested_input_tokens"] == len(tok.encode(prompt).ids)  # with the BOS, as the server counts
        assert r["requested_output_tokens"] == len(tok.encode(answers[prompt]).ids)  # vLLM's: BOS included
        assert sent[r["request_id"]]["max_tokens"] == r["requested_output_tokens"]
    assert manifest["prompts"]["dataset_lengths"] == f"tokenizer {tokenizer_dir}"
    assert manifest["workload_shape"]["dataset"]["kept"] == 3


def test_shared_prefixes_are_the_same_tokens_within_a_group(tmp_path, recording):
    run_dir, manifest, rows = load(tmp_path, recording.url, num_requests=12, input_len=10, output_len=3,
                                   shared_prefix_len=16, shared_prefix_groups=3)
    sent = bodies(recording, run_dir)
    prompts = {i: b["prompt"] for i, b in sent.items()}
    assert len(prompts) == 12 and all(len(p) == 26 for p in prompts.values())
    heads = {g: {tuple(p[:16]) for i, p in prompts.items() if i % 3 == g} for g in range(3)}
    assert all(len(h) == 1 for h in heads.values()) and len({h.pop() for h in heads.values()}) == 3
    assert len({p[16] for p in prompts.values()}) == 12  # each request's own tokens start differently
    assert all(r["input_tokens"] == r["requested_input_tokens"] == 26 for r in rows)
    assert manifest["workload_shape"]["shared_prefix"] == {"groups": 3, "prefix_len": 16}


def test_a_turn_follows_the_previous_answer_after_the_think_time(tmp_path, recording):
    run_dir, manifest, rows = load(tmp_path, recording.url, num_requests=9, input_len=6, output_len=4, rps=50.0,
                                   turns=3, think_time_s=0.2, think_time_dist="fixed")
    conv = pq.read_table(run_dir / "conversations.parquet").to_pylist()
    assert [(c["request_id"], c["conversation"], c["turn"], c["follows"]) for c in conv[:4]] == [
        (0, 0, 0, None), (1, 1, 0, None), (2, 2, 0, None), (3, 0, 1, 0)]
    sent = bodies(recording, run_dir)
    for r in rows[3:]:
        prev = rows[r["request_id"] - 3]
        assert r["scheduled_ns"] == prev["end_ns"] + 200_000_000  # planned: the answer's end + think
        assert 0 <= r["sent_ns"] - r["scheduled_ns"] < 50_000_000
        before, now = sent[prev["request_id"]]["prompt"], sent[r["request_id"]]["prompt"]
        assert now[:len(before)] == before  # the earlier turn's prompt, then its answer, then a message
        assert len(now) == len(before) + 4 + 6 == r["requested_input_tokens"] == r["input_tokens"]
    assert [r["requested_input_tokens"] for r in rows] == [6] * 3 + [16] * 3 + [26] * 3
    assert manifest["workload_shape"]["conversations"]["count"] == 3 and manifest["counts"]["scheduled"] == 9


def test_chat_turns_are_messages(tmp_path, recording):
    run_dir, _, rows = load(tmp_path, recording.url, num_requests=4, input_len=6, output_len=4, api="chat", turns=2)
    sent = bodies(recording, run_dir)
    assert [m["role"] for m in sent[0]["messages"]] == ["user"]
    second = sent[2]["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "user"]
    assert second[0] == sent[0]["messages"][0]
    assert all(r["error"] is None for r in rows)


def test_a_failed_turn_ends_its_conversation(tmp_path, recording):
    run_dir, manifest, rows = load(tmp_path, recording.url, num_requests=6, turns=3, fail_fast=0,
                                   headers=["X-Fault: http_500"])
    assert [r["error"] for r in rows] == ["http"] * 2 + ["cancelled"] * 4
    assert all(r["sent_ns"] is None for r in rows[2:])
    log = (run_dir / "errors.log").read_text()
    assert "request 4\tcancelled\tHTTP 0\tconversation 0 ended: its turn 0 (request 0) failed (http)" in log
    assert manifest["counts"]["errors"] == {"http": 2, "cancelled": 4}


def test_burstgpt_replays_its_timestamps(tmp_path, recording):
    trace = tmp_path / "burst.csv"
    trace.write_text("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                     "10.0,GPT-4,5,3,8,API log\n10.1,ChatGPT,5,3,8,API log\n10.3,GPT-4,7,2,9,API log\n")
    _, manifest, rows = load(tmp_path, recording.url, input_len=None, output_len=None, rps=None, arrival=None,
                             num_requests=None, dataset_name="burstgpt", dataset_path=str(trace))
    assert [r["scheduled_ns"] - rows[0]["scheduled_ns"] for r in rows] == [0, 300_000_000]
    assert [(r["input_tokens"], r["requested_output_tokens"]) for r in rows] == [(5, 3), (7, 2)]
    assert manifest["workload_shape"]["dataset"]["timestamps_replayed"] is True


@pytest.mark.parametrize("args, needle", [
    (["--dataset-name", "sharegpt"], "--dataset-name sharegpt reads a file: give --dataset-path"),
    (["--dataset-name", "sharegpt", "--dataset-path", str(SHAREGPT), "--random-input-len", "5"],
     "--random-input-len applies to --dataset-name random, not sharegpt"),
    (["--dataset-name", "custom", "--dataset-path", "x.jsonl", "--sharegpt-output-len", "5"],
     "--sharegpt-output-len applies to --dataset-name sharegpt, not custom"),
    (["--think-time", "1"], "--think-time needs --turns"),
    (["--shared-prefix-groups", "4"], "--shared-prefix-groups needs --shared-prefix-len"),
    (["--turns", "2", "--clip-to-context"], "--clip-to-context shortens varcas's own single prompts"),
    (["--dataset-path", "x.json"], "the random dataset reads no file"),
    (["--random-range-ratio", "0.5"], "a range ratio spreads a fixed length"),
    (["--random-range-ratio", "{\"input\": 2}"], "--random-range-ratio"),
    (["--dataset-name", "sharegpt", "--dataset-path", "/nonexistent.json"], "no such file"),
    (["--dataset-name", "burstgpt", "--dataset-path", "BAD_CSV"], "line 3: Timestamp must be a number"),
    (["--dataset-name", "sharegpt", "--dataset-path", "BAD_JSON"], "line 2: invalid JSON"),
])
def test_bad_dataset_input_is_one_line_and_exit_2(tmp_path, args, needle):
    bad_csv, bad_json = tmp_path / "bad.csv", tmp_path / "bad.json"
    bad_csv.write_text("Timestamp,Model,Request tokens,Response tokens\n1,GPT-4,2,3\nnow,GPT-4,2,3\n")
    bad_json.write_text('[{"conversations": []},\n{"conversations": [}\n]')
    args = [{"BAD_CSV": str(bad_csv), "BAD_JSON": str(bad_json)}.get(a, a) for a in args]
    res = varcas_cli(*LOAD, *args, "--num-requests", "2", "--out", str(tmp_path / "r"))
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in res.stderr, lines
    assert not (tmp_path / "r").exists()


def test_the_range_ratio_takes_vllms_json_form(tmp_path, recording):
    _, manifest, rows = load(tmp_path, recording.url, num_requests=30, input_len=20, output_len=4,
                             random_range_ratio=json.loads('{"input": 0.5, "output": 0.0}'))
    assert {r["requested_output_tokens"] for r in rows} == {4}
    assert all(10 <= r["requested_input_tokens"] == r["input_tokens"] <= 30 for r in rows)
    assert manifest["workload_shape"]["dataset"] == {"dataset": "random", "range_ratio": {"input": 0.5,
                                                                                           "output": 0.0}}
