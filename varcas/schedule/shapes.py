"""Workload shapes: how requests share tokens, where prefix caching and KV pressure show up.

  shared prefix  prefix_groups distinct prefixes of prefix_len tokens each; request i's prompt
                 starts with prefix (conversation of i) mod prefix_groups, then its own tokens.
                 One group is vLLM's --random-prefix-len. Prompt lengths include the prefix.
  conversations  turns > 1: the arrival process starts conversations, and turn k+1 of one is
                 sent think time after its turn k's answer ended (think: fixed, or exponential
                 of mean think_s), with everything before as its prompt: the earlier turns'
                 user messages and answers, then a new user message. Answers are max_tokens
                 long (ignore_eos), so every prompt length is known before the run; the answer
                 a prompt carries is placeholder tokens of that length, not the text the
                 server generated (varcas keeps no response text), so a prefix cache can serve
                 the earlier turns' prompts from it, but not the answers' own blocks.

Layout of a conversation schedule: C conversations of T turns are n = C*T requests, turn-major:
request i is turn i // C of conversation i % C, so requests 0..C-1 (the first turns) are the
ones on the clock, in arrival order, and request i's next turn is i + C.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import VarcasError
from .workloads import INT32_MAX

THINK = ("exponential", "fixed")


@dataclass(frozen=True)
class Shape:
    """Shared prefixes and conversations of a schedule (see the module docstring)."""

    prefix_len: int = 0
    prefix_groups: int = 1
    turns: int = 1
    think_s: float = 0.0
    think: str = "exponential"

    def __post_init__(self) -> None:
        for name, low in (("prefix_len", 0), ("prefix_groups", 1), ("turns", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= INT32_MAX:
                raise VarcasError(f"{name} must be an integer >= {low}, got {value!r}")
        if isinstance(self.think_s, bool) or not isinstance(self.think_s, (int, float)) \
                or not 0 <= self.think_s <= 86400:
            raise VarcasError(f"think time must be between 0 and 86400 seconds, got {self.think_s!r}")
        if self.think not in THINK:
            raise VarcasError(f"unknown think-time distribution {self.think!r}; choose one of {', '.join(THINK)}")

    @property
    def plain(self) -> bool:
        """Independent requests with no shared prefix: every prompt is one window of its own."""
        return self.prefix_len == 0 and self.turns == 1

    def describe(self, conversations: int) -> dict:
        """What run.json records about the shape."""
        out: dict = {}
        if self.prefix_len:
            out["shared_prefix"] = {"groups": self.prefix_groups, "prefix_len": self.prefix_len}
        if self.turns > 1:
            out["conversations"] = {"count": conversations, "turns": self.turns, "think_s": self.think_s,
                                    "think": self.think, "file": "conversations.parquet"}
        return out


def conversations_for(num_requests: int | None, turns: int) -> int | None:
    """Conversations that hold num_requests requests (rounded up to whole conversations)."""
    return None if num_requests is None else math.ceil(num_requests / turns)


def prompt_lengths(user_len: np.ndarray, output_len: np.ndarray, shape: Shape) -> np.ndarray:
    """Each request's prompt length: the prefix, the earlier turns' messages and answers of its
    conversation, its own message; a one-line error when one passes INT32_MAX."""
    turns = shape.turns
    user = user_len.astype(np.int64).reshape(turns, -1)
    answered = user + output_len.astype(np.int64).reshape(turns, -1)
    earlier = np.cumsum(answered, axis=0) - answered
    total = (shape.prefix_len + earlier + user).reshape(-1)
    if len(total) and total.max() > INT32_MAX:
        raise VarcasError(f"a prompt of {int(total.max())} tokens: the conversation is too long")
    return total.astype(np.int32)


def think_times(shape: Shape, n: int, rng: np.random.Generator) -> np.ndarray:
    """int64 ns of think time before each request (0 for first turns, which the clock sends)."""
    conversations = n // shape.turns
    if shape.think == "fixed":
        think = np.full(n, shape.think_s * 1e9)
    else:
        think = rng.exponential(shape.think_s * 1e9, n) if shape.think_s else np.zeros(n)
    think[:conversations] = 0
    return np.rint(think).astype(np.int64)
