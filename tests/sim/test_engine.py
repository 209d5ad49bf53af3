"""The engine step by step, on hand-worked scenarios: what each step runs, what it costs (the
roofline's time for exactly that mix), when tokens come out, how KV blocks move."""
from __future__ import annotations

from varcas.sim.engine import ABORTED, FINISHED, WAITING, Seq

from .helpers import V0, RecordingEngine, run_steps, setup_with, step_ns


def test_classic_steps_charge_the_roofline_time_of_their_exact_mix():
    setup = setup_with(num_blocks=100, **V0)
    eng = RecordingEngine(setup)
    eng.add(Seq(0, 20, 3, 0))
    eng.add(Seq(1, 10, 2, 0))
    steps, _ = run_steps(eng)
    # 1: both prefills (the last prefill token samples the first output token);
    # 2: decodes at contexts 21 and 11 (B ends); 3: A alone at context 22.
    assert [[(s.rid, n) for s, n in st.chunks] for st in steps] == [[(0, 20), (1, 10)], [], []]
    assert [[s.rid for s in st.decodes] for st in steps] == [[], [0, 1], [0]]
    expected = [step_ns(setup, [(20, 0), (10, 0)], []), step_ns(setup, [], [21, 11]), step_ns(setup, [], [22])]
    assert [st.dur_ns for st in steps] == expected
    t1, t2, t3 = expected[0], sum(expected[:2]), sum(expected)
    assert eng.tokens == {0: [t1, t2, t3], 1: [t1, t2]}
    assert eng.finished_at == {1: t2, 0: t3}
    assert eng.free_blocks == 100 and eng.prompt_tokens == 30 and eng.generation_tokens == 5


def test_classic_prefill_step_pauses_running_decodes():
    setup = setup_with(num_blocks=100, **V0)
    eng = RecordingEngine(setup)
    eng.add(Seq(0, 16, 4, 0))
    first = eng.schedule()
    eng.finish(first, 10)
    eng.add(Seq(1, 8, 2, 10))
    second = eng.schedule()   # B's prefill only: A gets no token in this step
    assert [(s.rid, n) for s, n in second.chunks] == [(1, 8)] and second.decodes == []
    assert second.dur_ns == step_ns(setup, [(8, 0)], [])
    eng.finish(second, 20)
    third = eng.schedule()
    assert [s.rid for s in third.decodes] == [0, 1]
    assert third.dur_ns == step_ns(setup, [], [17, 9])
    assert eng.tokens == {0: [10], 1: [20]}


def test_classic_token_budget_defers_the_next_prompt():
    eng = RecordingEngine(setup_with(num_blocks=100, max_num_batched_tokens=32, **V0))
    for rid in range(2):
        eng.add(Seq(rid, 20, 2, 0))
    steps, _ = run_steps(eng)
    assert [[(s.rid, n) for s, n in st.chunks] for st in steps[:2]] == [[(0, 20)], [(1, 20)]]


def test_chunked_prefill_splits_prompts_and_puts_decodes_first():
    setup = setup_with(num_blocks=100, max_num_batched_tokens=8)   # vLLM 0.32's engine, chunked
    eng = RecordingEngine(setup)
    eng.add(Seq(0, 4, 3, 0))
    first = eng.schedule()
    assert [(s.rid, n) for s, n in first.chunks] == [(0, 4)]
    eng.finish(first, 1)
    eng.add(Seq(1, 20, 1, 1))
    plans = []
    while (st := eng.schedule()) is not None:
        plans.append(([s.rid for s in st.decodes], [(s.rid, n) for s, n in st.chunks], st.dur_ns))
        eng.finish(st, 2 + len(plans))
    # A decodes first (1 token of the budget of 8); B's prompt fills the rest, chunk by chunk,
    # each chunk attending to what earlier chunks put in the cache.
    assert plans == [
        ([0], [(1, 7)], step_ns(setup, [(7, 0)], [5])),
        ([0], [(1, 7)], step_ns(setup, [(7, 7)], [6])),
        ([], [(1, 6)], step_ns(setup, [(6, 14)], [])),
    ]
    assert eng.tokens == {0: [1, 3, 4], 1: [5]}   # B's only token ends its last chunk


def test_v1_runs_running_sequences_first_then_fills_the_budget_with_new_prefills():
    # vLLM 0.32 (Scheduler.schedule): decodes and unfinished chunks of running requests, in
    # admission order, then waiting prompts chunked into what is left of the 64-token budget.
    setup = setup_with(num_blocks=100, max_num_batched_tokens=64, max_num_seqs=8)
    eng = RecordingEngine(setup)
    for rid, prompt in enumerate((40, 50)):
        eng.add(Seq(rid, prompt, 5, 0))
    first = eng.schedule()   # A whole (40), B's first 24 tokens: one mixed prefill step
    assert [(s.rid, n) for s, n in first.chunks] == [(0, 40), (1, 24)] and first.decodes == []
    eng.finish(first, 10)
    eng.add(Seq(2, 30, 5, 10))
    eng.add(Seq(3, 30, 5, 10))
    second = eng.schedule()   # A decodes, B's last 26, then C's 30 and D's first 7 tokens
    assert [s.rid for s in second.decodes] == [0]
    assert [(s.rid, n) for s, n in second.chunks] == [(1, 26), (2, 30), (3, 7)]
    assert second.dur_ns == step_ns(setup, [(26, 24), (30, 0), (7, 0)], [41])
    assert sum(n for _, n in second.chunks) + len(second.decodes) == 64   # the budget, exactly


