"""OpenAI/vLLM wire format for varcas's servers: request checks and response bytes.

Shared by the streaming stub (varcas.testing) and the simulator (varcas.sim), so the load
generator sees the same bytes from both. The byte layout mirrors vLLM's OpenAI server
(vllm/entrypoints/openai/protocol.py, serving_completion.py, serving_chat.py), so a client
tested here is tested against what vLLM actually sends:
- completions chunks are pydantic `model_dump_json(exclude_unset=False)`: every field,
  nulls included (`logprobs`, `finish_reason`, `stop_reason`, `usage`);
- chat chunks are `model_dump_json(exclude_unset=True)`: only fields vLLM set, so content
  deltas carry no `usage` key and only the finishing delta carries `stop_reason`;
- the final usage chunk (stream_options.include_usage) drops nulls and keeps UsageInfo's
  field order: prompt_tokens, total_tokens, completion_tokens;
- errors are ErrorResponse {"object":"error","message","type","param","code"}.
Every generated token is the constant text TOKEN_TEXT: the servers are about timing, not text.

Requests: parse_body() makes the checks both servers make and counts the prompt; neither has a
tokenizer, so text is counted in words and the caller's words_to_tokens turns words into
tokens (the stub: one token a word; the simulator: the prompt builder's ratio). Each server
then applies its own rules on output length (Body.request()).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import orjson

from .http11 import LAST_CHUNK, chunk

TOKEN_TEXT = " tok"
DONE_EVENT = chunk(b"data: [DONE]\n\n")
_ERROR_TYPES = {400: "BadRequestError", 404: "NotFoundError", 405: "MethodNotAllowed",
                413: "BadRequestError", 431: "BadRequestError", 500: "InternalServerError",
                501: "NotImplementedError"}


class ApiError(Exception):
    """A well-framed request the API rejects; answered with a JSON error, connection kept."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True, frozen=True)
class GenRequest:
    """What a valid completions/chat request asks the server to generate."""
    chat: bool
    stream: bool
    output_tokens: int
    prompt_tokens: int
    include_usage: bool


@dataclass(slots=True, frozen=True)
class Body:
    """A completions/chat body that passed the checks both servers make."""
    fields: dict              # the whole JSON object, for a server's own checks
    chat: bool
    prompt_tokens: int
    max_tokens_key: str       # "max_tokens", or chat's "max_completion_tokens" when set
    max_tokens: int | None    # >= 1, or None when absent
    stream: bool
    include_usage: bool

    def request(self, output_tokens: int) -> GenRequest:
        """The GenRequest once the server has decided how many tokens to generate."""
        return GenRequest(self.chat, self.stream, output_tokens, self.prompt_tokens, self.include_usage)


def error_dict(status: int, message: str) -> dict:
    return {"object": "error", "message": message, "type": _ERROR_TYPES.get(status, "Error"),
            "param": None, "code": status}


def error_body(status: int, message: str) -> bytes:
    return orjson.dumps(error_dict(status, message))


def sse(payload: bytes) -> bytes:
    """One SSE `data:` event in its own HTTP chunk, as uvicorn sends each generator yield."""
    return chunk(b"data: " + payload + b"\n\n")


def models_body(model: str, created: int, max_model_len: int | None = None) -> bytes:
    """GET /v1/models: vLLM's list of one ModelCard (max_model_len null when there is none)."""
    card = {"id": model, "object": "model", "created": created, "owned_by": "vllm", "root": model,
            "parent": None, "max_model_len": max_model_len, "permission": []}
    return orjson.dumps({"object": "list", "data": [card]})


def _same(words: int) -> int:
    return words


