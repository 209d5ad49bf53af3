"""Properties of the roofline that must hold for every shipped model and GPU (hypothesis)."""
from hypothesis import given, settings
from hypothesis import strategies as st

from varcas.roofline import decode, hardware, known_gpus, known_models, model, prefill

GPUS = [hardware(g) for g in known_gpus()]
FP16 = {n: model(n, "fp16") for n in known_models()}
AWQ = {n: model(n, "awq") for n in known_models()}
T4 = hardware("t4")
names = st.sampled_from(sorted(FP16))
contexts = st.integers(1, 131072)


@settings(max_examples=25, deadline=None)
@given(context=contexts)
def test_decode_at_batch_one_is_memory_bound_everywhere(context):
    for gpu in GPUS:
        for models in (FP16, AWQ):
            for m in models.values():
                r = decode(gpu, m, 1, context)
                assert r.bound == "memory" and r.ai < r.ridge, (gpu.gpu.name, m.config.name)


@settings(max_examples=60, deadline=None)
@given(name=names, b1=st.integers(1, 1024), extra=st.integers(1, 1024), context=contexts)
def test_decode_intensity_rises_with_batch(name, b1, extra, context):
    assert decode(T4, FP16[name], b1 + extra, context).ai > decode(T4, FP16[name], b1, context).ai


@settings(max_examples=60, deadline=None)
@given(name=names, batch=st.integers(1, 1024), c1=contexts, extra=st.integers(1, 65536))
def test_decode_intensity_moves_toward_attention_intensity_with_context(name, batch, c1, extra):
    # Each context token adds 4*H*d FLOPs and 2*K*d*kv_bytes cache bytes per layer, so AI tends
    # to 2H/(K*kv_bytes) as C grows, monotonically (a mediant): it falls with C when it is above
    # that and rises when below (dense models at B=1 with GQA; MoE models, whose weights give AI
    # well under B, at small batches too).
    m = FP16[name]
    limit = 2 * m.config.heads / (m.config.kv_heads * 2)
    a1, a2 = decode(T4, m, batch, c1).ai, decode(T4, m, batch, c1 + extra).ai
    assert min(a1, limit) <= a2 <= max(a1, limit)
    if a1 > limit * (1 + 1e-9):
        assert a2 < a1
    elif a1 < limit * (1 - 1e-9):
        assert a2 > a1


@settings(max_examples=40, deadline=None)
@given(name=names, context=st.integers(1, 256))
def test_four_bit_weights_raise_batch_one_decode_intensity_about_fourfold(name, context):
    # FLOPs are unchanged (dequantized to fp16); bytes shrink ~4x for the quantized linears
    # (0.5 + 2.5/128 bytes per weight vs 2), less overall because embedding rows, lm_head, norms
    # and the KV cache stay 16-bit.
    full, quant = decode(T4, FP16[name], 1, context), decode(T4, AWQ[name], 1, context)
    assert quant.flops == full.flops
    assert 3.0 < quant.ai / full.ai < 4.0


@settings(max_examples=60, deadline=None)
@given(name=names, batch=st.integers(1, 64), s1=st.integers(1, 16384), extra=st.integers(1, 16384))
def test_prefill_intensity_grows_with_prompt_length(name, batch, s1, extra):
    assert prefill(T4, FP16[name], batch, s1 + extra).ai > prefill(T4, FP16[name], batch, s1).ai


@settings(max_examples=60, deadline=None)
@given(name=names, gpu=st.sampled_from(GPUS), batch=st.integers(1, 512), length=st.integers(1, 32768),
       kind=st.sampled_from(["prefill", "decode"]))
def test_operator_sum_lies_between_the_phase_bound_and_its_double(name, gpu, batch, length, kind):
    r = (prefill if kind == "prefill" else decode)(gpu, FP16[name], batch, length)
    compute = sum(o.flops / gpu.gpu.peak("fp16") for o in r.ops)
    memory = r.bytes / gpu.gpu.bandwidth
    assert r.bound_time_s * (1 - 1e-12) <= r.time_s <= (compute + memory) * (1 + 1e-12)
    assert r.realistic_time_s > r.time_s
    assert (r.bound == "compute") == (compute >= memory)
