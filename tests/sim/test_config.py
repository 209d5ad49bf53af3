"""Settings -> engine numbers: vLLM's defaults, the KV block count from the roofline, and
vLLM's start-up checks as one-line errors."""
from __future__ import annotations

import math

import pytest

from tests.cli_helpers import T4
from varcas import roofline
from varcas.errors import VarcasError
from varcas.sim import SimConfig, resolve
from varcas.sim.config import BLOCK_SIZE, max_position_embeddings


def test_block_count_is_vllms_from_the_roofline_memory_model():
    setup = resolve(SimConfig(model="llama-2-7b", gpu="t4", quant="awq", max_num_seqs=8))
    hw, m = roofline.hardware("t4"), roofline.model("llama-2-7b", quant="awq")
    kv_token = 2 * 32 * 32 * 128 * 2   # K and V, 32 layers x 32 heads x 128 dims, fp16
    assert m.config.kv_bytes_per_token("fp16") == kv_token
    # vLLM 0.32 profiles the engine's own shape: 2048 tokens, 8 sampled rows on this T4, and
    # captures 5 + 4 graphs (sizes 1, 2, 4, 8, 16; decode batches up to 8) instead of 51 + 35
    mem = roofline.memory(hw, m, BLOCK_SIZE, max_num_batched_tokens=2048, max_num_seqs=8)
    assert setup.memory == mem and setup.num_blocks == mem.max_sequences
    assert mem.cuda_graph_bytes == pytest.approx(9 * 32 * 0.52 * 2**30 / (86 * 36))
    assert setup.num_blocks == math.floor(mem.kv_budget_bytes / (BLOCK_SIZE * kv_token)) == 1217
    assert setup.watermark_blocks == 0   # V1's SchedulerConfig.watermark is 0.0
    assert (setup.max_model_len, setup.max_num_batched_tokens, setup.chunked_prefill) == (4096, 2048, True)
    assert setup.served_name == "llama-2-7b-awq" and setup.scheduler == "v1"


@pytest.mark.parametrize("gpu, budget, seqs", [
    ("t4", 2048, 256),                # < 70 GiB
    ("a100-80gb", 2048, 256),         # >= 70 GiB, but an A100 (vLLM PR #17885)
    ("h100", 8192, 1024),             # >= 70 GiB
    ("h200", 8192, 1024),             # 140 GiB: still below 160
    ("mi300x", 16384, 1024),          # >= 160 GiB
    ("b200:bw_gbps=8000,fp16_tflops=2250,mem_gb=180", 16384, 1024),   # B200-class, inline
])
def test_defaults_are_vllm_032s_api_server_per_gpu(gpu, budget, seqs):
    setup = resolve(SimConfig(gpu=gpu))
    assert (setup.max_num_batched_tokens, setup.max_num_seqs, setup.chunked_prefill) == (budget, seqs, True)
    assert (setup.memory.max_num_batched_tokens, setup.memory.max_num_seqs) == (budget, seqs)
    params = setup.params()   # what a run manifest records: the values that ran
    assert (params["scheduler"], params["max_num_batched_tokens"], params["max_num_seqs"],
            params["enable_chunked_prefill"], params["num_gpu_blocks"]) == ("v1", budget, seqs, True, setup.num_blocks)


def test_the_default_target_is_llama_3_8b_fp8_on_an_h100_with_vllms_defaults():
    # The embedded target of `varcas load` with no --url (see varcas.sim.config for why this one).
    setup = resolve(SimConfig())
    assert (setup.served_name, setup.hw.gpu.name, setup.max_num_batched_tokens, setup.max_num_seqs,
            setup.chunked_prefill, setup.max_model_len) == ("llama-3-8b-fp8", "h100-sxm", 8192, 1024, True, 8192)


