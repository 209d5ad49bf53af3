"""Exact FLOPs, bytes, times and capacities, each derived by hand in the test."""
import itertools
import math

import pytest

from varcas.roofline import decode, decode_sweep, hardware, memory, model, prefill
from varcas.roofline.formulas import expected_experts

T4 = hardware("t4")
P, EMB = 6_738_415_616, 32000 * 4096  # Llama-2-7B parameters, embedding table
L, H, D, h, I, V = 32, 32, 128, 4096, 11008, 32000


@pytest.fixture(scope="module")
def fp16():
    return model("llama-2-7b", "fp16")


@pytest.mark.parametrize("context", [1, 512, 4096])
def test_decode_flops_of_one_token(fp16, context):
    # 2 FLOPs per non-embedding parameter, plus QK^T and PV: 2*d each per head, key and layer.
    expected = 2 * (P - EMB) + 4 * L * H * D * context
    assert decode(T4, fp16, 1, context).flops == expected
    assert decode(T4, fp16, 1, 512).flops == 13_483_122_688


def _decode_activation_bytes(a=2, kv=2):
    """Per-token activation bytes of one decode step of Llama-2-7B, operator by operator."""
    per_layer = (4 * h * a                      # attn_norm: x, residual in and out
                 + (h + 3 * h) * a              # qkv_proj: x in, q k v out
                 + 2 * h * a + 2 * h * (a + kv)  # attention: q in, o out, new k v in and cached
                 + (h + h) * a                  # o_proj
                 + 4 * h * a                    # mlp_norm
                 + (h + 2 * I) * a              # gate_up_proj
                 + 3 * I * a                    # silu_and_mul: 2I in, I out
                 + (I + h) * a)                 # down_proj
    return h * (2 + a) + L * per_layer + 3 * h * a + (h + V) * a  # embed row, final norm, logits


@pytest.mark.parametrize("context", [1, 2048])
def test_decode_bytes_of_one_token(fp16, context):
    weights = 2 * (P - EMB)  # every non-embedding weight read once; the table only by row
    kv_read = 524_288 * context
    assert _decode_activation_bytes() == 10_107_392
    assert decode(T4, fp16, 1, context).bytes == weights + kv_read + _decode_activation_bytes()


def test_decode_batch_shares_the_weights(fp16):
    one, eight = decode(T4, fp16, 1, 700), decode(T4, fp16, 8, 700)
    weights = 2 * (P - EMB)
    assert eight.flops == 8 * one.flops
    assert eight.bytes - weights == pytest.approx(8 * (one.bytes - weights), rel=1e-15)


def test_prefill_flops_last_token_logits_and_causal_attention(fp16):
    b, s = 2, 128
    per_token = 2 * (P - EMB - V * h)  # every layer and norm, for every prompt token
    logits = 2 * V * h * b  # lm_head for the last token of each prompt only
    attention = 4 * L * H * D * b * s * (s + 1) // 2
    assert prefill(T4, fp16, b, s).flops == per_token * b * s + logits + attention


