"""Prompts from the served model's own tokenization: a local tokenizer or the server's /tokenize."""
from __future__ import annotations

import json

import httpx
import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, models, pre_tokenizers

from varcas.errors import VarcasError
from varcas.load import vocab
from varcas.load.prompts import TextPrompts, TokenPrompts, corpus_words


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tok")
    tok = Tokenizer(models.WordLevel({}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer_words = set()
    for w in vocab.corpus_text().split():
        trainer_words.update(pre.strip() for pre, _ in pre_tokenizers.Whitespace().pre_tokenize_str(w))
    entries = ["[UNK]", "<s>", "</s>", *sorted(trainer_words)]
    tok.model = models.WordLevel({w: k for k, w in enumerate(entries)}, unk_token="[UNK]")
    tok.save(str(d / "tokenizer.json"))
    return d


def test_local_tokenizer_gives_ids_and_text_pieces_that_rebuild_the_corpus(tokenizer_dir):
    corpus = vocab.from_tokenizer(str(tokenizer_dir))
    tok = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    assert corpus.ids.tolist() == tok.encode(vocab.corpus_text(), add_special_tokens=False).ids
    assert "".join(corpus.pieces) == vocab.corpus_text()
    assert len(corpus.pieces) == len(corpus.ids) and corpus.vocab_size == tok.get_vocab_size()
    assert 0 not in corpus.ids  # every corpus word is in this vocabulary: no [UNK]
    assert vocab.from_tokenizer(str(tokenizer_dir / "tokenizer.json")).ids.tolist() == corpus.ids.tolist()


@settings(max_examples=40, deadline=None)
@given(i=st.integers(0, 10**9), n=st.integers(1, 3000))
def test_text_from_pieces_has_exactly_the_planned_tokens(tokenizer_dir, i, n):
    corpus = vocab.from_tokenizer(str(tokenizer_dir))
    tok = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    text = json.loads(TextPrompts(3, pieces=corpus.pieces).fragment(i, n))
    assert len(tok.encode(text, add_special_tokens=False).ids) == n


@settings(max_examples=40, deadline=None)
@given(i=st.integers(0, 10**9), n=st.integers(1, 3000))
def test_token_prompts_use_only_the_corpus_ids(tokenizer_dir, i, n):
    corpus = vocab.from_tokenizer(str(tokenizer_dir))
    ids = json.loads(TokenPrompts(5, ids=corpus.ids).fragment(i, n))
    assert len(ids) == n and set(ids) <= set(corpus.ids.tolist())


def test_first_ids_cycle_through_the_distinct_corpus_ids():
    tp = TokenPrompts(1, ids=np.array([7, 3, 7, 9, 3]))
    firsts = [json.loads(tp.fragment(i, 1))[0] for i in range(6)]
    assert sorted(firsts[:3]) == [3, 7, 9] and firsts[3:] == firsts[:3]


@pytest.mark.parametrize("content, message", [
    (None, "no tokenizer.json there"),
    (b"{not json", "not a readable tokenizer.json"),
])
def test_bad_tokenizer_paths_are_one_line_errors(tmp_path, content, message):
    if content is not None:
        (tmp_path / "tokenizer.json").write_bytes(content)
    with pytest.raises(VarcasError, match=message) as err:
        vocab.from_tokenizer(str(tmp_path))
    assert "\n" not in str(err.value)


def fake_vllm(handler):
    return httpx.Client(transport=httpx.MockTransport(handler))


def tokenize_handler(request: httpx.Request) -> httpx.Response:
    """vLLM's /tokenize over a whitespace 'tokenizer': one ID per word, a 3-token chat template."""
    body = orjson.loads(request.content)
    if "messages" in body:
        words = body["messages"][0]["content"].split()
        tokens = [1, 2] + [len(w) for w in words] + [3]
    else:
        tokens = [len(w) for w in body["prompt"].split()]
    return httpx.Response(200, json={"count": len(tokens), "max_model_len": 512, "tokens": tokens})


def test_server_tokenize_gives_ids_and_words_per_token():
    with fake_vllm(tokenize_handler) as client:
        corpus = vocab.from_server(client, "http://x/tokenize", "m")
        assert corpus.ids.tolist() == [len(w) for w in corpus_words()]
        assert corpus.words_per_token == 1.0 and corpus.pieces is None
        assert vocab.chat_template_tokens(client, "http://x/tokenize", "m") == 3
        plan = vocab.plan_prompts("chat", 0, None, client, "http://x/tokenize", "m")
        assert plan.template_tokens == 3 and plan.record["source"] == "server /tokenize"
        assert plan.prompts.words_per_token == 1.0


@pytest.mark.parametrize("response", [
    httpx.Response(404, json={"detail": "Not Found"}),
    httpx.Response(200, content=b"[1, 2]"),
    httpx.Response(200, json={"tokens": [1, -2]}),
    httpx.Response(200, json={"tokens": [1, "a"]}),
    httpx.Response(200, json={"tokens": []}),
    httpx.Response(200, content=b'{"tokens": [' + b"1," * (5 << 20) + b"1]}"),  # over the read bound
])
def test_servers_without_a_usable_tokenize_fall_back(response):
    with fake_vllm(lambda request: response) as client:
        assert vocab.from_server(client, "http://x/tokenize", "m") is None
        assert vocab.chat_template_tokens(client, "http://x/tokenize", "m") is None
        plan = vocab.plan_prompts("completions", 0, None, client, "http://x/tokenize", "m")
    assert plan.record["source"] == "none" and plan.record["id_range"] == [1000, 29000]
