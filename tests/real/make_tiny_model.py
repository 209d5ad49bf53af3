"""Build a tiny random-weight Llama and a word-level tokenizer for real-vLLM tests.

Run with the vLLM venv's python (it has torch, transformers and tokenizers; varcas's venv
does not):

    python tests/real/make_tiny_model.py OUT_DIR --vocab 4096

OUT_DIR gets config.json, generation_config.json, model.safetensors, tokenizer.json and
tokenizer_config.json, all loadable offline by `AutoTokenizer.from_pretrained(OUT_DIR)`
and by `vllm serve OUT_DIR`.

Invariants the tests rely on:
- the vocabulary has exactly `--vocab` entries and the model's vocab_size is the same, so
  every token ID a server returns is < vocab;
- the tokenizer is word-level: a Whitespace pre-tokenizer (`\\w+|[^\\w\\s]+`) and a WordLevel
  model, and no BOS/EOS is added on encode, so a corpus sentence is exactly as many tokens
  as the pre-tokenizer's pieces (words and punctuation runs); unknown pieces map to <unk>;
- IDs 0, 1, 2 are <unk>, <s>, </s>; the model's eos_token_id is 2; then the chat
  template's words, the corpus words in order of first appearance, then `w00001`...
  padding up to the size;
- deterministic: the same arguments give byte-identical files (fixed seed, no timestamps).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[2] / "varcas" / "data" / "corpus.txt"
SPECIALS = ("<unk>", "<s>", "</s>")
UNK, BOS, EOS = SPECIALS
SEED = 0
# role words first so a chat prompt never turns into <unk>.
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }} : {{ message['content'] }}\n"
    "{% endfor %}{% if add_generation_prompt %}assistant :{% endif %}"
)
TEMPLATE_WORDS = ("system", "user", "assistant", ":")


def build_vocab(corpus_text: str, size: int, pre_tokenize) -> dict[str, int]:
    """Specials, template words, corpus pieces (first appearance), then padding words."""
    words: dict[str, int] = {}
    for w in (*SPECIALS, *TEMPLATE_WORDS):
        words.setdefault(w, len(words))
    for piece, _span in pre_tokenize(corpus_text):
        words.setdefault(piece, len(words))
    if len(words) > size:
        raise SystemExit(f"--vocab {size} is smaller than the corpus's {len(words)} words")
    i = 0
    while len(words) < size:
        i += 1
        words.setdefault(f"w{i:05d}", len(words))
    return words


def build_tokenizer(vocab_size: int):
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    pre = pre_tokenizers.Whitespace()
    vocab = build_vocab(CORPUS.read_text(encoding="utf-8"), vocab_size, pre.pre_tokenize_str)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre
    # WordPiece's decoder joins with spaces and tidies " ." -> "." (no "##" pieces here).
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIALS])
    assert tok.get_vocab_size() == vocab_size, tok.get_vocab_size()
    return tok


def tokenizer_config() -> dict:
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": UNK,
        "pad_token": EOS,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 2048,
        "chat_template": CHAT_TEMPLATE,
    }


def build_model(vocab_size: int, dtype_name: str):
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    ids = {t: i for i, t in enumerate(SPECIALS)}
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=ids[BOS],
        eos_token_id=ids[EOS],
        pad_token_id=ids[EOS],
        tie_word_embeddings=False,
    )
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(config).to(getattr(torch, dtype_name))
    model.config.dtype = dtype_name
    model.generation_config = GenerationConfig(
        bos_token_id=ids[BOS], eos_token_id=ids[EOS], pad_token_id=ids[EOS]
    )
    return model


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out_dir", type=Path)
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="bfloat16")
    args = p.parse_args(argv)
    out: Path = args.out_dir
    out.mkdir(parents=True, exist_ok=True)

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    tok = build_tokenizer(args.vocab)
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(), indent=2) + "\n")
    build_model(args.vocab, args.dtype).save_pretrained(out)

    from transformers import AutoTokenizer  # the check a server does, offline

    loaded = AutoTokenizer.from_pretrained(out, local_files_only=True)
    assert len(loaded) == args.vocab and loaded.eos_token_id == SPECIALS.index(EOS)
    print(f"{out}: vocab {args.vocab}, {args.dtype}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