def test_naive_attention_materialises_the_scores(fp16):
    naive = model("llama-2-7b", "fp16", attention="naive")
    b, s = 1, 256
    fused, full = prefill(T4, fp16, b, s), prefill(T4, naive, b, s)
    # The full S x S rectangle is computed, and each score is written, read+written by softmax
    # and read by PV: 4 accesses of 2 bytes, per head and layer.
    assert full.flops - fused.flops == 4 * L * H * D * (s * s - s * (s + 1) // 2)
    assert full.bytes - fused.bytes == 4 * 2 * L * H * s * s


def test_awq_decode_reads_four_bit_weights(fp16):
    awq = model("llama-2-7b", "awq")
    linear = 32 * (4 * h * h + 3 * h * I)
    saved = linear * 2 - (linear / 2 + linear / 128 * 2.5)
    one, q = decode(T4, fp16, 1, 512), decode(T4, awq, 1, 512)
    assert q.flops == one.flops  # dequantized, multiplied in fp16
    assert one.bytes - q.bytes == saved


def test_roofline_quantities_of_a_phase(fp16):
    r = decode(T4, fp16, 1, 512)
    assert r.peak == 65e12 and r.ridge == 203.125
    assert r.ai == r.flops / r.bytes
    assert r.attainable == r.ai * 320e9  # memory-bound: AI x bandwidth < peak
    assert r.bound == "memory" and r.pct_of_peak == pytest.approx(100 * r.ai / 203.125)
    assert r.bound_time_s == pytest.approx(r.bytes / 320e9, rel=1e-14)
    big = prefill(T4, fp16, 8, 512)
    assert big.bound == "compute" and big.attainable == 65e12 and big.pct_of_peak == 100.0
    assert big.bound_time_s == pytest.approx(big.flops / 65e12, rel=1e-14)
    assert sum(o.time_s for o in big.ops) == pytest.approx(big.time_s, rel=1e-12)


def test_realistic_time_applies_efficiencies_and_overhead(fp16):
    r = decode(T4, fp16, 1, 512)
    # Every decode operator at B=1 is memory-bound, also at 72% compute / 70% bandwidth.
    assert all(o.bound == "memory" for o in r.ops)
    assert r.realistic_time_s == pytest.approx(r.bytes / (0.70 * 320e9) + 1e-3, rel=1e-12)
    assert r.realistic_tokens_per_s == 1 / r.realistic_time_s


def test_expected_distinct_experts_matches_enumeration():
    experts, k, tokens = 4, 2, 3
    choices = list(itertools.combinations(range(experts), k))
    distinct = [len(set().union(*route)) for route in itertools.product(choices, repeat=tokens)]
    mean = sum(distinct) / len(distinct)
    assert expected_experts(float(tokens), experts, k) == pytest.approx(mean, rel=1e-14)
    assert expected_experts(1.0, 8, 2) == 2.0 and expected_experts(2.0, 8, 2) == 3.5


def test_moe_flops_for_active_experts_bytes_for_touched_ones():
    mix = model("mixtral-8x7b", "fp16")
    c = mix.config
    expert = 3 * c.hidden * c.intermediate
    active = c.params - c.embedding_params - c.layers * (8 - 2) * expert
    one = decode(T4, mix, 1, 100)
    assert one.flops == 2 * active + 4 * 32 * 32 * 128 * 100
    two = decode(T4, mix, 2, 100)
    expert_bytes = {o.name: o.bytes for o in one.ops}, {o.name: o.bytes for o in two.ops}
    per_expert = 2 * c.hidden * 2 * c.intermediate * 32  # gate_up weights of one expert, all layers
    activations = 32 * 2 * (c.hidden + 2 * c.intermediate) * 2  # k=2 experts' in/out per token
    assert expert_bytes[0]["experts_gate_up"] == 2 * per_expert + activations
    assert expert_bytes[1]["experts_gate_up"] == pytest.approx(3.5 * per_expert + 2 * activations, rel=1e-15)


def test_kv_capacity_is_vllm_032s_profile_by_hand():
    # Llama-2-7B AWQ on a T4 at vLLM 0.32's T4 defaults: a 2048-token profile, 256 sampled rows.
    awq = model("llama-2-7b", "awq")
    exposed = 15360 * 2**20                        # nvidia-smi's total for a T4 (ECC on)
    weights = 3_889_307_648
    activations = 2 * 2048 * (2 * h + 3 * I)       # MLP: residual, normed input, gate_up, act (fp16)
    assert activations > 2 * 2048 * (2 * h + 3 * h + h)     # > attention: 2h + q/k/v + output
    assert activations > 2 * (2048 * h + 256 * (h + V))    # > sampler: hidden + rows + logits
    graphs = 51 + 35                               # PIECEWISE 1..512, FULL 1..256 (LMCache #3430)
    cuda_graphs = graphs * L * 0.52 * 2**30 / (86 * 36)
    non_torch = 0.16 * 2**30
    budget = 0.9 * exposed - weights - activations - cuda_graphs - non_torch
    assert budget / 2**30 == pytest.approx(9.098, abs=1e-3)
    blocks = math.floor(budget / (524_288 * 16))
    assert blocks == 1164
    mem = memory(T4, awq, 2048)
    assert (mem.gpu_memory_bytes, mem.weight_bytes, mem.activation_bytes) == (exposed, weights, activations)
    assert (mem.cuda_graph_bytes, mem.non_torch_bytes) == (pytest.approx(cuda_graphs), non_torch)
    assert (mem.max_num_batched_tokens, mem.max_num_seqs) == (2048, 256)
    assert mem.max_sequences == blocks // 128 == 9
    assert memory(T4, awq, 2047).max_sequences == 9  # still 128 blocks of 16 tokens
    assert memory(T4, awq, 16, cuda_graphs=False).max_sequences == math.floor((budget + cuda_graphs) / 2**23)
    half = memory(T4, awq, 2048, gpu_memory_utilization=0.5)
    assert half.max_sequences == math.floor((budget - 0.4 * exposed) / (524_288 * 16)) // 128
    assert not memory(T4, model("llama-2-13b", "fp16"), 512).fits


def test_profile_shape_follows_vllms_defaults_per_gpu():
    awq = model("llama-2-7b", "awq")
    shapes = {g: (lambda x: (x.max_num_batched_tokens, x.max_num_seqs))(memory(hardware(g), awq, 16))
              for g in ("t4", "a100-80gb", "h100", "mi300x")}
    assert shapes == {"t4": (2048, 256), "a100-80gb": (2048, 256), "h100": (8192, 1024), "mi300x": (16384, 1024)}
    # a bigger profile costs more: 8192 tokens' activations, 1024 rows, 51 + 51 graphs on an H100
    h100 = memory(hardware("h100"), awq, 16)
    assert h100.activation_bytes == 2 * 8192 * (2 * h + 3 * I)
    assert h100.cuda_graph_bytes == pytest.approx(102 * L * 0.52 * 2**30 / (86 * 36))


def test_decode_sweep_best_batch_and_compute_bound_batch():
    awq = model("llama-2-7b", "awq")
    s = decode_sweep(T4, awq, 512, latency_target_s=0.05)
    assert s.max_sequences == memory(T4, awq, 512).max_sequences
    meets = [b for b in range(1, 513) if b <= s.max_sequences
             and decode(T4, awq, b, 512).realistic_time_s <= 0.05]
    assert s.best_batch == max(meets)  # throughput grows with B, so the largest that meets it
    assert s.compute_bound_batch is None  # KV bytes grow with B as fast as FLOPs: never here
    h100, llama3 = hardware("h100"), model("llama-3-8b", "bf16")
    short = decode_sweep(h100, llama3, 1, max_batch=512)
    first = next(b for b in range(1, 513) if decode(h100, llama3, b, 1).bound == "compute")
    assert short.compute_bound_batch == first