def parse_body(body: bytes, chat: bool, model: str,
               words_to_tokens: Callable[[int], int] = _same) -> Body:
    """Check a completions (chat=False) or chat completions body; ApiError when invalid."""
    try:
        req = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(req, dict):
        raise ApiError(400, "request body must be a JSON object")
    if req.get("model") not in (None, model):
        raise ApiError(404, f"The model `{req['model']}` does not exist.")
    if req.get("n") not in (None, 1):
        raise ApiError(400, "only n=1 is supported (one sequence per request: n must be 1)")
    if chat:
        prompt_tokens = words_to_tokens(_chat_words(req))
    else:
        prompt_tokens = _prompt_tokens(req.get("prompt"), words_to_tokens)
    key = "max_completion_tokens" if chat and req.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = req.get(key)
    if max_tokens is not None and (type(max_tokens) is not int or max_tokens < 1):
        raise ApiError(400, f"{key} must be an integer >= 1, got {max_tokens!r}")
    stream, options = req.get("stream", False), req.get("stream_options")
    if type(stream) is not bool:
        raise ApiError(400, "stream must be a boolean")
    if options is not None and not isinstance(options, dict):
        raise ApiError(400, "stream_options must be an object")
    return Body(req, chat, prompt_tokens, key, max_tokens, stream, bool((options or {}).get("include_usage")))


def _prompt_tokens(prompt, words_to_tokens: Callable[[int], int]) -> int:
    if isinstance(prompt, str):
        return words_to_tokens(len(prompt.split()))
    if isinstance(prompt, list) and all(type(t) is int and t >= 0 for t in prompt):
        return len(prompt)
    raise ApiError(400, "prompt must be a string or a list of token ids (batched prompts are not supported)")


def _chat_words(req: dict) -> int:
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
        elif isinstance(content, list):  # content parts: count the text ones
            words += sum(len(p["text"].split()) for p in content
                         if isinstance(p, dict) and isinstance(p.get("text"), str))
        elif content is not None:
            raise ApiError(400, "message content must be a string, a list of parts or null")
    return words


@dataclass(slots=True, frozen=True)
class StreamEvents:
    """Pre-encoded chunks of one stream: written as-is, so no JSON work per token."""
    role: bytes    # chat's opening {"role":"assistant","content":""} delta; b"" for completions
    token: bytes   # a content chunk with finish_reason null
    final: bytes   # the content chunk with finish_reason "length"
    usage: bytes   # the usage-only chunk, or b"" when include_usage is false


def stream_events(gen: GenRequest, rid: str, created: int, model: str) -> StreamEvents:
    obj = "chat.completion.chunk" if gen.chat else "text_completion"
    base = {"id": rid, "object": obj, "created": created, "model": model}

    def event(choices: list, **extra) -> bytes:
        return sse(orjson.dumps({**base, "choices": choices, **extra}))

    usage = b""
    if gen.include_usage:
        usage = event([], usage=usage_dict(gen.prompt_tokens, gen.output_tokens))
    if not gen.chat:
        choice = {"index": 0, "text": TOKEN_TEXT, "logprobs": None, "finish_reason": None,
                  "stop_reason": None}
        return StreamEvents(b"", event([choice], usage=None),
                            event([{**choice, "finish_reason": "length"}], usage=None), usage)
    delta = {"index": 0, "delta": {"content": TOKEN_TEXT}, "logprobs": None, "finish_reason": None}
    role = {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
            "finish_reason": None}
    return StreamEvents(event([role]), event([delta]),
                        event([{**delta, "finish_reason": "length", "stop_reason": None}]), usage)


def usage_dict(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens + completion_tokens,
            "completion_tokens": completion_tokens}


def full_response(gen: GenRequest, rid: str, created: int, model: str) -> bytes:
    """The non-streaming body (vLLM's CompletionResponse / ChatCompletionResponse .model_dump())."""
    text = TOKEN_TEXT * gen.output_tokens
    usage = {**usage_dict(gen.prompt_tokens, gen.output_tokens), "prompt_tokens_details": None}
    if gen.chat:
        choice = {"index": 0, "message": {"role": "assistant", "content": text, "tool_calls": []},
                  "logprobs": None, "finish_reason": "length", "stop_reason": None}
        return orjson.dumps({"id": rid, "object": "chat.completion", "created": created,
                             "model": model, "choices": [choice], "usage": usage,
                             "prompt_logprobs": None})
    choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "length",
              "stop_reason": None, "prompt_logprobs": None}
    return orjson.dumps({"id": rid, "object": "text_completion", "created": created,
                         "model": model, "choices": [choice], "usage": usage})


def stream_tail(ev: StreamEvents, done: bool) -> bytes:
    """What follows the last content chunk: usage chunk, [DONE] (unless a fault drops it), end."""
    return ev.usage + (DONE_EVENT if done else b"") + LAST_CHUNK
