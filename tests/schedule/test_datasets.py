"""vLLM's datasets read and sampled as vLLM does: ShareGPT, custom JSONL, BurstGPT, sonnet.
Bad files are one-line errors naming the line; samples are exact for a seed and a counter."""
from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

from varcas.errors import VarcasError
from varcas.schedule import build_schedule, load_workload
from varcas.schedule import dataset_files as files
from varcas.schedule.datasets import SONNET_BASE, read_text_dataset, valid_sharegpt

DATA = Path(__file__).parent / "data"
SHAREGPT, CUSTOM, BURSTGPT = DATA / "sharegpt.json", DATA / "custom.jsonl", DATA / "burstgpt.csv"


def words(texts):
    """A counter for the tests: one token a word."""
    return np.array([len(t.split()) for t in texts], dtype=np.int64)


def test_sharegpt_keeps_the_first_two_turns_of_entries_with_two_or_more():
    pairs = files.read_sharegpt(SHAREGPT)
    entries = [e for e in json.loads(SHAREGPT.read_text()) if len(e.get("conversations", [])) >= 2]
    assert pairs == [(e["conversations"][0]["value"], e["conversations"][1]["value"]) for e in entries]
    assert len(pairs) == 5  # a3 has one turn, a5 none: vLLM's filter


@pytest.mark.parametrize("chunk", [1, 2, 7, 64, 1000])
def test_sharegpt_is_the_same_read_through_any_window(monkeypatch, chunk):
    monkeypatch.setattr(files, "_CHUNK", chunk)
    assert files.read_sharegpt(SHAREGPT) == [tuple(e["conversations"][i]["value"] for i in (0, 1))
                                             for e in json.loads(SHAREGPT.read_text())
                                             if len(e.get("conversations", [])) >= 2]


def vllm_sharegpt(pairs, n, count, special, seed, output_len=None):
    """vLLM 0.32's ShareGPTDataset (load_data + sample + maybe_oversample_requests), transcribed:
    shuffle with random.seed(seed), keep what is_valid_sequence accepts, oversample with choice."""
    data = list(pairs)
    random.seed(seed)
    random.shuffle(data)
    samples = []
    for prompt, completion in data:
        if len(samples) >= n:
            break
        p_len = int(count([prompt])[0]) + special
        o_len = int(count([completion])[0]) + special if output_len is None else output_len
        if valid_sharegpt(p_len, o_len, output_len is None):
            samples.append((prompt, p_len, o_len))
    if len(samples) < n:
        random.seed(seed)
        samples += [random.choice(samples) for _ in range(n - len(samples))]
    return samples


@pytest.mark.parametrize("seed, n, special, output_len", [(0, 2, 1, None), (3, 3, 0, None), (5, 8, 1, None),
                                                         (1, 4, 1, 7)])
def test_sharegpt_picks_what_vllm_picks(seed, n, special, output_len):
    ds = read_text_dataset("sharegpt", str(SHAREGPT), seed, output_len=output_len)
    sample = ds.sample(n, words, special, special)
    want = vllm_sharegpt(ds.rows, n, words, special, seed, output_len)
    assert [sample.texts[k] for k in sample.index] == [p for p, _, _ in want]
    assert (sample.text_tokens + special).tolist() == [p for _, p, _ in want]
    assert sample.output_len.tolist() == [o for _, _, o in want]


def test_sharegpt_filter_drops_short_prompts_and_answers_unless_the_output_is_given():
    ds = read_text_dataset("sharegpt", str(SHAREGPT), 0, shuffle=False)
    kept = {ds.rows[0][0], ds.rows[2][0], ds.rows[4][0]}  # "Hi" and the 2-word answer are too short
    assert set(ds.sample(3, words, 1, 1).texts) == kept
    with_output = read_text_dataset("sharegpt", str(SHAREGPT), 0, shuffle=False, output_len=2)
    assert len(with_output.sample(4, words, 1, 1).texts) == 4  # "Thank you" passes: its length is not used
    assert valid_sharegpt(4, 4, True) and not valid_sharegpt(3, 4, True) and not valid_sharegpt(1025, 4, True)
    assert not valid_sharegpt(1024, 1025, True) and valid_sharegpt(4, 1, False)


def test_sharegpt_without_a_usable_conversation_is_an_error(tmp_path):
    path = tmp_path / "short.json"
    path.write_text(json.dumps([{"conversations": [{"value": "hi"}, {"value": "yo"}]}]))
    with pytest.raises(VarcasError, match="no conversation passes vLLM's length filter"):
        read_text_dataset("sharegpt", str(path), 0).sample(2, words, 1, 1)


@pytest.mark.parametrize("text, line, message", [
    ('[\n  {"conversations": []},\n  3\n]', 3, "an entry must be a JSON object"),
    ('[\n{"id": 1},\n{"conversations": [{"value": "a"}, {"from": "gpt"}]}\n]', 3, "need a text \"value\""),
    ('[\n{"conversations": {"a": 1}}\n]', 2, "\"conversations\" must be a list"),
    ('[\n{"id": 1},\n\n{"id": 2,,}\n]', 4, "invalid JSON"),
    ('[\n{"id": 1}\n{"id": 2}\n]', 3, "expected ',' or ']'"),
    ('{"conversations": []}', 1, "expected a JSON array"),
    ('[\n{"id": "unterminated}\n', 2, "invalid JSON"),
])
def test_malformed_sharegpt_names_the_line(tmp_path, text, line, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(VarcasError, match=f"line {line}: .*{message}") as err:
        files.read_sharegpt(path)
    assert "\n" not in str(err.value)


def test_a_long_entry_across_many_windows_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "_CHUNK", 16)
    long = "word " * 5000
    path = tmp_path / "long.json"
    path.write_text(json.dumps([{"conversations": [{"value": long}, {"value": "ok"}]}] * 3, indent=1))
    assert files.read_sharegpt(path) == [(long, "ok")] * 3