def test_v1_admits_a_request_only_if_its_whole_sequence_fits():
    # scheduler_reserve_full_isl: a 64-token prompt needs 4 free blocks to start, even though its
    # first chunk (16 tokens) takes one; vLLM V0's chunked scheduler checked the chunk alone.
    def first_chunks(**engine):
        eng = RecordingEngine(setup_with(num_blocks=5, max_num_batched_tokens=16, watermark_blocks=0, **engine))
        eng.add(Seq(0, 32, 40, 0))   # prefills in two chunks of 16: 2 blocks
        for t in (1, 2):
            eng.finish(eng.schedule(), t)
        eng.add(Seq(1, 64, 1, 2))
        return [(s.rid, n) for s, n in eng.schedule().chunks], eng.free_blocks
    assert first_chunks() == ([], 2)   # A's decode takes a third block: 2 free < 4, B waits
    assert first_chunks(scheduler="v0", chunked_prefill=True) == ([(1, 15)], 1)


def test_v1_without_chunked_prefill_mixes_decodes_and_whole_prompts():
    # --no-enable-chunked-prefill in vLLM 0.32: decodes still go first and share the step with
    # whole prompts; a prompt that does not fit what is left of the budget waits for the next.
    setup = setup_with(num_blocks=100, max_num_batched_tokens=40, chunked_prefill=False)
    eng = RecordingEngine(setup)
    eng.add(Seq(0, 20, 4, 0))
    eng.finish(eng.schedule(), 1)
    eng.add(Seq(1, 19, 2, 1))
    eng.add(Seq(2, 30, 2, 1))
    step = eng.schedule()
    assert [s.rid for s in step.decodes] == [0] and [(s.rid, n) for s, n in step.chunks] == [(1, 19)]
    eng.finish(step, 2)
    step = eng.schedule()   # 2 decodes + C's 30 = 32 <= 40
    assert [s.rid for s in step.decodes] == [0, 1] and [(s.rid, n) for s, n in step.chunks] == [(2, 30)]


def test_preemption_evicts_the_youngest_and_recomputes_its_tokens():
    # 4 blocks = 64 tokens for two sequences that each grow to 55: one must give way.
    eng = RecordingEngine(setup_with(num_blocks=4, **V0))
    eng.add(Seq(0, 16, 40, 0))
    eng.add(Seq(1, 16, 40, 0))
    steps, _ = run_steps(eng)
    assert eng.preemptions == 1
    recompute = [st for st in steps if st.chunks and st.chunks[0][0].rid == 1 and st.chunks[0][1] != 16]
    # B had 17 tokens when evicted: it prefills its 16 prompt tokens plus those 17 again.
    assert [(s.rid, n) for st in recompute for s, n in st.chunks] == [(1, 33)]
    assert len(eng.tokens[0]) == len(eng.tokens[1]) == 40
    assert eng.tokens[1][17] > eng.tokens[0][-1]   # B resumed only once A had finished
    assert all(b > a for a, b in zip(eng.tokens[1], eng.tokens[1][1:]))
    assert eng.free_blocks == 4 and not eng.running and eng.num_waiting == 0


def test_max_num_seqs_caps_the_running_set():
    eng = RecordingEngine(setup_with(num_blocks=100, max_num_seqs=2))
    for rid in range(3):
        eng.add(Seq(rid, 8, 3, 0))
    steps, _ = run_steps(eng)
    assert max(len(st.decodes) + len(st.chunks) for st in steps) == 2
    assert eng.tokens[2][0] > eng.finished_at[0]   # C started after A finished


def test_admission_keeps_the_watermark_free():
    eng = RecordingEngine(setup_with(num_blocks=10, watermark_blocks=2, **V0))
    eng.add(Seq(0, 128, 2, 0))   # 8 blocks: 10 - 8 = 2 left, at the watermark: admitted
    eng.add(Seq(1, 16, 2, 0))    # 1 more would leave 1 < 2: waits
    step = eng.schedule()
    assert [s.rid for s, _ in step.chunks] == [0] and eng.num_waiting == 1


def test_abort_waiting_running_and_in_flight():
    eng = RecordingEngine(setup_with(num_blocks=100, max_num_seqs=2))
    a, b, c = Seq(0, 16, 5, 0), Seq(1, 16, 5, 0), Seq(2, 16, 5, 0)
    for s in (a, b, c):
        eng.add(s)
    step = eng.schedule()         # a and b prefill; c waits (max_num_seqs 2)
    eng.abort(b)                  # aborted while its prefill runs: no token, block back
    eng.finish(step, 5)
    assert b.state == ABORTED and set(eng.tokens) == {0} and eng.free_blocks == 99
    eng.abort(c)                  # aborted while waiting: never scheduled
    assert c.state == ABORTED and eng.num_waiting == 0
    step = eng.schedule()
    assert [s.rid for s in step.decodes] == [0] and not step.chunks
    eng.abort(a)
    eng.finish(step, 9)
    assert eng.free_blocks == 100 and eng.running == [] and eng.idle and eng.aborted == 3
    assert eng.tokens == {0: [5]} and eng.finished_at == {}


def test_finished_sequences_release_every_block():
    eng = RecordingEngine(setup_with(num_blocks=50))
    seqs = [Seq(rid, 10 + 7 * rid, 5 + rid, 0) for rid in range(6)]
    for s in seqs:
        eng.add(s)
    run_steps(eng)
    assert all(s.state == FINISHED and s.blocks == 0 for s in seqs)
    assert eng.free_blocks == 50 and eng.finished == 6
    assert WAITING not in {s.state for s in seqs}