def test_vllms_adjustments_of_its_defaults():
    # without chunked prefill the budget covers max_model_len; a default max_num_seqs stays within
    # the budget, and a default budget within max_num_seqs x max_model_len
    off = resolve(SimConfig(**T4, enable_chunked_prefill=False))
    assert (off.chunked_prefill, off.max_num_batched_tokens, off.max_num_seqs) == (False, 4096, 256)
    assert off.scheduler == "v1" and off.watermark_blocks == 0
    assert resolve(SimConfig(**T4, max_num_batched_tokens=128)).max_num_seqs == 128
    assert resolve(SimConfig(**T4, max_num_seqs=2, max_model_len=32)).max_num_batched_tokens == 64
    assert resolve(SimConfig(**T4, max_num_seqs=300)).max_num_batched_tokens == 2048


def test_scheduler_v0_restores_the_old_defaults():
    old = resolve(SimConfig(**T4, scheduler="v0"))
    assert (old.max_num_batched_tokens, old.max_num_seqs, old.chunked_prefill) == (4096, 256, False)
    assert old.watermark_blocks == old.num_blocks // 100
    assert old.memory.cuda_graph_bytes == 0   # V0 captured its graphs after sizing the cache
    assert old.num_blocks == roofline.memory(old.hw, old.model, BLOCK_SIZE, max_num_batched_tokens=4096,
                                             max_num_seqs=256, cuda_graphs=False).max_sequences
    chunked = resolve(SimConfig(**T4, scheduler="v0", enable_chunked_prefill=True))
    assert (chunked.max_num_batched_tokens, chunked.max_num_seqs) == (2048, 256)


def test_defaults_follow_the_model_and_chunked_prefill():
    assert max_position_embeddings("llama-3-8b") == 8192
    assert resolve(SimConfig(model="llama-3-8b", max_num_seqs=8)).max_model_len == 8192
    chunked = resolve(SimConfig(**T4, enable_chunked_prefill=True))
    assert chunked.max_num_batched_tokens == 2048 and chunked.max_num_seqs == 256
    custom = resolve(SimConfig(**T4, max_model_len=1024, max_num_batched_tokens=1500, served_model_name="m"))
    assert (custom.max_model_len, custom.max_num_batched_tokens, custom.served_name) == (1024, 1500, "m")


def test_what_if_knobs_reach_the_hardware_model():
    setup = resolve(SimConfig(gpu="a100-80gb", bw_efficiency=0.5, compute_efficiency=0.6, step_overhead_ms=0))
    assert (setup.hw.bw_efficiency, setup.hw.compute_efficiency, setup.hw.step_overhead_s) == (0.5, 0.6, 0.0)
    assert setup.params()["gpu"] == setup.hw.gpu.name and setup.params()["step_overhead_ms"] == 0.0
    bigger = resolve(SimConfig(gpu="a100-80gb"))
    assert bigger.num_blocks > 7 * resolve(SimConfig(gpu="t4")).num_blocks   # (72 - 4.6) / (13.5 - 4.4) GiB


@pytest.mark.parametrize("config, words", [
    (SimConfig(model="llama-2-70b", quant="fp16"), "nothing is left for the KV cache"),
    (SimConfig(**T4, max_model_len=100_000), "larger than the maximum number of tokens"),
    (SimConfig(max_num_batched_tokens=1024, enable_chunked_prefill=False), "smaller than --max-model-len"),
    (SimConfig(max_num_batched_tokens=1024, scheduler="v0"), "smaller than --max-model-len"),
    (SimConfig(scheduler="v2"), "--scheduler must be one of v1, v0"),
    (SimConfig(max_num_seqs=512, enable_chunked_prefill=True, max_num_batched_tokens=256), "must be >= --max-num-seqs"),
    (SimConfig(max_num_seqs=0), "--max-num-seqs must be an integer >= 1"),
    (SimConfig(gpu="nope"), "unknown GPU"),
    (SimConfig(model="nope"), "unknown model"),
    (SimConfig(gpu_memory_utilization=1.5), "utilization must be in"),
])
def test_bad_settings_are_one_line_errors(config, words):
    with pytest.raises(VarcasError, match=words) as info:
        resolve(config)
    assert "\n" not in str(info.value)