def test_dataset_files_have_a_size_limit_and_must_exist(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "MAX_DATASET_BYTES", 100)
    with pytest.raises(VarcasError, match="more than the 0 MiB varcas reads"):
        files.read_sharegpt(SHAREGPT)
    with pytest.raises(VarcasError, match="no such file"):
        files.read_sharegpt(tmp_path / "missing.json")


def test_custom_takes_vllms_order_and_output_lengths():
    ds = read_text_dataset("custom", str(CUSTOM), 4, output_len=None)
    rows = [json.loads(line) for line in CUSTOM.read_text().splitlines() if line.strip()]
    order = list(range(len(rows)))
    random.Random(4).shuffle(order)
    sample = ds.sample(3, words, 1, 1)
    assert [sample.texts[k] for k in sample.index] == [rows[k]["prompt"] for k in order[:3]]
    assert sample.output_len.tolist() == [rows[k]["output_tokens"] for k in order[:3]]
    fixed = read_text_dataset("custom", str(CUSTOM), 4, output_len=256).sample(6, words, 1, 1)
    assert fixed.output_len.tolist() == [256] * 6 and fixed.record["oversampled"] == 2


@pytest.mark.parametrize("text, line, message", [
    ('{"prompt": "a", "output_tokens": 3}\n{"prompt": 3}\n', 2, "needs a non-empty \"prompt\""),
    ('{"prompt": "a", "output_tokens": 3}\n\n{"prompt": "b", "output_tokens": "x"}\n', 3,
     "\"output_tokens\" must be an integer"),
    ('{"prompt": "a"\n', 1, "invalid JSON"),
])
def test_malformed_custom_rows_name_the_line(tmp_path, text, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(text)
    with pytest.raises(VarcasError, match=f"line {line}: .*{message}"):
        files.read_custom(path, need_output=True)


def test_custom_must_be_jsonl(tmp_path):
    with pytest.raises(VarcasError, match="a .jsonl file"):
        files.read_custom(tmp_path / "x.json", need_output=False)


def test_burstgpt_keeps_vllms_rows():
    times, inputs, outputs = files.read_burstgpt(BURSTGPT)
    # GPT-4 rows with a response (vLLM's filter) and a prompt (an empty one cannot be sent)
    assert times.tolist() == [45, 118, 179, 240]
    assert inputs.tolist() == [1087, 417, 104, 77] and outputs.tolist() == [230, 276, 50, 9]


def test_burstgpt_is_a_trace_of_its_timestamps_or_lengths_under_a_rate():
    w = load_workload("chat_medium")
    sched = build_schedule(workload=w, rps=None, arrival="trace", trace_path=str(BURSTGPT), trace_format="burstgpt")
    assert sched.offset_ns.tolist() == [0, 73 * 10**9, 134 * 10**9, 195 * 10**9]
    assert sched.input_len.tolist() == [1087, 417, 104, 77]
    cut = build_schedule(workload=w, rps=None, arrival="trace", trace_path=str(BURSTGPT), trace_format="burstgpt",
                         duration_s=100.0)
    assert len(cut) == 2
    rated = build_schedule(workload=w, rps=10.0, arrival="constant", num_requests=6, trace_path=str(BURSTGPT),
                           trace_format="burstgpt")
    assert rated.input_len.tolist() == [1087, 417, 104, 77, 1087, 417]
    assert rated.output_len.tolist() == [230, 276, 50, 9, 230, 276]


@pytest.mark.parametrize("text, line, message", [
    ("Timestamp,Model,Request tokens,Response tokens\n1,GPT-4,3,4\nx,GPT-4,3,4\n", 3, "Timestamp must be a number"),
    ("Timestamp,Model,Request tokens,Response tokens\n1,GPT-4,3\n", 2, "3 columns, the header has 4"),
    ("Timestamp,Model,Request tokens,Response tokens\n\n1,GPT-4,-3,4\n", 3, "Timestamp and token counts must be >= 0"),
    ("Time,Model,Request tokens\n", 1, "header lacks Timestamp, Response tokens"),
])
def test_malformed_burstgpt_rows_name_the_line(tmp_path, text, line, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(VarcasError, match=f"line {line}: {message}"):
        files.read_burstgpt(path)


def test_sonnet_prompts_share_the_prefix_lines_and_fit_the_input_length():
    ds = read_text_dataset("sonnet", None, 2, input_len=120, prefix_len=40, output_len=150)
    lines = ds.rows
    avg = np.mean(words(lines)) + 1
    base = len(SONNET_BASE.split()) + 1
    n_prefix = round((40 - base) / avg)
    sample = ds.sample(20, words, 1, 1)
    head = SONNET_BASE + "".join(lines[:n_prefix])
    prompts = [sample.texts[k] for k in sample.index]
    assert n_prefix > 0 and all(p.startswith(head) for p in prompts)
    assert all(len(p.split()) + 1 <= 120 for p in prompts)
    assert (sample.text_tokens == words(prompts)).all() and sample.output_len.tolist() == [150] * 20
    n_input = round((120 - base) / avg)
    assert all(p.count("\n") == 1 + n_input for p in prompts)  # the base line, then the poem lines
    assert sample.record["prefix_lines"] == n_prefix and math.isclose(len(lines), 98)


def test_sonnet_input_length_below_the_base_prompt_is_an_error():
    with pytest.raises(VarcasError, match="--sonnet-input-len must be more than"):
        read_text_dataset("sonnet", None, 0, input_len=5).sample(1, words, 1, 1)
