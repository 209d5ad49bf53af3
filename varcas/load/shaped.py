"""Prompts made of more than one window: shared prefixes and conversations (shapes in
varcas.schedule.shapes), and the texts of a dataset. Each builds request i's prompt bytes
when the dispatcher sends it, from pieces encoded once: a few slices and joins per request
(per turn of a conversation), never work per token.

Pieces of request i (C conversations; i is turn k of conversation c = i mod C):
  prefix   group c mod G: the prompt builder's window of a virtual request 2n + g
  message  request r's own message: the window of request r (for chat, the first message is
           short by the chat template's tokens, so the prompt has its planned length)
  answer   turn j's answer as placeholder tokens: the window of virtual request n + r, as
           long as its max_tokens
Completions prompts are the pieces' token IDs in one array (token-exact); chat prompts are
messages: user (prefix + message 0), assistant (answer 0), user (message 1), ...
"""
from __future__ import annotations

import numpy as np
import orjson

from ..schedule import Schedule
from ..schedule.datasets import TextSample
from .prompts import TextPrompts, TokenPrompts
from .request import CHAT_ASSISTANT, CHAT_USER


class ShapedPrompts:
    """fragment(i): request i's prompt (a JSON value) in a shared-prefix or conversation schedule."""

    def __init__(self, prompts: TokenPrompts | TextPrompts, sched: Schedule, chat: bool, template: int) -> None:
        assert sched.user_len is not None  # a shaped schedule has its messages' lengths
        n, shape = len(sched), sched.shape
        self._p = prompts
        self._n, self._c, self._chat = n, sched.timed, chat
        self._user, self._out = sched.user_len, sched.output_len
        self._first = np.maximum(sched.user_len[:sched.timed].astype(np.int64) - template, 1)
        self._prefixes = [prompts.inner(2 * n + g, shape.prefix_len) for g in range(shape.prefix_groups)] \
            if shape.prefix_len else []

    def fragment(self, i: int) -> bytes:
        """The prefix, then for each turn up to i's: its message, and its answer before the next."""
        p, c, n = self._p, i % self._c, self._n
        head = [self._prefixes[c % len(self._prefixes)]] if self._prefixes else []
        first = head + [p.inner(c, int(self._first[c]))]
        turns = range(c + self._c, i + 1, self._c)  # the later turns' requests
        answers = [p.inner(n + r - self._c, int(self._out[r - self._c])) for r in turns]
        messages = [p.inner(r, int(self._user[r])) for r in turns]
        if not self._chat:
            return p.join(first + [x for pair in zip(answers, messages) for x in pair])
        parts = [p.join(first)]
        for answer, message in zip(answers, messages):
            parts += [CHAT_ASSISTANT, p.join([answer]), CHAT_USER, p.join([message])]
        return b"".join(parts)


class DatasetTexts:
    """fragment(i): request i's dataset text as a JSON string, encoded once per distinct text."""

    def __init__(self, sample: TextSample) -> None:
        self._json = [orjson.dumps(t) for t in sample.texts]
        self._index = sample.index

    def fragment(self, i: int) -> bytes:
        return self._json[self._index[i]]
