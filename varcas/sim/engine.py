"""The continuous-batching engine: vLLM's scheduler and paged KV cache, with no clock of its own.

One engine serves both clocks: the server (realtime.py) runs a step, waits for its end on the
wall clock and calls finish(); the offline run (offline.py) does the same in virtual time.
finish() returns the sequences that sampled a token and those that ended, so each driver does
its own per-token work (write a chunk, keep a time) in one loop, with no callback per token.
Each step is planned by schedule(), which returns the step's exact mix; its duration is the
roofline's predicted time for that mix (roofline.step_cost(...).time_s, efficiencies and the
per-step overhead included). The engine carries no hardware numbers of its own.

Scheduling, as vLLM does it (Setup.scheduler picks the engine):
  * FCFS waiting queue; running set capped by max_num_seqs; per-step token budget
    max_num_batched_tokens.
  * v1, vLLM 0.32's scheduler (v1/core/sched/scheduler.py, Scheduler.schedule): running
    sequences first, in admission order (decodes and the next chunk of unfinished prefills),
    then waiting requests into what is left of the budget: with chunked prefill each takes
    min(its remaining prompt, the budget left), without it a prompt that does not fit whole
    stops admission. A new request is admitted only if the blocks of its whole sequence are
    free (scheduler_reserve_full_isl, on by default), though it takes only its chunk's blocks;
    no watermark (SchedulerConfig.watermark is 0.0). The step mixes prefill chunks and decodes.
  * v0 with chunked prefill off (vLLM V0's default scheduler): if waiting requests can be
    admitted (budget, max_num_seqs, free KV blocks above the 1% watermark), the step runs only
    their whole prefills; otherwise it runs one decode token for every running sequence.
  * v0 with chunked prefill on: as v1, but admission checks only the chunk's blocks against
    the watermark.
  * Paged KV cache: a sequence with c tokens in its cache holds ceil(c / 16) blocks; a step
    that adds n tokens first allocates ceil((c + n) / 16) - held blocks.
  * Preemption by recompute: when a running sequence needs a block and none is free, the
    most recently admitted sequence is evicted (its blocks freed, its cache discarded) and
    put back at the head of the waiting queue; re-admitted, it prefills its prompt and the
    tokens it already generated, then carries on. A sequence that must evict itself waits.
    A step that preempted admits no new request (vLLM V1; V0 runs no prefill either).
  * The last chunk of a prefill samples a token, as vLLM does: a fresh prompt's first token
    comes at the end of its (last) prefill step.
The simulated model never samples EOS: a sequence ends at max_tokens (finish_reason length).

Invariant at every step boundary: for each running sequence, blocks = ceil(computed / 16);
free blocks = capacity - sum of held blocks >= 0. Liveness: the oldest running sequence is
never evicted for a younger one, and config.resolve guarantees one max_model_len sequence fits
in the whole cache, so every admitted request finishes.
"""
from __future__ import annotations

from array import array
from collections import deque

import numpy as np

from .. import roofline
from .config import BLOCK_SIZE, Setup, blocks_for

WAITING, RUNNING, FINISHED, ABORTED = 0, 1, 2, 3


class Seq:
    """One request inside the engine. `sink` belongs to the driver (a connection, a row)."""

    __slots__ = ("rid", "prompt", "max_tokens", "generated", "computed", "blocks", "state",
                 "arrival_ns", "first_ns", "sink")

    def __init__(self, rid: int, prompt: int, max_tokens: int, arrival_ns: int, sink=None):
        self.rid, self.prompt, self.max_tokens = rid, prompt, max_tokens
        self.generated = 0   # tokens sampled (and emitted) so far
        self.computed = 0    # tokens whose KV is in the cache
        self.blocks = 0      # KV blocks held
        self.state = WAITING
        self.arrival_ns = arrival_ns
        self.first_ns = 0    # when its first token was sampled
        self.sink = sink


class Step:
    """One planned step: prefill chunks (seq, new_tokens), decodes, and its duration."""

    __slots__ = ("chunks", "decodes", "dur_ns", "prefill_tokens")

    def __init__(self, chunks: list, decodes: list, dur_ns: int, prefill_tokens: int):
        self.chunks, self.decodes, self.dur_ns, self.prefill_tokens = chunks, decodes, dur_ns, prefill_tokens


