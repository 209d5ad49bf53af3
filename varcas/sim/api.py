"""What the simulated server accepts: vLLM's OpenAI completions and chat requests, validated
as vLLM validates them, turned into the wire module's GenRequest (varcas.testing.openai_wire,
whose chunk encoders the server reuses so its bytes are vLLM's).

Differences from the test stub's parser, and why:
  * the prompt length is in tokens: a token-ID prompt counts its IDs; text counts
    words / WORDS_PER_TOKEN (the English words-per-token ratio varcas's own prompt builder
    uses, so a chat prompt built for N tokens is read back as N); there is no tokenizer.
  * max_tokens may be absent: vLLM then generates up to max_model_len - prompt tokens.
  * lengths are checked against max_model_len with vLLM's messages (HTTP 400).
  * stream_options without stream is an error, as in vLLM.
"""
from __future__ import annotations

import orjson

from ..load.prompts import WORDS_PER_TOKEN
from ..testing.openai_wire import ApiError, GenRequest


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
    try:
        req = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(req, dict):
        raise ApiError(400, "request body must be a JSON object")
    if req.get("model") not in (None, model):
        raise ApiError(404, f"The model `{req['model']}` does not exist.")
    if req.get("n") not in (None, 1):
        raise ApiError(400, "n must be 1 (the simulator samples one sequence per request)")
    prompt_tokens = _chat_tokens(req) if chat else _prompt_tokens(req.get("prompt"))
    if prompt_tokens < 1:
        raise ApiError(400, "The prompt cannot be empty.")
    key = "max_completion_tokens" if chat and req.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = req.get(key)
    if max_tokens is not None and (type(max_tokens) is not int or max_tokens < 1):
        raise ApiError(400, f"{key} must be an integer >= 1, got {max_tokens!r}")
    stream, options = req.get("stream", False), req.get("stream_options")
    if type(stream) is not bool:
        raise ApiError(400, "stream must be a boolean")
    if options is not None and (not stream or not isinstance(options, dict)):
        raise ApiError(400, "Stream options can only be defined when `stream=True`.")
    if type(req.get("ignore_eos", False)) is not bool:
        raise ApiError(400, "ignore_eos must be a boolean")
    output_tokens = check_lengths(prompt_tokens, max_tokens, max_model_len)
    return GenRequest(chat, stream, output_tokens, prompt_tokens, bool((options or {}).get("include_usage")))


def _prompt_tokens(prompt) -> int:
    if isinstance(prompt, str):
        return words_to_tokens(len(prompt.split()))
    if isinstance(prompt, list) and all(type(t) is int and t >= 0 for t in prompt):
        return len(prompt)
    raise ApiError(400, "prompt must be a string or a list of token ids (batched prompts are not supported)")


def _chat_tokens(req: dict) -> int:
    messages = req.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list")
    words = 0
    for msg in messages:
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str):
            raise ApiError(400, "each message must be an object with a string role")
        content = msg.get("content")
        if isinstance(content, str):
            words += len(content.split())
        elif isinstance(content, list):  # content parts: the text ones count
            words += sum(len(p["text"].split()) for p in content
                         if isinstance(p, dict) and isinstance(p.get("text"), str))
        elif content is not None:
            raise ApiError(400, "message content must be a string, a list of parts or null")
    return words_to_tokens(words)
