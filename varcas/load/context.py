"""Fit a schedule's requests into the model's context length (vLLM's max_model_len).

A request whose prompt plus max_tokens exceeds the context is rejected by vLLM (HTTP 400)
before it is served: a workload with such requests measures the server's validation, not its
serving. varcas refuses it before sending, or, with --clip-to-context, shortens the prompt
first (down to one token) and then max_tokens, and says how many requests it changed.
"""
from __future__ import annotations

import numpy as np

from ..errors import VarcasError

CLIP_HELP = "shorten requests that exceed the server's max_model_len instead of refusing the workload"


def fit_to_context(input_len: np.ndarray, output_len: np.ndarray, max_len: int | None,
                   clip: bool, extra: int = 0) -> tuple[np.ndarray, np.ndarray, str | None]:
    """(input, output, note): the lengths unchanged when every request fits max_len, clipped
    when `clip`, else VarcasError. `extra` is what the server adds to each prompt (a chat
    template) and counts against the context; input lengths include it."""
    if max_len is None:
        return input_len, output_len, None
    total = input_len.astype(np.int64) + output_len
    over = total > max_len
    n = int(over.sum())
    if not n:
        return input_len, output_len, None
    worst = int(np.argmax(total))
    if not clip:
        raise VarcasError(
            f"{n} of {len(total)} requests need more than the server's max_model_len of {max_len} tokens "
            f"(the largest: {int(input_len[worst])} prompt + {int(output_len[worst])} output): "
            "shorten them (--input-len/--output-len, a workload file) or pass --clip-to-context")
    floor = 1 + extra
    if max_len <= floor:
        raise VarcasError(f"the server's max_model_len of {max_len} tokens leaves no room for a prompt "
                          f"and one output token")
    new_in = np.where(over, np.maximum(floor, max_len - output_len), input_len).astype(input_len.dtype)
    new_out = np.minimum(output_len, max_len - new_in).astype(output_len.dtype)
    note = (f"--clip-to-context: {n} of {len(total)} requests shortened to fit max_model_len {max_len} "
            f"(prompts first, then max_tokens)")
    return new_in, new_out, note