class StepLog:
    """Per-step columns, appended by a driver: what the server did, step by step."""

    # as planned (running, waiting, used blocks: when the step starts), then the engine's
    # cumulative counters once the step has ended (what /metrics would say right after it)
    COLUMNS = ("start_ns", "dur_ns", "prefill_tokens", "decode_seqs", "running", "waiting", "used_blocks",
               "prompt_tokens_total", "generation_tokens_total", "finished_total", "preemptions_total")

    def __init__(self):
        self._cols = tuple(array("q") for _ in self.COLUMNS)

    def record(self, start_ns: int, step: Step, engine: "Engine") -> None:
        """Log `step`, just planned by `engine`, starting at start_ns."""
        c = self._cols
        c[0].append(start_ns)
        c[1].append(step.dur_ns)
        c[2].append(step.prefill_tokens)
        c[3].append(len(step.decodes))
        c[4].append(len(engine.running))
        c[5].append(engine.num_waiting)
        c[6].append(engine.total_blocks - engine.free_blocks)

    def ended(self, engine: "Engine") -> None:
        """The step logged last has ended (engine.finish ran): its counters as they stand now."""
        c = self._cols
        c[7].append(engine.prompt_tokens)
        c[8].append(engine.generation_tokens)
        c[9].append(engine.finished)
        c[10].append(engine.preemptions)

    def __len__(self) -> int:
        return len(self._cols[0])

    def arrays(self) -> dict[str, np.ndarray]:
        """The columns as int64 arrays, cut to the steps that ended (an interrupted run may have
        logged one that did not)."""
        n = min(len(col) for col in self._cols)
        return {name: np.frombuffer(col, dtype=np.int64)[:n].copy() if n else np.zeros(0, np.int64)
                for name, col in zip(self.COLUMNS, self._cols)}


