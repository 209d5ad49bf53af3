"""Conversations in the open-loop engine: a turn is released when the one before it ends.

The clock sends the first turns (requests 0..C-1, layout in varcas.schedule.shapes); every
later turn depends on its conversation's previous one. When request i ends well, its next turn
i + C goes on a min-heap due think_ns[i + C] after i's end, and the engine's timer serves the
heap beside the schedule. When it fails (any error kind), its conversation ends there: the
later turns are returned to be recorded as `cancelled`, and errors.log says which turn failed.
Per request: one heap push and pop, nothing per token.

conversations.parquet, beside requests.parquet (whose row schema it leaves alone), maps each
request to its conversation and turn: request_id, conversation, turn (0-based) and follows
(the request id of the previous turn, null for a first turn).
"""
from __future__ import annotations

import heapq
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CONVERSATIONS = "conversations.parquet"
NEVER = 1 << 62


class Turns:
    """The follow-up turns of C conversations over n requests, released as earlier turns end."""

    def __init__(self, conversations: int, think_ns: np.ndarray) -> None:
        self.c = conversations
        self.n = len(think_ns)
        self.think_ns = think_ns
        self.due: list[tuple[int, int]] = []  # (due ns, request), a heap
        self.open = self.n - conversations  # later turns neither sent nor cancelled yet

    def ended(self, i: int, ok: bool, end_ns: int) -> list[int]:
        """Request i ended: queue its next turn (ok), or return the conversation's later turns,
        which will never be sent."""
        k = i + self.c
        if k >= self.n:
            return []
        if ok:
            heapq.heappush(self.due, (end_ns + int(self.think_ns[k]), k))
            return []
        later = list(range(k, self.n, self.c))
        self.open -= len(later)
        return later

    def next_due(self) -> int:
        return self.due[0][0] if self.due else NEVER

    def pop(self) -> tuple[int, int]:
        """(due ns, request) of the earliest queued turn, which is sent now."""
        self.open -= 1
        return heapq.heappop(self.due)

    def stop(self) -> None:
        """Sending stopped: queued and future turns will not be sent (nor recorded, like requests
        the clock had not reached)."""
        self.due.clear()
        self.open = 0


def write_conversations(run_dir: Path, conversations: int, n: int) -> None:
    """conversations.parquet: request_id -> conversation, turn, follows (see the module docstring)."""
    ids = np.arange(n, dtype=np.int64)
    follows = pa.array(ids - conversations, mask=ids < conversations)
    table = pa.table({"request_id": ids, "conversation": ids % conversations, "turn": (ids // conversations).astype(
        np.int32), "follows": follows})
    pq.write_table(table, run_dir / CONVERSATIONS)
