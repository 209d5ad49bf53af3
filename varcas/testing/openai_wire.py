"""OpenAI/vLLM wire format for the test server: request validation and response bytes.

The byte layout mirrors vLLM's OpenAI server (vllm/entrypoints/openai/protocol.py,
serving_completion.py, serving_chat.py), so a client tested here is tested against what
vLLM actually sends:
- completions chunks are pydantic `model_dump_json(exclude_unset=False)`: every field,
  nulls included (`logprobs`, `finish_reason`, `stop_reason`, `usage`);
- chat chunks are `model_dump_json(exclude_unset=True)`: only fields vLLM set, so content
  deltas carry no `usage` key and only the finishing delta carries `stop_reason`;
- the final usage chunk (stream_options.include_usage) drops nulls and keeps UsageInfo's
  field order: prompt_tokens, total_tokens, completion_tokens;
- errors are ErrorResponse {"object":"error","message","type","param","code"}; an error
  inside a stream is `json.dumps({"error": ...})`, hence Python's ", "/": " separators.
Every generated token is the constant text TOKEN_TEXT: the server is about timing, not text.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import orjson

from .http11 import LAST_CHUNK, chunk

TOKEN_TEXT = " tok"
MAX_TOKENS_LIMIT = 1_000_000
DONE_EVENT = chunk(b"data: [DONE]\n\n")
GARBAGE_EVENT = chunk(b"data: {this is not json\n\n")
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


def error_dict(status: int, message: str) -> dict:
    return {"object": "error", "message": message, "type": _ERROR_TYPES.get(status, "Error"),
            "param": None, "code": status}


def error_body(status: int, message: str) -> bytes:
    return orjson.dumps(error_dict(status, message))


def stream_error_event(message: str) -> bytes:
    """vLLM's in-stream error event (create_streaming_error_response: HTTP status is already 200)."""
    return sse(json.dumps({"error": error_dict(400, message)}).encode())


def sse(payload: bytes) -> bytes:
    """One SSE `data:` event in its own HTTP chunk, as uvicorn sends each generator yield."""
    return chunk(b"data: " + payload + b"\n\n")


def models_body(model: str, created: int) -> bytes:
    card = {"id": model, "object": "model", "created": created, "owned_by": "vllm", "root": model,
            "parent": None, "max_model_len": None, "permission": []}
    return orjson.dumps({"object": "list", "data": [card]})


def parse_gen_request(body: bytes, chat: bool, default_tokens: int, model: str) -> GenRequest:
    """Validate a completions (chat=False) or chat completions body; ApiError when invalid."""
    try:
        req = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(req, dict):
        raise ApiError(400, "request body must be a JSON object")
    if req.get("model") not in (None, model):
        raise ApiError(404, f"The model `{req['model']}` does not exist.")
    if req.get("n") not in (None, 1):
        raise ApiError(400, "only n=1 is supported")
    prompt_tokens = _chat_prompt_tokens(req) if chat else _completion_prompt_tokens(req)
    key = "max_completion_tokens" if chat and req.get("max_completion_tokens") is not None else "max_tokens"
    output_tokens = req.get(key)
    if output_tokens is None:
        output_tokens = default_tokens
    if type(output_tokens) is not int or not 1 <= output_tokens <= MAX_TOKENS_LIMIT:
        raise ApiError(400, f"{key} must be an integer in [1, {MAX_TOKENS_LIMIT}]")
    stream = req.get("stream", False)
    options = req.get("stream_options") or {}
    if type(stream) is not bool or not isinstance(options, dict):
        raise ApiError(400, "stream must be a boolean and stream_options an object")
    return GenRequest(chat, stream, output_tokens, prompt_tokens, bool(options.get("include_usage")))


def _completion_prompt_tokens(req: dict) -> int:
    prompt = req.get("prompt")
    if isinstance(prompt, str):
        return len(prompt.split())
    if isinstance(prompt, list) and all(type(t) is int for t in prompt):
        return len(prompt)
    raise ApiError(400, "prompt must be a string or a list of token ids")


def _chat_prompt_tokens(req: dict) -> int:
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