class Engine:
    """Scheduler + KV block accounting. Drivers call add/abort, then schedule() and, when the
    step's time has passed, finish(step, t_ns)."""

    def __init__(self, setup: Setup):
        self._time_s = roofline.step_cost(setup.hw, setup.model).time_s
        self.chunked = setup.chunked_prefill
        self.classic = setup.scheduler == "v0" and not setup.chunked_prefill
        self.whole_sequence_fits = setup.scheduler == "v1"   # V1's admission gate
        self.max_num_seqs = setup.max_num_seqs
        self.budget = setup.max_num_batched_tokens
        self.watermark = setup.watermark_blocks
        self.total_blocks = self.free_blocks = setup.num_blocks
        self.waiting: deque[Seq] = deque()
        self.running: list[Seq] = []   # in admission order: the tail is evicted first
        self._dead = 0                  # aborted sequences still in `waiting` (removed lazily)
        self.preemptions = self.prompt_tokens = self.generation_tokens = 0
        self.finished = self.aborted = self.steps = 0

    @property
    def num_waiting(self) -> int:
        return len(self.waiting) - self._dead

    @property
    def idle(self) -> bool:
        return not self.running and self.num_waiting == 0

    def add(self, seq: Seq) -> None:
        self.waiting.append(seq)

    def abort(self, seq: Seq) -> None:
        """The client went away: drop the sequence wherever it is, freeing its blocks."""
        if seq.state == WAITING:
            self._dead += 1
        elif seq.state == RUNNING:
            self.free_blocks += seq.blocks
            seq.blocks = 0
            self.running.remove(seq)
        else:
            return
        seq.state = ABORTED
        self.aborted += 1

    # -- planning -------------------------------------------------------------------------
    def schedule(self) -> Step | None:
        """Plan the next step (allocating its blocks); None when there is nothing to run."""
        if self.classic:
            chunks, decodes, contexts = self._plan_classic()
        else:
            chunks, decodes, contexts = self._plan_mixed()
        if not chunks and not decodes:
            return None
        pairs = [(n, s.computed) for s, n in chunks]
        self.steps += 1
        dur_ns = max(1, round(self._time_s(pairs, contexts) * 1e9))
        return Step(chunks, decodes, dur_ns, sum(n for n, _ in pairs))

    def _plan_classic(self):
        if self.waiting:
            chunks = self._admit(self.budget)
            if chunks:
                return chunks, [], []
        running, free, preempted = self.running, self.free_blocks, []
        if free >= len(running):   # a block for everyone who needs one: nobody is preempted
            for s in running:
                if s.computed % BLOCK_SIZE == 0:
                    s.blocks += 1
                    free -= 1
            self.free_blocks = free
            return [], running[:], [s.computed + 1 for s in running]
        decodes, contexts = [], []
        i = 0
        while i < len(running):
            s = running[i]
            if s.computed % BLOCK_SIZE == 0:   # the next token starts a new block
                free, ok = self._make_room(s, 1, free, preempted)
                if not ok:
                    break
                s.blocks += 1
            decodes.append(s)
            contexts.append(s.computed + 1)
            i += 1
        self.free_blocks = free
        self.waiting.extendleft(preempted)   # the oldest victim ends up first
        return [], decodes, contexts

    def _plan_mixed(self):
        running, free, preempted = self.running, self.free_blocks, []
        chunks, decodes, contexts = [], [], []
        budget, i = self.budget, 0
        while i < len(running) and budget > 0:
            s = running[i]
            computed = s.computed
            left = s.prompt + s.generated - computed
            if left == 1 and s.generated:   # a decode (the common case, kept short): 1 token,
                if computed % BLOCK_SIZE == 0:   # a new block when it starts one
                    if free:
                        free -= 1
                    else:
                        free, ok = self._make_room(s, 1, free, preempted)
                        if not ok:
                            break
                    s.blocks += 1
                decodes.append(s)
                contexts.append(computed + 1)
                budget -= 1
                i += 1
                continue
            n = min(left, budget)
            need = blocks_for(computed + n) - s.blocks
            if need:
                free, ok = self._make_room(s, need, free, preempted)
                if not ok:
                    break
                s.blocks += need
            chunks.append((s, n))
            budget -= n
            i += 1
        self.free_blocks = free
        if preempted:
            self.waiting.extendleft(preempted)
        else:
            chunks += self._admit(budget)
        return chunks, decodes, contexts

    def _admit(self, budget: int) -> list:
        """Move waiting requests (FCFS) into the running set while the token budget, the
        sequence cap and the free blocks above the watermark allow; returns their chunks."""
        waiting, running, chunks = self.waiting, self.running, []
        free, cap, floor = self.free_blocks, self.max_num_seqs, self.watermark
        while waiting and len(running) < cap and budget > 0:
            s = waiting[0]
            if s.state == ABORTED:
                waiting.popleft()
                self._dead -= 1
                continue
            total = s.prompt + s.generated   # a preempted sequence recomputes its output too
            n = total
            if n > budget:
                if not self.chunked:
                    break
                n = budget
            need = blocks_for(n)
            if free - (blocks_for(total) if self.whole_sequence_fits else need) < floor:
                break
            waiting.popleft()
            s.state, s.blocks = RUNNING, need
            free -= need
            budget -= n
            running.append(s)
            chunks.append((s, n))
        self.free_blocks = free
        return chunks

    def _make_room(self, s: Seq, need: int, free: int, preempted: list) -> tuple[int, bool]:
        """Evict the youngest running sequences until `need` blocks are free for s; returns
        (free blocks left after s takes them, True), or (free, False) if s evicted itself."""
        running = self.running
        while need > free:
            victim = running.pop()
            free += victim.blocks
            victim.blocks = victim.computed = 0
            victim.state = WAITING
            self.preemptions += 1
            preempted.append(victim)
            if victim is s:
                return free, False
        return free - need, True

    # -- completion -----------------------------------------------------------------------
    def finish(self, step: Step, t_ns: int) -> tuple[list[Seq], list[Seq]]:
        """The step ended at t_ns: advance its sequences. Returns (sampled, finished): those
        that sampled a token at t_ns (seq.generated counts it), and those of them that reached
        max_tokens (their blocks are free again)."""
        sampled = []
        for s, n in step.chunks:
            if s.state != RUNNING:   # aborted while the step ran
                continue
            s.computed += n
            if s.computed == s.prompt + s.generated:   # last chunk: it samples a token
                if s.generated == 0:
                    s.first_ns = t_ns
                    self.prompt_tokens += s.prompt
                sampled.append(s)
        for s in step.decodes:
            if s.state == RUNNING:
                s.computed += 1
                sampled.append(s)
        finished = []
        for s in sampled:
            s.generated += 1
            if s.generated == s.max_tokens:
                finished.append(s)
        self.generation_tokens += len(sampled)
        if finished:
            for s in finished:
                s.state = FINISHED
                self.free_blocks += s.blocks
                s.blocks = 0
            self.finished += len(finished)
            self.running = [s for s in self.running if s.state == RUNNING]
        return sampled, finished
