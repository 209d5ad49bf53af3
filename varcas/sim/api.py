"""What the simulated server accepts: vLLM's OpenAI completions and chat requests, validated
as vLLM validates them, turned into a GenRequest. The checks both servers make are
varcas.serve.openai_wire.parse_body's; the simulator's own rules, on top, and why:
  * text counts words / WORDS_PER_TOKEN tokens (the English words-per-token ratio varcas's own
    prompt builder uses, so a chat prompt built for N tokens is read back as N); there is no
    tokenizer. A token-ID prompt counts its IDs. An empty prompt is an error, as in vLLM.
  * max_tokens may be absent: vLLM then generates up to max_model_len - prompt tokens.
  * lengths are checked against max_model_len with vLLM's messages (HTTP 400).
  * stream_options without stream is an error, and ignore_eos must be a boolean, as in vLLM.
"""
from __future__ import annotations

from ..resources import WORDS_PER_TOKEN
from ..serve.openai_wire import ApiError, GenRequest, parse_body


def words_to_tokens(words: int) -> int:
    """Tokens of a text of `words` words: words / WORDS_PER_TOKEN, rounded."""
    return round(words / WORDS_PER_TOKEN)


def check_lengths(prompt_tokens: int, max_tokens: int | None, max_model_len: int) -> int:
    """vLLM's context-length check (serving_engine._validate_input); returns max_tokens,
    defaulted to what is left of the context. ApiError 400 when the request does not fit."""
    if max_tokens is None:
        if prompt_tokens >= max_model_len:
            raise ApiError(400, f"This model's maximum context length is {max_model_len} tokens. "
                                f"However, you requested {prompt_tokens} tokens in the messages, "
                                "Please reduce the length of the messages.")
        return max_model_len - prompt_tokens
    if prompt_tokens + max_tokens > max_model_len:
        raise ApiError(400, f"This model's maximum context length is {max_model_len} tokens. "
                            f"However, you requested {prompt_tokens + max_tokens} tokens "
                            f"({prompt_tokens} in the messages, {max_tokens} in the completion). "
                            "Please reduce the length of the messages or completion.")
    return max_tokens


def parse(body: bytes, chat: bool, model: str, max_model_len: int) -> GenRequest:
    """Validate a /v1/completions (chat=False) or /v1/chat/completions body; ApiError if bad."""
    parsed = parse_body(body, chat, model, words_to_tokens)
    if parsed.prompt_tokens < 1:
        raise ApiError(400, "The prompt cannot be empty.")
    if not parsed.stream and parsed.fields.get("stream_options") is not None:
        raise ApiError(400, "Stream options can only be defined when `stream=True`.")
    if type(parsed.fields.get("ignore_eos", False)) is not bool:
        raise ApiError(400, "ignore_eos must be a boolean")
    return parsed.request(check_lengths(parsed.prompt_tokens, parsed.max_tokens, max_model_len))
